import json
import logging
import threading
from datetime import datetime, timedelta, timezone

import psycopg2.errors

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, config, mute_logger

from odoo.addons.payment import utils as payment_utils

from .. import const
from ..services.budget import TimeBudget, report_cron_progress
from ..services.gateway import StripeGatewayError
from ..utils import Ignored

_logger = logging.getLogger(__name__)


class EventBatch:
    """What the events of one processing batch share, passed in the context as ``crm_batch``.

    Compared by identity: Odoo reuses an environment whose context is *equal*, so two batches
    passing equal (empty) containers would share the first one's.

    - ``cache``: Stripe objects read once per batch
    - ``confirmed``: ids of the transactions the batch confirmed, post-processed together
    """

    __slots__ = ("cache", "confirmed")

    def __init__(self):
        self.cache = {}
        self.confirmed = []


LEDGER_READERS = "account.group_account_invoice,base.group_system"


class CrmPaymentEvent(models.Model):
    """The ledger of Stripe events: each one stored once, applied once, in the background.

    The webhook route stores the event (unique per provider and Stripe event id) and answers at
    once; a cron claims pending events with ``FOR UPDATE SKIP LOCKED`` and applies them with the
    handler of their type. Handlers re-read the object from Stripe, so the order of arrival does
    not matter and the newest state wins.
    """

    _name = "crm.payment.event"
    _description = "Stripe Event"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _rec_name = "stripe_event_id"

    provider_id = fields.Many2one(
        comodel_name="payment.provider",
        required=True,
        readonly=True,
        ondelete="cascade",
        index=True,
    )
    company_id = fields.Many2one(comodel_name="res.company", required=True, readonly=True, index=True)
    stripe_event_id = fields.Char(string="Event ID", required=True, readonly=True)
    event_type = fields.Char(string="Type", required=True, readonly=True, index=True)
    object_id = fields.Char(
        string="Object ID", readonly=True, index=True, help="The id of the event's data.object."
    )
    stripe_created = fields.Datetime(string="Created in Stripe", readonly=True)
    livemode = fields.Boolean(string="Live", readonly=True)
    api_version = fields.Char(string="API Version", readonly=True)
    # Raw payloads carry card details (brand, last 4, expiry, fingerprint) and the customer's
    # address and phone: for accounting and administrators only.
    payload = fields.Json(readonly=True, groups=LEDGER_READERS)
    payload_text = fields.Text(
        string="Payload (JSON)", compute="_compute_payload_text", groups=LEDGER_READERS
    )
    received_at = fields.Datetime(string="Received", required=True, readonly=True)
    state = fields.Selection(
        selection=[
            ("pending", "Pending"),
            ("done", "Done"),
            ("ignored", "Ignored"),
            ("failed", "Failed"),
        ],
        string="Status",
        required=True,
        default="pending",
        readonly=True,
    )
    attempts = fields.Integer(readonly=True)
    next_attempt_at = fields.Datetime(string="Next Attempt", readonly=True)
    processed_at = fields.Datetime(string="Processed", readonly=True)
    result = fields.Char(readonly=True)
    last_error = fields.Text(readonly=True)

    _sql_constraints = [
        (
            "provider_event_uniq",
            "unique(provider_id, stripe_event_id)",
            "A Stripe event is stored once per provider.",
        ),
    ]

    def init(self):
        self.env.cr.execute(
            """
            CREATE INDEX IF NOT EXISTS crm_payment_event_pending_idx
                ON crm_payment_event (next_attempt_at, id) WHERE state = 'pending'
            """
        )
        # The newest event the last run of the processing cron saw (see _crm_mark_run).
        self.env.cr.execute(
            SQL("CREATE SEQUENCE IF NOT EXISTS %s MINVALUE 0 START 0", SQL.identifier(const.EVENT_RUN_MARK))
        )

    def write(self, vals):
        """The ledger is append-only: only its processing (in sudo, with the context key
        ``crm_ledger_processing``, which a client alone cannot grant itself) changes an event;
        people reprocess, they never edit. Chatter and activities stay writable."""
        ledger_fields = (
            set(vals) - set(self.env["mail.thread"]._fields) - set(self.env["mail.activity.mixin"]._fields)
        )
        if ledger_fields and not (self.env.su and self.env.context.get("crm_ledger_processing")):
            raise UserError(
                _(
                    "Stripe events cannot be edited (%(fields)s): they record what Stripe sent. "
                    "Click Reprocess to apply an event again.",
                    fields=", ".join(sorted(ledger_fields)),
                )
            )
        return super().write(vals)

    def unlink(self):
        if not self.env.is_system():
            raise UserError(_("Stripe events cannot be deleted: only an administrator may purge the ledger."))
        return super().unlink()

    @api.depends("payload")
    def _compute_payload_text(self):
        for event in self:
            event.payload_text = json.dumps(event.payload, indent=2, sort_keys=True)

    # === ACTIONS === #

    def action_crm_reprocess(self):
        """Apply the events again now, whatever their state; the result shows on each."""
        self.check_access("write")
        events_sudo = self.sudo().with_context(crm_ledger_processing=True)
        events_sudo.write({"state": "pending", "attempts": 0, "next_attempt_at": fields.Datetime.now()})
        events_sudo._crm_process()
        return True

    # === BUSINESS METHODS - INGESTION === #

    @api.model
    def _crm_get_event_handlers(self):
        """Return the mapping of event type to the name of the method applying it.

        :rtype: dict
        """
        return dict(const.EVENT_HANDLERS)

    @api.model
    def _crm_ingest(self, provider_sudo, event, raw_payload):
        """Store a verified event once and schedule its processing.

        A single ``INSERT ... ON CONFLICT DO NOTHING``: a repeated or concurrent delivery of the
        same event stores nothing more, without an error.

        :param recordset provider_sudo: the `payment.provider` the event was sent to
        :param dict event: the parsed Stripe Event
        :param str raw_payload: the request body, stored as received (it is valid JSON)
        :return: the id of the new event, or ``None`` when it was already stored
        :rtype: int | None
        """
        handled = event["type"] in self._crm_get_event_handlers()
        now = fields.Datetime.now()
        created = event.get("created")
        if handled:
            # Held until commit: a run starting now waits for this event (see _crm_mark_run).
            self.env.cr.execute("SELECT pg_advisory_xact_lock_shared(%s)", [const.EVENT_RUN_LOCK])
        try:
            with self.env.cr.savepoint(flush=False), mute_logger("odoo.sql_db"):
                row = self._crm_insert_event(provider_sudo, event, raw_payload, handled, now, created)
        except psycopg2.errors.SerializationFailure:
            # A concurrent delivery of this event committed it after this transaction began:
            # under repeatable read, ON CONFLICT reports it instead of skipping it.
            row = None
        if row and handled:
            self._crm_trigger_processing(row[0])
        return row and row[0]

    @api.model
    def _crm_trigger_processing(self, event_id=None):
        """Make the processing cron run again after this event is committed.

        Every event adds a trigger row, so the job is due when a cron worker polls. Waking the
        workers (``NOTIFY``, a round trip to the ``postgres`` database, the costliest part of
        ``_trigger()``) is skipped only when a wake-up is sure to come after this commit: an
        event newer than the mark of the last run (a run that started after it was stored),
        still pending and visible here. The first such event woke the workers (it had none to
        rely on); the worker running the job then, if any, polls again when it is done (a
        ``NOTIFY`` received meanwhile waits for it), and a run that starts after that wake-up
        takes the run lock after this transaction (it holds the lock shared), so it sees this
        event. An event stored just after a run (whose own trigger that run consumes) therefore
        wakes the workers itself, rather than wait for their next poll (up to 70 s).

        :param int event_id: the event just stored (``None``: always wake the workers)
        """
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_payment_event_process")
        if not event_id:
            cron._trigger()
            return
        self.env.cr.execute(
            SQL(
                """
                SELECT EXISTS(
                    SELECT 1 FROM crm_payment_event
                     WHERE id > (SELECT last_value FROM %s) AND id != %s AND state = 'pending'
                )
                """,
                SQL.identifier(const.EVENT_RUN_MARK),
                event_id,
            )
        )
        if self.env.cr.fetchone()[0]:
            self.env["ir.cron.trigger"].sudo().create({"cron_id": cron.id, "call_at": fields.Datetime.now()})
        else:
            cron._trigger()

    @api.model
    def _crm_insert_event(self, provider_sudo, event, raw_payload, handled, now, created):
        self.env.cr.execute(
            """
            INSERT INTO crm_payment_event (
                provider_id, company_id, stripe_event_id, event_type, object_id,
                stripe_created, livemode, api_version, payload, state, attempts,
                next_attempt_at, received_at, result,
                create_uid, write_uid, create_date, write_date
            )
            VALUES (
                %(provider)s, (SELECT company_id FROM payment_provider WHERE id = %(provider)s),
                %(event_id)s, %(type)s, %(object_id)s, %(created)s, %(livemode)s,
                %(api_version)s, %(payload)s::jsonb, %(state)s, 0, %(next_attempt)s, %(now)s,
                %(result)s, %(uid)s, %(uid)s, %(now)s, %(now)s
            )
            ON CONFLICT (provider_id, stripe_event_id) DO NOTHING
            RETURNING id
            """,
            {
                "provider": provider_sudo.id,
                "event_id": event["id"],
                "type": event["type"],
                "object_id": object_id
                if isinstance(object_id := event["data"]["object"].get("id"), str)
                else None,
                "created": datetime.fromtimestamp(created, tz=timezone.utc).replace(tzinfo=None)
                if isinstance(created, int)
                else None,
                "livemode": bool(event.get("livemode")),
                "api_version": event.get("api_version"),
                "payload": raw_payload,
                "state": "pending" if handled else "ignored",
                "next_attempt": now if handled else None,
                "now": now,
                "result": None if handled else _("No handler for this event type."),
                "uid": self.env.uid,
            },
        )
        return self.env.cr.fetchone()

    # === BUSINESS METHODS - PROCESSING === #

    @api.model
    def _cron_process_events(self, batch_size=const.EVENT_BATCH_SIZE, budget=None):
        """The cron's entry point: mark the run, then drain the ledger within the time budget.

        :param int batch_size: events claimed and committed together (fewer when time is short)
        :param TimeBudget budget: the run's budget; by default its share of the limits Odoo's
            workers are configured with, shared by the runs of one unit of work
        :return: how many events were applied
        """
        budget = budget or TimeBudget.for_run(self.env, config)
        if not budget.allows_batch():
            # What Odoo gives this unit of work is spent: a new one takes over at once.
            report_cron_progress(self._crm_processing_cron(), 0, self._crm_count_due())
            return 0
        self._crm_mark_run()
        return self._crm_drain(batch_size=batch_size, budget=budget)

    @api.model
    def _crm_processing_cron(self):
        return self.env.ref("crm_payment_integration.ir_cron_crm_payment_event_process")

    @api.model
    def _crm_mark_run(self):
        """Record that a run starts: the events stored so far are this run's to apply.

        Taking the run lock waits for the webhook transactions storing an event (they hold it
        shared until they commit); the mark (a sequence, read live by any transaction) is then
        the newest event id, and the snapshot is renewed so that the run sees them all.
        """
        cr = self.env.cr
        cr.execute("SELECT pg_advisory_lock(%s)", [const.EVENT_RUN_LOCK])
        try:
            cr.execute(
                SQL(
                    "SELECT setval(%s, (SELECT last_value FROM crm_payment_event_id_seq))",
                    const.EVENT_RUN_MARK,
                )
            )
        except Exception:
            cr.rollback()  # an aborted transaction could not release the lock below
            raise
        finally:
            cr.execute("SELECT pg_advisory_unlock(%s)", [const.EVENT_RUN_LOCK])
        if not getattr(threading.current_thread(), "testing", False):
            cr.commit()  # pylint: disable=invalid-commit

    @api.model
    def _crm_count_due(self):
        self.env["crm.payment.event"].flush_model()
        self.env.cr.execute(
            "SELECT count(*) FROM crm_payment_event WHERE state = 'pending' AND next_attempt_at <= %s",
            [fields.Datetime.now()],
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _crm_drain(self, batch_size=const.EVENT_BATCH_SIZE, budget=None):
        """Apply pending events in committed batches until none is due or the budget is spent,
        then report to the cron what is left (run again at once when something is).

        A crash loses at most the batch in progress, whose events stay pending. Several workers
        may run it at once: each claims rows the others do not hold.

        :param int batch_size: events claimed and committed together (fewer when time is short)
        :param TimeBudget budget: when to stop; by default the share of Odoo's limits
        :return: how many events were applied
        """
        budget = budget or TimeBudget.for_worker(config)
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        done = contention = 0
        drained = False
        while budget.allows_batch():
            limit = budget.batch_size(batch_size)
            with budget.batch() as batch:
                processed = self._crm_process_due(limit=limit)
                if processed and auto_commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
                batch.items = processed or 0
            if processed is None:
                # Rows applied by a concurrent worker since this transaction began.
                contention += 1
                if not auto_commit or contention > 10:
                    break
                self.env.cr.rollback()  # pylint: disable=invalid-commit
                continue
            done += processed
            if processed < limit:
                drained = True
                break
        report_cron_progress(self._crm_processing_cron(), done, 0 if drained else self._crm_count_due())
        return done

    @api.model
    def _crm_process_due(self, limit=const.EVENT_BATCH_SIZE, now=None):
        """Claim up to ``limit`` due events (skipping those another worker holds) and apply them.

        :param int limit: the batch size
        :param datetime now: the current time (a parameter for tests)
        :return: how many events were claimed, or ``None`` when a concurrent worker changed
            some of them since this transaction began (retry in a new transaction)
        :rtype: int | None
        """
        now = now or fields.Datetime.now()
        self.env["crm.payment.event"].flush_model()
        try:
            with self.env.cr.savepoint(flush=False), mute_logger("odoo.sql_db"):
                self.env.cr.execute(
                    SQL(
                        """
                        SELECT id FROM crm_payment_event
                         WHERE state = 'pending' AND next_attempt_at <= %s
                         ORDER BY next_attempt_at, id
                         LIMIT %s
                           FOR UPDATE SKIP LOCKED
                        """,
                        now,
                        limit,
                    )
                )
                ids = [row[0] for row in self.env.cr.fetchall()]
        except psycopg2.errors.SerializationFailure:
            return None
        if ids:
            self.sudo().browse(ids).sorted("id")._crm_process(now=now)
        return len(ids)

    def _crm_process(self, now=None):
        """Apply each event with its handler, each in its own savepoint.

        Objects re-read from Stripe are shared within the batch, so several events about one
        customer cost one request. A failure schedules a retry after a growing delay; after the
        last retry the event is failed and a person gets an activity.

        An event whose handler returns :class:`~..utils.Ignored` matched nothing this add-on
        keeps (a customer or payment of another app, a subscription not mirrored, Odoo's own
        flow) and changed nothing: it is stored ``ignored`` with the reason. ``done`` means the
        event was applied to an object the add-on keeps, whether it changed it or found it
        already as Stripe has it.
        """
        now = now or fields.Datetime.now()
        handlers = self._crm_get_event_handlers()
        batch = EventBatch()
        for event in self.with_context(crm_batch=batch, crm_ledger_processing=True):
            # The changes the handler applies are written to the audit trail under its id.
            event = event.with_context(  # noqa: PLW2901
                crm_audit_event=event.id, crm_audit_event_type=event.event_type
            )
            handler = handlers.get(event.event_type)
            if not handler:
                event.write({"state": "ignored", "result": _("No handler for this event type.")})
                continue
            confirmed = len(batch.confirmed)
            try:
                with self.env.cr.savepoint():
                    result = getattr(event, handler)()
            except Exception as error:  # noqa: BLE001 - one event must not block the ledger
                del batch.confirmed[confirmed:]  # rolled back with the savepoint
                if not isinstance(error, (UserError, StripeGatewayError)):
                    _logger.exception("stripe event %s failed unexpectedly", event.stripe_event_id)
                batch.cache.clear()  # what was read may belong to the rolled back savepoint
                event._crm_record_failure(error, now)
            else:
                event.write(
                    {
                        "state": "ignored" if isinstance(result, Ignored) else "done",
                        "processed_at": now,
                        "result": str(result or _("Applied.")),
                        "last_error": False,
                        "attempts": event.attempts + 1,
                    }
                )
        if batch.confirmed:
            self.env["payment.transaction"].browse(batch.confirmed)._crm_post_process_confirmed()

    def _crm_record_failure(self, error, now):
        self.ensure_one()
        attempts = self.attempts + 1
        message = str(error) or error.__class__.__name__
        values = {"attempts": attempts, "last_error": message}
        if attempts > len(const.EVENT_RETRY_DELAYS):
            values.update(state="failed", next_attempt_at=False)
            self.write(values)
            # One alert per event, however often it is reprocessed and fails again.
            self.env["crm.payment.alert"]._crm_raise(
                "event_failed",
                f"event:{self.id}",
                self,
                _("Stripe event could not be applied"),
                company=self.company_id,
                note=_(
                    "%(type)s (%(event)s) failed %(attempts)s times: %(error)s. Fix the cause, "
                    "then click Reprocess.",
                    type=self.event_type,
                    event=self.stripe_event_id,
                    attempts=attempts,
                    error=message,
                ),
                fallback_user=self.provider_id._crm_alert_user(),
            )
            _logger.warning("stripe event %s failed for good: %s", self.stripe_event_id, message)
        else:
            delay = const.EVENT_RETRY_DELAYS[attempts - 1]
            values["next_attempt_at"] = now + timedelta(minutes=delay)
            self.write(values)
            _logger.info(
                "stripe event %s failed (attempt %s), retry in %s min: %s",
                self.stripe_event_id,
                attempts,
                delay,
                message,
            )

    # === BUSINESS METHODS - HANDLERS === #

    def _crm_batch_cache(self):
        """Return the dict shared by the events of one batch (a throwaway one outside a batch)."""
        batch = self.env.context.get("crm_batch")
        return {} if batch is None else batch.cache

    def _crm_binding(self, customer_id):
        return (
            self.env["crm.stripe.customer"]
            .sudo()
            .search(
                [("provider_id", "=", self.provider_id.id), ("stripe_customer_id", "=", customer_id)],
                limit=1,
            )
        )

    def _crm_handle_customer_updated(self):
        """Apply the customer as Stripe has it now (not as the event had it) to its partner."""
        customer_id = self.object_id
        binding = self._crm_binding(customer_id)
        if not binding:
            return Ignored(_("No partner is linked to this customer."))
        cache = self._crm_batch_cache()
        key = ("customer_pulled", self.provider_id.id, customer_id)
        if key in cache:
            return _("Applied with an earlier event of this batch.")
        cache[key] = exists = binding._crm_pull()
        if not exists:
            return _("The customer no longer exists in Stripe; the partner was unlinked.")
        return _("Partner %(partner)s updated.", partner=binding.partner_id.display_name)

    def _crm_handle_customer_deleted(self):
        """Unlink the partner, once Stripe confirms the customer is gone."""
        customer_id = self.object_id
        binding = self._crm_binding(customer_id)
        if not binding:
            return Ignored(_("No partner is linked to this customer."))
        customer = self.provider_id._crm_stripe_call("retrieve_customer", customer_id)
        if customer is not None:
            # An older deletion cannot undo a customer Stripe still has.
            return _("The customer still exists in Stripe; nothing to do.")
        partner = binding.partner_id
        binding._crm_unlink_deleted_customer()
        return _("Partner %(partner)s unlinked.", partner=partner.display_name)

    def _crm_handle_payment_method(self):
        """Mirror one payment method as a token, as Stripe has it now."""
        pm_id = self.object_id
        provider_sudo = self.provider_id
        pm = provider_sudo._crm_stripe_call("retrieve_payment_method", pm_id)
        Token = self.env["payment.token"].sudo().with_context(active_test=False)
        token = Token.search(
            [("provider_id", "=", provider_sudo.id), ("stripe_payment_method", "=", pm_id)],
            limit=1,
        )
        customer_id = pm and pm.get("customer")
        if isinstance(customer_id, dict):
            customer_id = customer_id.get("id")
        if not customer_id:
            if token.active:
                token._crm_archive()
                return _("Payment method detached; token archived.")
            return Ignored(_("Payment method is not attached to a customer."))
        if pm.get("type") not in const.TOKENIZED_PAYMENT_METHOD_TYPES:
            return Ignored(
                _("Payment methods of type %(type)s are not saved as tokens.", type=pm.get("type"))
            )
        binding = self._crm_binding(customer_id)
        if not binding:
            return Ignored(_("No partner is linked to this customer."))
        if token and token.provider_ref != customer_id:
            token._crm_archive()  # moved to another customer: a new token follows it
            token = Token
        cache = self._crm_batch_cache()
        key = ("customer", provider_sudo.id, customer_id)
        if key not in cache:
            cache[key] = provider_sudo._crm_stripe_call("retrieve_customer", customer_id)
        default_pm = ((cache[key] or {}).get("invoice_settings") or {}).get("default_payment_method")
        token = Token._crm_upsert_from_stripe(
            token, pm, binding.partner_id, provider_sudo, customer_id, is_default=default_pm == pm_id
        )
        return _("Token %(token)s up to date.", token=token.display_name)

    def _crm_event_object(self):
        return (self.payload or {}).get("data", {}).get("object") or {}

    def _crm_handle_payment_intent(self):
        """Apply a PaymentIntent to its transaction, creating one for a payment made in Stripe.

        A final status (succeeded, canceled) in the signed event cannot change any more and is
        applied as sent; any other status is read again from Stripe, as a later event may have
        moved it on.
        """
        provider_sudo = self.provider_id
        intent = self._crm_event_object()
        if intent.get("status") not in const.FINAL_PAYMENT_INTENT_STATUSES:
            intent = provider_sudo._crm_stripe_call("retrieve_payment_intent", self.object_id)
        Transaction = self.env["payment.transaction"].sudo()
        tx = Transaction._crm_find_from_object(provider_sudo, intent)
        if tx and not tx.crm_flow:
            return Ignored(_("A payment of Odoo's own Stripe flow: left to it."))
        if not tx:
            if intent.get("status") != "succeeded":
                return Ignored(_("No transaction for this PaymentIntent."))
            if intent.get("invoice"):
                return Ignored(_("Paid through a Stripe invoice; left to Stripe Billing."))
            recent = not self.stripe_created or fields.Datetime.now() - self.stripe_created < timedelta(
                minutes=15
            )
            if intent.get("description") and recent:
                # Odoo's own flow names its transaction there, and the request creating it may
                # not have committed yet: retried for a while before it counts as made in Stripe.
                raise UserError(
                    _("No transaction %(reference)s yet for this payment.", reference=intent["description"])
                )
            if self._crm_paid_by_stripe_invoice(intent["id"]):
                return Ignored(_("Paid through a Stripe invoice; left to Stripe Billing."))
            tx = Transaction._crm_create_from_intent(provider_sudo, intent)
            if not tx:
                return Ignored(_("No partner is linked to this payment's customer."))
        if tx.crm_flow == "checkout" and intent.get("status") != "succeeded":
            # A declined attempt on the hosted page is not final: the customer may try another
            # method there. The session's own events settle it.
            return Ignored(_("Attempt on the hosted page: the Checkout Session decides."))
        return tx._crm_apply_payment_intent(intent)

    def _crm_paid_by_stripe_invoice(self, intent_id):
        """Whether a PaymentIntent pays a Stripe invoice (since API 2025-03-31 it no longer
        names it: asked the other way). A key that may not read invoices says no."""
        try:
            return bool(
                self.provider_id._crm_stripe_call("list_invoice_payments", payment_intent_id=intent_id)
            )
        except UserError as error:
            _logger.warning("could not tell whether %s pays a Stripe invoice: %s", intent_id, error)
            return False

    def _crm_handle_checkout_session(self):
        """Apply a Checkout Session as Stripe has it now; the return page may have done it."""
        provider_sudo = self.provider_id
        session = provider_sudo._crm_stripe_call("retrieve_checkout_session", self.object_id)
        tx = self.env["payment.transaction"].sudo()._crm_find_from_object(provider_sudo, session)
        if not tx:
            return Ignored(_("No transaction for this Checkout Session."))
        if tx.state == "done" and not tx.crm_needs_review:
            return _("Already applied (%s).", tx.state)
        return tx._crm_apply_checkout_session(session)

    def _crm_handle_stripe_subscription(self):
        """Mirror a Stripe Billing subscription as Stripe has it now (events may come in any
        order; a deleted subscription is still readable, cancelled), when the provider's Stripe
        Billing setting mirrors it. A renewal that turned past due or incomplete tells the
        customer and the salesperson (once per payment attempt of its invoice)."""
        provider_sudo = self.provider_id
        Subscription = self.env["crm.subscription"]
        refusal = Subscription._crm_stripe_mirror_refusal(
            provider_sudo, self.object_id, self._crm_event_object().get("customer")
        )
        if refusal:
            return refusal
        remote = provider_sudo._crm_stripe_call("retrieve_subscription", self.object_id)
        if remote is None:
            return Ignored(_("The subscription no longer exists in Stripe."))
        cache = self._crm_batch_cache()
        subscription = Subscription._crm_sync_stripe_subscription(provider_sudo, remote, cache)
        if not subscription:
            return Ignored(_("No customer for this subscription."))
        result = _("%(name)s is %(state)s.", name=subscription.name, state=subscription.state)
        if self.event_type == "customer.subscription.updated":
            told = subscription._crm_stripe_latest_invoice_needs_customer(remote, cache)
            result = " ".join(filter(None, [result, told]))
        return result

    def _crm_handle_stripe_invoice(self):
        """Mirror a Stripe Billing invoice and its payment, then its subscription's state, when
        the provider's Stripe Billing setting mirrors its subscription. A payment that needs the
        customer (authentication, a failure) tells them and the salesperson."""
        provider_sudo = self.provider_id
        Move = self.env["account.move"]
        refusal = Move._crm_stripe_invoice_refusal(provider_sudo, self._crm_event_object())
        if refusal:
            return refusal
        remote = provider_sudo._crm_stripe_call("retrieve_invoice", self.object_id)
        if remote is None:
            return Ignored(_("The invoice no longer exists in Stripe (a deleted draft)."))
        cache = self._crm_batch_cache()
        result = Move._crm_sync_stripe_invoice(provider_sudo, remote, cache)
        move = Move.sudo().search([("crm_stripe_invoice_id", "=", remote["id"])], limit=1)
        subscription = move.crm_subscription_id
        key = ("subscription_read", subscription.id)
        if subscription and key not in cache:
            # A failed or recovered payment moves the subscription (past due, active).
            cache[key] = True
            remote_subscription = provider_sudo._crm_stripe_call(
                "retrieve_subscription", subscription.stripe_subscription_id
            )
            if remote_subscription:
                subscription._crm_apply_stripe_subscription(remote_subscription, cache)
        reason = const.STRIPE_INVOICE_NEEDS_CUSTOMER.get(self.event_type)
        if move and reason:
            told = move._crm_notify_stripe_payment_needed(remote, reason)
            result = " ".join(filter(None, [result, told]))
        return result

    def _crm_handle_charge_refunded(self):
        """Record the refunds of a charge (made in Odoo or in Stripe's dashboard) with their
        credit notes."""
        charge = self._crm_event_object()
        intent_id = charge.get("payment_intent")
        if isinstance(intent_id, dict):
            intent_id = intent_id.get("id")
        if not intent_id:
            return Ignored(_("The charge has no PaymentIntent; nothing to refund in Odoo."))
        refunds = self.provider_id._crm_stripe_call("list_refunds", intent_id)
        return self._crm_apply_refunds(intent_id, refunds)

    def _crm_handle_refund_updated(self):
        refund = self.provider_id._crm_stripe_call("retrieve_refund", self.object_id)
        intent_id = refund.get("payment_intent")
        if not intent_id:
            charge = self.provider_id._crm_stripe_call("retrieve_charge", refund["charge"])
            intent_id = charge.get("payment_intent")
        return self._crm_apply_refunds(intent_id, [refund])

    def _crm_apply_refunds(self, intent_id, refunds):
        Transaction = self.env["payment.transaction"].sudo()
        source = Transaction.search(
            [
                ("provider_id", "=", self.provider_id.id),
                ("provider_reference", "=", intent_id),
                ("operation", "!=", "refund"),
            ],
            limit=1,
        )
        if not source:
            return Ignored(_("No transaction for PaymentIntent %s.", intent_id))
        if not source.crm_flow:
            return Ignored(_("A payment of Odoo's own Stripe flow: its refunds are left to it."))
        source._crm_ensure_post_processed()
        results = []
        for refund in refunds:
            refund_id, ref = refund["id"], (refund.get("metadata") or {}).get("reference")
            refund_tx = source.child_transaction_ids.filtered(
                lambda tx, refund_id=refund_id, ref=ref: (
                    tx.operation == "refund"
                    and (tx.provider_reference == refund_id or (ref and tx.reference == ref))
                )
            )[:1]
            if not refund_tx:
                if refund.get("status") not in ("succeeded", "pending"):
                    continue
                if (refund.get("currency") or "").lower() != source.currency_id.name.lower():
                    results.append(_("Refund %s in another currency: ignored.", refund["id"]))
                    continue
                amount = payment_utils.to_major_currency_units(refund["amount"], source.currency_id)
                refund_tx = source._create_child_transaction(
                    amount, is_refund=True, crm_flow="stripe", provider_reference=refund["id"]
                )
            results.append(refund_tx._crm_apply_refund(refund))
        return " ".join(results) or _("No new refund.")
