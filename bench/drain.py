"""Drain the event ledger as the cron does and print the processing throughput; run through
`odoo shell` (``env`` is given)."""

import time

Event = env["crm.payment.event"]  # noqa: F821
pending = Event.search_count([("state", "=", "pending")])
started = time.perf_counter()
done = 0
while True:
    applied = Event._cron_process_events(time_budget=600)
    done += applied
    if not applied:
        break
elapsed = time.perf_counter() - started
failed = Event.search_count([("state", "!=", "done"), ("event_type", "=", "customer.updated")])
print(
    f"processing: {done} events applied in {elapsed:.1f} s = {done / elapsed:.1f} events/s "
    f"(target >= 100 events/s); pending before: {pending}, not done after: {failed}"
)
