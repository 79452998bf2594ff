"""The Stripe provider of the benchmark databases, pointed at localstripe with a known webhook
secret; imported by the set-up scripts that `odoo shell` runs (BENCH_DIR on the path)."""

import os


def configure_provider(env):
    provider = env.ref("payment.payment_provider_stripe")
    provider.write(
        {
            "state": "test",
            "stripe_secret_key": "sk_test_bench",
            "stripe_publishable_key": "pk_test_bench",
            "stripe_webhook_secret": os.environ["WEBHOOK_SECRET"],
            "crm_api_base": os.environ["LOCALSTRIPE_URL"],
            "crm_webhook_secret": os.environ["WEBHOOK_SECRET"],
        }
    )
    if not provider.journal_id:  # where its payments are booked
        provider.journal_id = env["account.journal"].search(
            [("type", "=", "bank"), ("company_id", "=", provider.company_id.id)], limit=1
        )
    return provider
