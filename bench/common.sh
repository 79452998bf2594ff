# Shared by the benchmarks: a scratch database with the add-on, localstripe, and an Odoo with 2
# workers and its cron workers, under Odoo's default limits (limit_time_cpu 60 s,
# limit_time_real 120 s, the same for cron workers). Source after tools/common.sh.

bench_prepare() {  # sets DB, WORK, CONFIG, LS_PORT, ODOO_PORT, SECRET; cleans up on exit
    check_odoo
    ensure_role
    check_postgres
    "$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt"
    DB="crm_payment_bench_$$"
    WORK="$(mktemp -d)"
    CONFIG="$WORK/odoo.conf"
    LS_PORT="$(free_port)"
    ODOO_PORT="$(free_port)"
    SECRET="whsec_bench_$$"
    trap bench_cleanup EXIT
    write_odoo_config "$CONFIG" "$DB" "$WORK/data"
    # The timing add-on (loaded server-wide, never installed) lives beside the benchmarks.
    sed -i "s|^addons_path = |addons_path = $ROOT/bench/addons,|" "$CONFIG"
    export BENCH_TIMING_DIR="$WORK/timing"
    mkdir -p "$BENCH_TIMING_DIR"
    echo "== installing the add-on in $DB"
    "$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" -i crm_payment_integration --stop-after-init \
        --logfile="$WORK/install.log"
    start_localstripe "$LS_PORT"
}

bench_cleanup() {
    kill ${ODOO_PID:-} ${LOCALSTRIPE_PID:-} 2>/dev/null || true
    [ -z "${KEEP_LOG:-}" ] || cp "$WORK/odoo.log" "$KEEP_LOG" 2>/dev/null || true
    sleep 1
    drop_db "$DB"
    rm -rf "$WORK"
}

bench_setup() {  # $1: set-up script run by `odoo shell`; prints the provider id it reports
    LOCALSTRIPE_URL="http://127.0.0.1:$LS_PORT" WEBHOOK_SECRET="$SECRET" BENCH_DIR="$ROOT/bench" \
        "$PYTHON" "$ROOT/tools/odoo_bin.py" shell -c "$CONFIG" -d "$DB" --no-http --log-level=warn < "$1" 2>/dev/null \
        | sed -n 's/^provider_id=//p'
}

bench_start_odoo() {  # $1: cron workers; sets ODOO_PID. Odoo's default time limits, not set here.
    echo "== starting Odoo with 2 workers and $1 cron worker(s) on 127.0.0.1:$ODOO_PORT (default limits)"
    # The server's own lines (workers started, limits reached, killed) are kept at INFO.
    "$PYTHON" "$ROOT/tools/odoo_bin.py" -c "$CONFIG" -d "$DB" --workers=2 --max-cron-threads="$1" \
        --http-port="$ODOO_PORT" --logfile="$WORK/odoo.log" --log-level="${LOG_LEVEL:-warn}" \
        --log-handler=odoo.service.server:INFO --log-handler=stripe:WARNING \
        --log-handler=odoo.addons.base.models.ir_cron:INFO --load=base,web,crm_bench_timing &
    ODOO_PID=$!
    wait_for_http "http://127.0.0.1:$ODOO_PORT/web/health" 60 || die "Odoo did not start"
}

bench_stop_odoo() {
    kill "$ODOO_PID"
    wait "$ODOO_PID" 2>/dev/null || true
    ODOO_PID=
}

bench_killed_workers() {  # prints the workers Odoo killed or lost, from its log; returns 1 if any
    "$PYTHON" "$ROOT/bench/cron.py" killed "$WORK/odoo.log"
}
