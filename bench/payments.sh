#!/usr/bin/env bash
# Benchmark of payment confirmation: payments per second from a `payment_intent.succeeded`
# webhook to a reconciled invoice, this add-on against Odoo's own Stripe webhook, on one Odoo
# with 2 workers and one cron worker under Odoo's default limits. Prints both figures, their
# ratio, the webhook latency and the workers Odoo killed (0 expected).
#
#   bench/payments.sh [PAYMENTS=500] [SENDERS=4]   (4 senders: two concurrent deliveries per worker)
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
source "$ROOT/bench/common.sh"
PAYMENTS="${1:-500}"
SENDERS="${2:-4}"

bench_prepare
echo "== creating $PAYMENTS pending payments for each flow"
PROVIDER_ID=$(PAYMENTS="$PAYMENTS" INTENTS_FILE="$WORK/intents.json" bench_setup "$ROOT/bench/setup_payments.py")
[ -n "$PROVIDER_ID" ] || die "benchmark set-up failed"
bench_start_odoo 1
status=0
BENCH_ODOO_LOG="$WORK/odoo.log" "$PYTHON" "$ROOT/bench/load_payments.py" "http://127.0.0.1:$ODOO_PORT" "$DB" "$PROVIDER_ID" "$SECRET" \
    "$WORK/intents.json" "$SENDERS" || status=1
bench_stop_odoo
echo -n "whole run (Odoo's own flow included): "
bench_killed_workers || status=1
exit $status
