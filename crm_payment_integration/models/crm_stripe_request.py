import logging
import threading
from datetime import timedelta, timezone

from odoo import SUPERUSER_ID, _, api, fields, models
from odoo.exceptions import UserError
from odoo.modules import module as odoo_module
from odoo.tools import config, format_datetime

from .. import const
from ..services.gateway import StripeGatewayError

_logger = logging.getLogger(__name__)

# Fields of a transaction kept with the request, to restore it when the request's own database
# transaction was rolled back (a crash after Stripe answered, an answer that never came).
TRANSACTION_FIELDS = (
    "provider_id",
    "payment_method_id",
    "partner_id",
    "amount",
    "currency_id",
    "operation",
    "reference",
    "crm_flow",
    "crm_lead_id",
    "crm_reason",
    "token_id",
    "source_transaction_id",
    "crm_request_operation",
    "crm_idempotency_key",
    "crm_request_params",
)


class CrmStripeRequest(models.Model):
    """A create call sent to Stripe whose answer may be lost: the charge, refund or hosted page
    of a transaction, recorded and committed in its own database transaction *before* the call.

    Whatever happens next (no answer on any retry, a worker killed, the user's request rolled
    back), the record stays: the next attempt for the same invoice or customer, the webhook of
    its object and a cron settle it against Stripe before anything new is created. A request
    whose transaction was committed with Stripe's answer is settled without asking Stripe.

    No foreign key but the provider's: the record is written in another database transaction,
    which may not see an invoice or a transaction the current one has just created.
    """

    _name = "crm.stripe.request"
    _description = "Stripe Request Sent"
    _order = "id desc"
    _rec_name = "reference"

    provider_id = fields.Many2one("payment.provider", required=True, readonly=True, ondelete="cascade")
    operation = fields.Selection(
        [
            ("payment_intent", "Charge (PaymentIntent)"),
            ("refund", "Refund"),
            ("checkout_session", "Hosted page (Checkout Session)"),
        ],
        required=True,
        readonly=True,
    )
    reference = fields.Char(
        string="Transaction",
        required=True,
        readonly=True,
        index=True,
        help="The reference of its transaction.",
    )
    idempotency_key = fields.Char(required=True, readonly=True)
    params = fields.Json(string="Parameters Sent", readonly=True)
    tx_values = fields.Json(string="Transaction Values", readonly=True)
    partner_ref = fields.Integer(string="Customer ID", readonly=True, index=True)
    invoice_refs = fields.Char(
        string="Invoice IDs", readonly=True, index=True, help="Ids of the transaction's invoices, as ,1,2,"
    )
    parent_ref = fields.Char(
        string="Paid Object", readonly=True, index=True, help="The PaymentIntent a refund is made on."
    )
    state = fields.Selection(
        [("sent", "Sent, answer unknown"), ("done", "Settled")],
        required=True,
        default="sent",
        readonly=True,
        index=True,
    )
    result = fields.Char(readonly=True)

    # === RECORDING (in its own database transaction) === #

    @api.model
    def _crm_own_transaction(self):
        """Whether records are written in a database transaction of their own.

        Always, except in a test whose registry is not in test mode: another connection could
        not see the test's uncommitted records (in test mode, Odoo's test cursor stands for
        another connection).
        """
        testing = (
            odoo_module.current_test
            or config["test_enable"]
            or getattr(threading.current_thread(), "testing", False)
        )
        return not testing or self.env.registry.in_test_mode()

    @api.model
    def _crm_write_apart(self, func):
        """Run ``func(model)`` and commit it apart from the current transaction."""
        if not self._crm_own_transaction():
            return func(self.sudo())
        with self.env.registry.cursor() as cr:
            return func(self.with_env(api.Environment(cr, SUPERUSER_ID, {})))

    @api.model
    def _crm_record(self, tx, operation, params, idempotency_key):
        """Record, committed at once, that ``tx`` is about to send a create call to Stripe.

        :return: the id of the record
        """
        tx_values = {}
        for name in TRANSACTION_FIELDS:
            value = tx[name]
            tx_values[name] = value.id if isinstance(value, models.BaseModel) else value
        tx_values["invoice_ids"] = tx.invoice_ids.ids
        values = {
            "provider_id": tx.provider_id.id,
            "operation": operation,
            "reference": tx.reference,
            "idempotency_key": idempotency_key,
            "params": params,
            "tx_values": tx_values,
            "partner_ref": tx.partner_id.commercial_partner_id.id,
            "invoice_refs": f",{','.join(map(str, tx.invoice_ids.ids))}," if tx.invoice_ids else False,
            "parent_ref": params.get("payment_intent") if operation == "refund" else False,
        }
        return self._crm_write_apart(lambda model: model.create(values).id)

    @api.model
    def _crm_refused(self, request_id, error):
        """Settle, committed at once, a request Stripe refused: it created nothing.

        :param int request_id: the id :meth:`_crm_record` returned
        """
        self._crm_write_apart(
            lambda model: model.browse(request_id).write(
                {"state": "done", "result": _("Refused by Stripe (%(kind)s).", kind=error.kind)}
            )
        )

    # === FINDING === #

    @api.model
    def _crm_open_for(self, provider_sudo, invoices=None, partner=None, payment_intent=None, operation=None):
        """The requests still unsettled of some invoices, of a customer's charges without invoice,
        or of the refunds of a PaymentIntent."""
        domain = [("provider_id", "=", provider_sudo.id), ("state", "=", "sent")]
        if operation:
            domain.append(("operation", "=", operation))
        if invoices:
            domain += ["|"] * (len(invoices) - 1) + [("invoice_refs", "like", f",{i},") for i in invoices.ids]
        elif partner:
            domain += [("partner_ref", "=", partner.commercial_partner_id.id), ("invoice_refs", "=", False)]
        elif payment_intent:
            domain.append(("parent_ref", "=", payment_intent))
        else:
            return self.browse()
        return self.sudo().search(domain, order="id")

    def _crm_transaction(self):
        self.ensure_one()
        return (
            self.env["payment.transaction"]
            .sudo()
            .search([("provider_id", "=", self.provider_id.id), ("reference", "=", self.reference)], limit=1)
        )

    def _crm_is_recent(self, now=None):
        """Whether the request may still be under way (its client has not given up yet)."""
        self.ensure_one()
        now = now or fields.Datetime.now()
        return now - self.create_date < timedelta(seconds=const.UNKNOWN_ANSWER_GRACE)

    def _crm_lookup(self):
        """Ask Stripe for the object this request created, without creating anything new
        (a hosted page, which moves no money, is asked for again with the same key and
        parameters: Stripe answers with the first one for 24 hours).

        :return: the Stripe object, or ``None`` when Stripe has none
        :raise StripeGatewayError: when Stripe cannot be asked
        """
        self.ensure_one()
        gateway = self.provider_id._crm_stripe_gateway()
        params = self.params or {}
        if self.operation == "payment_intent":
            since = self.create_date.replace(tzinfo=timezone.utc) - timedelta(minutes=10)
            intents = gateway.list_payment_intents(params.get("customer"), since.timestamp())
            return next((pi for pi in intents if self._crm_matches(pi)), None)
        if self.operation == "refund":
            refunds = gateway.list_refunds(params.get("payment_intent"))
            return next((refund for refund in refunds if self._crm_matches(refund)), None)
        if self.create_date < fields.Datetime.now() - timedelta(hours=const.CHECKOUT_SESSION_HOURS):
            return None  # expired by now, whatever it was
        return gateway.create_checkout_session(params, self.idempotency_key)

    def _crm_matches(self, obj):
        """Whether a Stripe object is the one this request asked for: the same transaction
        reference (a reference rolled back is given again) and the same amount."""
        params = self.params or {}
        return (obj.get("metadata") or {}).get("reference") == self.reference and obj.get(
            "amount"
        ) == params.get("amount")

    # === SETTLING === #

    def _crm_close(self, result):
        self.write({"state": "done", "result": (result or "")[:200]})

    def _crm_restore_transaction(self):
        """Create again the transaction this request was sent for, as it was (its database
        transaction was rolled back), still flagged as waiting for Stripe's answer."""
        self.ensure_one()
        values = dict(self.tx_values or {})
        env = self.env
        invoices = env["account.move"].sudo().browse(values.get("invoice_ids") or []).exists()
        if not invoices:
            invoices = self._crm_period_invoice()
        values["invoice_ids"] = [(6, 0, invoices.ids)]
        for name, model in (
            ("token_id", "payment.token"),
            ("crm_lead_id", "crm.lead"),
            ("source_transaction_id", "payment.transaction"),
        ):
            values[name] = env[model].sudo().browse(values.get(name) or []).exists().id or False
        values["crm_answer_unknown"] = True
        tx = env["payment.transaction"].sudo().create(values)
        _logger.info("restored transaction %s of a stripe request whose answer was lost", tx.reference)
        return tx

    def _crm_period_invoice(self):
        """The invoice of the subscription period the request charged, found by the period
        its metadata names: a billing run rolled back after the charge lost the invoice the
        request was sent for, and the next run invoices the period again under another id."""
        self.ensure_one()
        metadata = (self.params or {}).get("metadata") or {}
        subscription_id = metadata.get("odoo_subscription_id") or ""
        Move = self.env["account.move"].sudo()
        if not subscription_id.isdigit() or not metadata.get("odoo_period_start"):
            return Move
        return Move.search(
            [
                ("crm_subscription_id", "=", int(subscription_id)),
                ("crm_period_start", "=", metadata["odoo_period_start"]),
                ("crm_stripe_invoice_id", "=", False),
                ("state", "!=", "cancel"),
                ("company_id", "=", self.provider_id.company_id.id),
            ],
            limit=1,
        )

    def _crm_resolve(self, now=None):
        """Settle these requests against Stripe: the object Stripe has is applied to its
        transaction (restored if it was lost); a request Stripe never received is closed.

        :return: ``{request: (status, transaction)}``, status one of ``answered`` (settled in
            Odoo already), ``found``, ``not_received``, ``unknown`` (Stripe cannot tell yet)
        """
        outcome = {}
        for request in self.filtered(lambda r: r.state == "sent"):
            tx = request._crm_transaction()
            if tx and not tx.crm_answer_unknown:
                request._crm_close(
                    _("Answered: %(reference)s is %(state)s.", reference=tx.reference, state=tx.state)
                )
                outcome[request] = ("answered", tx)
                continue
            try:
                obj = request._crm_lookup()
            except (StripeGatewayError, UserError) as error:
                _logger.info("could not settle stripe request %s yet: %s", request.reference, error)
                outcome[request] = ("unknown", tx)
                continue
            if obj is None:
                if request._crm_is_recent(now):
                    outcome[request] = ("unknown", tx)
                    continue
                if tx:
                    tx._crm_never_received()
                request._crm_close(_("Stripe never received it: nothing was created."))
                outcome[request] = ("not_received", tx)
                continue
            if not tx and request.operation == "checkout_session":
                # A page whose transaction is gone: nobody has its address; closed.
                request.provider_id._crm_stripe_gateway().expire_checkout_session(obj["id"])
                request._crm_close(_("Hosted page %(id)s of no transaction: expired.", id=obj["id"]))
                outcome[request] = ("not_received", tx)
                continue
            tx = tx or request._crm_restore_transaction()
            result = tx._crm_apply_sent_object(request.operation, obj)
            request._crm_close(result)
            outcome[request] = ("found", tx)
        return outcome

    @api.model
    def _crm_settle_earlier(
        self, provider_sudo, invoices=None, partner=None, payment_intent=None, operation=None
    ):
        """Before a new charge or refund: settle the earlier ones of the same invoices (or
        customer, or payment) whose answer was lost.

        :return: the transactions of the earlier requests that reached Stripe, applied (when
            there are, nothing new must be sent before the user has seen what they did)
        :raise UserError: when Stripe cannot tell yet what became of an earlier request
        """
        Transaction = self.env["payment.transaction"].sudo()
        requests = self._crm_open_for(provider_sudo, invoices, partner, payment_intent, operation)
        if not requests:
            return Transaction
        outcome = requests._crm_resolve()
        for request, (status, __) in outcome.items():
            if status == "unknown":
                raise UserError(
                    _(
                        "%(reference)s was sent to Stripe on %(date)s and its answer was lost; Stripe "
                        "cannot tell yet what became of it. Nothing new is sent until it can: try "
                        "again in a few minutes.",
                        reference=request.reference,
                        date=format_datetime(self.env, request.create_date),
                    )
                )
        return Transaction.union(*(tx for status, tx in outcome.values() if status == "found" and tx))

    @api.model
    def _cron_resolve(self, now=None, limit=100):
        """Settle the requests whose answer was lost, once their client has given up.

        Requests whose transaction was committed with Stripe's answer (nearly all) are settled
        in one statement, without asking Stripe.
        """
        now = now or fields.Datetime.now()
        self.env["payment.transaction"].flush_model(
            ["reference", "provider_id", "crm_answer_unknown", "state"]
        )
        self.env.cr.execute(
            """
            UPDATE crm_stripe_request r
               SET state = 'done', result = 'Answered: ' || t.state, write_date = now() at time zone 'UTC'
              FROM payment_transaction t
             WHERE r.state = 'sent'
               AND t.provider_id = r.provider_id
               AND t.reference = r.reference
               AND NOT COALESCE(t.crm_answer_unknown, FALSE)
            """
        )
        self.invalidate_model(["state", "result"])
        requests = self.sudo().search(
            [
                ("state", "=", "sent"),
                ("create_date", "<=", now - timedelta(seconds=const.UNKNOWN_ANSWER_GRACE)),
            ],
            limit=limit,
            order="id",
        )
        for request in requests:
            try:
                with self.env.cr.savepoint():
                    request._crm_resolve(now)
            except Exception:  # noqa: BLE001 - one request must not hold up the others
                _logger.exception("could not settle stripe request %s", request.reference)
        if len(requests) == limit:
            self.env.ref("crm_payment_integration.ir_cron_crm_stripe_request_resolve")._trigger()
        return True

    @api.autovacuum
    def _gc_settled(self):
        """Settled requests are kept a month, for whoever investigates a payment."""
        self.sudo().search(
            [("state", "=", "done"), ("write_date", "<", fields.Datetime.now() - timedelta(days=30))]
        ).unlink()
