"""In-process cost of the protection features per confirmed payment (run by `odoo shell`).

Confirms N payments of posted invoices through the ledger's own path (a PaymentIntent that
succeeded, applied under an event's context, then the batch post-processing: payment posted
and reconciled, receipt rendered), alternately with the protection hooks (risk rules, audit
line of the state change) and with them switched off in this process only, so that both
variants see the same load. Everything is rolled back at the end. Prints the median time per
payment of each and the added time (target < 10 %).
"""

import os
import statistics
import time
from unittest.mock import patch

from odoo.addons.crm_payment_integration.models.crm_payment_event import EventBatch

N = int(os.environ.get("COST_PAYMENTS", "150"))
env = env  # noqa: F821, PLW0127
company = env.company
Tx = env["payment.transaction"]
provider = env["payment.provider"]._crm_get_stripe_provider(company) or env.ref(
    "payment.payment_provider_stripe"
)
provider.write({"stripe_secret_key": "sk_test_cost", "stripe_publishable_key": "pk_test_cost"})
provider.write({"state": "test", "company_id": company.id})
if not provider.journal_id:
    provider.journal_id = env["account.journal"].search(
        [("type", "=", "bank"), ("company_id", "=", company.id)], limit=1
    )
partners = env["res.partner"].create(
    [{"name": f"Cost customer {i}", "email": f"cost{i}@example.com"} for i in range(N)]
)
invoices = env["account.move"].create(
    [
        {
            "move_type": "out_invoice",
            "partner_id": partner.id,
            "invoice_line_ids": [(0, 0, {"name": "Work", "quantity": 1, "price_unit": 100.0 + i})],
        }
        for i, partner in enumerate(partners)
    ]
)
invoices.action_post()
txs = [
    Tx._crm_create(
        invoice.partner_id, invoice.amount_residual, invoice.currency_id, "off_session", invoices=invoice
    )
    for invoice in invoices
]
for tx in txs:
    tx._set_pending()
env.flush_all()
env["crm.payment.risk.rule"]._crm_rules(company)  # the defaults, as after a first payment

Class = type(Tx)


def confirm(tx, protected):
    intent = {
        "id": f"pi_cost_{tx.id}",
        "object": "payment_intent",
        "status": "succeeded",
        "amount": tx._crm_minor_amount(),
        "amount_received": tx._crm_minor_amount(),
        "currency": tx.currency_id.name.lower(),
        "metadata": {"reference": tx.reference},
    }
    batch = EventBatch()
    context = {"crm_batch": batch, "crm_ledger_processing": True}
    if protected:
        context.update(crm_audit_event=-1, crm_audit_event_type="payment_intent.succeeded")
    start = time.perf_counter()
    if protected:
        tx.with_context(**context)._crm_apply_payment_intent(intent)
    else:
        with (
            patch.object(Class, "_crm_check_risk", lambda self: env["crm.payment.risk.flag"]),
            patch.object(Class, "_crm_store_intent_risk_data", lambda self, intent: None),
        ):
            tx.with_context(**context)._crm_apply_payment_intent(intent)
    Tx.browse(batch.confirmed)._crm_post_process_confirmed()
    env.flush_all()
    return time.perf_counter() - start


# The audit line of a change names its event: a placeholder event row for this run.
env.cr.execute(
    """
    INSERT INTO crm_payment_event (id, provider_id, company_id, stripe_event_id, event_type, state,
                                   received_at, attempts, create_date, write_date)
    VALUES (-1, %s, %s, 'evt_cost', 'payment_intent.succeeded', 'done', now(), 0, now(), now())
    """,
    [provider.id, company.id],
)
times = {True: [], False: []}
for i, tx in enumerate(txs):
    protected = i % 2 == 0
    times[protected].append(confirm(tx, protected))
assert all(tx.state == "done" for tx in txs)
env.cr.execute("SELECT count(*) FROM crm_payment_audit WHERE event_id = -1")
audited = env.cr.fetchone()[0]
off, on = statistics.median(times[False]), statistics.median(times[True])
print(
    f"protection cost: {N} payments confirmed through the ledger path, alternately: median "
    f"{off * 1000:.1f} ms without, {on * 1000:.1f} ms with the risk rules and audit "
    f"({audited} audit lines): added {on / off - 1:+.1%} per confirmed payment (target < 10%)"
)
env.cr.rollback()
