"""Confirmed payments per second, from `payment_intent.succeeded` to reconciled invoice: Odoo's
own Stripe webhook (`/payment/stripe/webhook`, then its post-processing cron) against this
add-on's (`/crm_payment/stripe/webhook/<id>`, then its ledger cron), on the same Odoo, the same
number of transactions and the same senders. Prints both, their ratio and the webhook latency.

Usage: python3 bench/load_payments.py ODOO_URL DB PROVIDER_ID SECRET INTENTS_FILE [SENDERS]
"""

import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

import psycopg2
from cron import describe_kills, killed_workers, log_size
from load_webhook import run, signed_event


def reconciled(cursor, invoice_ids):
    cursor.execute(
        "SELECT count(*) FROM account_move WHERE id = ANY(%s) AND payment_state IN ('paid', 'in_payment')",
        [invoice_ids],
    )
    return cursor.fetchone()[0]


def measure(parts, db, requests, invoice_ids, senders, kick=None, timeout=900):
    """Send the events and wait until every invoice is reconciled; ``kick`` wakes a cron."""
    conn = psycopg2.connect(dbname=db, host="127.0.0.1", user=os.environ.get("PGUSER", "odoo"))
    conn.autocommit = True
    cursor = conn.cursor()
    stop = threading.Event()

    def kicker():
        while not stop.wait(0.5):
            kick()

    if kick:
        threading.Thread(target=kicker, daemon=True).start()
    started = time.perf_counter()
    stats = run(parts.hostname, parts.port, requests, senders)
    done = 0
    while time.perf_counter() - started < timeout:
        done = reconciled(cursor, invoice_ids)
        if done == len(invoice_ids):
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    stop.set()
    conn.close()
    return stats, done, elapsed


def main():
    url, db, provider_id, secret, intents_file = sys.argv[1:6]
    senders = int(sys.argv[6]) if len(sys.argv) > 6 else 8
    parts = urlsplit(url)
    intents = json.load(open(intents_file))
    flows = {"odoo": [], "crm": []}
    for item in intents:
        flows[item["flow"]].append(item)
    ours_path = f"/crm_payment/stripe/webhook/{provider_id}"
    # Warm-up: load the registry in both workers.
    run(parts.hostname, parts.port, [("GET", "/web/health", None, {})] * 20, senders)

    def kick_odoo_post_processing():
        # What the cron's own schedule (every 10 minutes) would do, as often as possible.
        with psycopg2.connect(dbname=db, host="127.0.0.1", user=os.environ.get("PGUSER", "odoo")) as conn:
            with conn.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO ir_cron_trigger (cron_id, call_at) SELECT res_id, now() AT TIME ZONE 'UTC' "
                    "FROM ir_model_data WHERE module = 'payment' AND name = 'cron_post_process_payment_tx'"
                )
        notify = psycopg2.connect(dbname="postgres", host="127.0.0.1", user=os.environ.get("PGUSER", "odoo"))
        notify.autocommit = True
        notify.cursor().execute("NOTIFY cron_trigger, %s", [db])
        notify.close()

    results, kills = {}, {}
    odoo_log = os.environ.get("BENCH_ODOO_LOG")
    for name, path, kick in (
        ("odoo", "/payment/stripe/webhook", kick_odoo_post_processing),
        ("crm", ours_path, None),
    ):
        items = flows[name]
        requests = [signed_event(path, secret, "payment_intent.succeeded", item["intent"]) for item in items]
        start = log_size(odoo_log) if odoo_log else 0
        results[name] = measure(parts, db, requests, [item["invoice_id"] for item in items], senders, kick)
        if odoo_log:
            kills[name] = killed_workers(odoo_log, start)

    print(f"transactions per flow: {len(flows['crm'])}, senders: {senders}")
    labels = {
        "odoo": "Odoo's own  /payment/stripe/webhook + post-process cron",
        "crm": "this add-on /crm_payment/stripe/webhook + ledger cron",
    }
    for name in ("odoo", "crm"):
        stats, done, elapsed = results[name]
        print(
            f"{labels[name]:58s} {done / elapsed:7.1f} payments/s reconciled "
            f"({done}/{stats['requests']} in {elapsed:.1f} s)   webhook p50 {stats['p50_ms']:6.1f} ms "
            f"p99 {stats['p99_ms']:6.1f} ms   non-200: {stats['failures']}"
        )
        if name in kills:
            print(f"  {'':56s} while it ran: {describe_kills(*kills[name])}")
    odoo_rate = results["odoo"][1] / results["odoo"][2]
    crm_rate = results["crm"][1] / results["crm"][2]
    print(
        f"this add-on / Odoo's own: {crm_rate / odoo_rate:.2f}x (target >= 2x)   "
        f"webhook p99 while it runs: {results['crm'][0]['p99_ms']:.1f} ms (target < 100 ms)"
    )
    if any(results[name][1] != len(flows[name]) for name in results):
        sys.exit("not every invoice was reconciled")


if __name__ == "__main__":
    main()
