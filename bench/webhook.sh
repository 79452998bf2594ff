#!/usr/bin/env bash
# Benchmark of the webhook ledger: ingest throughput and latency against Odoo's bare
# /web/health route (the ceiling) on an Odoo with 2 workers, then background processing
# throughput. Prints every figure with its target.
#
#   bench/webhook.sh [EVENTS=3000] [SENDERS=8]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
EVENTS="${1:-3000}"
SENDERS="${2:-8}"

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
    sleep 1
    drop_db "$DB"
    rm -rf "$WORK"
}
trap cleanup EXIT
write_odoo_config "$CONFIG" "$DB" "$WORK/data"
echo "== installing the add-on in $DB"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" -i crm_payment_integration --stop-after-init --logfile="$WORK/install.log"
start_localstripe "$LS_PORT"
echo "== creating customers in localstripe"
SECRET="whsec_bench_$$"
PROVIDER_ID=$(LOCALSTRIPE_URL="http://127.0.0.1:$LS_PORT" WEBHOOK_SECRET="$SECRET" CUSTOMERS_FILE="$WORK/customers.json" \
    "$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn < "$ROOT/bench/setup_bench.py" 2>/dev/null \
    | sed -n 's/^provider_id=//p')
[ -n "$PROVIDER_ID" ] || die "benchmark set-up failed"
echo "== starting Odoo with 2 workers on 127.0.0.1:$ODOO_PORT"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" --workers=2 --max-cron-threads=0 --http-port="$ODOO_PORT" \
    --logfile="$WORK/odoo.log" --log-level=warn &
ODOO_PID=$!
wait_for_http "http://127.0.0.1:$ODOO_PORT/web/health" 60 || die "Odoo did not start"
echo "== ingest: $EVENTS signed events from $SENDERS senders"
"$PYTHON" "$ROOT/bench/load_webhook.py" "http://127.0.0.1:$ODOO_PORT" "$PROVIDER_ID" "$SECRET" \
    "$WORK/customers.json" "$EVENTS" "$SENDERS"
kill $ODOO_PID; wait $ODOO_PID 2>/dev/null || true; ODOO_PID=
echo "== processing: draining the ledger (each event re-reads its customer and payment methods from localstripe)"
"$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn < "$ROOT/bench/drain.py" 2>/dev/null | grep "^processing"
