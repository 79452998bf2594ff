"""Loaded server-wide by the benchmarks (``--load=base,web,crm_bench_timing``), never installed.

Times each call the add-on's gateway makes to Stripe (localstripe), in every Odoo process (the
cron workers included), and writes the totals with the process's peak memory to
``$BENCH_TIMING_DIR/gateway.<pid>`` after each call, for the benchmark to add up.
"""

import os
import resource
import time


def post_load():
    directory = os.environ.get("BENCH_TIMING_DIR")
    if not directory:
        return
    from odoo.addons.crm_payment_integration.services import gateway

    original = gateway.StripeGateway._call
    totals = {"seconds": 0.0, "calls": 0}

    def timed_call(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            totals["seconds"] += time.perf_counter() - started
            totals["calls"] += 1
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            with open(os.path.join(directory, f"gateway.{os.getpid()}"), "w") as file:
                file.write(f"{totals['seconds']:.4f} {totals['calls']} {rss_mb:.0f}\n")

    gateway.StripeGateway._call = timed_call
