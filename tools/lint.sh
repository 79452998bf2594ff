#!/usr/bin/env bash
# Lint the repository as OCA does: ruff (rules and format, ruff.toml) and pylint-odoo's
# mandatory checks for 18.0 (.pylintrc). Installs both from PyPI; exits non-zero on any finding.
#
#   tools/lint.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
export PIP_CONSTRAINT="$ROOT/tools/pip-constraints.txt"
cd "$ROOT"

echo "== installing linters"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-lint.txt" \
    || { echo "error: could not install requirements-lint.txt" >&2; exit 1; }

status=0
echo "== ruff check"
"$PYTHON" -m ruff check . || status=1
echo "== ruff format --check"
"$PYTHON" -m ruff format --check . || status=1
echo "== pylint-odoo"
mapfile -t ADDONS < <(for d in */; do [ -f "$d/__manifest__.py" ] && echo "${d%/}"; done)
"$PYTHON" -m pylint --rcfile=.pylintrc "${ADDONS[@]}" || status=1
[ $status -eq 0 ] && echo "lint: no finding" || echo "error: lint findings above" >&2
exit $status
