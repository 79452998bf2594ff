"""Run the billing cron in Odoo's cron worker over every subscription due and wait for it.

Prints what the run did and where its time went: waiting for the gateway (every Stripe call,
timed in the cron worker by the crm_bench_timing add-on) and in Odoo (the rest), with the cron
worker's peak memory. The cron runs as in production: under Odoo's limits, re-run by Odoo while
it reports remaining work, each run committing its batches.

Usage: python3 bench/run_billing.py DB TIMING_DIR
"""

import sys
import time

from cron import connect, gateway_totals, kick, reset_gateway_totals

DUE = (
    "SELECT count(*) FROM crm_subscription WHERE managed_by = 'odoo' AND state IN ('trial', 'active') "
    "AND next_invoice_date <= (now() AT TIME ZONE 'UTC')::date"
)
PAID_TODAY = (
    "SELECT count(*) FROM account_move WHERE crm_subscription_id IS NOT NULL "
    "AND invoice_date = (now() AT TIME ZONE 'UTC')::date AND payment_state IN ('paid', 'in_payment')"
)


def count(cursor, query):
    cursor.execute(query)
    return cursor.fetchone()[0]


def main():
    db, timing_dir = sys.argv[1:3]
    conn = connect(db)
    cursor = conn.cursor()
    due = count(cursor, DUE)
    reset_gateway_totals(timing_dir)
    started = time.perf_counter()
    kick(db, "crm_payment_integration", "ir_cron_crm_subscription_bill")
    left, last_change, last = due, time.perf_counter(), due
    while left:
        time.sleep(0.2)
        left = count(cursor, DUE)
        if left != last:
            last, last_change = left, time.perf_counter()
        elif time.perf_counter() - last_change > 180 or time.perf_counter() - started > 7200:
            break  # stuck: reported below as not billed
        elif left == due and time.perf_counter() - last_change > 1:
            # A cron worker that had not yet listened when woken would wait for its first poll.
            kick(db, "crm_payment_integration", "ir_cron_crm_subscription_bill")
            last_change = time.perf_counter()
    elapsed = time.perf_counter() - started
    paid = count(cursor, PAID_TODAY)
    conn.close()
    gateway_seconds, calls, peak = gateway_totals(timing_dir)
    print(
        f"result due={due} billed={due - left} paid_invoices_today={paid} seconds={elapsed:.2f} "
        f"gateway_seconds={gateway_seconds:.2f} gateway_calls={calls} rss_peak_mb={peak:.0f}"
    )


if __name__ == "__main__":
    main()
