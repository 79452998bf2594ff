"""Fill the demo database; run by tools/demo.sh through `odoo shell` (``env`` is given).

Points the Stripe provider at localstripe, registers the webhook, creates a few customers with
invoices, syncs them with (local) Stripe and saves a test card for one of them, then shows each
payment path once: a saved card charged (then partly refunded), a payment link sent, an
opportunity ready for Request Payment, subscriptions in every state (draft, trial, active, past
due, paused, cancelled, expired; one from a plan the customer may pause), a Stripe Billing
subscription mirrored from (local) Stripe, and a portal login for the first customer.
"""

import os

import stripe

localstripe_url = os.environ["LOCALSTRIPE_URL"]
odoo_url = os.environ["ODOO_URL"]

env["ir.config_parameter"].set_param("web.base.url", odoo_url)  # noqa: F821
env["ir.config_parameter"].set_param("web.base.url.freeze", "True")  # noqa: F821
company = env.company  # noqa: F821
admin = env.ref("base.user_admin")  # noqa: F821
admin.write({"email": "admin@example.com"})
provider = env["payment.provider"]._crm_get_stripe_provider() or env.ref(  # noqa: F821
    "payment.payment_provider_stripe"
)
provider.write(
    {
        "state": "test",
        "stripe_secret_key": "sk_test_demo_crm_payment",
        "stripe_publishable_key": "pk_test_demo_crm_payment",
        "crm_api_base": localstripe_url,
        "crm_alert_user_id": admin.id,
    }
)
provider.action_crm_register_webhook()

Partner = env["res.partner"]  # noqa: F821
us = env.ref("base.us")  # noqa: F821
be = env.ref("base.be")  # noqa: F821
customers = [
    {
        "name": "Azure Interior",
        "email": "azure@example.com",
        "phone": "+1 555 0100",
        "street": "4557 De Silva St",
        "city": "Fremont",
        "zip": "94538",
        "country_id": us.id,
        "state_id": env.ref("base.state_us_5").id,
    },  # noqa: F821
    {
        "name": "Deco Addict",
        "email": "deco.addict@example.com",
        "street": "77 Santa Barbara Rd",
        "city": "Pleasant Hill",
        "zip": "94523",
        "country_id": us.id,
    },
    {
        "name": "Lumber Inc",
        "email": "lumber@example.com",
        "street": "Rue de la Loi 16",
        "city": "Bruxelles",
        "zip": "1000",
        "country_id": be.id,
        "vat": "BE0477472701",
    },
]
partners = Partner
for values in customers:
    partner = Partner.search([("name", "=", values["name"]), ("is_company", "=", True)], limit=1)
    partners |= partner or Partner.create({**values, "is_company": True})
Partner.create({"name": "Brandon Freeman", "parent_id": partners[0].id, "email": "brandon@example.com"})

product = env["product.product"].create(  # noqa: F821
    {"name": "Consulting (day)", "list_price": 850.0, "type": "service"}
)
for partner, quantity in zip(partners, (3, 1, 5), strict=True):
    invoice = env["account.move"].create(  # noqa: F821
        {
            "move_type": "out_invoice",
            "partner_id": partner.id,
            "invoice_line_ids": [
                (0, 0, {"product_id": product.id, "quantity": quantity, "price_unit": 850.0})
            ],
        }
    )
    invoice.action_post()

partners.action_crm_stripe_sync()
# A card saved by the first customer, as if on a Stripe-hosted page.
client = stripe.StripeClient(provider.stripe_secret_key, base_addresses={"api": localstripe_url})
pm = client.v1.payment_methods.create(
    params={
        "type": "card",
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }
)
client.v1.payment_methods.attach(pm.id, params={"customer": partners[0].stripe_customer_id})
partners[0].action_crm_stripe_sync()

