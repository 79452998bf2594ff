"""Prepare the benchmark database; run through `odoo shell` (``env`` is given).

Creates CUSTOMERS partners with their Stripe customers in localstripe, points the provider at
localstripe with a known webhook secret, and writes the customers (as Stripe objects) to a file
for the load generator.
"""

import json
import os
import sys

sys.path.insert(0, os.environ["BENCH_DIR"])
from bench_provider import configure_provider  # noqa: E402

from odoo.addons.crm_payment_integration.services.gateway import StripeGateway, make_idempotency_key  # noqa: E402

count = int(os.environ.get("CUSTOMERS", "500"))
provider = configure_provider(env)  # noqa: F821
gateway = StripeGateway("sk_test_bench", os.environ["LOCALSTRIPE_URL"])
partners = env["res.partner"].create(  # noqa: F821
    [{"name": f"Bench Customer {i}", "is_company": True, "email": f"c{i}@example.com"} for i in range(count)]
)
customers = []
bindings = []
for partner in partners:
    customer = gateway.create_customer(
        {"name": partner.name, "email": partner.email}, make_idempotency_key("bench", partner.id)
    )
    customers.append(customer)
    bindings.append(
        {"partner_id": partner.id, "provider_id": provider.id, "stripe_customer_id": customer["id"]}
    )
env["crm.stripe.customer"].create(bindings)  # noqa: F821
env.cr.commit()  # noqa: F821
with open(os.environ["CUSTOMERS_FILE"], "w") as file:
    json.dump(customers, file)
print(f"provider_id={provider.id}")
