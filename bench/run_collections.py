"""The collections run of the benchmark (bench/collections.sh, in `odoo shell`): the cron's
method called as Odoo's cron worker would, each call a new unit of work under Odoo's default
limits (limit_time_cpu 60 s, limit_time_real 120 s: each run takes half, commits per batch and
leaves the rest to the next call), until nothing is left; then the statement PDF of the
customer with STATEMENT_LINES lines."""

import os
import resource
import time

from odoo.addons.crm_payment_integration.services.budget import TimeBudget

cr = env.cr  # noqa: F821
Reminder = env["crm.collection.reminder"]  # noqa: F821
cr.execute("SELECT pg_backend_pid()")
backend = cr.fetchone()[0]


def db_cpu():
    """CPU seconds of this cursor's PostgreSQL backend (local server: /proc), 0 when unreadable."""
    try:
        with open(f"/proc/{backend}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


started, cpu_started, db_started = time.monotonic(), time.process_time(), db_cpu()
runs = made = 0
while True:
    runs += 1
    done = Reminder._cron_run(budget=TimeBudget.from_limits(60, 120))
    cr.commit()
    made += done
    if not done:
        break
seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
cpu_db = db_cpu() - db_started
cr.execute(
    "SELECT count(*) FROM mail_mail mm JOIN mail_message m ON m.id = mm.mail_message_id "
    "WHERE m.model = 'crm.collection.reminder'"
)
emails = cr.fetchone()[0]
cr.execute(
    "SELECT count(*) FROM account_move WHERE name LIKE 'BENCH/%%' AND invoice_date_due <= CURRENT_DATE"
)
overdue = cr.fetchone()[0]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
big = env["res.partner"].browse(int(os.environ["BIG_CUSTOMER"]))  # noqa: F821
pdf_started = time.monotonic()
st = big._crm_statement(*big._crm_statement_period())
pdf, kind = env["ir.actions.report"]._render_qweb_pdf(  # noqa: F821
    "crm_payment_integration.report_crm_statement", big.ids
)
pdf_seconds = time.monotonic() - pdf_started
print(
    f"result invoices={os.environ['INVOICES']} overdue={overdue} reminders={made} emails={emails} "
    f"runs={runs} seconds={seconds:.2f} cpu={cpu:.2f} cpu_db={cpu_db:.2f} "
    f"load={os.getloadavg()[0]:.1f} rss_peak_mb={rss:.0f} "
    f"statement_lines={len(st['lines'])} pdf_kb={len(pdf) // 1024} pdf_seconds={pdf_seconds:.2f} "
    f"pdf_kind={kind}"
)
