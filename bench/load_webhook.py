"""Send signed Stripe events to the webhook route from concurrent senders, then the same number
of requests to Odoo's bare /web/health route (the ceiling), and print both with their ratio.

Usage: python3 bench/load_webhook.py ODOO_URL PROVIDER_ID SECRET CUSTOMERS_FILE [EVENTS] [SENDERS]
"""

import hashlib
import hmac
import http.client
import json
import os
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


def main():
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
