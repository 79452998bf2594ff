#!/usr/bin/env bash
# Benchmark of the drift check: Stripe's charges of the window (10,000 then 100,000, answered by
# an in-process fake generating Stripe-shaped pages, so that the figures are Odoo's) against as
# many Odoo transactions loaded with SQL. The check runs as its cron does, in committed slices
# within Odoo's default limits. Prints the time, the peak memory growth and the differences of
# each size, and compares them with the ceilings:
#   - 100,000 charges checked in under 300 s (the nightly cron's run, in several slices);
#   - linear time: seconds(100,000) / seconds(10,000) <= 12 (x10 is linear);
#   - flat memory: the peak growth at 100,000 at most 64 MB and at most 2x the growth at 10,000.
#
#   bench/drift.sh [SIZES="10000 100000"]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
source "$ROOT/bench/common.sh"
SIZES="${1:-10000 100000}"

bench_prepare
RESULTS="$WORK/results.txt"
for size in $SIZES; do
    echo "== drift check over $size Stripe charges"
    SIZE="$size" "$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn --log-handler=stripe:WARNING \
        < "$ROOT/bench/run_drift.py" 2>"$WORK/drift-$size.log" | grep '^result' | tee -a "$RESULTS" \
        || { tail -30 "$WORK/drift-$size.log"; die "the drift check over $size charges failed"; }
done
"$PYTHON" - "$RESULTS" <<'PY'
import sys

runs = []
for line in open(sys.argv[1]):
    values = dict(part.split("=") for part in line.split()[1:])
    runs.append({k: (v if k == "state" else float(v)) for k, v in values.items()})
print()
print(f"{'charges':>8} {'seconds':>8} {'in fake':>8} {'cpu s':>7} {'slices':>6} {'µs/charge':>9} "
      f"{'miss odoo':>9} {'amount':>7} {'miss stripe':>11} {'peak +MB':>8}")
for run in runs:
    print(
        f"{run['size']:>8.0f} {run['seconds']:>8.1f} {run['fake_seconds']:>8.1f} {run['cpu_seconds']:>7.1f} "
        f"{run['slices']:>6.0f} {1e6 * run['seconds'] / run['size']:>9.1f} {run['missing_in_odoo']:>9.0f} "
        f"{run['amount_differs']:>7.0f} {run['missing_in_stripe']:>11.0f} {run['rss_growth_mb']:>8.1f}"
    )
failed = False
for run in runs:
    size = run["size"]
    expected = (size // 100, size // 200, size // 200)
    found = (run["missing_in_odoo"], run["amount_differs"], run["missing_in_stripe"])
    if run["state"] != "done" or run["charges"] != size or tuple(map(int, found)) != expected:
        print(f"FAIL: {size:.0f}: {run['charges']:.0f} charges read, differences {found}, expected {expected}")
        failed = True
small, large = runs[0], runs[-1]
if large["size"] >= 100000:
    verdict = "ok" if large["seconds"] <= 300 else "FAIL"
    print(f"{large['size']:.0f} charges in {large['seconds']:.1f} s (ceiling 300 s) {verdict}")
    failed |= large["seconds"] > 300
if len(runs) > 1:
    ratio = large["seconds"] / small["seconds"]
    linear = large["size"] / small["size"]
    verdict = "ok" if ratio <= 1.2 * linear else "FAIL"
    print(f"time x{ratio:.2f} for x{linear:.0f} charges (linear: x{linear:.0f}, ceiling x{1.2 * linear:.0f}) {verdict}")
    failed |= ratio > 1.2 * linear
    ceiling = min(64.0, 2 * max(small["rss_growth_mb"], 8.0))
    verdict = "ok" if large["rss_growth_mb"] <= ceiling else "FAIL"
    print(
        f"peak memory growth {large['rss_growth_mb']:.1f} MB at {large['size']:.0f} vs "
        f"{small['rss_growth_mb']:.1f} MB at {small['size']:.0f} (ceiling {ceiling:.0f} MB: flat) {verdict}"
    )
    failed |= large["rss_growth_mb"] > ceiling
sys.exit(1 if failed else 0)
PY
