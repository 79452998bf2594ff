"""Prepare the benchmark database; run through `odoo shell` (``env`` is given).

Creates CUSTOMERS partners with their Stripe customers in localstripe, points the provider at
localstripe with a known webhook secret, and writes the customers (as Stripe objects) to a file
for the load generator.
"""

import json
import os

from odoo.addons.crm_payment_integration.services.gateway import StripeGateway, make_idempotency_key

count = int(os.environ.get("CUSTOMERS", "500"))
provider = env.ref("payment.payment_provider_stripe")  # noqa: F821
provider.write(
    {
        "state": "test",
        "stripe_secret_key": "sk_test_bench",
        "stripe_publishable_key": "pk_test_bench",
        "crm_api_base": os.environ["LOCALSTRIPE_URL"],
        "crm_webhook_secret": os.environ["WEBHOOK_SECRET"],
    }
)
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
    bindings.append({"partner_id": partner.id, "provider_id": provider.id, "stripe_customer_id": customer["id"]})
env["crm.stripe.customer"].create(bindings)  # noqa: F821
env.cr.commit()  # noqa: F821
with open(os.environ["CUSTOMERS_FILE"], "w") as file:
    json.dump(customers, file)
print(f"provider_id={provider.id}")
