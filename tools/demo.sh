#!/usr/bin/env bash
# Run the demo: a fresh Odoo database with the add-on, a few customers and invoices, Stripe
# played by localstripe, and Odoo serving on 127.0.0.1. Stop with Ctrl-C.
#
#   tools/demo.sh            (ODOO_PORT=8069 LOCALSTRIPE_PORT=8420 DEMO_DB=crm_payment_demo)
set -euo pipefail
source "$(dirname "$0")/common.sh"

check_odoo
ensure_role
check_postgres

DB="${DEMO_DB:-crm_payment_demo}"
ODOO_PORT="${ODOO_PORT:-8069}"
LOCALSTRIPE_PORT="${LOCALSTRIPE_PORT:-8420}"
DATA="$ROOT/.odoo-data"
CONFIG="$DATA/demo.conf"
mkdir -p "$DATA"

echo "== installing requirements"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt" \
    || die "could not install $ROOT/requirements-test.txt"

echo "== starting localstripe on 127.0.0.1:$LOCALSTRIPE_PORT"
LOCALSTRIPE_LOG="$DATA/localstripe.log" start_localstripe "$LOCALSTRIPE_PORT" --checkout
trap 'kill $LOCALSTRIPE_PID 2>/dev/null || true' EXIT

echo "== (re)creating database $DB"
drop_db "$DB"
write_odoo_config "$CONFIG" "$DB" "$DATA"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" -i "$(project_addons),$EXTRA_ADDONS" --stop-after-init \
    --logfile="$DATA/demo-install.log" || { tail -30 "$DATA/demo-install.log"; die "installation failed"; }

echo "== loading demo data"
LOCALSTRIPE_URL="http://127.0.0.1:$LOCALSTRIPE_PORT" ODOO_URL="http://127.0.0.1:$ODOO_PORT" \
    "$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn \
    < <(cat "$ROOT/tools/demo_setup.py" "$ROOT"/tools/demo_parts/*.py 2>/dev/null) \
    > "$DATA/demo-setup.log" 2>&1 || true
grep "^demo:" "$DATA/demo-setup.log" || { tail -30 "$DATA/demo-setup.log"; die "loading the demo data failed"; }

echo
echo "  Odoo:  http://127.0.0.1:$ODOO_PORT/odoo   login: admin   password: admin"
echo "  Portal customer (Azure Interior): login: portal   password: portal"
echo "  Stripe (localstripe): http://127.0.0.1:$LOCALSTRIPE_PORT"
echo
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" --http-port="$ODOO_PORT" --log-level=info \
    --logfile="$DATA/demo-odoo.log" &
ODOO_PID=$!
trap 'kill $ODOO_PID $LOCALSTRIPE_PID 2>/dev/null || true' EXIT INT TERM
wait_for_http "http://127.0.0.1:$ODOO_PORT/web/health" 60 || die "Odoo did not start (see $DATA/demo-odoo.log)"
echo "demo is running (logs in $DATA/); Ctrl-C to stop"
wait $ODOO_PID
