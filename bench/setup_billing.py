"""Prepare the billing benchmark; run through `odoo shell` (``env`` is given).

Adds SUBSCRIPTIONS monthly subscriptions due today, each for its own customer with a card saved
in localstripe (customer, payment method and default set there, then mirrored as a token), as a
business billing in Odoo would have them. Subscriptions of earlier sizes are already billed for
this period and are not due again.
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.environ["BENCH_DIR"])
from bench_provider import configure_provider  # noqa: E402

from odoo import fields  # noqa: E402

count = int(os.environ.get("SUBSCRIPTIONS", "1000"))
env = env  # noqa: F821
provider = configure_provider(env)
gateway = provider._crm_stripe_gateway()
card = env["payment.method"].with_context(active_test=False).search([("code", "=", "card")], limit=1)
product = env["product.product"].search([("default_code", "=", "BENCH-SUB")], limit=1) or env[
    "product.product"
].create(
    {"name": "Bench subscription", "default_code": "BENCH-SUB", "type": "service", "taxes_id": [(5, 0, 0)]}
)
offset = env["res.partner"].search_count([("name", "=like", "Bench Subscriber %")])


def stripe_customer(i):
    customer = gateway.client.v1.customers.create(params={"name": f"Bench Subscriber {i}"})
    pm = gateway.client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 8, "exp_year": 2034, "cvc": "123"},
        }
    )
    gateway.client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    return customer.id, pm.id


with ThreadPoolExecutor(8) as pool:
    stripe_ids = list(pool.map(stripe_customer, range(offset, offset + count)))
today = fields.Date.context_today(env.user)
for start in range(0, count, 1000):
    chunk = stripe_ids[start : start + 1000]
    partners = env["res.partner"].create(
        [{"name": f"Bench Subscriber {offset + start + i}", "is_company": True} for i in range(len(chunk))]
    )
    env["crm.stripe.customer"].create(
        [
            {"partner_id": partner.id, "provider_id": provider.id, "stripe_customer_id": customer_id}
            for partner, (customer_id, __) in zip(partners, chunk, strict=True)
        ]
    )
    tokens = env["payment.token"].create(
        [
            {
                "provider_id": provider.id,
                "payment_method_id": card.id,
                "partner_id": partner.id,
                "provider_ref": customer_id,
                "stripe_payment_method": pm_id,
                "payment_details": "4242",
                "crm_is_default": True,
            }
            for partner, (customer_id, pm_id) in zip(partners, chunk, strict=True)
        ]
    )
    env["crm.subscription"].create(
        [
            {
                "partner_id": partner.id,
                "payment_token_id": token.id,
                "start_date": today,
                "state": "active",
                "next_invoice_date": today,
                "line_ids": [(0, 0, {"product_id": product.id, "quantity": 1, "price_unit": 20.0 + i % 80})],
            }
            for i, (partner, token) in enumerate(zip(partners, tokens, strict=True))
        ]
    )
    env.cr.commit()
print(f"provider_id={provider.id}")
