"""Send signed Stripe events to the webhook route from concurrent senders, then the same number
of requests to Odoo's bare /web/health route (the ceiling), and print both with their ratio.

With ``latency``, measure instead how long each event takes from its delivery (the webhook's
200) to being applied by the ledger's cron (its state, polled every 20 ms), at a light load (one
sender at a steady rate) and at a burst, and print p50 and p99 beside the ceiling (5 s at light
load).

Usage: python3 bench/load_webhook.py ODOO_URL PROVIDER_ID SECRET CUSTOMERS_FILE [EVENTS] [SENDERS]
       python3 bench/load_webhook.py latency ODOO_URL DB PROVIDER_ID SECRET CUSTOMERS_FILE
           [RATE=1] [SECONDS=60] [BURST_EVENTS=1000] [SENDERS=8]
"""

import hashlib
import hmac
import http.client
import json
import os
import queue
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def signed_event(path, secret, event_type, obj):
    """A POST of a Stripe event around ``obj``, signed as Stripe signs it."""
    now = int(time.time())
    body = json.dumps(
        {
            "id": "evt_bench_" + os.urandom(10).hex(),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": now,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
    )
    signature = hmac.new(secret.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    return (
        "POST",
        path,
        body,
        {"Content-Type": "application/json", "Stripe-Signature": f"t={now},v1={signature}"},
    )


def run(host, port, requests, senders):
    """Send ``requests`` (method, path, body, headers) from ``senders`` threads; return stats."""
    latencies, failures = [], []
    lock = threading.Lock()
    chunks = [requests[i::senders] for i in range(senders)]

    def sender(chunk):
        local, bad = [], []
        for method, path, body, headers in chunk:
            start = time.perf_counter()
            conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            local.append(time.perf_counter() - start)
            if response.status != 200:
                bad.append(response.status)
        with lock:
            latencies.extend(local)
            failures.extend(bad)

    threads = [threading.Thread(target=sender, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "failures": len(failures),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


LATENCY_CEILING = 5.0  # seconds, p99 at light load


def post(host, port, request):
    method, path, body, headers = request
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def event_id(request):
    return json.loads(request[2])["id"]


def measure_latency(host, port, db, requests, senders=1, rate=None, timeout=300):
    """Deliver ``requests`` (from ``senders`` threads, or one at ``rate`` per second) and return
    each event's seconds from delivery to applied, and the non-200 answers."""
    import psycopg2  # noqa: PLC0415 - only this mode reads the database

    delivered, applied, failures = {}, {}, []
    outstanding = queue.Queue()
    done_sending = threading.Event()

    def sender(chunk, start):
        for index, request in enumerate(chunk):
            if rate:
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            status = post(host, port, request)
            delivered[event_id(request)] = time.perf_counter()
            outstanding.put(event_id(request))
            if status != 200:
                failures.append(status)

    def poller():
        conn = psycopg2.connect(dbname=db, host="127.0.0.1", user=os.environ.get("PGUSER", "odoo"))
        conn.autocommit = True
        cursor = conn.cursor()
        waiting = set()
        deadline = None
        while True:
            while not outstanding.empty():
                waiting.add(outstanding.get())
            if waiting:
                cursor.execute(
                    "SELECT stripe_event_id FROM crm_payment_event "
                    "WHERE stripe_event_id = ANY(%s) AND state != 'pending'",
                    [list(waiting)],
                )
                now = time.perf_counter()
                for (applied_id,) in cursor.fetchall():
                    applied[applied_id] = now
                    waiting.discard(applied_id)
            if done_sending.is_set() and outstanding.empty():
                deadline = deadline or time.perf_counter() + timeout
                if not waiting or time.perf_counter() > deadline:
                    break
            time.sleep(0.02)
        conn.close()

    poll_thread = threading.Thread(target=poller)
    poll_thread.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=sender, args=(requests[i::senders], start)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done_sending.set()
    poll_thread.join()
    latencies = [max(0.0, applied[key] - delivered[key]) for key in delivered if key in applied]
    return latencies, len(delivered) - len(latencies), failures


def latency_main(argv):
    url, db, provider_id, secret, customers_file = argv[:5]
    rate = float(argv[5]) if len(argv) > 5 else 1.0
    seconds = float(argv[6]) if len(argv) > 6 else 60.0
    burst = int(argv[7]) if len(argv) > 7 else 1000
    senders = int(argv[8]) if len(argv) > 8 else 8
    customers = json.load(open(customers_file))
    parts = urlsplit(url)
    path = f"/crm_payment/stripe/webhook/{provider_id}"

    def events(count):
        return [
            signed_event(path, secret, "customer.updated", customers[i % len(customers)])
            for i in range(count)
        ]

    run(parts.hostname, parts.port, [("GET", "/web/health", None, {})] * 20, 2)  # warm-up
    light_count = max(1, int(rate * seconds))
    results = {
        "light": measure_latency(parts.hostname, parts.port, db, events(light_count), rate=rate),
        "burst": measure_latency(parts.hostname, parts.port, db, events(burst), senders=senders),
    }
    labels = {
        "light": f"light load: {rate:g} event/s for {seconds:g} s ({light_count} events)",
        "burst": f"burst: {burst} events from {senders} senders",
    }
    print("delivery-to-applied latency (webhook 200 -> applied by the ledger cron in a cron worker)")
    failed = False
    for name in ("light", "burst"):
        latencies, missing, failures = results[name]
        if not latencies:
            print(f"  {labels[name]:45s} nothing applied; not applied: {missing}")
            failed = True
            continue
        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        verdict = ""
        if name == "light":
            verdict = "ok" if p99 < LATENCY_CEILING and not missing else "FAIL"
            failed |= verdict == "FAIL"
        print(
            f"  {labels[name]:45s} p50 {p50:6.2f} s   p99 {p99:6.2f} s   max {max(latencies):6.2f} s   "
            f"ceiling p99 < {LATENCY_CEILING:g} s at light load {verdict}   not applied: {missing}   "
            f"non-200: {len(failures)}"
        )
        failed |= bool(failures or missing)
    if failed:
        sys.exit(1)


def main():
    if sys.argv[1:2] == ["latency"]:
        latency_main(sys.argv[2:])
        return
    url, provider_id, secret, customers_file = sys.argv[1:5]
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 3000
    senders = int(sys.argv[6]) if len(sys.argv) > 6 else 8
    customers = json.load(open(customers_file))
    parts = urlsplit(url)
    path = f"/crm_payment/stripe/webhook/{provider_id}"
    events = [
        signed_event(path, secret, "customer.updated", customers[i % len(customers)]) for i in range(count)
    ]
    health = [("GET", "/web/health", None, {})] * count
    # Warm both routes up (worker start, registry load).
    run(parts.hostname, parts.port, health[:50], senders)
    webhook = run(parts.hostname, parts.port, events, senders)
    ceiling = run(parts.hostname, parts.port, health, senders)
    print(f"senders: {senders}, requests per route: {count}")
    for name, stats in (("webhook /crm_payment/stripe/webhook", webhook), ("ceiling /web/health", ceiling)):
        print(
            f"{name:38s} {stats['rps']:8.1f} req/s   p50 {stats['p50_ms']:6.1f} ms   "
            f"p99 {stats['p99_ms']:6.1f} ms   non-200: {stats['failures']}"
        )
    ratio = webhook["rps"] / ceiling["rps"]
    print(
        f"ingest / ceiling: {ratio:.0%} (target >= 50%)   "
        f"webhook p99: {webhook['p99_ms']:.1f} ms (target < 100 ms)"
    )
    if webhook["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
