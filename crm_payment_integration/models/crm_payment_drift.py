"""The drift check: Stripe's charges, refunds and disputes of the last days against Odoo's.

Stripe's lists are read page after page (the SDK's ``auto_paging_iter``) and staged, one
chunk at a time, in an unlogged table (``crm_payment_drift_seen``); the comparison is then a
handful of set-based queries writing the differences as ``crm.payment.drift`` lines. Memory
stays flat whatever the number of objects; a run stops within its time budget and resumes
where it stopped (the listing's cursor is kept on the run).
"""

import json
import logging
import threading
from datetime import datetime, timedelta, timezone

from psycopg2.extras import execute_values

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config

from .. import utils
from ..services.budget import TimeBudget, report_cron_progress
from ..services.gateway import StripeGatewayError

_logger = logging.getLogger(__name__)

SEEN_TABLE = "crm_payment_drift_seen"
# Objects staged per chunk (a multiple of the page size: 100).
CHUNK_SIZE = 5000
PHASES = ("charges", "refunds", "disputes")
# A transaction made in the last minutes may still wait for its Stripe object to be listed.
RECENT_MARGIN = timedelta(minutes=10)
# Ledger event types the repair sends a re-read object through (the webhook's own handlers).
INTENT_EVENTS = {
    "succeeded": "payment_intent.succeeded",
    "canceled": "payment_intent.canceled",
    "requires_payment_method": "payment_intent.payment_failed",
}
DRIFT_KINDS = [
    ("missing_in_odoo", "Missing in Odoo"),
    ("missing_in_stripe", "Missing in Stripe"),
    ("amount_differs", "Amount Differs"),
    ("status_differs", "Status Differs"),
]


def _unix(value):
    return int(value.replace(tzinfo=timezone.utc).timestamp())


