"""Prepare the payments benchmark; run through `odoo shell` (``env`` is given).

Creates PAYMENTS pending Stripe transactions on posted invoices for this add-on (off-session
charges) and as many for Odoo's own Stripe flow, then writes, for each, the PaymentIntent Stripe
would send in ``payment_intent.succeeded``: amount, currency, ``description`` (what Odoo's own
webhook matches) and ``metadata.reference`` (what this add-on matches).
"""

import json
import os
import sys

sys.path.insert(0, os.environ["BENCH_DIR"])
from bench_provider import configure_provider  # noqa: E402

from odoo.addons.payment.utils import to_minor_currency_units  # noqa: E402

count = int(os.environ.get("PAYMENTS", "500"))
env = env  # noqa: F821
provider = configure_provider(env)
currency = provider.company_id.currency_id
card = env["payment.method"].with_context(active_test=False).search([("code", "=", "card")], limit=1)
partners = env["res.partner"].create(
    [{"name": f"Bench Payer {i}", "is_company": True, "email": f"payer{i}@example.com"} for i in range(50)]
)
env["crm.stripe.customer"].create(
    [
        {"partner_id": p.id, "provider_id": provider.id, "stripe_customer_id": f"cus_bench{p.id}"}
        for p in partners
    ]
)
invoices = env["account.move"].create(
    [
        {
            "move_type": "out_invoice",
            "partner_id": partners[i % len(partners)].id,
            "invoice_line_ids": [
                (0, 0, {"name": "Bench service", "quantity": 1, "price_unit": 100 + i % 97, "tax_ids": []})
            ],
        }
        for i in range(2 * count)
    ]
)
invoices.action_post()
env.cr.commit()
txs = env["payment.transaction"].create(
    [
        {
            "provider_id": provider.id,
            "payment_method_id": card.id,
            "partner_id": invoice.partner_id.id,
            "amount": invoice.amount_total,
            "currency_id": currency.id,
            "operation": "offline",
            "reference": f"BENCH-{'crm' if i < count else 'odoo'}-{invoice.id}",
            "provider_reference": f"pi_bench{invoice.id}",
            "invoice_ids": [(6, 0, invoice.ids)],
            "crm_flow": "off_session" if i < count else False,
            "state": "pending",
        }
        for i, invoice in enumerate(invoices)
    ]
)
env.cr.commit()
intents = []
for tx in txs:
    minor = to_minor_currency_units(tx.amount, tx.currency_id)
    intents.append(
        {
            "flow": "crm" if tx.crm_flow else "odoo",
            "invoice_id": tx.invoice_ids.id,
            "intent": {
                "id": tx.provider_reference,
                "object": "payment_intent",
                "amount": minor,
                "amount_received": minor,
                "currency": currency.name.lower(),
                "customer": f"cus_bench{tx.partner_id.id}",
                "description": tx.reference,
                "metadata": {"reference": tx.reference},
                "payment_method": "pm_bench",
                "status": "succeeded",
                "latest_charge": "ch_bench",
            },
        }
    )
with open(os.environ["INTENTS_FILE"], "w") as file:
    json.dump(intents, file)
print(f"provider_id={provider.id}")