# Payments: a charge of Azure's saved card, partly refunded; a link sent to Lumber Inc.
invoices = env["account.move"].search(  # noqa: F821
    [("partner_id", "in", partners.ids), ("move_type", "=", "out_invoice")], order="id"
)
azure_invoice = invoices.filtered(lambda m: m.partner_id == partners[0])[:1]
azure_invoice.action_crm_charge_saved_method()
refund = (
    env["crm.payment.refund.wizard"]
    .with_context(  # noqa: F821
        **azure_invoice.action_crm_refund()["context"]
    )
    .create({})
)
refund.amount = 850.0
refund.action_refund()
env["account.move"].create(  # noqa: F821
    {
        "move_type": "out_invoice",
        "partner_id": partners[0].id,
        "invoice_line_ids": [(0, 0, {"product_id": product.id, "quantity": 2, "price_unit": 850.0})],
    }
).action_post()
invoices.filtered(lambda m: m.partner_id == partners[2])[:1].action_crm_send_payment_link()
env["crm.lead"].create(  # noqa: F821
    {
        "name": "Furniture for 12 desks",
        "type": "opportunity",
        "partner_id": partners[1].id,
        "expected_revenue": 12000.0,
        "user_id": admin.id,
    }
)
# Subscriptions in several states: billed and paid, in trial, past due (a card that declines),
# paused, cancelled.
from datetime import date, timedelta  # noqa: E402

from dateutil.relativedelta import relativedelta  # noqa: E402

Subscription = env["crm.subscription"]  # noqa: F821
plan = env["product.product"].create({"name": "Support plan (seat)", "list_price": 49.0, "type": "service"})  # noqa: F821
today = date.today()
pm_declining = client.v1.payment_methods.create(
    params={
        "type": "card",
        "card": {"number": "4000000000000341", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }
)
client.v1.payment_methods.attach(pm_declining.id, params={"customer": partners[1].stripe_customer_id})
partners[1].action_crm_stripe_sync()


def subscription(partner, token=None, **values):
    return Subscription.create(
        {
            "partner_id": partner.id,
            "payment_token_id": token.id if token else False,
            "start_date": today,
            "user_id": admin.id,
            "line_ids": [(0, 0, {"product_id": plan.id, "quantity": 3, "price_unit": 49.0})],
            **values,
        }
    )


# A plan customers may pause and resume themselves in the portal.
flexible = env["crm.subscription.template"].create(  # noqa: F821
    {
        "name": "Support plan, monthly (pausable)",
        "portal_pause": True,
        "line_ids": [(0, 0, {"product_id": plan.id, "quantity": 2, "price_unit": 49.0})],
    }
)
active = Subscription.create(
    {
        "partner_id": partners[0].id,
        "template_id": flexible.id,
        "start_date": today,
        "user_id": admin.id,
        "payment_token_id": partners[0]._crm_default_token().id,
    }
)
past_due = subscription(partners[1], partners[1]._crm_default_token())
trial = subscription(partners[2], trial_end_date=today + timedelta(days=14))
paused = subscription(partners[0], partners[0]._crm_default_token(), interval_unit="year")
cancelled = subscription(partners[2])
expired = subscription(
    partners[0],
    partners[0]._crm_default_token(),
    start_date=today - relativedelta(months=2),
    end_date=today - relativedelta(months=1, days=1),
)
subscription(partners[1])  # a draft, not started yet
(active + past_due + trial + paused + cancelled + expired).action_start()
Subscription._cron_bill(now=today)
paused.action_pause()
cancelled.action_cancel("Demo: the customer moved to a competitor")

# A business already billing in Stripe: a subscription made in Stripe Billing, mirrored.
stripe_customer = client.v1.customers.create(
    params={"name": "Gemini Furniture", "email": "gemini@example.com"}
)
pm_gemini = client.v1.payment_methods.create(
    params={
        "type": "card",
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    }
)
client.v1.payment_methods.attach(pm_gemini.id, params={"customer": stripe_customer.id})
client.v1.customers.update(
    stripe_customer.id, params={"invoice_settings": {"default_payment_method": pm_gemini.id}}
)
stripe_plan = client.v1.plans.create(
    params={
        "amount": 9900,
        "currency": "usd",
        "interval": "month",
        "product": {"name": "Design Studio (Stripe Billing)"},
    }
)
client.v1.subscriptions.create(
    params={"customer": stripe_customer.id, "items": [{"plan": stripe_plan.id, "quantity": 1}]}
)
Subscription._crm_import_stripe_subscriptions(provider.sudo())

env["res.users"].with_context(no_reset_password=True).create(  # noqa: F821
    {
        "name": "Brandon Freeman (portal)",
        "login": "portal",
        "password": "portal",
        "email": "brandon.portal@example.com",
        "parent_id": partners[0].id,
        "groups_id": [(6, 0, [env.ref("base.group_portal").id])],  # noqa: F821
    }
)
env.cr.commit()  # noqa: F821
print(f"demo: {len(partners)} customers synced with localstripe; webhook -> {provider.crm_webhook_url}")
