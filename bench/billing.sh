#!/usr/bin/env bash
# Benchmark of the subscription billing run against localstripe: for each size, that many
# monthly subscriptions come due and the billing cron, run by Odoo's cron worker (2 HTTP workers,
# 1 cron worker, Odoo's default limits: it commits in batches and is re-run while work is left),
# invoices, posts, charges and reconciles them all. Prints subscriptions billed per second, the
# time spent waiting for the gateway and in Odoo, the cron worker's peak memory, how the time per
# subscription grows from the first size to the last (linear growth keeps it flat; the ceiling
# allows 25 %), and the workers Odoo killed (0 expected).
#
#   bench/billing.sh [SIZES="1000 10000"]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
source "$ROOT/bench/common.sh"
SIZES="${1:-1000 10000}"

bench_prepare
RESULTS="$WORK/results.txt"
for size in $SIZES; do
    echo "== $size subscriptions due: customers and cards in localstripe, subscriptions in Odoo"
    PROVIDER_ID=$(SUBSCRIPTIONS="$size" bench_setup "$ROOT/bench/setup_billing.py")
    [ -n "$PROVIDER_ID" ] || die "benchmark set-up failed"
    bench_start_odoo 1
    echo "== billing run over $size subscriptions, in the cron worker"
    "$PYTHON" "$ROOT/bench/run_billing.py" "$DB" "$BENCH_TIMING_DIR" | grep '^result' | tee -a "$RESULTS"
    bench_stop_odoo
done
status=0
"$PYTHON" - "$RESULTS" <<'PY' || status=1
import sys

runs = []
for line in open(sys.argv[1]):
    values = dict(part.split("=") for part in line.split()[1:])
    runs.append({key: float(value) for key, value in values.items()})
print()
print(f"{'due':>7} {'billed':>7} {'paid':>7} {'seconds':>8} {'subs/s':>7} {'ms/sub':>7} {'gateway s':>9} {'odoo s':>7} {'peak MB':>8}")
for run in runs:
    odoo = run["seconds"] - run["gateway_seconds"]
    print(
        f"{run['due']:>7.0f} {run['billed']:>7.0f} {run['paid_invoices_today']:>7.0f} {run['seconds']:>8.1f} "
        f"{run['billed'] / run['seconds']:>7.1f} {1000 * run['seconds'] / run['billed']:>7.2f} "
        f"{run['gateway_seconds']:>9.1f} {odoo:>7.1f} {run['rss_peak_mb']:>8.0f}"
    )
failed = False
for run in runs:
    if run["billed"] != run["due"] or run["paid_invoices_today"] < run["due"]:
        print(f"FAIL: {run['due']:.0f} due, {run['billed']:.0f} billed, {run['paid_invoices_today']:.0f} paid")
        failed = True
first, last = runs[0], runs[-1]
if len(runs) > 1:
    growth = (last["seconds"] / last["billed"]) / (first["seconds"] / first["billed"])
    verdict = "ok" if growth <= 1.25 else "FAIL"
    print(f"time per subscription at {last['due']:.0f} vs {first['due']:.0f}: x{growth:.2f} (linear: x1.00, ceiling x1.25) {verdict}")
    failed |= growth > 1.25
for run in runs:
    odoo = run["seconds"] - run["gateway_seconds"]
    verdict = "ok" if odoo < run["gateway_seconds"] else "FAIL"
    print(f"{run['due']:.0f}: time in Odoo {odoo:.1f} s vs waiting for the gateway {run['gateway_seconds']:.1f} s (target: Odoo < gateway) {verdict}")
    failed |= odoo >= run["gateway_seconds"]
sys.exit(1 if failed else 0)
PY
bench_killed_workers || status=1
exit $status
