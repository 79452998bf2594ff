import logging
from datetime import datetime, timedelta, timezone

import psycopg2.errors

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import consteq, float_compare, float_is_zero, format_amount, mute_logger
from odoo.tools.misc import hmac as hmac_tool
from odoo.tools.sql import create_index

from odoo.addons.payment import utils as payment_utils

from .. import const, utils
from ..services import params as stripe_params
from ..services.gateway import StripeGatewayError, make_idempotency_key

_logger = logging.getLogger(__name__)

# Stripe Radar's risk levels that flag a payment (outcome.risk_level).
# See https://docs.stripe.com/radar/risk-evaluation.
RADAR_LEVELS = ("elevated", "highest")


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"

    crm_flow = fields.Selection(
        [
            ("checkout", "Hosted page"),
            ("off_session", "Saved method"),
            ("stripe", "Made in Stripe"),
        ],
        string="CRM Payments Flow",
        readonly=True,
        index="btree_not_null",
        copy=False,
        help="How this payment was taken by CRM Payments; empty for Odoo's own payment flows.",
    )
    crm_checkout_session_id = fields.Char(
        string="Checkout Session", readonly=True, index="btree_not_null", copy=False
    )
    crm_checkout_url = fields.Char(string="Hosted Page URL", readonly=True, copy=False)
    crm_checkout_expires_at = fields.Datetime(string="Hosted Page Expires", readonly=True, copy=False)
    crm_lead_id = fields.Many2one(
        "crm.lead", string="Opportunity", readonly=True, index="btree_not_null", copy=False
    )
    crm_reason = fields.Char(string="Reason", readonly=True, copy=False)
    crm_decline_code = fields.Char(string="Decline Code", readonly=True, copy=False)
    crm_decline_reason = fields.Char(string="Decline Reason", readonly=True, copy=False)
    crm_needs_review = fields.Boolean(
        string="Needs Review",
        readonly=True,
        copy=False,
        help="Stripe reported an amount or currency that differs from the transaction's; the "
        "transaction is kept pending until a person checks it.",
    )
    crm_action_requested = fields.Boolean(string="Authentication Requested", readonly=True, copy=False)
    crm_answer_unknown = fields.Boolean(
        string="Sent, Answer Unknown",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Sent to Stripe, but Stripe's answer never arrived: Odoo asks Stripe what became of it "
        "(within minutes, and before any new charge or refund of the same invoice or customer).",
    )
    crm_request_operation = fields.Char(string="Stripe Request", readonly=True, copy=False)
    crm_idempotency_key = fields.Char(string="Idempotency Key", readonly=True, copy=False)
    crm_request_params = fields.Json(string="Parameters Sent", readonly=True, copy=False)

    # === CREATION === #

    @api.constrains("token_id", "partner_id")
    def _check_crm_token_partner(self):
        """A CRM Payments charge is made to the paying customer's own saved method only."""
        for tx in self.sudo().filtered(lambda t: t.crm_flow and t.token_id):
            tx.token_id._crm_check_owner(tx.partner_id)

    @api.model
    def _crm_create(
        self,
        partner,
        amount,
        currency,
        flow,
        invoices=None,
        token=None,
        lead=None,
        reason=None,
        operation=None,
        reference_prefix=None,
    ):
        """Create a draft transaction on the company's Stripe provider for CRM Payments.

        :param recordset partner: the paying `res.partner`
        :param float amount: in major units of ``currency``
        :param str flow: a value of `crm_flow`
        :return: the transaction, sudo
        """
        invoices = invoices or self.env["account.move"]
        company = invoices[:1].company_id or lead and lead.company_id or self.env.company
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider(company)
        if not provider_sudo:
            raise UserError(
                _(
                    "No Stripe payment provider is set up for %(company)s. Configure it in "
                    "Invoicing › Configuration › Payment Providers.",
                    company=company.name,
                )
            )
        provider_sudo._crm_check_stripe()
        if operation != "validation":
            self._crm_check_amount_is_payable(amount, currency)
        payment_method = token.payment_method_id if token else self.env.ref("payment.payment_method_card")
        values = {
            "provider_id": provider_sudo.id,
            "payment_method_id": payment_method.id,
            "partner_id": partner.id,
            "amount": amount,
            "currency_id": currency.id,
            "operation": operation or ("offline" if flow == "off_session" else "online_redirect"),
            "crm_flow": flow,
            "crm_lead_id": lead.id if lead else False,
            "crm_reason": reason or False,
            "token_id": token.id if token else False,
            "invoice_ids": [(6, 0, invoices.ids)],
            # What the risk rules need of the card charged (see _crm_store_risk_data).
            "crm_card_fingerprint": token.sudo().crm_card_fingerprint if token else False,
            "crm_card_country": token.sudo().crm_card_country if token else False,
        }
        values["reference"] = self.sudo()._compute_reference(
            "stripe", prefix=reference_prefix, invoice_ids=[(6, 0, invoices.ids)]
        )
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                return self.sudo().create(values)
        except psycopg2.errors.UniqueViolation:
            # Another request made the same transaction at the same time (two clicks at once).
            raise UserError(
                _(
                    "A payment %(reference)s is already being made by another request (a second "
                    "click, another user): wait a moment, then look at its result before trying again.",
                    reference=values["reference"],
                )
            ) from None

    @api.model
    def _crm_check_amount_is_payable(self, amount, currency):
        """Refuse amounts Stripe cannot take, with a message saying why.

        :raise UserError: for a zero or negative amount, or a three-decimal currency amount whose
            last digit is not 0 (Stripe takes those in multiples of 10 minor units)
        """
        if float_compare(amount, 0.0, precision_rounding=currency.rounding) <= 0:
            raise UserError(_("There is nothing to pay: the amount must be positive."))
        minor = payment_utils.to_minor_currency_units(amount, currency)
        if currency.name in const.THREE_DECIMAL_CURRENCIES and minor % 10:
            raise UserError(
                _(
                    "Stripe takes %(currency)s amounts rounded to 0.01 (%(amount)s is not). Change "
                    "the amount or register this payment by hand.",
                    currency=currency.name,
                    amount=amount,
                )
            )

    # === HELPERS === #

    def _crm_minor_amount(self, amount=None):
        self.ensure_one()
        return payment_utils.to_minor_currency_units(
            self.amount if amount is None else amount, self.currency_id
        )

    def _crm_access_token(self):
        """Return the token that lets the customer reach this transaction's pages."""
        self.ensure_one()
        return hmac_tool(self.env(su=True), "crm_payment_tx", (self.id, self.reference))

    def _crm_check_access_token(self, token):
        return bool(token) and consteq(str(token), self._crm_access_token())

    def _crm_metadata(self):
        self.ensure_one()
        metadata = {"reference": self.reference}
        subscription = self.invoice_ids.crm_subscription_id
        if len(self.invoice_ids) == 1 and subscription and self.invoice_ids.crm_period_start:
            # A billing run that crashed re-creates the invoice under another id: the period,
            # not the id, keeps the parameters of its replayed charge the same.
            metadata["odoo_subscription_id"] = str(subscription.id)
            metadata["odoo_period_start"] = str(self.invoice_ids.crm_period_start)
        elif self.invoice_ids:
            # Whole ids only, within Stripe's 500 characters (the reference finds the rest).
            metadata["odoo_invoice_ids"] = stripe_params.join_ids(self.invoice_ids.ids)
        if self.crm_lead_id:
            metadata["odoo_lead_id"] = str(self.crm_lead_id.id)
        return stripe_params.metadata(metadata)

    def _crm_idempotency_key(self, scope, *parts):
        self.ensure_one()
        return make_idempotency_key(self.provider_id._crm_database_uuid(), scope, self.reference, *parts)

    def _crm_customer_id(self):
        binding = (
            self.env["crm.stripe.customer"]
            .sudo()
            ._crm_ensure_customer(self.partner_id, self.provider_id.sudo())
        )
        return binding.stripe_customer_id

    def _crm_base_url(self):
        return self.provider_id.get_base_url()

    def _crm_portal_url(self, route):
        self.ensure_one()
        return f"{self._crm_base_url()}{route}?tx={self.id}&access_token={self._crm_access_token()}"

    def _crm_return_url(self):
        return self._crm_portal_url("/crm_payment/stripe/return")

    def _crm_authenticate_url(self):
        return self._crm_portal_url("/crm_payment/stripe/authenticate")

    # === HOSTED PAGE (CHECKOUT) === #

    def _crm_create_checkout_session(self, description=None):
        """Open a Stripe Checkout Session for this transaction and keep its URL.

        Payment mode for a positive amount, setup mode for a validation (saving a method only).
        The session carries the transaction's reference in its metadata and that of its
        PaymentIntent; it expires after ``const.CHECKOUT_SESSION_HOURS``.

        :return: the session's URL
        """
        self.ensure_one()
        expires_at = fields.Datetime.now() + timedelta(hours=const.CHECKOUT_SESSION_HOURS)
        return_url = self._crm_return_url() + "&session_id={CHECKOUT_SESSION_ID}"
        params = {
            "customer": self._crm_customer_id(),
            "client_reference_id": self.reference,
            "metadata": self._crm_metadata(),
            "success_url": return_url,
            "cancel_url": return_url,
            "expires_at": int(expires_at.timestamp()),
            "locale": "auto",
        }
        if self.operation == "validation":
            params.update(
                mode="setup",
                currency=self.currency_id.name.lower(),
                setup_intent_data={"metadata": self._crm_metadata()},
            )
        else:
            params.update(
                mode="payment",
                line_items=[
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": self.currency_id.name.lower(),
                            "unit_amount": self._crm_minor_amount(),
                            "product_data": {"name": description or self.reference},
                        },
                    }
                ],
                payment_intent_data={"metadata": self._crm_metadata()},
                saved_payment_method_options={"payment_method_save": "enabled"},
                # The amount and currency are checked against the invoice's: no conversion.
                adaptive_pricing={"enabled": False},
            )
        try:
            session = self._crm_send_create(
                "checkout_session",
                "create_checkout_session",
                params,
                # Its URLs name this transaction: another transaction needs another session.
                self._crm_idempotency_key("checkout", self.id, self._crm_minor_amount()),
            )
        except StripeGatewayError as error:
            utils.raise_user_error(error, self.provider_id)
        return self._crm_store_checkout_session(session, expires_at)

    def _crm_store_checkout_session(self, session, expires_at=None):
        """Keep the Checkout Session of this transaction: its id, URL and expiry.

        :return: the session's URL
        """
        self.ensure_one()
        expires_at = expires_at or fields.Datetime.now() + timedelta(hours=const.CHECKOUT_SESSION_HOURS)
        expires = session.get("expires_at")
        self.write(
            {
                "crm_checkout_session_id": session["id"],
                "crm_checkout_url": session["url"],
                "crm_checkout_expires_at": datetime.fromtimestamp(expires, timezone.utc).replace(tzinfo=None)
                if expires
                else expires_at,
            }
        )
        return session["url"]

    def _crm_checkout_is_open(self):
        """Whether the hosted page can still be paid (not expired, transaction still open)."""
        self.ensure_one()
        return bool(
            self.crm_checkout_url
            and self.state in ("draft", "pending")
            and self.crm_checkout_expires_at
            and self.crm_checkout_expires_at > fields.Datetime.now() + timedelta(minutes=5)
        )

    def _crm_expire_checkout_session(self):
        """Close the hosted pages of these transactions so they can no longer be paid.

        A page the customer paid meanwhile cannot be expired: its payment is applied instead,
        so it is never lost nor asked for twice.
        """
        for tx in self.filtered(lambda t: t.crm_checkout_session_id and t.state in ("draft", "pending")):
            provider_sudo = tx.provider_id
            expired = provider_sudo._crm_stripe_call("expire_checkout_session", tx.crm_checkout_session_id)
            if expired is None:  # not open any more: see what happened to it
                try:
                    session = provider_sudo._crm_stripe_gateway().retrieve_checkout_session(
                        tx.crm_checkout_session_id
                    )
                except StripeGatewayError as error:
                    if error.kind != "not_found":
                        utils.raise_user_error(error, provider_sudo)
                    # Unknown to this Stripe account (keys changed, test data deleted).
                    tx._set_canceled(_("Stripe no longer knows this hosted page."))
                    continue
                tx._crm_apply_checkout_session(session)
                if tx.state in ("draft", "pending") and session.get("status") == "expired":
                    tx._set_canceled(_("The hosted payment page expired without a payment."))
            else:
                tx._set_canceled(_("Replaced by a new payment link."))

    def _crm_apply_checkout_session(self, session):
        """Apply a Checkout Session as Stripe has it: the one path for return and webhooks.

        :param dict session: the session, with its ``payment_intent`` expanded or as an id
        :return: a short result for the ledger
        """
        self.ensure_one()
        if self.state == "done" and not self.crm_needs_review:
            return _("Already paid.")
        if session.get("metadata", {}).get("reference") not in (None, self.reference) or (
            self.crm_checkout_session_id and session["id"] != self.crm_checkout_session_id
        ):
            raise UserError(_("This Checkout Session does not belong to %s.", self.reference))
        if session.get("mode") == "setup":
            return self._crm_apply_setup_session(session)
        status = session.get("status")
        payment_status = session.get("payment_status")
        if status == "expired":
            self._set_canceled(_("The hosted payment page expired without a payment."))
            return _("Hosted page expired.")
        if status != "complete":
            return _("The customer has not paid yet.")
        if payment_status in ("paid", "no_payment_required"):
            if not self._crm_amount_matches(session.get("amount_total"), session.get("currency")):
                return _("Amount or currency mismatch: flagged for review.")
            intent = session.get("payment_intent")
            if isinstance(intent, dict):
                self.provider_reference = intent["id"]
                self._crm_save_payment_method(intent)
            elif intent:
                self.provider_reference = intent
            return self._crm_mark_done()
        if payment_status == "unpaid":
            intent = session.get("payment_intent")
            if isinstance(intent, dict) and intent.get("status") == "requires_payment_method":
                return self._crm_mark_declined(intent.get("last_payment_error") or {})
            # Delayed methods (bank debits): the async events settle it.
            self._set_pending(_("The customer paid with a method that settles later."))
            return _("Payment processing.")
        return _("Unknown payment status %s.", payment_status)

    def _crm_apply_setup_session(self, session):
        if session.get("status") == "expired":
            self._set_canceled(_("The page to save a payment method expired."))
            return _("Hosted page expired.")
        if session.get("status") != "complete":
            return _("The customer has not saved a method yet.")
        binding = self.env["crm.stripe.customer"].sudo()._crm_find(self.partner_id, self.provider_id)
        if binding:
            binding._crm_pull()
        self._set_done(_("The customer saved a payment method."))
        self.env["crm.subscription"].sudo()._crm_on_new_payment_method(self.partner_id)
        return _("Payment method saved.")

    def _crm_save_payment_method(self, intent):
        """Mirror the method the customer chose to save on the hosted page as a token."""
        if not intent.get("setup_future_usage") and not (
            isinstance(intent.get("payment_method"), dict) and intent["payment_method"].get("customer")
        ):
            return
        binding = self.env["crm.stripe.customer"].sudo()._crm_find(self.partner_id, self.provider_id)
        if binding:
            binding._crm_pull()

    # === OFF-SESSION CHARGE === #

    def _crm_charge_off_session(self):
        """Charge the transaction's saved method without the customer (one PaymentIntent).

        The idempotency key is derived from the transaction's reference and amount: a double
        click, a retried request or a worker that crashed after Stripe answered gets Stripe's
        first PaymentIntent back, never a second charge.

        :return: a short result
        """
        self.ensure_one()
        token = self.token_id
        params = {
            "amount": self._crm_minor_amount(),
            "currency": self.currency_id.name.lower(),
            "customer": token.provider_ref,
            "payment_method": token.stripe_payment_method,
            "confirm": True,
            "off_session": True,
            "metadata": self._crm_metadata(),
        }
        try:
            intent = self._crm_send_create(
                "payment_intent",
                "create_payment_intent",
                params,
                self._crm_idempotency_key("charge", params["amount"], params["currency"]),
            )
        except StripeGatewayError as error:
            if error.answer_unknown:
                return _("Sent to Stripe; its answer was lost: Odoo asks Stripe before anything new.")
            if error.kind != "card_declined":
                utils.raise_user_error(error, self.provider_id)
            if "authentication_required" in (error.code, error.decline_code):
                # Stripe declines an off-session charge the bank wants authenticated; the
                # customer can confirm it on session with the same PaymentIntent.
                if error.payment_intent:
                    self.provider_reference = error.payment_intent["id"]
                    return self._crm_request_authentication()
            return self._crm_mark_declined(
                {"code": error.code, "decline_code": error.decline_code, "message": error.message}
            )
        return self._crm_apply_payment_intent(intent)

    # === REQUESTS WHOSE ANSWER MAY BE LOST === #

    def _crm_send_create(self, operation, method_name, params, idempotency_key):
        """Send a create call for this transaction so that a lost answer loses nothing.

        The call, its key and its parameters are recorded (`crm.stripe.request`) and committed
        apart *before* it is sent: a rollback of the current request keeps the record. An
        earlier request of the same transaction reference still unsettled (its transaction was
        rolled back) is first looked up in Stripe: what Stripe has is returned instead of
        sending anything. When no answer comes back, the transaction is kept, flagged
        ``crm_answer_unknown``, for the next attempt, the webhook and the cron to settle.

        :param str operation: ``payment_intent``, ``refund`` or ``checkout_session``
        :param str method_name: the gateway method making the call
        :return: Stripe's object
        :raise StripeGatewayError: as the gateway; ``answer_unknown`` when nobody knows
        :raise UserError: when an earlier request cannot be settled yet
        """
        self.ensure_one()
        Request = self.env["crm.stripe.request"].sudo()
        provider_sudo = self.provider_id.sudo()
        for earlier in Request.search(
            [
                ("provider_id", "=", provider_sudo.id),
                ("reference", "=", self.reference),
                ("state", "=", "sent"),
            ],
            order="id",
        ):
            try:
                found = earlier._crm_lookup()
            except StripeGatewayError as error:
                raise UserError(
                    _(
                        "%(reference)s was sent to Stripe before and its answer was lost; Stripe "
                        "cannot be asked now (%(error)s). Nothing new is sent: try again in a few "
                        "minutes.",
                        reference=self.reference,
                        error=error.message,
                    )
                ) from None
            if found and earlier.operation == "checkout_session":
                # Its URLs name the lost transaction: closed, this one gets its own page.
                provider_sudo._crm_stripe_gateway().expire_checkout_session(found["id"])
                earlier._crm_close(_("Hosted page %(id)s of no transaction: expired.", id=found["id"]))
                continue
            if found:
                earlier._crm_close(_("Found in Stripe (%(id)s) by the next attempt.", id=found["id"]))
                self._crm_write_request(operation, earlier.idempotency_key, earlier.params)
                return found
            if earlier._crm_is_recent() and earlier.idempotency_key != idempotency_key:
                raise UserError(
                    _(
                        "%(reference)s was sent to Stripe a moment ago and has no answer yet: try "
                        "again in two minutes.",
                        reference=self.reference,
                    )
                )
            if not earlier._crm_is_recent():
                earlier._crm_close(_("Stripe never received it: nothing was created."))
        self._crm_write_request(operation, idempotency_key, params)
        request_id = Request._crm_record(self, operation, params, idempotency_key)
        gateway = provider_sudo._crm_stripe_gateway()
        try:
            return getattr(gateway, method_name)(params, idempotency_key)
        except StripeGatewayError as error:
            if error.answer_unknown:
                self._crm_set_answer_unknown(error)
            elif error.kind != "card_declined":  # a declined charge leaves its PaymentIntent
                Request._crm_refused(request_id, error)
            raise

    def _crm_write_request(self, operation, idempotency_key, params):
        self.write(
            {
                "crm_request_operation": operation,
                "crm_idempotency_key": idempotency_key,
                "crm_request_params": params,
            }
        )

    def _crm_set_answer_unknown(self, error):
        """Keep this transaction as sent to Stripe without answer, and have it settled soon."""
        self.ensure_one()
        _logger.warning(
            "stripe %s of %s sent without answer (%s): kept to be settled",
            error.operation,
            self.reference,
            error.kind,
        )
        self.write(
            {
                "crm_answer_unknown": True,
                "state_message": _(
                    "Sent to Stripe on %(date)s, but Stripe's answer never arrived (%(error)s). Odoo "
                    "asks Stripe what became of it within minutes, and before any new attempt.",
                    date=fields.Datetime.to_string(fields.Datetime.now()),
                    error=error.message,
                ),
            }
        )
        self.env.ref("crm_payment_integration.ir_cron_crm_stripe_request_resolve")._trigger(
            fields.Datetime.now() + timedelta(seconds=const.UNKNOWN_ANSWER_GRACE)
        )

    def _crm_answer_received(self):
        """Stripe's object of this transaction is known: its lost answer is settled."""
        if not self.crm_answer_unknown:
            return
        self.crm_answer_unknown = False
        self.env["crm.stripe.request"].sudo().search(
            [
                ("provider_id", "=", self.provider_id.id),
                ("reference", "=", self.reference),
                ("state", "=", "sent"),
            ]
        )._crm_close(_("Settled from Stripe's object."))

    def _crm_never_received(self):
        """Stripe never received this transaction's request: nothing happened."""
        self.ensure_one()
        self.crm_answer_unknown = False
        self._set_canceled(_("Stripe never received this request: nothing was charged or refunded."))
        if self.operation != "refund":
            self._post_process()

    def _crm_apply_sent_object(self, operation, obj):
        """Apply what Stripe created for a request whose answer was lost."""
        self.ensure_one()
        if operation == "payment_intent":
            return self._crm_apply_payment_intent(obj)
        if operation == "refund":
            return self._crm_apply_refund(obj)
        self._crm_answer_received()
        self._crm_store_checkout_session(obj)
        return _("Hosted page %s kept.", obj["id"])

    # === APPLYING STRIPE'S STATE === #

    def _crm_apply_payment_intent(self, intent):
        """Set the transaction's state from a PaymentIntent as Stripe has it.

        :param dict intent: the PaymentIntent
        :return: a short result for the ledger
        """
        self.ensure_one()
        self._crm_answer_received()
        self._crm_store_intent_risk_data(intent)
        if self.state == "done" and not self.crm_needs_review:
            return _("Already paid.")
        self.provider_reference = intent["id"]
        status = intent.get("status")
        if status == "succeeded":
            # localstripe's intents lack amount_received; Stripe's always have it.
            received = intent["amount_received"] if "amount_received" in intent else intent.get("amount")
            if not self._crm_amount_matches(received, intent.get("currency")):
                return _("Amount or currency mismatch: flagged for review.")
            return self._crm_mark_done()
        if status == "processing":
            self._set_pending(_("Stripe is processing the payment."))
            return _("Payment processing.")
        if status == "requires_capture":
            self._set_authorized()
            return _("Payment authorised.")
        if status in ("requires_action", "requires_confirmation"):
            return self._crm_request_authentication()
        if status == "canceled":
            self._set_canceled(_("The payment was canceled in Stripe."))
            self._post_process()
            return _("Payment canceled.")
        if status == "requires_payment_method":
            if self._crm_needs_authentication(intent):
                return self._crm_request_authentication()
            if intent.get("last_payment_error"):
                return self._crm_mark_declined(intent["last_payment_error"])
            return _("The customer has not paid yet.")
        return _("Unknown PaymentIntent status %s.", status)

    @api.model
    def _crm_needs_authentication(self, intent):
        """Whether the bank declined the intent only for want of the customer's authentication
        (Stripe's answer to an off-session charge under SCA): the customer can confirm it."""
        error = intent.get("last_payment_error") or {}
        return intent.get("status") == "requires_payment_method" and "authentication_required" in (
            error.get("code"),
            error.get("decline_code"),
        )

    def _crm_amount_matches(self, minor_amount, currency_code):
        """Check what Stripe reports against the transaction; flag a mismatch for a person.

        :return: whether amount and currency match
        """
        self.ensure_one()
        expected = self._crm_minor_amount()
        if (currency_code or "").lower() == self.currency_id.name.lower() and minor_amount == expected:
            return True
        reported = f"{minor_amount} {(currency_code or '?').upper()}"
        message = _(
            "Stripe reported %(reported)s (minor units) for %(reference)s, which expects "
            "%(expected)s %(currency)s. The transaction is kept pending: check the payment in "
            "Stripe, then register or refund it.",
            reported=reported,
            reference=self.reference,
            expected=expected,
            currency=self.currency_id.name,
        )
        if self.crm_needs_review:
            return False  # already flagged, its activity is waiting
        if self.state == "draft":
            self._set_pending(message)
        self.write({"crm_needs_review": True, "state_message": message})
        record = self.invoice_ids[:1] or self.partner_id.commercial_partner_id
        record.sudo().activity_schedule(
            "mail.mail_activity_data_todo",
            user_id=self.provider_id._crm_alert_user().id,
            summary=_("Stripe payment needs review"),
            note=message,
        )
        _logger.warning("stripe amount mismatch on %s: %s", self.reference, reported)
        return False

    def _crm_mark_done(self):
        """Confirm: Stripe has the money. A transaction cancelled or failed in Odoo meanwhile
        (a replaced link, a first card declined) is confirmed all the same: the payment is
        recorded, as the customer's credit if nothing is left due."""
        if not self._set_done(extra_allowed_states=("cancel",)):
            return _("Already paid.")
        self._crm_check_risk()
        batch = self.env.context.get("crm_batch")
        if batch is not None:  # a ledger batch: post-processed with the batch
            batch.confirmed.extend(self.ids)
            return _("Paid; payment posted and reconciled with the batch.")
        self._post_process()
        return _("Paid; payment posted and reconciled.")

    def _crm_post_process_confirmed(self):
        """Post-process the transactions a ledger batch confirmed, all at once.

        Payments of a batch are created, posted and reconciled together and the customers'
        receipts rendered together, which is what makes a burst of webhooks cheap. Should this
        fail, the transactions stay confirmed and not post-processed: each is retried on its
        own, and Odoo's post-processing cron remains the safety net.
        """
        # A transaction rolled back with its savepoint after it was confirmed is gone.
        txs = self.with_context(crm_batch=None).exists().filtered(lambda tx: not tx.is_post_processed)
        if not txs:
            return
        try:
            with self.env.cr.savepoint():
                txs._post_process()
        except Exception:  # noqa: BLE001 - the transactions are confirmed; retried one by one
            _logger.exception("batch post-processing of %s transactions failed", len(txs))
            for tx in txs:
                try:
                    with self.env.cr.savepoint():
                        tx._post_process()
                except Exception:  # noqa: BLE001
                    _logger.exception("post-processing of %s failed; left to Odoo's cron", tx.reference)
                    self.env.ref("payment.cron_post_process_payment_tx")._trigger()

    def _crm_mark_declined(self, error):
        """Record a decline with Stripe's code in words; post-processing tells the people."""
        self.ensure_one()
        code = error.get("decline_code") or error.get("code") or "card_declined"
        reason = utils.decline_reason(code)
        self.write({"crm_decline_code": code, "crm_decline_reason": reason})
        if self._set_error(_("Payment declined: %(reason)s.", reason=reason)):
            self._post_process()
        if self.state == "error":
            self._crm_risk_on_declined(error)
        return _("Declined (%s).", code)

    def _crm_request_authentication(self):
        """Ask the customer to authenticate the payment (3-D Secure); the transaction waits."""
        self.ensure_one()
        self._set_pending(_("The customer's bank asks them to authenticate the payment."))
        if not self.crm_action_requested:
            self.crm_action_requested = True
            self._crm_send_mail("crm_payment_integration.mail_template_crm_payment_action_required")
        return _("Authentication requested from the customer.")

    # === REFUNDS === #

    def _crm_refundable_amount(self):
        self.ensure_one()
        # A refund that failed after its credit note was booked still counts while that credit
        # note stands (open again: the customer is owed it): refunding again would book a second.
        refunded = sum(
            -tx.amount
            for tx in self.child_transaction_ids
            if tx.operation == "refund"
            and (
                tx.state in ("draft", "pending", "done")
                or tx.invoice_ids.filtered(lambda m: m.move_type == "out_refund" and m.state == "posted")
            )
        )
        return self.currency_id.round(self.amount - refunded)

    def _crm_refund(self, amount):
        """Refund part or all of this paid transaction through Stripe.

        :param float amount: in major units, at most what was paid minus earlier refunds
        :return: the refund transaction
        :raise UserError: for an amount over what can still be refunded
        """
        self.ensure_one()
        if self.state != "done" or self.operation == "refund" or not self.provider_reference:
            raise UserError(_("Only a paid Stripe payment can be refunded (%s).", self.reference))
        self._crm_lock_for_refund()
        self._crm_ensure_post_processed()
        currency = self.currency_id
        refundable = self._crm_refundable_amount()
        if float_compare(amount, 0.0, precision_rounding=currency.rounding) <= 0:
            raise UserError(_("The amount to refund must be positive."))
        if float_compare(amount, refundable, precision_rounding=currency.rounding) > 0:
            raise UserError(
                _(
                    "You can refund at most %(amount)s on %(reference)s: that is what was paid "
                    "minus the earlier refunds.",
                    amount=format_amount(self.env, refundable, currency),
                    reference=self.reference,
                )
            )
        refund_tx = self._create_child_transaction(amount, is_refund=True, crm_flow=self.crm_flow or "stripe")
        try:
            refund = refund_tx._crm_send_create(
                "refund",
                "create_refund",
                {
                    "payment_intent": self.provider_reference,
                    "amount": refund_tx._crm_minor_amount(amount),
                    "metadata": {"reference": refund_tx.reference},
                },
                refund_tx._crm_idempotency_key("refund", refund_tx._crm_minor_amount(amount)),
            )
        except StripeGatewayError as error:
            if error.answer_unknown:
                return refund_tx  # kept as sent, answer unknown: settled against Stripe
            utils.raise_user_error(error, refund_tx.provider_id)
        refund_tx._crm_apply_refund(refund)
        return refund_tx

    def _crm_ensure_post_processed(self):
        """Book a confirmed payment before anything refers to it (a refund, above all):
        account_payment books no payment for a transaction whose refund is already done."""
        pending = self.filtered(lambda tx: tx.state == "done" and not tx.is_post_processed)
        if pending:
            pending.with_context(crm_batch=None)._post_process()

    def _crm_apply_refund(self, refund):
        """Set a refund transaction's state from Stripe's Refund.

        A refund fails for good (``failed`` and ``canceled`` are final): once failed, a
        refund's older statuses, delivered late or again, change nothing.
        """
        self.ensure_one()
        self._crm_answer_received()
        self.provider_reference = refund["id"]
        status = refund.get("status")
        if self.state == "error":
            return _("Refund already failed in Stripe.")
        if status == "succeeded":
            if self.state == "done":
                return _("Refund already applied.")
            self._set_done()
            self._post_process()
            return _("Refund applied; credit note reconciled.")
        if status in ("pending", "requires_action"):
            if self.state == "draft":
                self._set_pending()
            return _("Refund pending.")
        if status in ("failed", "canceled"):
            return self._crm_refund_failed(refund)
        return _("Unknown refund status %s.", status)

    def _crm_refund_failed(self, refund):
        """Stripe could not refund (an expired or closed card): the customer got nothing back.

        A refund already booked is undone: its outbound payment is cancelled, which leaves its
        credit note open (the customer is owed the amount again). A person gets one activity to
        pay the customer back another way; the customer gets no email.
        """
        self.ensure_one()
        booked = self.state == "done"
        reason = refund.get("failure_reason") or refund.get("status")
        self._set_error(
            _("Stripe could not refund %(reference)s (%(reason)s).", reference=self.reference, reason=reason),
            extra_allowed_states=("done",),
        )
        if booked:
            self._crm_unbook_refund(reason)
        self._crm_refund_failed_activity(reason, booked)
        return (
            _("Refund failed; its payment cancelled, its credit note open again.")
            if booked
            else _("Refund failed.")
        )

    def _crm_unbook_refund(self, reason):
        """Cancel the outbound payment of a refund that failed: unreconciled from its credit
        note, reset to draft and cancelled (reversed instead where the journal forbids it)."""
        self.ensure_one()
        payment = self.payment_id
        if not payment or payment.state in ("draft", "canceled"):
            return
        try:
            with self.env.cr.savepoint():
                payment.action_draft()
                payment.action_cancel()
        except UserError:  # a locked period or an inalterable journal: reversed, kept
            payment.move_id.line_ids.remove_move_reconcile()
            payment.move_id._reverse_moves(
                [{"ref": _("Refund %(reference)s failed in Stripe", reference=self.reference)}], cancel=True
            )
        credit_notes = self.invoice_ids.filtered(lambda m: m.move_type == "out_refund")
        for credit_note in credit_notes:
            credit_note.message_post(
                body=_(
                    "Stripe could not refund %(reference)s (%(reason)s): its payment %(payment)s was "
                    "cancelled and this credit note is open again.",
                    reference=self.reference,
                    reason=reason,
                    payment=payment._get_html_link(),
                )
            )

    def _crm_refund_failed_activity(self, reason, booked):
        invoices = self.source_transaction_id.invoice_ids.filtered(lambda m: m.move_type == "out_invoice")
        record = invoices[:1] or self.partner_id.commercial_partner_id
        credit_notes = self.invoice_ids.filtered(lambda m: m.move_type == "out_refund")
        amount = format_amount(self.env, -self.amount, self.currency_id)
        if booked:
            note = _(
                "Stripe could not refund %(amount)s (%(reference)s, %(reason)s) after it was booked: "
                "its payment was cancelled and credit note %(credit_note)s is open again, so the "
                "customer is owed %(amount)s. Pay them back another way (and register that payment "
                "on the credit note), or cancel the credit note.",
                amount=amount,
                reference=self.reference,
                reason=reason,
                credit_note=", ".join(credit_notes.mapped("name")) or "-",
            )
        else:
            note = _(
                "Stripe could not refund %(amount)s (%(reference)s, %(reason)s): nothing was booked. "
                "Pay the customer back another way, or refund again.",
                amount=amount,
                reference=self.reference,
                reason=reason,
            )
        record.sudo().activity_schedule(
            "mail.mail_activity_data_todo",
            user_id=self.provider_id._crm_alert_user().id,
            summary=_("Stripe refund failed"),
            note=note,
        )

    def _crm_refund_credit_note(self):
        """Create and post the credit note of a done refund and reconcile it with its payment.

        A full refund of an invoice reverses it line by line; a partial one scales its lines
        to the refunded amount. A refund of a payment without invoice is reconciled with that
        payment directly.
        """
        self.ensure_one()
        source = self.source_transaction_id
        payment = self.payment_id
        if not payment:
            return
        account = payment.destination_account_id
        invoices = source.invoice_ids.filtered(lambda m: m.move_type == "out_invoice" and m.state == "posted")
        if not invoices:
            lines = (payment.move_id.line_ids + source.payment_id.move_id.line_ids).filtered(
                lambda line: line.account_id == account and not line.reconciled
            )
            if len(lines) > 1:
                lines.reconcile()
            return
        # Several invoices paid at once: each is credited its share, the last one the rest.
        currency = invoices[:1].currency_id
        refund_amount = -self.amount
        total = sum(invoices.mapped("amount_total"))
        credit_notes = self.env["account.move"]
        left = refund_amount
        for index, invoice in enumerate(invoices):
            share = (
                left
                if index == len(invoices) - 1
                else currency.round(refund_amount * invoice.amount_total / total)
            )
            share = min(share, invoice.amount_total)
            left = currency.round(left - share)
            if currency.compare_amounts(share, 0.0) > 0:
                credit_notes |= self._crm_credit_note_for(invoice, share)
        self.invoice_ids = [(4, credit_note.id) for credit_note in credit_notes]
        (credit_notes.line_ids + payment.move_id.line_ids).filtered(
            lambda line: line.account_id == account and not line.reconciled
        ).reconcile()
        for invoice, credit_note in zip(invoices, credit_notes, strict=False):
            invoice.message_post(
                body=_(
                    "Refunded %(amount)s by Stripe (%(refund)s): credit note %(credit_note)s.",
                    amount=format_amount(self.env, credit_note.amount_total, currency),
                    refund=self.provider_reference,
                    credit_note=credit_note._get_html_link(),
                )
            )

    def _crm_credit_note_for(self, invoice, amount):
        """Reverse an invoice for ``amount``: line by line in full, each line scaled as a whole
        (taxes kept) in part, a rounding line taking what rounding leaves."""
        credit_note = invoice.with_company(invoice.company_id)._reverse_moves(
            [
                {
                    "ref": _("Refund %(refund)s of %(invoice)s", refund=self.reference, invoice=invoice.name),
                    "invoice_date": fields.Date.context_today(self),
                }
            ]
        )
        currency = invoice.currency_id
        if currency.compare_amounts(amount, invoice.amount_total) != 0:
            ratio = amount / invoice.amount_total
            product_lines = credit_note.invoice_line_ids.filtered(lambda line: line.display_type == "product")
            for line in product_lines:
                line_amount = line.price_unit * line.quantity * (1 - (line.discount or 0.0) / 100)
                line.write(
                    {"quantity": 1, "discount": 0.0, "price_unit": currency.round(line_amount * ratio)}
                )
            difference = currency.round(amount - credit_note.amount_total)
            if not float_is_zero(difference, precision_rounding=currency.rounding):
                credit_note.write(
                    {
                        "invoice_line_ids": [
                            (
                                0,
                                0,
                                {
                                    "name": _("Rounding of the partial refund"),
                                    "quantity": 1,
                                    "price_unit": difference,
                                    "account_id": product_lines[:1].account_id.id,
                                    "tax_ids": [(6, 0, [])],
                                },
                            )
                        ]
                    }
                )
        credit_note.action_post()
        return credit_note

    # === POST-PROCESSING === #

    def _post_process(self):
        """Add CRM Payments' follow-up to Odoo's: credit notes of refunds, the opportunity,
        the salesperson and the customer's emails. Runs once per state change."""
        to_follow = self.filtered(lambda tx: tx.crm_flow and not tx.is_post_processed)
        states = {tx.id: tx.state for tx in to_follow}
        to_follow._crm_create_payments()
        result = super()._post_process()
        paid = self.browse()
        for tx in to_follow:
            state = states[tx.id]
            if state == "done" and tx.operation == "refund":
                tx._crm_refund_credit_note()
            elif state == "done" and tx.operation != "validation":
                paid |= tx
            elif state == "error" and tx.operation != "refund":
                tx._crm_after_declined()
        if paid:
            paid._crm_after_paid()
        return result

    def _crm_create_payments(self):
        """Create, post and reconcile the payments of several confirmed transactions at once.

        The batch counterpart of account_payment's ``_create_payment()`` (one transaction per
        call), for the plain case: a confirmed charge of posted invoices without early payment
        discount. Every other transaction is left to ``_create_payment()``, which the
        post-processing calls for those still without payment.
        """
        txs = self.filtered(
            lambda tx: (
                tx.state == "done"
                and tx.operation in ("online_redirect", "online_direct", "online_token", "offline")
                and not tx.payment_id
                and tx.amount > 0
                and not tx.child_transaction_ids
                and all(
                    invoice.state == "posted" and not invoice.invoice_payment_term_id.early_discount
                    for invoice in tx.invoice_ids
                )
            )
        )
        if len(txs) < 2:
            return
        for company in txs.company_id:
            txs.filtered(lambda tx, company=company: tx.company_id == company).with_company(
                company
            )._crm_create_payments_of_company()

    def _crm_create_payments_of_company(self):
        txs = self
        values = []
        for tx in txs:
            provider = tx.provider_id
            method_line = provider.journal_id.inbound_payment_method_line_ids.filtered(
                lambda line, provider=provider: line.payment_provider_id == provider
            )
            receivable = tx.invoice_ids.line_ids.filtered(lambda line: line.display_type == "payment_term")
            values.append(
                {
                    "amount": tx.amount,
                    "payment_type": "inbound",
                    "currency_id": tx.currency_id.id,
                    "partner_id": tx.partner_id.commercial_partner_id.id,
                    "partner_type": "customer",
                    "journal_id": provider.journal_id.id,
                    "company_id": provider.company_id.id,
                    "payment_method_line_id": method_line[:1].id,
                    "payment_token_id": tx.token_id.id,
                    "payment_transaction_id": tx.id,
                    "memo": " - ".join(
                        (tx.reference, tx.partner_id.display_name or "", tx.provider_reference or "")
                    ),
                    "invoice_ids": [(6, 0, tx.invoice_ids.ids)],
                    **({"destination_account_id": receivable[0].account_id.id} if receivable else {}),
                }
            )
        payments = self.env["account.payment"].create(values)
        payments.action_post()
        plan = []
        for tx, payment in zip(txs, payments, strict=False):
            tx.payment_id = payment
            lines = (payment.move_id.line_ids + tx.invoice_ids.line_ids).filtered(
                lambda line, account=payment.destination_account_id: (
                    line.account_id == account and not line.reconciled
                )
            )
            if tx.invoice_ids and lines:
                plan.append(lines)
        if plan:
            self.env["account.move.line"]._reconcile_plan(plan)

    def _crm_after_paid(self):
        for tx in self:
            lead = tx.crm_lead_id or tx.invoice_ids.crm_lead_id[:1]
            if lead:
                lead.sudo()._crm_payment_received(tx)
        # Stripe Billing emails its own receipts for the invoices it charges.
        self.filtered(
            lambda tx: not tx.invoice_ids or not all(tx.invoice_ids.mapped("crm_stripe_invoice_id"))
        )._crm_send_mail("crm_payment_integration.mail_template_crm_payment_received")

    def _crm_after_declined(self):
        self.ensure_one()
        message = _(
            "Stripe payment %(reference)s of %(amount)s failed: %(reason)s.",
            reference=self.reference,
            amount=format_amount(self.env, self.amount, self.currency_id),
            reason=self.crm_decline_reason or self.state_message or _("unknown reason"),
        )
        partner = self.partner_id.commercial_partner_id.sudo()
        partner.message_post(body=message)
        user = self._crm_salesperson()
        record = self.invoice_ids[:1].sudo() or self.crm_lead_id.sudo() or partner
        if record != partner:
            record.message_post(body=message)
        record.activity_schedule(
            "mail.mail_activity_data_todo",
            user_id=user.id,
            summary=_("Payment failed: follow up with the customer"),
            note=message,
        )
        self._crm_send_mail("crm_payment_integration.mail_template_crm_payment_failed")

    def _crm_salesperson(self):
        self.ensure_one()
        return (
            self.crm_lead_id.user_id
            or self.invoice_ids[:1].invoice_user_id
            or self.partner_id.commercial_partner_id.user_id
            or self.provider_id._crm_alert_user()
        )

    def _crm_send_mail(self, template_xmlid):
        """Send one of the add-on's emails about this transaction to the customer."""
        template = self.env.ref(template_xmlid, raise_if_not_found=False)
        txs = self.filtered(lambda tx: tx.partner_id.email)
        if template and txs:
            template.sudo().send_mail_batch(txs.ids, email_layout_xmlid="mail.mail_notification_light")

    # === FINDING TRANSACTIONS FROM STRIPE OBJECTS === #

    @api.model
    def _crm_find_from_object(self, provider_sudo, stripe_object):
        """Return the transaction a Stripe object (intent, session) was made for, if any."""
        reference = (stripe_object.get("metadata") or {}).get("reference")
        domain = [("provider_id", "=", provider_sudo.id)]
        if reference:
            tx = self.sudo().search(domain + [("reference", "=", reference)], limit=1)
            if tx:
                return tx
        elif stripe_object.get("description") and stripe_object.get("object") == "payment_intent":
            # Odoo's own flow names its transaction in the description (never this add-on's).
            tx = self.sudo().search(
                domain
                + [
                    ("reference", "=", stripe_object["description"]),
                    ("crm_flow", "=", False),
                    ("provider_reference", "in", (False, stripe_object.get("id"))),
                ],
                limit=1,
            )
            if tx:
                return tx
        object_id = stripe_object.get("id")
        if stripe_object.get("object") == "checkout.session":
            return self.sudo().search(domain + [("crm_checkout_session_id", "=", object_id)], limit=1)
        return self.sudo().search(
            domain + [("provider_reference", "=", object_id), ("operation", "!=", "refund")], limit=1
        )

    @api.model
    def _crm_create_from_intent(self, provider_sudo, intent):
        """Record a payment made outside Odoo (Stripe dashboard, lost response) as a transaction.

        The invoices named in its metadata are linked, so a payment whose Odoo transaction was
        lost with a crashed request still lands on its invoice.

        :return: the transaction, or an empty recordset when no partner matches its customer
        """
        customer_id = intent.get("customer")
        if isinstance(customer_id, dict):
            customer_id = customer_id.get("id")
        binding = (
            self.env["crm.stripe.customer"]
            .sudo()
            .search(
                [("provider_id", "=", provider_sudo.id), ("stripe_customer_id", "=", customer_id)], limit=1
            )
            if customer_id
            else None
        )
        if not binding:
            return self.sudo().browse()
        currency = (
            self.env["res.currency"]
            .with_context(active_test=False)
            .search([("name", "=", (intent.get("currency") or "").upper())], limit=1)
        )
        if not currency:
            return self.sudo().browse()
        metadata = intent.get("metadata") or {}
        sent = metadata.get("reference") and self.env["crm.stripe.request"].sudo().search(
            [
                ("provider_id", "=", provider_sudo.id),
                ("reference", "=", metadata["reference"]),
                ("state", "=", "sent"),
            ],
            limit=1,
        )
        if sent and not self.sudo().search_count([("reference", "=", sent.reference)]):
            # Odoo's own charge, whose transaction was lost with its request: restored as it was.
            return sent._crm_restore_transaction()
        invoice_ids = [int(i) for i in (metadata.get("odoo_invoice_ids") or "").split(",") if i.isdigit()]
        if (metadata.get("odoo_subscription_id") or "").isdigit() and metadata.get("odoo_period_start"):
            invoice_ids = (
                self.env["account.move"]
                .sudo()
                .search(
                    [
                        ("crm_subscription_id", "=", int(metadata["odoo_subscription_id"])),
                        ("crm_period_start", "=", metadata["odoo_period_start"]),
                        ("crm_stripe_invoice_id", "=", False),
                    ],
                    limit=1,
                )
                .ids
            )
        invoices = (
            self.env["account.move"]
            .sudo()
            .browse(invoice_ids)
            .exists()
            .filtered(
                lambda m: (
                    m.company_id == provider_sudo.company_id and m.commercial_partner_id == binding.partner_id
                )
            )
        )
        amount = payment_utils.to_major_currency_units(intent.get("amount") or 0, currency)
        values = {
            "provider_id": provider_sudo.id,
            "payment_method_id": self.env.ref("payment.payment_method_card").id,
            "partner_id": binding.partner_id.id,
            "amount": amount,
            "currency_id": currency.id,
            "operation": "offline",
            "crm_flow": "stripe",
            "provider_reference": intent["id"],
            "invoice_ids": [(6, 0, invoices.ids)],
            "reference": metadata.get("reference")
            if metadata.get("reference")
            and not self.sudo().search_count([("reference", "=", metadata["reference"])])
            else self.sudo()._compute_reference("stripe", invoice_ids=[(6, 0, invoices.ids)]),
        }
        return self.sudo().create(values)

    # === ACTIONS === #

    def action_crm_cancel_charge(self):
        """Cancel a charge still waiting for the customer (3-D Secure), in Stripe and here."""
        self.env["account.move"]._crm_check_accounting_rights()
        self.check_access("write")  # record rules and companies, before any sudo or Stripe call
        for tx in self.sudo().filtered(lambda t: t.crm_flow == "off_session" and t.state == "pending"):
            intent = tx.provider_id._crm_stripe_call("retrieve_payment_intent", tx.provider_reference)
            if intent.get("status") not in ("succeeded", "canceled", "processing"):
                intent = tx.provider_id._crm_stripe_call("cancel_payment_intent", intent["id"])
            tx._crm_apply_payment_intent(intent)
        return True

    def action_crm_open_refund_wizard(self):
        self.ensure_one()
        self.check_access("write")
        return self.env["crm.payment.refund.wizard"]._crm_open_for(transaction=self)

    def _crm_reconcile_with(self, invoice):
        """Reconcile this transaction's payment with ``invoice`` (their open lines of the
        payment's receivable account); a payment without entry is matched by its invoices."""
        payment = self.payment_id
        if payment.move_id:
            (payment.move_id.line_ids + invoice.line_ids).filtered(
                lambda line: line.account_id == payment.destination_account_id and not line.reconciled
            ).reconcile()

    def _crm_lock_for_refund(self):
        """Hold this payment for one refund at a time, or refuse at once.

        :raise UserError: when another transaction (a second click, another user) refunds it
        """
        utils.lock_nowait(
            self,
            _(
                "A refund of %(reference)s is already being made (a second click, another user): "
                "wait a moment, then look at its refunds.",
                reference=self.reference,
            ),
        )

    def _crm_notification_for_result(self, earlier=False):
        """Tell the user who charged what happened: paid, declined or waiting for the customer.

        :param bool earlier: the transaction is an earlier charge whose answer had been lost,
            settled before a new one: nothing new was charged
        """
        self.ensure_one()
        amount = format_amount(self.env, self.amount, self.currency_id)
        if earlier:
            notification = self._crm_notification_for_result()
            params = notification["params"]
            params["title"] = _("Earlier charge settled: nothing new charged")
            params["message"] = _(
                "The earlier charge %(reference)s, whose answer from Stripe had been lost, reached "
                "Stripe: %(result)s Nothing new was charged; look at what is still due before "
                "charging again.",
                reference=self.reference,
                result=params["message"],
            )
            params["sticky"] = True
            return notification
        if self.crm_answer_unknown:
            return utils.notification(
                _(
                    "%(amount)s was sent to Stripe (%(reference)s) but Stripe's answer was lost. "
                    "Odoo asks Stripe what became of it within minutes, and before any new charge "
                    "of the same invoice: do not charge it another way meanwhile.",
                    amount=amount,
                    reference=self.reference,
                ),
                title=_("No answer from Stripe"),
                kind="warning",
                sticky=True,
            )
        if self.state == "done":
            title, kind = _("Payment received"), "success"
            message = _("%(amount)s was charged (%(reference)s).", amount=amount, reference=self.reference)
        elif self.state == "error":
            title, kind = _("Payment declined"), "danger"
            message = _(
                "%(amount)s was not charged: %(reason)s. The salesperson has an activity to follow up.",
                amount=amount,
                reason=self.crm_decline_reason or self.state_message,
            )
        elif self.crm_needs_review:
            title, kind = _("Payment needs review"), "warning"
            message = self.state_message
        else:
            title, kind = _("Waiting for the customer"), "warning"
            message = _(
                "The customer's bank asks them to authenticate %(amount)s; they received an "
                "email with the link.",
                amount=amount,
            )
        return utils.notification(message, title=title, kind=kind, sticky=kind != "success")

    def _crm_refundable(self):
        """The paid Stripe payments among these transactions that can still be refunded."""
        return self.filtered(
            lambda tx: (
                tx.provider_code == "stripe"
                and tx.state == "done"
                and tx.operation != "refund"
                and tx.provider_reference
                and (tx.payment_id or not tx.is_post_processed)
                and not tx.currency_id.is_zero(tx._crm_refundable_amount())
            )
        )

    # === RISK DATA AND RULES (see crm.payment.risk.rule) === #

    crm_charge_id = fields.Char(string="Stripe Charge", readonly=True, copy=False, index="btree_not_null")
    crm_card_fingerprint = fields.Char(
        string="Card Fingerprint",
        readonly=True,
        copy=False,
        help="Stripe's fingerprint of the card number (the same card gives the same value): "
        "not the number, nor anything it can be read back from.",
    )
    crm_card_country = fields.Char(string="Card Country", readonly=True, copy=False, size=2)
    crm_client_ip = fields.Char(string="Customer IP Address", readonly=True, copy=False)
    crm_risk_level = fields.Char(string="Radar Risk Level", readonly=True, copy=False)
    crm_risk_score = fields.Integer(string="Radar Risk Score", readonly=True, copy=False)
    crm_risk_flag_ids = fields.One2many("crm.payment.risk.flag", "transaction_id", string="Risk Flags")

    def init(self):
        # The risk rules count within a window: indexes of exactly those questions, so no rule
        # scans the transactions of other customers, cards or addresses.
        cr = self.env.cr
        table = "payment_transaction"
        create_index(
            cr,
            "crm_risk_failed_partner_idx",
            table,
            ["partner_id", "last_state_change"],
            where="state = 'error'",
        )
        create_index(
            cr,
            "crm_risk_failed_card_idx",
            table,
            ["crm_card_fingerprint", "last_state_change"],
            where="state = 'error' AND crm_card_fingerprint IS NOT NULL",
        )
        create_index(
            cr,
            "crm_risk_failed_ip_idx",
            table,
            ["crm_client_ip", "last_state_change"],
            where="state = 'error' AND crm_client_ip IS NOT NULL",
        )
        create_index(
            cr,
            "crm_risk_done_partner_idx",
            table,
            ["partner_id", "currency_id", "last_state_change"],
            where="state = 'done'",
        )
        create_index(
            cr,
            "crm_risk_card_partner_idx",
            table,
            ["partner_id", "last_state_change"],
            where="crm_card_fingerprint IS NOT NULL",
        )

    # === STATE CHANGES (audit) === #

    def _update_state(self, allowed_states, target_state, state_message):
        """Override of `payment` to write the state a Stripe event changed to the audit trail."""
        if not self.env["crm.payment.audit"]._crm_applying_event():
            return super()._update_state(allowed_states, target_state, state_message)
        before = {tx.id: {"state": tx.state} for tx in self}
        changed = super()._update_state(allowed_states, target_state, state_message)
        self.env["crm.payment.audit"]._crm_log_state_changes(changed, before)
        return changed

    # === RISK DATA === #

    def _crm_store_risk_data(self, charge=None, payment_method=None, token=None, client_ip=None):
        """Keep what the risk rules need from a Stripe Charge, a PaymentMethod, a saved method
        or the customer's request: card fingerprint and country, Radar's risk level and score,
        the IP address. Nothing else of the card is kept.

        :param dict charge: a Stripe Charge (``payment_method_details.card``, ``outcome``)
        :param dict payment_method: a Stripe PaymentMethod (``card``)
        """
        self.ensure_one()
        values = {}
        card = {}
        if isinstance(charge, dict):
            values["crm_charge_id"] = charge.get("id")
            card = (charge.get("payment_method_details") or {}).get("card") or {}
            outcome = charge.get("outcome") or {}
            if outcome.get("risk_level"):
                values["crm_risk_level"] = outcome["risk_level"]
            if isinstance(outcome.get("risk_score"), int):
                values["crm_risk_score"] = outcome["risk_score"]
        elif isinstance(payment_method, dict):
            card = payment_method.get("card") or {}
        if card.get("fingerprint"):
            values["crm_card_fingerprint"] = card["fingerprint"]
        if card.get("country"):
            values["crm_card_country"] = card["country"].upper()[:2]
        if token:
            token_sudo = token.sudo()
            values.setdefault("crm_card_fingerprint", token_sudo.crm_card_fingerprint or False)
            values.setdefault("crm_card_country", token_sudo.crm_card_country or False)
        if client_ip and not self.crm_client_ip:
            values["crm_client_ip"] = client_ip[:64]
        values = {name: value for name, value in values.items() if value and self[name] != value}
        if values:
            self.sudo().write(values)

    def _crm_store_intent_risk_data(self, intent):
        """Keep the risk data an answer or event about a PaymentIntent carries (its latest
        charge, or its payment method, when expanded), without asking Stripe anything more."""
        charge = intent.get("latest_charge")
        if not isinstance(charge, dict):
            charges = (
                (intent.get("charges") or {}).get("data") if isinstance(intent.get("charges"), dict) else None
            )
            charge = charges[-1] if charges else None
        error = intent.get("last_payment_error") or {}
        method = intent.get("payment_method") if isinstance(intent.get("payment_method"), dict) else None
        method = method or (
            error.get("payment_method") if isinstance(error.get("payment_method"), dict) else None
        )
        if isinstance(charge, dict) or method:
            self._crm_store_risk_data(
                charge=charge if isinstance(charge, dict) else None, payment_method=method
            )

    # === RISK RULES === #

    def _crm_check_risk(self):
        """Run the company's enabled risk rules on these transactions; each hit flags its
        customer once per cause (see `crm.payment.risk.flag`).

        Failed-attempt rules run on declined payments, amount rules on confirmed ones, the card,
        Radar and card-count rules whenever their data is known. Each rule is one SQL query
        over an index of its own (see :meth:`init`).

        :return: the new flags
        """
        flags = self.env["crm.payment.risk.flag"]
        # The rules read the transactions in SQL: what the ORM holds is written first.
        self.env["payment.transaction"].flush_model(
            [
                "state",
                "last_state_change",
                "partner_id",
                "amount",
                "currency_id",
                "operation",
                "crm_card_fingerprint",
                "crm_client_ip",
            ]
        )
        for tx in self:
            if not tx.crm_flow or tx.operation in ("refund", "validation") or not tx.partner_id:
                continue
            rules = self.env["crm.payment.risk.rule"]._crm_rules(tx.company_id)
            if not rules:
                continue
            flags |= tx._crm_run_rules(rules)
        return flags

    def _crm_run_rules(self, rules):
        self.ensure_one()
        Flag = self.env["crm.payment.risk.flag"]
        partner = self.partner_id.commercial_partner_id
        flags = Flag
        hits = []
        if self.state == "error":
            for code, column, value in (
                ("failed_customer", None, partner.id),
                ("failed_card", "crm_card_fingerprint", self.crm_card_fingerprint),
                ("failed_ip", "crm_client_ip", self.crm_client_ip),
            ):
                if code in rules and value:
                    hits.append(self._crm_rule_failed_attempts(rules[code], partner, column, value))
        if self.state == "done" and ("amount_median" in rules or "first_payment" in rules):
            hits += self._crm_rule_amount(rules, partner)
        if "card_country" in rules:
            hits.append(self._crm_rule_card_country(rules["card_country"], partner))
        if "many_cards" in rules and self.crm_card_fingerprint:
            hits.append(self._crm_rule_many_cards(rules["many_cards"], partner))
        if "radar" in rules:
            hits.append(self._crm_rule_radar(rules["radar"]))
        for hit in filter(None, hits):
            rule, cause_key, values, summary, subject = hit
            flags |= Flag._crm_flag(rule, self, partner, cause_key, values, summary, subject=subject)
        return flags

    def _crm_window_start(self, rule):
        return fields.Datetime.now() - timedelta(minutes=rule.window_minutes or 0)

    def _crm_rule_failed_attempts(self, rule, partner, column, value):
        """Failed attempts of one customer, card or IP address within the window, counted
        since the last flag of the same rule and subject (a burst flags once), reaching the
        threshold."""
        subject = f"{rule.code}:{value}"
        where = {
            None: "t.partner_id IN (SELECT id FROM res_partner WHERE commercial_partner_id = %(partner)s)",
            "crm_card_fingerprint": "t.crm_card_fingerprint = %(value)s",
            "crm_client_ip": "t.crm_client_ip = %(value)s",
        }[column]
        self.env.cr.execute(
            """
            SELECT count(*), max(t.id) FROM payment_transaction t
             WHERE """
            + where
            + """
               AND t.state = 'error' AND t.operation NOT IN ('refund', 'validation')
               AND t.last_state_change >= %(since)s
               AND t.id > COALESCE((SELECT max(transaction_id) FROM crm_payment_risk_flag
                                     WHERE company_id = %(company)s AND rule = %(rule)s
                                       AND subject = %(subject)s), 0)
            """,
            {
                "partner": partner.id,
                "value": value,
                "since": self._crm_window_start(rule),
                "company": rule.company_id.id,
                "rule": rule.code,
                "subject": subject,
            },
        )
        count, newest = self.env.cr.fetchone()
        if count < rule.threshold:
            return None
        what = {
            "failed_customer": _("customer %(name)s", name=partner.display_name),
            "failed_card": _("one card"),
            "failed_ip": _("IP address %(ip)s", ip=value),
        }[rule.code]
        summary = _(
            "%(count)s failed payment attempts of %(what)s within %(minutes)s minutes "
            "(threshold %(threshold)s)",
            count=count,
            what=what,
            minutes=rule.window_minutes,
            threshold=int(rule.threshold),
        )
        values = {
            "failed_attempts": count,
            "threshold": rule.threshold,
            "window_minutes": rule.window_minutes,
        }
        if column:
            values[column] = value
        return rule, f"{subject}:{newest}", values, summary, subject

    def _crm_rule_amount(self, rules, partner):
        """A payment at or above N times the customer's median payment in the same currency
        over the window, or a first payment at or above an amount (company currency)."""
        median_rule = rules.get("amount_median")
        since = self._crm_window_start(median_rule) if median_rule else fields.Datetime.now()
        self.env.cr.execute(
            """
            SELECT count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY t.amount)
                       FILTER (WHERE t.currency_id = %(currency)s AND t.last_state_change >= %(since)s),
                   count(*) FILTER (WHERE t.currency_id = %(currency)s AND t.last_state_change >= %(since)s)
              FROM payment_transaction t
             WHERE t.partner_id IN (SELECT id FROM res_partner WHERE commercial_partner_id = %(partner)s)
               AND t.state = 'done' AND t.operation NOT IN ('refund', 'validation') AND t.id != %(tx)s
            """,
            {"partner": partner.id, "currency": self.currency_id.id, "since": since, "tx": self.id},
        )
        earlier, median, in_window = self.env.cr.fetchone()
        hits = []
        amount = format_amount(self.env, self.amount, self.currency_id)
        if median_rule and in_window and median:
            limit = self.currency_id.round(median * median_rule.threshold)
            if self.currency_id.compare_amounts(self.amount, limit) >= 0:
                hits.append(
                    (
                        median_rule,
                        f"tx:{self.id}",
                        {
                            "amount": self.amount,
                            "currency": self.currency_id.name,
                            "median": median,
                            "factor": median_rule.threshold,
                            "payments": in_window,
                        },
                        _(
                            "%(amount)s is %(factor)s times or more the customer's median payment "
                            "(%(median)s)",
                            amount=amount,
                            factor=median_rule.threshold,
                            median=format_amount(self.env, median, self.currency_id),
                        ),
                        f"partner:{partner.id}",
                    )
                )
        first_rule = rules.get("first_payment")
        if first_rule and not earlier:
            company = self.company_id
            company_amount = self.currency_id._convert(
                self.amount, company.currency_id, company, fields.Date.context_today(self)
            )
            if company.currency_id.compare_amounts(company_amount, first_rule.threshold) >= 0:
                hits.append(
                    (
                        first_rule,
                        f"tx:{self.id}",
                        {
                            "amount": self.amount,
                            "currency": self.currency_id.name,
                            "amount_company": company_amount,
                            "threshold": first_rule.threshold,
                        },
                        _(
                            "First payment of the customer: %(amount)s, at or above %(threshold)s",
                            amount=amount,
                            threshold=format_amount(self.env, first_rule.threshold, company.currency_id),
                        ),
                        f"partner:{partner.id}",
                    )
                )
        return hits

    def _crm_rule_card_country(self, rule, partner):
        country = partner.country_id.code
        card_country = self.crm_card_country
        if not country or not card_country or country.upper() == card_country.upper():
            return None
        # One flag per customer and card: the same foreign card paying again is the same cause.
        return (
            rule,
            f"partner:{partner.id}:card:{self.crm_card_fingerprint or self.id}",
            {"card_country": card_country, "customer_country": country},
            _(
                "Card issued in %(card)s for a customer in %(customer)s",
                card=card_country,
                customer=country,
            ),
            f"partner:{partner.id}",
        )

    def _crm_rule_many_cards(self, rule, partner):
        """Distinct cards tried by one customer within the window, counted since the last flag
        of the rule, reaching the threshold."""
        subject = f"many_cards:{partner.id}"
        self.env.cr.execute(
            """
            SELECT count(DISTINCT t.crm_card_fingerprint), max(t.id) FROM payment_transaction t
             WHERE t.partner_id IN (SELECT id FROM res_partner WHERE commercial_partner_id = %(partner)s)
               AND t.crm_card_fingerprint IS NOT NULL AND t.last_state_change >= %(since)s
               AND t.operation NOT IN ('refund', 'validation')
               AND t.id > COALESCE((SELECT max(transaction_id) FROM crm_payment_risk_flag
                                     WHERE company_id = %(company)s AND rule = 'many_cards'
                                       AND subject = %(subject)s), 0)
            """,
            {
                "partner": partner.id,
                "since": self._crm_window_start(rule),
                "company": rule.company_id.id,
                "subject": subject,
            },
        )
        count, newest = self.env.cr.fetchone()
        if count < rule.threshold:
            return None
        return (
            rule,
            f"{subject}:{newest}",
            {"cards": count, "threshold": rule.threshold, "window_minutes": rule.window_minutes},
            _("%(count)s different cards tried by %(name)s", count=count, name=partner.display_name),
            subject,
        )

    def _crm_rule_radar(self, rule):
        level, score = self.crm_risk_level, self.crm_risk_score
        by_level = level in RADAR_LEVELS
        by_score = bool(self.crm_charge_id) and rule.threshold > 0 and score >= rule.threshold
        if not (by_level or by_score):
            return None
        return (
            rule,
            f"charge:{self.crm_charge_id or self.id}",
            {"risk_level": level, "risk_score": score, "threshold": rule.threshold},
            _("Stripe Radar rates the payment %(level)s (score %(score)s)", level=level or "-", score=score),
            f"charge:{self.crm_charge_id}",
        )

    # === RISK HOOKS OF THE PAYMENT PATHS === #

    def _crm_risk_on_declined(self, error):
        """A payment was declined: run the failed-attempt rules, and alert once."""
        self.ensure_one()
        payment_method = error.get("payment_method") if isinstance(error, dict) else None
        if isinstance(payment_method, dict):
            self._crm_store_risk_data(payment_method=payment_method)
        self._crm_check_risk()
        self.env["crm.payment.alert"]._crm_raise(
            "payment_failed",
            f"tx:{self.id}",
            self,
            _(
                "Payment %(reference)s of %(amount)s failed: %(reason)s",
                reference=self.reference,
                amount=format_amount(self.env, self.amount, self.currency_id),
                reason=self.crm_decline_reason or self.state_message or "-",
            ),
        )
