#!/usr/bin/env bash
# Benchmark of the Insight reports: 1,000,000 payment transactions over 20,000 customers
# generated in SQL, then, each beside a hand-written SQL query computing the same figures: the
# payment analysis grouped by month x method with its success rate (as the web client's pivot
# reads it), the customer list sorted by lifetime value (first page), and the nightly recompute
# of the customers' figures. Ceilings: each report under 0.5 s and at most 1.5x its hand-written
# query; the recompute under 60 s.
#
#   bench/insight_payments.sh [TRANSACTIONS=1000000] [CUSTOMERS=20000]
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
TRANSACTIONS="${1:-1000000}"
CUSTOMERS="${2:-20000}"

check_odoo
ensure_role
check_postgres
DB="crm_payment_bench_insight_$$"
WORK="$(mktemp -d)"
CONFIG="$WORK/odoo.conf"
cleanup() {
    drop_db "$DB"
    rm -rf "$WORK"
}
trap cleanup EXIT
write_odoo_config "$CONFIG" "$DB" "$WORK/data"
echo "== installing crm_payment_integration and $EXTRA_ADDONS in $DB"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" -i "crm_payment_integration,$EXTRA_ADDONS" \
    --stop-after-init --log-level=warn --logfile="$WORK/install.log" \
    || { tail -30 "$WORK/install.log"; die "installation failed"; }
echo "== generating $TRANSACTIONS transactions over $CUSTOMERS customers, then timing"
TRANSACTIONS="$TRANSACTIONS" CUSTOMERS="$CUSTOMERS" \
    "$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn \
    < "$ROOT/bench/insight_payments.py" 2>"$WORK/shell.log" | grep '^bench:' \
    || { tail -30 "$WORK/shell.log"; die "benchmark failed"; }
