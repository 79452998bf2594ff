"""Run a cron job of the benchmark database in Odoo's own cron workers and wait for its work.

Used by the benchmarks (not through `odoo shell`): the job runs as in production, in a cron
worker under Odoo's limits, re-run by Odoo while it reports remaining work.
"""

import os
import re
import sys
import time

import psycopg2


def connect(db):
    conn = psycopg2.connect(dbname=db, host="127.0.0.1", user=os.environ.get("PGUSER", "odoo"))
    conn.autocommit = True
    return conn


def kick(db, module, name):
    """Make the job due and wake the cron workers, as ``ir.cron._trigger()`` does."""
    with connect(db) as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ir_cron_trigger (cron_id, call_at) SELECT res_id, now() AT TIME ZONE 'UTC' "
            "FROM ir_model_data WHERE module = %s AND name = %s",
            [module, name],
        )
    notify = connect("postgres")
    notify.cursor().execute("NOTIFY cron_trigger, %s", [db])
    notify.close()


def wait_until(db, query, timeout=3600, interval=0.2, params=None, rekick=None):
    """Poll ``query`` (one count) until it answers 0; return the seconds waited.

    :param rekick: called every second until the count first changes (a cron worker that had
        not yet listened when it was woken would otherwise wait for its first poll)
    """
    conn = connect(db)
    cursor = conn.cursor()
    started = last_kick = time.perf_counter()
    first = None
    try:
        while time.perf_counter() - started < timeout:
            cursor.execute(query, params)
            count = cursor.fetchone()[0]
            if not count:
                return time.perf_counter() - started
            first = count if first is None else first
            if rekick and count == first and time.perf_counter() - last_kick > 1:
                rekick()
                last_kick = time.perf_counter()
            time.sleep(interval)
        raise TimeoutError(f"still not done after {timeout} s: {query}")
    finally:
        conn.close()


def gateway_totals(directory):
    """Add up what the timing add-on wrote: seconds waiting for Stripe, calls, peak MB."""
    seconds = calls = peak = 0.0
    for name in os.listdir(directory):
        if name.startswith("gateway."):
            with open(os.path.join(directory, name)) as file:
                parts = file.read().split()
            if len(parts) == 3:
                seconds += float(parts[0])
                calls += int(parts[1])
                peak = max(peak, float(parts[2]))
    return seconds, int(calls), peak


def reset_gateway_totals(directory):
    for name in os.listdir(directory):
        if name.startswith("gateway."):
            os.unlink(os.path.join(directory, name))


KILL_PATTERNS = {
    "CPU time limit": re.compile(r"CPU time limit .*reached"),
    "memory limit": re.compile(r"[Vv]irtual memory limit|MemoryError"),
    "watchdog timeout": re.compile(r"\(\d+\) timeout after \d+s|virtual real time limit"),
    "crashed": re.compile(r"Exception occurred, exiting"),
}


def log_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def killed_workers(path, start=0, end=None):
    """Count the workers Odoo killed or lost in its log (from byte ``start`` to ``end``).

    :return: the number killed and the counts per cause
    :rtype: tuple[int, dict]
    """
    counts = dict.fromkeys(KILL_PATTERNS, 0)
    with open(path, "rb") as file:
        file.seek(start)
        text = file.read(None if end is None else max(0, end - start)).decode(errors="replace")
    for line in text.splitlines():
        for name, pattern in KILL_PATTERNS.items():
            if pattern.search(line):
                counts[name] += 1
    limits = counts["CPU time limit"] + counts["memory limit"] + counts["watchdog timeout"]
    return max(limits, counts["crashed"]), counts


def describe_kills(killed, counts):
    details = ", ".join(f"{name}: {n}" for name, n in counts.items())
    return f"workers killed: {killed} (target 0)   [{details}]"


if __name__ == "__main__" and sys.argv[1:2] == ["killed"]:
    # python3 bench/cron.py killed ODOO_LOG: print the workers killed; exit 1 when any was
    killed, counts = killed_workers(sys.argv[2])
    print(describe_kills(killed, counts))
    sys.exit(1 if killed else 0)
