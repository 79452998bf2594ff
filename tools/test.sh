#!/usr/bin/env bash
# Run the whole test suite of crm_payment_integration on a fresh database.
#
#   tools/test.sh [pytest arguments...]
#
# Installs the test requirements, creates a database, installs the add-on, runs every test with
# pytest-odoo (HttpCase included, over a real HTTP server), with localstripe started by the test
# harness itself, drops the database, and exits non-zero on any failure.
set -euo pipefail
source "$(dirname "$0")/common.sh"

check_odoo
ensure_role
check_postgres

echo "== installing test requirements"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt" \
    || die "could not install $ROOT/requirements-test.txt"

# Browser tours need a headless Chromium (Debian's package).
if ! command -v chromium >/dev/null && ! command -v google-chrome >/dev/null; then
    echo "== installing chromium for the browser tours"
    { apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } \
        || die "chromium is missing and could not be installed (apt-get install chromium)"
fi

# The statement of account is rendered as a PDF by the tests (Debian's wkhtmltopdf).
if ! command -v wkhtmltopdf >/dev/null; then
    echo "== installing wkhtmltopdf for the PDF reports"
    { apt-get install -y -q wkhtmltopdf >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wkhtmltopdf >/dev/null 2>&1; }; } \
        || die "wkhtmltopdf is missing and could not be installed (apt-get install wkhtmltopdf)"
fi

DB="crm_payment_test_$$"
WORK="$(mktemp -d)"
CONFIG="$WORK/odoo.conf"
cleanup() {
    drop_db "$DB"
    rm -rf "$WORK"
}
trap cleanup EXIT
write_odoo_config "$CONFIG" "$DB" "$WORK/data"

# Every add-on of the repository (the main one and its bridges) is installed and tested.
ADDONS="$(project_addons)"
echo "== installing $ADDONS in database $DB"
"$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" -i "$ADDONS,$EXTRA_ADDONS" --stop-after-init \
    --log-level=warn --logfile="$WORK/install.log" \
    || { tail -50 "$WORK/install.log"; die "installation of $ADDONS failed"; }
if grep -E " (ERROR|CRITICAL) " "$WORK/install.log"; then
    die "installation of $ADDONS logged errors"
fi

cd "$ROOT"
# pytest.ini (repository root) adds its own options to these.
TEST_DIRS=()
for addon in ${ADDONS//,/ }; do
    [ -d "$ROOT/$addon/tests" ] && TEST_DIRS+=("$ROOT/$addon/tests")
done
PYTEST=("$PYTHON" -m pytest "${TEST_DIRS[@]}"
    --odoo-config="$CONFIG" --odoo-database="$DB" --odoo-log-level=warn -p no:cacheprovider)

# Starting pytest (pytest-odoo reading Odoo's configuration, every test module imported) must
# log no error: an error there is a fault of the set-up (such as Odoo's "Importing test
# framework" when odoo.tests is imported outside test mode), not of a test.
echo "== checking that the tests start without errors"
"${PYTEST[@]}" --collect-only -q >"$WORK/collect.log" 2>&1 \
    || { cat "$WORK/collect.log"; die "the tests could not be collected"; }
if grep -qE "^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) " "$WORK/collect.log"; then
    sed -n '/^[0-9-]* [0-9:,]* [0-9]* \(ERROR\|CRITICAL\) /,$p' "$WORK/collect.log" | head -40
    die "starting the tests logged errors (above): fix their cause, do not silence them"
fi

echo "== running tests"
set +e -o pipefail
"${PYTEST[@]}" --odoo-http -q -rs "$@" | tee "$WORK/pytest.log"
status=$?
set -e
# A skipped test is not a passing one (a missing browser or library skips tours silently).
if [ $status -eq 0 ] && grep -qE "^SKIPPED|[0-9]+ skipped" "$WORK/pytest.log"; then
    die "some tests were skipped; install what they need (see the SKIPPED lines above)"
fi
exit $status
