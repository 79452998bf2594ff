#!/usr/bin/env bash
# Benchmark of the webhook ledger: ingest throughput and latency against Odoo's bare
# /web/health route (the ceiling) on an Odoo with 2 workers, then background processing
# throughput. Prints every figure with its target.
#
#   bench/webhook.sh [EVENTS=3000] [SENDERS=8]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
source "$ROOT/bench/common.sh"
EVENTS="${1:-3000}"
SENDERS="${2:-8}"

bench_prepare
echo "== creating customers in localstripe"
PROVIDER_ID=$(CUSTOMERS_FILE="$WORK/customers.json" bench_setup "$ROOT/bench/setup_bench.py")
[ -n "$PROVIDER_ID" ] || die "benchmark set-up failed"
bench_start_odoo 0
echo "== ingest: $EVENTS signed events from $SENDERS senders"
"$PYTHON" "$ROOT/bench/load_webhook.py" "http://127.0.0.1:$ODOO_PORT" "$PROVIDER_ID" "$SECRET" \
    "$WORK/customers.json" "$EVENTS" "$SENDERS"
kill $ODOO_PID; wait $ODOO_PID 2>/dev/null || true; ODOO_PID=
echo "== processing: draining the ledger (each event re-reads its customer and payment methods from localstripe)"
"$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn < "$ROOT/bench/drain.py" 2>/dev/null | grep "^processing"