class CrmPaymentDriftRun(models.Model):
    """One run of the drift check for one Stripe provider: its window and progress."""

    _name = "crm.payment.drift.run"
    _description = "Stripe Drift Check"
    _order = "id desc"

    name = fields.Char(compute="_compute_name")
    provider_id = fields.Many2one("payment.provider", required=True, readonly=True, ondelete="cascade")
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    date_from = fields.Datetime(string="From", required=True, readonly=True)
    date_to = fields.Datetime(string="To", required=True, readonly=True)
    state = fields.Selection(
        [("running", "Running"), ("done", "Done"), ("failed", "Failed")],
        default="running",
        required=True,
        readonly=True,
    )
    phase = fields.Selection(
        [(phase, phase.capitalize()) for phase in PHASES] + [("compare", "Compare"), ("done", "Done")],
        default="charges",
        required=True,
        readonly=True,
    )
    cursor = fields.Char(readonly=True, help="The last Stripe id staged by the current phase.")
    charge_count = fields.Integer(string="Stripe Charges", readonly=True)
    refund_count = fields.Integer(string="Stripe Refunds", readonly=True)
    dispute_count = fields.Integer(string="Stripe Disputes", readonly=True)
    foreign_count = fields.Integer(
        string="Not Ours",
        readonly=True,
        help="Stripe objects of customers or payments this add-on does not keep (another app's): "
        "left out of the comparison.",
    )
    line_ids = fields.One2many("crm.payment.drift", "run_id", string="Differences", readonly=True)
    difference_count = fields.Integer(compute="_compute_difference_count")
    last_error = fields.Text(readonly=True)

    def init(self):
        self.env.cr.execute(
            """
            CREATE UNLOGGED TABLE IF NOT EXISTS crm_payment_drift_seen (
                run_id integer NOT NULL,
                kind varchar NOT NULL,
                stripe_id varchar NOT NULL,
                intent_id varchar,
                customer_id varchar,
                reference varchar,
                amount bigint,
                currency varchar,
                status varchar
            );
            CREATE INDEX IF NOT EXISTS crm_payment_drift_seen_id_idx
                ON crm_payment_drift_seen (run_id, kind, stripe_id);
            CREATE INDEX IF NOT EXISTS crm_payment_drift_seen_intent_idx
                ON crm_payment_drift_seen (run_id, kind, intent_id);
            CREATE INDEX IF NOT EXISTS payment_transaction_crm_provider_reference_idx
                ON payment_transaction (provider_reference, provider_id);
            """
        )

    @api.depends("date_from", "date_to", "provider_id")
    def _compute_name(self):
        for run in self:
            run.name = _(
                "%(provider)s: %(start)s - %(end)s",
                provider=run.provider_id.name,
                start=run.date_from,
                end=run.date_to,
            )

    def _compute_difference_count(self):
        counts = {
            run.id: count
            for run, count in self.env["crm.payment.drift"]._read_group(
                [("run_id", "in", self.ids)], ["run_id"], ["__count"]
            )
        }
        for run in self:
            run.difference_count = counts.get(run.id, 0)

    @api.ondelete(at_uninstall=True)
    def _unlink_seen_rows(self):
        self.env.cr.execute(f"DELETE FROM {SEEN_TABLE} WHERE run_id = ANY(%s)", [self.ids])  # noqa: S608

    # === ENTRY POINTS === #

    @api.model
    def _crm_action_start(self):
        """The menu's *Run Drift Check*: a run for the current company's Stripe provider,
        carried on by the cron when it does not end within this request.

        :return: an action opening the run
        """
        if not self.env.user.has_group("account.group_account_invoice"):
            raise UserError(_("Only accountants run the drift check."))
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider()
        if not provider_sudo:
            raise UserError(_("No Stripe provider is set up for %(company)s.", company=self.env.company.name))
        run = self._crm_start(provider_sudo)
        run._crm_continue(TimeBudget.for_worker(config), commit=False)
        if run.state == "running":
            self.env.ref("crm_payment_integration.ir_cron_crm_payment_drift_check")._trigger()
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": run.id,
            "view_mode": "form",
            "name": _("Drift Check"),
        }

    @api.model
    def _cron_drift_check(self, budget=None):
        """Nightly: start a run per Stripe provider (unless one is running), then carry on
        every running run within the time budget (resumed by the next run of the cron)."""
        budget = budget or TimeBudget.for_run(self.env, config)
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        Run = self.sudo()
        if not self.env.context.get("crm_drift_resume"):
            for provider_sudo in (
                self.env["payment.provider"]
                .sudo()
                .search([("code", "=", "stripe"), ("state", "!=", "disabled")])
            ):
                if not Run.search_count([("provider_id", "=", provider_sudo.id), ("state", "=", "running")]):
                    Run._crm_start(provider_sudo)
        runs = Run.search([("state", "=", "running")], order="id")
        for run in runs:
            run._crm_continue(budget, commit=auto_commit)
        remaining = Run.search_count([("state", "=", "running")])
        report_cron_progress(
            self.env.ref("crm_payment_integration.ir_cron_crm_payment_drift_check"), len(runs), remaining
        )
        return True

    @api.model
    def _crm_start(self, provider_sudo):
        now = fields.Datetime.now().replace(microsecond=0)
        days = provider_sudo.company_id.crm_drift_days or 30
        return self.sudo().create(
            {
                "provider_id": provider_sudo.id,
                "company_id": provider_sudo.company_id.id,
                "date_from": now - timedelta(days=days),
                "date_to": now,
            }
        )

    # === THE RUN === #

    def _crm_continue(self, budget, commit=True):
        """Stage Stripe's lists chunk by chunk, then compare; stop when the budget is spent."""
        self.ensure_one()
        try:
            while self.phase in PHASES:
                if not self._crm_stage_phase(budget, commit):
                    return
            if self.phase == "compare":
                self._crm_compare()
                self.write({"phase": "done", "state": "done", "cursor": False})
                self.env.cr.execute(f"DELETE FROM {SEEN_TABLE} WHERE run_id = %s", [self.id])  # noqa: S608
        except StripeGatewayError as error:
            message = utils.gateway_error_message(error, self.provider_id)
            self.write({"state": "failed", "last_error": message})
            _logger.warning("drift check %s failed: %s", self.id, message)
        if commit:
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _crm_stage_phase(self, budget, commit):
        """Stage the current phase's objects; return whether the phase ended (else the budget
        ran out, the cursor kept)."""
        gateway = self.provider_id._crm_stripe_gateway()
        kind = self.phase
        objects = gateway.iter_objects(
            kind, _unix(self.date_from), created_before=_unix(self.date_to), starting_after=self.cursor
        )
        count_field = {"charges": "charge_count", "refunds": "refund_count", "disputes": "dispute_count"}[
            kind
        ]
        while True:
            if not budget.allows_batch():
                return False
            with budget.batch() as batch:
                rows = []
                for obj in objects:
                    rows.append(self._crm_seen_row(kind, obj))
                    if len(rows) >= CHUNK_SIZE:
                        break
                batch.items = len(rows)
                if rows:
                    execute_values(
                        self.env.cr._obj,
                        f"INSERT INTO {SEEN_TABLE} (run_id, kind, stripe_id, intent_id, customer_id, "  # noqa: S608
                        "reference, amount, currency, status) VALUES %s",
                        rows,
                        page_size=CHUNK_SIZE,
                    )
                    self.write({"cursor": rows[-1][2], count_field: self[count_field] + len(rows)})
                if len(rows) < CHUNK_SIZE:
                    next_phase = PHASES[PHASES.index(kind) + 1] if kind != PHASES[-1] else "compare"
                    self.write({"phase": next_phase, "cursor": False})
                if commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
            if len(rows) < CHUNK_SIZE:
                return True

    def _crm_seen_row(self, kind, obj):
        def plain_id(value):
            return value.get("id") if isinstance(value, dict) else value

        intent = plain_id(obj.get("payment_intent"))
        return (
            self.id,
            kind,
            obj["id"],
            intent,
            plain_id(obj.get("customer")),
            (obj.get("metadata") or {}).get("reference"),
            obj.get("amount") or 0,
            (obj.get("currency") or "").upper(),
            obj.get("status"),
        )

    def _crm_compare(self):
        """Write the differences of the staged objects with Odoo's records, set-based."""
        self.env.flush_all()
        params = {
            "run": self.id,
            "provider": self.provider_id.id,
            "company": self.company_id.id,
            "date_from": self.date_from,
            "date_to": self.date_to - RECENT_MARGIN,
            "now": fields.Datetime.now(),
            "uid": self.env.uid,
        }
        cr = self.env.cr
        # The Odoo side of each Stripe charge or refund: its transaction, if any.
        insert = """
            INSERT INTO crm_payment_drift (
                run_id, company_id, provider_id, object_type, stripe_id, stripe_intent_id, kind,
                stripe_amount, stripe_currency, stripe_status, odoo_amount, odoo_status,
                currency_id, transaction_id, dispute_id, state,
                create_uid, write_uid, create_date, write_date
            )
        """
        audit = "'open', %(uid)s, %(uid)s, %(now)s, %(now)s"
        # Charges and refunds: our transaction by PaymentIntent (charges) or refund id.
        cr.execute("ANALYZE crm_payment_drift_seen")
        cr.execute("DROP TABLE IF EXISTS crm_drift_match")
        # Each Stripe object's transaction by an indexed equality (one index probe per object;
        # the window's objects only, never all the transactions of the account).
        match = """
            SELECT s.kind, s.stripe_id, s.intent_id, s.amount, s.currency, s.status,
                   tx.id AS tx_id, tx.state AS tx_state,
                   ROUND(ABS(tx.amount) * POWER(10, cur.decimal_places))::bigint AS tx_minor,
                   cur.name AS tx_currency, tx.currency_id,
                   src.id AS source_id, bound.id AS bound_id
              FROM {seen} s
              LEFT JOIN LATERAL ({tx}) tx ON TRUE
              LEFT JOIN res_currency cur ON cur.id = tx.currency_id
              LEFT JOIN LATERAL ({source}) src ON TRUE
              LEFT JOIN crm_stripe_customer bound
                     ON {bound} AND bound.provider_id = %(provider)s
                    AND bound.stripe_customer_id = s.customer_id
             WHERE s.run_id = %(run)s AND s.kind = '{kind}'
        """
        charge_tx = """
            SELECT t.id, t.state, t.amount, t.currency_id FROM payment_transaction t
             WHERE t.provider_reference = s.intent_id AND t.provider_id = %(provider)s
               AND t.operation IS DISTINCT FROM 'refund'
             ORDER BY t.id LIMIT 1
        """
        refund_tx = """
            SELECT u.* FROM (
                SELECT t.id, t.state, t.amount, t.currency_id FROM payment_transaction t
                 WHERE t.provider_reference = s.stripe_id AND t.provider_id = %(provider)s
                   AND t.operation = 'refund'
                UNION ALL
                SELECT t.id, t.state, t.amount, t.currency_id FROM payment_transaction t
                 WHERE t.reference = s.reference AND t.provider_id = %(provider)s
                   AND t.operation = 'refund'
            ) u LIMIT 1
        """
        refund_source = """
            SELECT t.id FROM payment_transaction t
             WHERE t.provider_reference = s.intent_id AND t.provider_id = %(provider)s
               AND t.operation IS DISTINCT FROM 'refund' AND t.crm_flow IS NOT NULL
             LIMIT 1
        """
        cr.execute(
            "CREATE TEMP TABLE crm_drift_match ON COMMIT DROP AS "
            + match.format(
                seen=SEEN_TABLE, tx=charge_tx, source="SELECT NULL::int AS id", bound="TRUE", kind="charges"
            )
            + " UNION ALL "
            + match.format(
                seen=SEEN_TABLE, tx=refund_tx, source=refund_source, bound="FALSE", kind="refunds"
            ),
            params,
        )
        cr.execute(
            f"""
            {insert}
            SELECT %(run)s, %(company)s, %(provider)s, m.kind, m.stripe_id, m.intent_id,
                   CASE
                       WHEN m.tx_id IS NULL THEN 'missing_in_odoo'
                       WHEN m.tx_minor != m.amount OR m.tx_currency != m.currency THEN 'amount_differs'
                       ELSE 'status_differs'
                   END,
                   m.amount, m.currency, m.status, m.tx_minor, m.tx_state,
                   m.currency_id, m.tx_id, NULL, {audit}
              FROM crm_drift_match m
             WHERE (m.tx_id IS NULL AND m.kind = 'charges' AND m.status = 'succeeded'
                    AND m.intent_id IS NOT NULL AND m.bound_id IS NOT NULL)
                OR (m.tx_id IS NULL AND m.kind = 'refunds' AND m.status IN ('succeeded', 'pending')
                    AND m.source_id IS NOT NULL)
                OR (m.tx_id IS NOT NULL AND m.status = 'succeeded'
                    AND (m.tx_minor != m.amount OR m.tx_currency != m.currency
                         OR m.tx_state NOT IN ('done', 'authorized')))
                OR (m.tx_id IS NOT NULL AND m.kind = 'refunds' AND m.status IN ('failed', 'canceled')
                    AND m.tx_state = 'done')
            """,  # noqa: S608
            params,
        )
        cr.execute(
            """
            SELECT count(*) FILTER (WHERE tx_id IS NULL AND bound_id IS NULL AND source_id IS NULL)
              FROM crm_drift_match
            """
        )
        foreign = cr.fetchone()[0]
        # Disputes: ours by their PaymentIntent's transaction.
        cr.execute(
            f"""
            {insert}
            SELECT %(run)s, %(company)s, %(provider)s, 'disputes', s.stripe_id, s.intent_id,
                   CASE
                       WHEN d.id IS NULL THEN 'missing_in_odoo'
                       WHEN ROUND(d.amount * POWER(10, cur.decimal_places))::bigint != s.amount
                            OR cur.name != s.currency THEN 'amount_differs'
                       ELSE 'status_differs'
                   END,
                   s.amount, s.currency, s.status,
                   ROUND(d.amount * POWER(10, cur.decimal_places))::bigint, d.state,
                   d.currency_id, COALESCE(d.transaction_id, tx.id), d.id, {audit}
              FROM {SEEN_TABLE} s
              LEFT JOIN crm_payment_dispute d
                     ON d.provider_id = %(provider)s AND d.stripe_dispute_id = s.stripe_id
              LEFT JOIN res_currency cur ON cur.id = d.currency_id
              LEFT JOIN LATERAL (
                    SELECT t.id FROM payment_transaction t
                     WHERE t.provider_id = %(provider)s AND t.provider_reference = s.intent_id
                       AND t.operation != 'refund' AND t.crm_flow IS NOT NULL
                     LIMIT 1
              ) tx ON TRUE
             WHERE s.run_id = %(run)s AND s.kind = 'disputes'
               AND ((d.id IS NULL AND tx.id IS NOT NULL)
                 OR (d.id IS NOT NULL
                     AND (d.state IS DISTINCT FROM s.status
                          OR ROUND(d.amount * POWER(10, cur.decimal_places))::bigint != s.amount
                          OR cur.name != s.currency)))
            """,  # noqa: S608
            params,
        )
        cr.execute(
            f"""
            SELECT count(*) FROM {SEEN_TABLE} s
             WHERE s.run_id = %(run)s AND s.kind = 'disputes'
               AND NOT EXISTS (SELECT 1 FROM crm_payment_dispute d
                                WHERE d.provider_id = %(provider)s AND d.stripe_dispute_id = s.stripe_id)
               AND NOT EXISTS (SELECT 1 FROM payment_transaction t
                                WHERE t.provider_id = %(provider)s AND t.provider_reference = s.intent_id
                                  AND t.crm_flow IS NOT NULL)
            """,  # noqa: S608
            params,
        )
        foreign += cr.fetchone()[0]
        # Odoo's side: confirmed payments and refunds made from Odoo, and disputes, of the
        # window that Stripe did not list. Those imported from Stripe (crm_flow 'stripe') may be
        # older in Stripe than in Odoo: left out.
        cr.execute(
            f"""
            {insert}
            SELECT %(run)s, %(company)s, %(provider)s,
                   CASE WHEN t.operation = 'refund' THEN 'refunds' ELSE 'charges' END,
                   t.provider_reference, NULL, 'missing_in_stripe', NULL, NULL, NULL,
                   ROUND(ABS(t.amount) * POWER(10, cur.decimal_places))::bigint, t.state,
                   t.currency_id, t.id, NULL, {audit}
              FROM payment_transaction t
              JOIN res_currency cur ON cur.id = t.currency_id
             WHERE t.provider_id = %(provider)s AND t.state = 'done'
               AND t.create_date > %(date_from)s AND t.create_date <= %(date_to)s
               AND COALESCE(t.crm_flow, '') != 'stripe'
               AND (t.provider_reference LIKE 'pi\\_%%' OR t.provider_reference LIKE 're\\_%%')
               AND NOT EXISTS (
                    SELECT 1 FROM {SEEN_TABLE} s
                     WHERE s.run_id = %(run)s AND s.kind = 'charges' AND s.intent_id = t.provider_reference
               )
               AND NOT EXISTS (
                    SELECT 1 FROM {SEEN_TABLE} s
                     WHERE s.run_id = %(run)s AND s.kind = 'refunds' AND s.stripe_id = t.provider_reference
               )
            """,  # noqa: S608
            params,
        )
        cr.execute(
            f"""
            {insert}
            SELECT %(run)s, %(company)s, %(provider)s, 'disputes', d.stripe_dispute_id, NULL,
                   'missing_in_stripe', NULL, NULL, NULL,
                   ROUND(d.amount * POWER(10, cur.decimal_places))::bigint, d.state,
                   d.currency_id, d.transaction_id, d.id, {audit}
              FROM crm_payment_dispute d
              JOIN res_currency cur ON cur.id = d.currency_id
             WHERE d.provider_id = %(provider)s
               AND d.stripe_created > %(date_from)s AND d.stripe_created <= %(date_to)s
               AND NOT EXISTS (SELECT 1 FROM {SEEN_TABLE} s
                                WHERE s.run_id = %(run)s AND s.kind = 'disputes'
                                  AND s.stripe_id = d.stripe_dispute_id)
            """,  # noqa: S608
            params,
        )
        self.foreign_count = foreign
        self.env["crm.payment.drift"].invalidate_model()


