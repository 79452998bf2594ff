#!/usr/bin/env bash
# Benchmark of the webhook ledger: ingest throughput and latency against Odoo's bare
# /web/health route (the ceiling) on an Odoo with 2 workers, then background processing
# throughput in Odoo's cron worker, then delivery-to-applied latency at a light load (1 event/s)
# and at a burst, with the cron worker running as in production (Odoo's default limits).
# Prints every figure with its target, and the workers Odoo killed (0 expected).
#
#   bench/webhook.sh [EVENTS=3000] [SENDERS=8] [LIGHT_SECONDS=60] [BURST_EVENTS=1000]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
source "$ROOT/bench/common.sh"
EVENTS="${1:-3000}"
SENDERS="${2:-8}"
LIGHT_SECONDS="${3:-60}"
BURST_EVENTS="${4:-1000}"

bench_prepare
echo "== creating customers in localstripe"
PROVIDER_ID=$(CUSTOMERS_FILE="$WORK/customers.json" bench_setup "$ROOT/bench/setup_bench.py")
[ -n "$PROVIDER_ID" ] || die "benchmark set-up failed"
bench_start_odoo 0
echo "== ingest: $EVENTS signed events from $SENDERS senders (no cron worker: ingest alone)"
"$PYTHON" "$ROOT/bench/load_webhook.py" "http://127.0.0.1:$ODOO_PORT" "$PROVIDER_ID" "$SECRET" \
    "$WORK/customers.json" "$EVENTS" "$SENDERS"
bench_stop_odoo
bench_start_odoo 1
echo "== processing: the cron worker drains the ledger (each event re-reads its customer and payment methods from localstripe)"
"$PYTHON" "$ROOT/bench/drain.py" "$DB"
echo "== latency: 1 event/s for $LIGHT_SECONDS s, then a burst of $BURST_EVENTS events from $SENDERS senders"
status=0
"$PYTHON" "$ROOT/bench/load_webhook.py" latency "http://127.0.0.1:$ODOO_PORT" "$DB" "$PROVIDER_ID" "$SECRET" \
    "$WORK/customers.json" 1 "$LIGHT_SECONDS" "$BURST_EVENTS" "$SENDERS" || status=1
bench_stop_odoo
bench_killed_workers || status=1
exit $status
