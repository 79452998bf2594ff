"""Drain the event ledger in Odoo's cron workers and print the processing throughput.

Usage: python3 bench/drain.py DB
"""

import sys

from cron import connect, kick, wait_until

DUE = (
    "SELECT count(*) FROM crm_payment_event "
    "WHERE state = 'pending' AND next_attempt_at <= now() AT TIME ZONE 'UTC'"
)
db = sys.argv[1]
conn = connect(db)
cursor = conn.cursor()
cursor.execute("SELECT count(*) FROM crm_payment_event WHERE state = 'pending'")
pending = cursor.fetchone()[0]


def wake():
    kick(db, "crm_payment_integration", "ir_cron_crm_payment_event_process")


wake()
elapsed = wait_until(db, DUE, interval=0.1, rekick=wake)
cursor.execute(
    "SELECT count(*) FROM crm_payment_event WHERE state != 'done' AND event_type = 'customer.updated'"
)
failed = cursor.fetchone()[0]
conn.close()
print(
    f"processing: {pending} events applied in {elapsed:.1f} s = {pending / elapsed:.1f} events/s "
    f"(target >= 100 events/s) by the cron worker; not done after: {failed}"
)
