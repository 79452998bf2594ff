"""Run the billing cron once over every subscription due; run through `odoo shell`.

Prints what the run did and where its time went: waiting for the gateway (every Stripe call,
timed around the SDK) and in Odoo (the rest), with the process's peak memory.
"""

import resource
import time

from odoo import fields

from odoo.addons.crm_payment_integration.services import gateway as gateway_module

env = env  # noqa: F821
waiting = {"seconds": 0.0, "calls": 0}
original_call = gateway_module.StripeGateway._call


def timed_call(self, *args, **kwargs):
    started = time.perf_counter()
    try:
        return original_call(self, *args, **kwargs)
    finally:
        waiting["seconds"] += time.perf_counter() - started
        waiting["calls"] += 1


gateway_module.StripeGateway._call = timed_call
Subscription = env["crm.subscription"]
today = fields.Date.context_today(env.user)
due = Subscription.search_count([("state", "in", ("trial", "active")), ("next_invoice_date", "<=", today)])
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
billed = Subscription._cron_bill(now=today, time_budget=10**6)
elapsed = time.perf_counter() - started
env.cr.commit()
rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
paid = env["account.move"].search_count(
    [
        ("crm_subscription_id", "!=", False),
        ("invoice_date", "=", today),
        ("payment_state", "in", ("paid", "in_payment")),
    ]
)
print(
    f"result due={due} billed={billed} paid_invoices_today={paid} seconds={elapsed:.2f} "
    f"gateway_seconds={waiting['seconds']:.2f} gateway_calls={waiting['calls']} "
    f"rss_before_mb={rss_before:.0f} rss_peak_mb={rss_peak:.0f}"
)
