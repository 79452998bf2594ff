#!/usr/bin/env bash
# Webhook ingest alone (the first part of bench/webhook.sh): signed events from concurrent
# senders against Odoo's bare /web/health route (the ceiling), on an Odoo with 2 workers and no
# cron worker. Used by bench/protection.sh for both variants.
#
#   bench/ingest.sh [EVENTS=2000] [SENDERS=8]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
source "$ROOT/bench/common.sh"
EVENTS="${1:-2000}"
SENDERS="${2:-8}"

bench_prepare
echo "== creating customers in localstripe"
PROVIDER_ID=$(CUSTOMERS_FILE="$WORK/customers.json" bench_setup "$ROOT/bench/setup_bench.py")
[ -n "$PROVIDER_ID" ] || die "benchmark set-up failed"
bench_start_odoo 0
echo "== ingest: $EVENTS signed events from $SENDERS senders (no cron worker: ingest alone)"
"$PYTHON" "$ROOT/bench/load_webhook.py" "http://127.0.0.1:$ODOO_PORT" "$PROVIDER_ID" "$SECRET" \
    "$WORK/customers.json" "$EVENTS" "$SENDERS"
bench_stop_odoo
