import json
import logging
import threading
from datetime import timedelta

from odoo import SUPERUSER_ID, _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config

from ..services.budget import TimeBudget, report_cron_progress

_logger = logging.getLogger(__name__)

# Operations that change something at Stripe: their audit line is committed apart, so that it
# stays when the business transaction that made the call rolls back (the call still happened).
READ_ONLY_SUFFIXES = (".retrieve", ".list", ".lines")


class CrmPaymentAudit(models.Model):
    """The audit trail of CRM Payments: append-only.

    Two kinds of lines:

    - ``call``: one per Stripe call made through the gateway (services/gateway.py): operation,
      object id, Stripe's request id, idempotency key, HTTP status, duration (ms), user,
      company. A call that changes something at Stripe (create, update, cancel, delete) is
      written in a database transaction of its own, committed at once: the business transaction
      that made it may roll back, the call still happened at Stripe. A read is written on the
      current cursor (one INSERT): rolled back with it, it changed nothing anywhere.
    - ``change``: one per change a Stripe event applied (the event, the record, the fields
      before and after: a transaction's or a subscription's state, a risk flag opened), written
      on the event's cursor: a change rolled back never happened.

    Lines are written in SQL (one INSERT, no ORM); through the ORM no one, not even the
    superuser, edits or deletes one. Old lines are purged, in SQL, by a cron after the
    company's retention days. Never a secret, a card number or a payload: names, ids and
    figures only.
    """

    _name = "crm.payment.audit"
    _description = "CRM Payments Audit Line"
    _order = "id desc"
    _rec_name = "operation"

    kind = fields.Selection(
        [("call", "Stripe call"), ("change", "Change by an event")], required=True, readonly=True, index=True
    )
    operation = fields.Char(
        required=True,
        readonly=True,
        index=True,
        help="The gateway operation (payment_intent.create...) or, for a change, the event type.",
    )
    object_id = fields.Char(string="Stripe Object", readonly=True, index=True)
    request_id = fields.Char(string="Stripe Request ID", readonly=True)
    idempotency_key = fields.Char(readonly=True)
    http_status = fields.Integer(string="HTTP Status", readonly=True)
    duration_ms = fields.Integer(string="Duration (ms)", readonly=True)
    error_kind = fields.Char(string="Error", readonly=True)
    provider_id = fields.Many2one("payment.provider", readonly=True, ondelete="set null")
    company_id = fields.Many2one("res.company", readonly=True, index=True, ondelete="set null")
    user_id = fields.Many2one("res.users", readonly=True, ondelete="set null")
    event_id = fields.Many2one("crm.payment.event", string="Stripe Event", readonly=True, ondelete="set null")
    res_model = fields.Char(string="Record Model", readonly=True)
    res_id = fields.Integer(string="Record ID", readonly=True)
    changes = fields.Json(
        string="Changes (JSON)", readonly=True, help="{field: [before, after]} of the fields that matter."
    )
    changes_text = fields.Char(string="Changes", compute="_compute_changes_text")

    def init(self):
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS crm_payment_audit_create_date_idx ON crm_payment_audit (create_date)"
        )

    @api.depends("changes")
    def _compute_changes_text(self):
        for line in self:
            line.changes_text = (
                ", ".join(f"{name}: {pair[0]} → {pair[1]}" for name, pair in sorted(line.changes.items()))
                if line.changes
                else False
            )

    # === APPEND-ONLY === #

    def write(self, vals):
        """Refused to everyone, the superuser included: an audit line is never edited."""
        if self:
            raise UserError(_("Audit lines cannot be changed: the audit trail is append-only."))
        return super().write(vals)

    def unlink(self):
        """Refused to everyone, the superuser included: old lines are purged by the retention
        cron only (Settings › CRM Payments › Audit retention)."""
        if self:
            raise UserError(
                _("Audit lines cannot be deleted: they are purged after the retention days set in Settings.")
            )
        return super().unlink()

    # === WRITING === #

    @api.model
    def _crm_insert(self, cr, values):
        """One INSERT of an audit line on ``cr``; ``values`` names columns of the table."""
        columns = list(values)
        cr.execute(
            "INSERT INTO crm_payment_audit ({}, create_uid, write_uid, create_date, write_date) "  # noqa: S608
            "VALUES ({}, %(uid)s, %(uid)s, %(now)s, %(now)s)".format(
                ", ".join(columns), ", ".join(f"%({name})s" for name in columns)
            ),
            {**values, "uid": values.get("user_id") or SUPERUSER_ID, "now": fields.Datetime.now()},
        )

    @api.model
    def _crm_own_transaction(self):
        return self.env["crm.stripe.request"]._crm_own_transaction()

    @api.model
    def _crm_log_call(self, provider, **call):
        """Record one gateway call (the gateway's observer, see payment.provider).

        :param recordset provider: the `payment.provider` whose account was called
        :param call: what the gateway reports: ``operation``, ``object_id``, ``request_id``,
            ``idempotency_key``, ``http_status``, ``duration_ms``, ``error_kind``
        """
        values = {
            "kind": "call",
            "operation": call["operation"],
            "object_id": (call.get("object_id") or "")[:255] or None,
            "request_id": call.get("request_id"),
            "idempotency_key": call.get("idempotency_key"),
            "http_status": call.get("http_status"),
            "duration_ms": call.get("duration_ms"),
            "error_kind": call.get("error_kind"),
            "user_id": self.env.uid,
            "company_id": provider.company_id.id,
            "provider_id": provider.id,
        }
        mutating = not call["operation"].endswith(READ_ONLY_SUFFIXES)
        if mutating and self._crm_own_transaction():
            # The call happened at Stripe whatever becomes of the current transaction.
            with self.env.registry.cursor() as cr:
                self._crm_insert(cr, values)
            return
        self._crm_insert(self.env.cr, values)

    @api.model
    def _crm_applying_event(self):
        """The id of the `crm.payment.event` being applied, or ``False``.

        Only the ledger (superuser environment flagged ``crm_ledger_processing`` by
        `crm.payment.event` processing) applies events: a client putting ``crm_audit_event``
        in its own context must not write "changed by a Stripe event" lines.
        """
        if not (self.env.su and self.env.context.get("crm_ledger_processing")):
            return False
        return self.env.context.get("crm_audit_event") or False

    @api.model
    def _crm_log_change(self, event_id, record, changes, operation=None):
        """Record a change a Stripe event applied to ``record``.

        :param int event_id: the `crm.payment.event` applying it
        :param record: the changed record (one)
        :param dict changes: ``{field: [before, after]}``, plain JSON values
        :param str operation: defaults to the event's type
        """
        if operation is None and event_id and self._crm_applying_event() == event_id:
            operation = self.env.context.get("crm_audit_event_type")
        if operation is None:
            self.env.cr.execute("SELECT event_type FROM crm_payment_event WHERE id = %s", [event_id])
            row = self.env.cr.fetchone()
            operation = row[0] if row else "event"
        company = record._fields.get("company_id") and record.company_id
        self._crm_insert(
            self.env.cr,
            {
                "kind": "change",
                "operation": operation,
                "event_id": event_id,
                "res_model": record._name,
                "res_id": record.id,
                "changes": json.dumps(changes, default=str),
                "user_id": self.env.uid,
                "company_id": company.id if company else None,
            },
        )

    @api.model
    def _crm_log_state_changes(self, records, before):
        """Record the audited fields of ``records`` that changed since ``before``
        (``{id: {field: value}}``), when a Stripe event is being applied."""
        event_id = self._crm_applying_event()
        if not event_id:
            return
        for record in records:
            old = before.get(record.id) or {}
            changes = {name: [value, record[name]] for name, value in old.items() if record[name] != value}
            if changes:
                self._crm_log_change(event_id, record, changes)

    # === RETENTION === #

    @api.model
    def _cron_purge(self, budget=None, batch_size=5000):
        """Delete, in SQL and in committed slices, the lines older than their company's
        retention days (Settings › CRM Payments; 0 keeps them for ever).

        :param TimeBudget budget: when to stop; the cron runs again at once for the rest
        :return: how many lines were deleted
        """
        budget = budget or TimeBudget.for_run(self.env, config)
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        cutoffs = [
            (company.id, fields.Datetime.now() - timedelta(days=company.crm_audit_retention_days))
            for company in self.env["res.company"].sudo().search([("crm_audit_retention_days", ">", 0)])
        ]
        deleted = 0
        drained = True
        for company_id, cutoff in cutoffs:
            while drained:
                if not budget.allows_batch():
                    drained = False
                    break
                limit = budget.batch_size(batch_size)
                with budget.batch() as batch:
                    self.env.cr.execute(
                        """
                        DELETE FROM crm_payment_audit WHERE id IN (
                            SELECT id FROM crm_payment_audit
                             WHERE company_id = %s AND create_date < %s
                             ORDER BY id LIMIT %s)
                        """,
                        [company_id, cutoff, limit],
                    )
                    batch.items = count = self.env.cr.rowcount
                    if auto_commit:
                        self.env.cr.commit()  # pylint: disable=invalid-commit
                deleted += count
                if count < limit:
                    break
        self.env.cr.execute(
            "SELECT count(*) FROM crm_payment_audit a JOIN res_company c ON c.id = a.company_id "
            "WHERE c.crm_audit_retention_days > 0 "
            "AND a.create_date < now() at time zone 'utc' - c.crm_audit_retention_days * interval '1 day'"
        )
        remaining = self.env.cr.fetchone()[0] if not drained else 0
        report_cron_progress(
            self.env.ref("crm_payment_integration.ir_cron_crm_payment_audit_purge"), deleted, remaining
        )
        if deleted:
            _logger.info("audit trail: %s lines older than their retention purged", deleted)
        return deleted
