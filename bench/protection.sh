#!/usr/bin/env bash
# The cost of the protection features (risk rules on every payment, audit lines of calls and
# events, alerts), both variants in one run: the branch's base and the current tree.
#
# For each variant: bench/payments.sh (confirmed payments per second, payment_intent.succeeded
# webhook -> ledger -> reconciled invoice) and bench/ingest.sh (webhook ingest requests per
# second, and their ratio to Odoo's bare /web/health route measured in the same run, which
# compensates for a machine shared with other work). Prints the added time per confirmed
# payment (target < 10 %) and the ingest slowdown (target < 5 %).
#
#   bench/protection.sh [PAYMENTS=200] [EVENTS=2000]     BASE=<commit> (default: merge-base with main)
set -euo pipefail
source "$(dirname "$0")/../tools/common.sh"
PAYMENTS="${1:-200}"
EVENTS="${2:-2000}"
BASE="${BASE:-$(git -C "$ROOT" merge-base HEAD main)}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$OUT/base"
git -C "$ROOT" archive "$BASE" | tar -x -C "$OUT/base"
# The same harness for both variants: only the add-on differs.
rm -rf "$OUT/base/bench"
cp -r "$ROOT/bench" "$OUT/base/bench"
rm -f "$OUT/base/bench/protection.sh"

echo "== base: $(git -C "$ROOT" log -1 --format='%h %s' "$BASE")"
echo "== current: $(git -C "$ROOT" log -1 --format='%h %s' HEAD)$(git -C "$ROOT" diff --quiet HEAD || echo ' (+ uncommitted changes)')"
for variant in base current; do
    root="$ROOT"; [ "$variant" = base ] && root="$OUT/base"
    echo "== payments, $variant"
    # (a non-zero exit, such as a worker Odoo killed in its own flow, is printed, not fatal)
    "$root/bench/payments.sh" "$PAYMENTS" 4 | tee "$OUT/$variant.payments" || true
done
for variant in base current; do
    root="$ROOT"; [ "$variant" = base ] && root="$OUT/base"
    echo "== webhook ingest, $variant"
    "$root/bench/ingest.sh" "$EVENTS" 8 | tee "$OUT/$variant.ingest" || true
done

"$PYTHON" - "$OUT" <<'PY'
import re
import sys

out = sys.argv[1]


def read(name):
    with open(f"{out}/{name}") as file:
        return file.read()


def payments(variant):
    match = re.search(r"this add-on /crm_payment/stripe/webhook.*?([\d.]+) payments/s", read(f"{variant}.payments"))
    return float(match.group(1))


def ingest(variant):
    text = read(f"{variant}.ingest")
    webhook = float(re.search(r"webhook /crm_payment/stripe/webhook\s+([\d.]+) req/s", text).group(1))
    ceiling = float(re.search(r"ceiling /web/health\s+([\d.]+) req/s", text).group(1))
    return webhook, ceiling


base_rate, rate = payments("base"), payments("current")
added = (1 / rate - 1 / base_rate) / (1 / base_rate)
print()
print("== protection: what it costs")
print(
    f"confirmed payments/s: base {base_rate:.1f}, with protection {rate:.1f}; time per payment "
    f"{1000 / base_rate:.1f} ms -> {1000 / rate:.1f} ms: added {added:+.1%} (target < 10%)"
)
(base_webhook, base_ceiling), (webhook, ceiling) = ingest("base"), ingest("current")
raw = 1 - webhook / base_webhook
relative = 1 - (webhook / ceiling) / (base_webhook / base_ceiling)
print(
    f"webhook ingest req/s: base {base_webhook:.1f} ({base_webhook / base_ceiling:.0%} of /web/health), "
    f"with protection {webhook:.1f} ({webhook / ceiling:.0%} of /web/health): slowdown {raw:+.1%} raw, "
    f"{relative:+.1%} against the ceiling (target < 5%)"
)
PY
