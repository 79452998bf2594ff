# Shared by tools/test.sh, tools/demo.sh and bench/: checks and set-up of a local Odoo run.
# Sourced, not executed. Needs: python3 that imports odoo (Odoo 18), PostgreSQL on
# $PGHOST:$PGPORT, a role $PGUSER allowed to create databases.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-odoo}"
PYTHON="${PYTHON:-python3}"
export PIP_CONSTRAINT="$ROOT/tools/pip-constraints.txt"

die() { echo "error: $*" >&2; exit 1; }

check_odoo() {
    "$PYTHON" -c "import odoo.release as r; assert r.version_info[0] == 18, r.version" 2>/dev/null \
        || die "Odoo 18 cannot be imported by '$PYTHON': install Odoo 18.0 so that '$PYTHON -c \"import odoo\"' works (see README)."
}

check_postgres() {
    "$PYTHON" - <<PY 2>/dev/null || die "PostgreSQL does not answer on $PGHOST:$PGPORT as role '$PGUSER' (start it, or create the role: createuser -s $PGUSER)."
import psycopg2
psycopg2.connect(host="$PGHOST", port=$PGPORT, user="$PGUSER", dbname="postgres", connect_timeout=5).close()
PY
}

ensure_role() {
    # Odoo refuses to run as 'postgres': create the role when a superuser is reachable.
    "$PYTHON" - <<PY 2>/dev/null || true
import psycopg2
try:
    psycopg2.connect(host="$PGHOST", port=$PGPORT, user="$PGUSER", dbname="postgres", connect_timeout=5).close()
except psycopg2.OperationalError:
    conn = psycopg2.connect(host="$PGHOST", port=$PGPORT, user="postgres", dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    conn.cursor().execute('CREATE ROLE "$PGUSER" LOGIN CREATEDB')
PY
}

drop_db() {  # $1: database
    "$PYTHON" - <<PY || echo "warning: could not drop database $1" >&2
import psycopg2
conn = psycopg2.connect(host="$PGHOST", port=$PGPORT, user="$PGUSER", dbname="postgres")
conn.autocommit = True
conn.cursor().execute('DROP DATABASE IF EXISTS "$1" WITH (FORCE)')
PY
}

free_port() {
    "$PYTHON" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

project_addons() {  # the repository's add-ons, comma-separated, the main one first (bridges follow)
    local names=(crm_payment_integration) dir
    for dir in "$ROOT"/*/; do
        dir="$(basename "$dir")"
        [ -f "$ROOT/$dir/__manifest__.py" ] && [ "$dir" != crm_payment_integration ] && names+=("$dir")
    done
    (IFS=,; echo "${names[*]}")
}

# Installed beside the repository's add-ons by the tests and the demo (not a dependency of any):
# payment_demo, Odoo's own demo gateway, is the second payment provider the Insight reports
# compare Stripe with (success rate by gateway).
EXTRA_ADDONS="payment_demo"

odoo_addons_path() {
    "$PYTHON" -c "import os, odoo.addons as a; print(','.join(['$ROOT'] + [p for p in a.__path__ if os.path.isdir(p)]))"
}

write_odoo_config() {  # $1: file, $2: database, [$3: data dir]
    cat > "$1" <<CFG
[options]
addons_path = $(odoo_addons_path)
db_host = $PGHOST
db_port = $PGPORT
db_user = $PGUSER
db_name = $2
dbfilter = ^$2\$
list_db = False
http_interface = 127.0.0.1
data_dir = ${3:-$ROOT/.odoo-data}
without_demo = all
log_level = warn
CFG
}

wait_for_http() {  # $1: url, $2: seconds
    for _ in $(seq 1 "$(( ${2:-30} * 10 ))"); do
        "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('$1', timeout=1)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_localstripe() {  # $1: port, $2: options (--checkout); sets LOCALSTRIPE_PID
    "$PYTHON" "$ROOT/tools/run_localstripe.py" "$1" ${2:-} >"${LOCALSTRIPE_LOG:-/dev/null}" 2>&1 &
    LOCALSTRIPE_PID=$!
    # Any answer (401 without a key) means it listens.
    for _ in $(seq 1 100); do
        "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null && return 0
        sleep 0.1
    done
    die "localstripe did not start on port $1"
}
