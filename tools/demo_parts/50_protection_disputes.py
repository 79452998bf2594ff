"""Disputes and the drift check (issue 12): a disputed payment with its evidence submitted, a
lost dispute whose funds Stripe withdrew (the invoice reopened by an entry), and a drift report
with a payment made in Stripe only, repaired. Stripe's disputes are played by the demo's
localstripe (tools/localstripe_disputes.py); events go through the ledger as a webhook's would."""

import json
import time

import requests

Event = env["crm.payment.event"]
Dispute = env["crm.payment.dispute"]
stripe_headers = {"Authorization": f"Bearer {provider.stripe_secret_key}"}


def demo_charged_invoice(quantity):
    invoice = env["account.move"].create(
        {
            "move_type": "out_invoice",
            "partner_id": partners[0].id,
            "invoice_user_id": admin.id,
            "invoice_line_ids": [
                (0, 0, {"product_id": product.id, "quantity": quantity, "price_unit": 850.0})
            ],
        }
    )
    invoice.action_post()
    invoice.action_crm_charge_saved_method()
    intent = client.v1.payment_intents.retrieve(invoice.transaction_ids[:1].provider_reference)
    charge = intent.latest_charge
    return invoice, charge if isinstance(charge, str) else charge.id


def demo_dispute_event(event_type, dispute):
    """Stripe's event about a dispute, stored and applied by the ledger."""
    event = {
        "id": "evt_demo_" + dispute["id"] + "_" + event_type.rsplit(".", 1)[-1],
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": dispute},
    }
    Event._crm_ingest(provider, event, json.dumps(event))
    Event._crm_process_due()


def demo_open_dispute(charge_id, **values):
    response = requests.post(
        f"{localstripe_url}/_demo/disputes",
        data={"charge": charge_id, **values},
        headers=stripe_headers,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


# 1. A dispute answered with evidence: the invoice, the customer's messages, the service date.
disputed_invoice, disputed_charge = demo_charged_invoice(2)
disputed_invoice.message_post(
    body="Thanks, the consultant's two days on site went well - see you next quarter.",
    message_type="comment",
    subtype_xmlid="mail.mt_comment",
    author_id=partners[0].id,
)
remote = demo_open_dispute(disputed_charge, reason="product_not_received")
demo_dispute_event("charge.dispute.created", remote)
answered = Dispute.search([("stripe_dispute_id", "=", remote["id"])])
wizard = (
    env["crm.payment.dispute.evidence.wizard"]
    .with_context(**answered.action_crm_submit_evidence()["context"])
    .create({})
)
wizard.uncategorized_text = "Two consulting days delivered on site; timesheets signed by the customer."
wizard.action_submit()

# 2. A dispute lost: Stripe withdrew 850.00 and a 15.00 fee; the invoice is due again.
lost_invoice, lost_charge = demo_charged_invoice(1)
lost = demo_open_dispute(lost_charge, reason="fraudulent", withdraw="true", fee="1500", status="lost")
demo_dispute_event("charge.dispute.funds_withdrawn", lost)
demo_dispute_event("charge.dispute.closed", lost)
lost_dispute = Dispute.search([("stripe_dispute_id", "=", lost["id"])])

# 3. A drift report: a payment taken in Stripe's dashboard only, then repaired.
dashboard_intent = client.v1.payment_intents.create(
    params={
        "amount": 42000,
        "currency": env.company.currency_id.name.lower(),
        "customer": partners[0].stripe_customer_id,
        "payment_method": pm.id,
        "confirm": True,
        "off_session": True,
    }
)
DriftRun = env["crm.payment.drift.run"]
drift_run = DriftRun.browse(DriftRun._crm_action_start()["res_id"])
missing_lines = drift_run.line_ids.filtered(lambda line: line.kind == "missing_in_odoo" and line.repairable)
missing_lines.action_crm_repair()
env.cr.commit()

print(
    f"demo: disputes: {answered.stripe_dispute_id} {answered.state} "
    f"(evidence file {answered.evidence_file_ids}), "
    f"{lost_dispute.stripe_dispute_id} {lost_dispute.state}, invoice {lost_invoice.name} due "
    f"{lost_invoice.amount_residual:.2f} again (entry {lost_dispute.withdrawal_move_id.name})"
)
print(
    f"demo: drift check: {drift_run.charge_count} Stripe charges, {drift_run.difference_count} "
    f"difference(s), {len(missing_lines.filtered(lambda line: line.state == 'repaired'))} repaired"
)