class CrmPaymentDrift(models.Model):
    """One difference between Stripe and Odoo found by a drift check."""

    _name = "crm.payment.drift"
    _description = "Stripe Drift"
    _order = "id desc"
    _rec_name = "stripe_id"

    run_id = fields.Many2one(
        "crm.payment.drift.run", required=True, readonly=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    provider_id = fields.Many2one("payment.provider", required=True, readonly=True, ondelete="cascade")
    object_type = fields.Selection(
        [("charges", "Charge"), ("refunds", "Refund"), ("disputes", "Dispute")],
        string="Object",
        required=True,
        readonly=True,
    )
    stripe_id = fields.Char(string="Stripe ID", readonly=True)
    stripe_intent_id = fields.Char(string="PaymentIntent", readonly=True)
    kind = fields.Selection(DRIFT_KINDS, required=True, readonly=True)
    stripe_amount = fields.Integer(string="Stripe Amount (minor units)", readonly=True)
    stripe_currency = fields.Char(readonly=True)
    stripe_status = fields.Char(readonly=True)
    odoo_amount = fields.Integer(string="Odoo Amount (minor units)", readonly=True)
    odoo_status = fields.Char(readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    transaction_id = fields.Many2one("payment.transaction", readonly=True)
    dispute_id = fields.Many2one("crm.payment.dispute", readonly=True)
    repairable = fields.Boolean(compute="_compute_repairable")
    details = fields.Text(compute="_compute_details")
    state = fields.Selection(
        [
            ("open", "Open"),
            ("repaired", "Repaired"),
            ("explained", "Not Repaired"),
            ("failed", "Repair Failed"),
        ],
        default="open",
        required=True,
        readonly=True,
    )
    result = fields.Text(readonly=True)

    @api.depends("kind", "object_type")
    def _compute_repairable(self):
        for line in self:
            line.repairable = line._crm_repair_event_type() is not None or (
                line.object_type == "charges" and line.kind in ("missing_in_odoo", "status_differs")
            )

    @api.depends("kind", "object_type", "stripe_amount", "odoo_amount", "stripe_status", "odoo_status")
    def _compute_details(self):
        for line in self:
            line.details = line._crm_details()

    def _crm_details(self):
        kind = self.kind
        if kind == "missing_in_odoo":
            return _(
                "Stripe has it (%(amount)s %(currency)s minor units, %(status)s); Odoo does not. "
                "Repair imports it as a webhook would.",
                amount=self.stripe_amount,
                currency=self.stripe_currency,
                status=self.stripe_status,
            )
        if kind == "missing_in_stripe":
            return _(
                "Odoo has it (%(amount)s minor units, %(status)s) but Stripe did not list it in the "
                "window. Not repaired: check the provider's Stripe account and mode (test or live), "
                "and whether the object was deleted in Stripe; nothing is changed in Odoo.",
                amount=self.odoo_amount,
                status=self.odoo_status,
            )
        if kind == "amount_differs":
            text = _(
                "Stripe: %(stripe)s %(currency)s, Odoo: %(odoo)s (minor units).",
                stripe=self.stripe_amount,
                currency=self.stripe_currency,
                odoo=self.odoo_amount,
            )
            if self.object_type == "disputes":
                return text + " " + _("Repair reads the dispute again.")
            return (
                text
                + " "
                + _(
                    "Not repaired: an amount booked in the accounts is never changed automatically; "
                    "check the payment (partial capture, an edited transaction) and correct it with a "
                    "refund or an entry."
                )
            )
        return _(
            "Stripe: %(stripe)s, Odoo: %(odoo)s. Repair reads the status again from Stripe.",
            stripe=self.stripe_status,
            odoo=self.odoo_status,
        )

    def _crm_repair_event_type(self):
        """The ledger event type a safe repair goes through, ``None`` when it is not safe."""
        if self.kind == "missing_in_stripe":
            return None
        if self.object_type == "disputes":
            return "charge.dispute.updated"
        if self.object_type == "refunds" and self.kind in ("missing_in_odoo", "status_differs"):
            return "refund.updated"
        return None

    # === ACTIONS === #

    def action_crm_repair(self):
        """Repair the differences that are safe to repair: the object is read again from Stripe
        and applied through the ledger, as its webhook would be (a ledger event named
        ``drift_<line>_<object>`` shows what was done). The others get their explanation.

        :return: a notification action saying how many were repaired
        """
        if not self.env.user.has_group("account.group_account_invoice"):
            raise UserError(_("Only accountants repair drift."))
        self.check_access("write")
        repaired = 0
        for line in self.sudo().filtered(lambda ln: ln.state in ("open", "failed")):
            if not line.repairable:
                line.write({"state": "explained", "result": line.details})
                continue
            event = line._crm_repair_through_ledger()
            if event.state == "done":
                repaired += 1
                line.write({"state": "repaired", "result": event.result})
            elif event.state == "ignored":
                line.write({"state": "explained", "result": event.result})
            else:
                line.write({"state": "failed", "result": event.last_error or event.result})
        return utils.notification(_("%(count)s difference(s) repaired.", count=repaired))

    def _crm_repair_through_ledger(self):
        """Store the object, read again from Stripe, as a ledger event and apply it now."""
        provider_sudo = self.provider_id
        event_type = self._crm_repair_event_type()
        if event_type:
            obj = {"id": self.stripe_id, "object": "dispute" if self.object_type == "disputes" else "refund"}
            created = fields.Datetime.now()
        else:
            intent = provider_sudo._crm_stripe_call("retrieve_payment_intent", self.stripe_intent_id)
            event_type = INTENT_EVENTS.get(intent.get("status"), "payment_intent.processing")
            if event_type == "payment_intent.processing":
                # Not final yet: the handler reads it again (its own rule for such statuses).
                event_type = "payment_intent.succeeded"
            obj = intent
            created = datetime.fromtimestamp(intent.get("created") or 0, tz=timezone.utc).replace(tzinfo=None)
        event = {
            "id": f"drift_{self.id}_{self.stripe_id}",
            "object": "event",
            "type": event_type,
            "created": _unix(created),
            "livemode": provider_sudo.state == "enabled",
            "data": {"object": obj},
        }
        Event = self.env["crm.payment.event"].sudo()
        event_id = Event._crm_ingest(provider_sudo, event, json.dumps(event))
        stored = (
            Event.browse(event_id)
            if event_id
            else Event.search([("provider_id", "=", provider_sudo.id), ("stripe_event_id", "=", event["id"])])
        )
        stored.with_context(crm_ledger_processing=True).write(
            {"state": "pending", "attempts": 0, "next_attempt_at": fields.Datetime.now()}
        )
        stored._crm_process()
        return stored
