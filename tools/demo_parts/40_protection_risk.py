# Protection: risk flags (card testing on Lumber Inc, an early fraud warning on Azure's paid
# charge), the alerts they raised and the audit trail of every Stripe call and change.
import json as _json  # noqa: E402
import os as _os  # noqa: E402
import time as _time  # noqa: E402

from odoo.exceptions import UserError  # noqa: E402

company.crm_alert_user_id = admin  # noqa: F821
company.crm_alert_email_risk_flag = True  # noqa: F821

# Card testing: declined attempts with one card on Lumber Inc, until the failed-attempt rules
# (5 in 60 minutes, per customer and per card: the past-due subscription declined the same card
# number) flag it and hold its charges.
pm_testing = client.v1.payment_methods.create(  # noqa: F821
    params={
        "type": "card",
        "card": {"number": "4000000000000341", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }
)
client.v1.payment_methods.attach(pm_testing.id, params={"customer": partners[2].stripe_customer_id})  # noqa: F821
partners[2].action_crm_stripe_sync()  # noqa: F821
testing_token = partners[2]._crm_tokens().filtered(lambda t: t.stripe_payment_method == pm_testing.id)  # noqa: F821
refused = ""
for attempt in range(6):
    wizard = env["crm.payment.charge.wizard"].create(  # noqa: F821
        {
            "partner_id": partners[2].id,  # noqa: F821
            "token_id": testing_token.id,
            "amount": 1.0 + attempt,
            "reason": "Card test",
        }
    )
    try:
        wizard.action_charge()
    except UserError as error:  # the flag holds the customer's charges: refused at once
        refused = str(error)
        break

# An early fraud warning on Azure's paid charge, as Stripe would send it (signed event).
paid_tx = azure_invoice.transaction_ids.filtered(lambda t: t.state == "done" and t.operation != "refund")[:1]  # noqa: F821
intent = client.v1.payment_intents.retrieve(paid_tx.provider_reference)
charge_id = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
warning_event = {
    "id": "evt_demo_efw_" + _os.urandom(6).hex(),
    "object": "event",
    "api_version": "2026-10-28.endive",
    "created": int(_time.time()),
    "type": "radar.early_fraud_warning.created",
    "livemode": False,
    "data": {
        "object": {
            "id": "issfr_demo_" + _os.urandom(6).hex(),
            "object": "radar.early_fraud_warning",
            "actionable": True,
            "charge": charge_id,
            "created": int(_time.time()),
            "fraud_type": "made_with_stolen_card",
            "livemode": False,
        }
    },
}
Event = env["crm.payment.event"].sudo()  # noqa: F821
Event._crm_ingest(provider.sudo(), warning_event, _json.dumps(warning_event))  # noqa: F821
Event._crm_process_due()
env["crm.payment.event"]._cron_check_webhooks()  # noqa: F821
env.cr.commit()  # noqa: F821

flags = env["crm.payment.risk.flag"].search([])  # noqa: F821
alerts = env["crm.payment.alert"].search([])  # noqa: F821
audit = env["crm.payment.audit"].search_count([])  # noqa: F821
held = flags.filtered(lambda f: f.hold_charges).partner_id.mapped("name")
print(
    f"demo: protection: {len(flags)} risk flags ({', '.join(sorted(set(flags.mapped('rule'))))}), "
    f"{len(alerts)} alerts ({', '.join(sorted(set(alerts.mapped('kind'))))}), {audit} audit lines; "
    f"held: {', '.join(held) or 'nobody'}"
)
if refused:
    print(f"demo: protection: a further charge refused: {refused[:90]}...")
