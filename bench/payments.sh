#!/usr/bin/env bash
# Benchmark of payment confirmation: payments per second from a `payment_intent.succeeded`
# webhook to a reconciled invoice, this add-on against Odoo's own Stripe webhook, on one Odoo
# with 2 workers and one cron thread. Prints both figures, their ratio and the webhook latency.
#
#   bench/payments.sh [PAYMENTS=500] [SENDERS=4]   (4 senders: two concurrent deliveries per worker)
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
PAYMENTS="${1:-500}"
SENDERS="${2:-4}"

check_odoo
ensure_role
check_postgres
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt"

DB="crm_payment_bench_$$"
WORK="$(mktemp -d)"
CONFIG="$WORK/odoo.conf"
LS_PORT="$(free_port)"
ODOO_PORT="$(free_port)"
cleanup() {
    kill ${ODOO_PID:-} ${LOCALSTRIPE_PID:-} 2>/dev/null || true
    [ -z "${KEEP_LOG:-}" ] || cp "$WORK/odoo.log" "$KEEP_LOG" 2>/dev/null || true
    sleep 1
    drop_db "$DB"
    rm -rf "$WORK"
}
trap cleanup EXIT
write_odoo_config "$CONFIG" "$DB" "$WORK/data"
echo "== installing the add-on in $DB"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" -i crm_payment_integration --stop-after-init --logfile="$WORK/install.log"
start_localstripe "$LS_PORT"
echo "== creating $PAYMENTS pending payments for each flow"
SECRET="whsec_bench_$$"
PROVIDER_ID=$(LOCALSTRIPE_URL="http://127.0.0.1:$LS_PORT" WEBHOOK_SECRET="$SECRET" PAYMENTS="$PAYMENTS" \
    INTENTS_FILE="$WORK/intents.json" \
    "$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn < "$ROOT/bench/setup_payments.py" 2>/dev/null \
    | sed -n 's/^provider_id=//p')
[ -n "$PROVIDER_ID" ] || die "benchmark set-up failed"
echo "== starting Odoo with 2 workers and 1 cron thread on 127.0.0.1:$ODOO_PORT"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" --workers=2 --max-cron-threads=1 --http-port="$ODOO_PORT" \
    --logfile="$WORK/odoo.log" --log-level="${LOG_LEVEL:-warn}" &
ODOO_PID=$!
wait_for_http "http://127.0.0.1:$ODOO_PORT/web/health" 60 || die "Odoo did not start"
"$PYTHON" "$ROOT/bench/load_payments.py" "http://127.0.0.1:$ODOO_PORT" "$DB" "$PROVIDER_ID" "$SECRET" \
    "$WORK/intents.json" "$SENDERS"
