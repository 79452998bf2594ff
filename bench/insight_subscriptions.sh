#!/usr/bin/env bash
# Benchmark of the subscription insight: SUBSCRIPTIONS subscriptions over CUSTOMERS customers with
# 3 years of MRR movements (and 100,000 payments for the churn signals), generated in SQL; then,
# in one run, the MRR movements report over 24 months and the cohort table as the web client
# asks for them (read_group as a CRM user), each beside a hand-written SQL query of the same
# figures (checked equal), and the nightly recompute of the subscriber figures. Ceilings: each
# report < 0.5 s and <= 1.5 x its hand-written query; the recompute < 60 s.
#
#   bench/insight_subscriptions.sh [SUBSCRIPTIONS=50000] [CUSTOMERS=20000]   (KEEP_DB=1 keeps the database)
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
SUBSCRIPTIONS="${1:-50000}"
CUSTOMERS="${2:-20000}"

check_odoo
ensure_role
check_postgres
DB="crm_insight_bench_$$"
WORK="$(mktemp -d)"
CONFIG="$WORK/odoo.conf"
cleanup() {
    [ -n "${KEEP_DB:-}" ] || drop_db "$DB"
    rm -rf "$WORK"
}
trap cleanup EXIT
write_odoo_config "$CONFIG" "$DB" "$WORK/data"
echo "== installing the add-on in $DB"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" -i crm_payment_integration --stop-after-init \
    --logfile="$WORK/install.log"

echo "== a CRM user, a product and the Stripe provider's card method (ORM)"
IDS=$("$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn 2>/dev/null <<'PY' | sed -n 's/^ids=//p'
from odoo.tests import new_test_user
new_test_user(env, login="bench_insight", groups="sales_team.group_sale_salesman")
product = env["product.product"].create({"name": "Bench seat", "type": "service"})
provider = env.ref("payment.payment_provider_stripe")
method = env.ref("payment.payment_method_card")
env.cr.commit()
print(f"ids={env.company.id} {env.company.currency_id.id} {product.id} {provider.id} {method.id}")
PY
)
read -r COMPANY CURRENCY PRODUCT PROVIDER METHOD <<<"$IDS"
[ -n "$METHOD" ] || die "set-up failed"

echo "== generating $SUBSCRIPTIONS subscriptions, $CUSTOMERS customers, 3 years of movements (SQL)"
started=$(date +%s)
PGPASSWORD="${PGPASSWORD:-}" psql -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$DB" \
    -v customers="$CUSTOMERS" -v subscriptions="$SUBSCRIPTIONS" -v company="$COMPANY" -v currency="$CURRENCY" \
    -v product="$PRODUCT" -v provider="$PROVIDER" -v method="$METHOD" -f "$ROOT/bench/insight_subscriptions.sql"
echo "   generated in $(( $(date +%s) - started )) s"

echo "== timing (best of 9 runs for the reports)"
PYTHONUNBUFFERED=1 "$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn \
    < "$ROOT/bench/insight_subscriptions.py" > "$WORK/timing.log" 2>&1 || true
grep -E "^(result|FAIL)" "$WORK/timing.log" | tee "$WORK/results.txt"
grep -q "^result verdict: ok" "$WORK/results.txt" || { tail -30 "$WORK/timing.log"; exit 1; }
