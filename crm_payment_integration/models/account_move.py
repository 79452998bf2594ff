import logging
import threading

import psycopg2.errors
from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config, format_amount, mute_logger

from odoo.addons.payment import utils as payment_utils

from .. import const, utils
from ..services.budget import TimeBudget, iter_batches
from ..utils import Ignored

_logger = logging.getLogger(__name__)


class AccountMove(models.Model):
    _inherit = "account.move"

    crm_payment_url = fields.Char(
        string="Stripe Payment Link",
        readonly=True,
        copy=False,
        help="The Stripe hosted page of the amount due. It is reused while it can still be paid "
        "and replaced when the amount due changes.",
    )
    crm_payment_tx_id = fields.Many2one(
        "payment.transaction",
        string="Payment Link Transaction",
        readonly=True,
        copy=False,
        groups="account.group_account_invoice",
    )
    crm_lead_id = fields.Many2one(
        "crm.lead", string="Opportunity", index="btree_not_null", copy=False, tracking=True
    )
    crm_subscription_id = fields.Many2one(
        "crm.subscription", string="Subscription", index="btree_not_null", copy=False, readonly=True
    )
    crm_period_start = fields.Date(string="Service Period Start", copy=False, readonly=True)
    crm_period_end = fields.Date(string="Service Period End", copy=False, readonly=True)
    crm_stripe_invoice_id = fields.Char(
        string="Stripe Invoice",
        copy=False,
        readonly=True,
        help="The Stripe Billing invoice this invoice mirrors.",
    )
    crm_stripe_hosted_invoice_url = fields.Char(
        string="Stripe Invoice Page",
        copy=False,
        readonly=True,
        help="Stripe's hosted page of the Stripe Billing invoice, where the customer pays or "
        "confirms its payment; sent to them when a payment needed them.",
    )
    crm_stripe_notified_attempt = fields.Integer(
        string="Customer Told at Attempt",
        copy=False,
        readonly=True,
        help="The last payment attempt of the Stripe Billing invoice the customer was told about "
        "(authentication needed, payment failed): one message per attempt.",
    )
    crm_stripe_paid_amount = fields.Monetary(
        string="Paid with Stripe", compute="_compute_crm_stripe_paid_amount"
    )
    crm_payment_link_sent_at = fields.Datetime(
        string="Payment Link Sent", readonly=True, copy=False, help="When the payment link was last emailed."
    )
    crm_payment_link_sent_to = fields.Char(
        string="Payment Link Sent To", readonly=True, copy=False, help="Who received the last payment link."
    )
    crm_charge_available = fields.Boolean(
        compute="_compute_crm_charge_available",
        groups="account.group_account_invoice",
        help="The invoice is due and its customer has a saved payment method to charge.",
    )

    def init(self):
        result = super().init()
        # One invoice per subscription and period, whatever happens to the billing run (Stripe
        # Billing may invoice a period twice, a proration: its invoices are keyed by their id).
        self.env.cr.execute(
            """
            DROP INDEX IF EXISTS account_move_crm_subscription_period_uniq;
            CREATE UNIQUE INDEX IF NOT EXISTS account_move_crm_subscription_period_key
                ON account_move (crm_subscription_id, crm_period_start)
             WHERE crm_subscription_id IS NOT NULL AND crm_stripe_invoice_id IS NULL;
            CREATE UNIQUE INDEX IF NOT EXISTS account_move_crm_stripe_invoice_uniq
                ON account_move (crm_stripe_invoice_id)
             WHERE crm_stripe_invoice_id IS NOT NULL;
            """
        )
        return result

    @api.depends("transaction_ids.state", "transaction_ids.amount")
    def _compute_crm_stripe_paid_amount(self):
        for move in self:
            txs = move.sudo().transaction_ids.filtered(
                lambda tx, currency=move.currency_id: (
                    tx.provider_code == "stripe" and tx.state == "done" and tx.currency_id == currency
                )
            )
            move.crm_stripe_paid_amount = sum(txs.mapped("amount"))

    @api.depends_context("company")
    @api.depends(
        "state", "move_type", "payment_state", "crm_stripe_invoice_id", "partner_id", "amount_residual"
    )
    def _compute_crm_charge_available(self):
        for move in self:
            move.crm_charge_available = bool(
                move.state == "posted"
                and move.move_type == "out_invoice"
                and not move.crm_stripe_invoice_id
                and not move.currency_id.is_zero(move.amount_residual)
                and move.partner_id
                and move.partner_id._crm_default_token(move.company_id)
            )

    # === ACTIONS === #

    def action_crm_send_payment_link(self):
        """Email the customer the link to Stripe's hosted page for the amount still due.

        Allowed to salespeople without accounting rights: the link only asks for money.

        :return: a notification action
        :raise UserError: for a draft, paid or non-customer invoice, or a customer without email
        """
        if not (
            self.env.user.has_group("sales_team.group_sale_salesman")
            or self.env.user.has_group("account.group_account_invoice")
        ):
            raise UserError(_("Only salespeople and billing users can send payment links."))
        self.check_access("read")
        sent = self.sudo()._crm_send_payment_link(self.env.user)
        lines = [
            _(
                "%(invoice)s: link to pay %(amount)s sent to %(recipient)s.",
                invoice=move.name,
                amount=format_amount(self.env, move.amount_residual, move.currency_id),
                recipient=move.crm_payment_link_sent_to,
            )
            if move in sent
            else _("%(invoice)s: paid on Stripe meanwhile, no link sent.", invoice=move.name)
            for move in self.sudo()
        ]
        return utils.notification(
            "\n".join(lines), title=_("Payment link sent") if sent else _("Nothing to send")
        )

    def action_crm_charge_saved_method(self):
        """Charge the amount due to the customer's saved payment method, off-session.

        The form's button asks first (the charge dialog names the amount and the card); this
        method charges at once, as integrators call it.

        :return: a notification saying whether the charge was paid, declined or needs the
            customer to authenticate
        :raise UserError: without accounting rights, without saved method, or with a charge
            already in progress
        """
        self.ensure_one()
        self._crm_check_accounting_rights()
        self.check_access("write")  # record rules and companies, before any sudo or Stripe call
        return self._crm_charge_saved_method()

    def _crm_charge_saved_method(self, token=None, amount=None, reason=None):
        """Charge a saved method of the customer (their default one unless given) for the
        amount due (or part of it), once nothing else is paying the invoice (rights checked).

        :return: the notification of the result
        """
        self.ensure_one()
        self._crm_check_payable()
        # No saved-card charge while a risk flag holds the customer's charges.
        self.partner_id._crm_check_charges_not_held(self.company_id)
        move = self.sudo()
        move._crm_lock_for_charge()
        # A charge of this invoice whose answer from Stripe was lost is settled first.
        settled = move._crm_settle_earlier_charges()
        if settled:
            return settled
        token = token or move.partner_id._crm_default_token(move.company_id)
        if not token:
            raise UserError(
                _(
                    "%(partner)s has no saved payment method. Send a payment link instead: the "
                    "customer can save their card while paying.",
                    partner=move.commercial_partner_id.display_name,
                )
            )
        # A pending charge or hosted-page payment is read again from Stripe, and a hosted page
        # still open is closed (applied if paid meanwhile): the customer never pays twice.
        for tx in move.transaction_ids.filtered(
            lambda tx: tx.crm_flow == "off_session" and tx.state == "pending" and tx.provider_reference
        ):
            tx._crm_apply_payment_intent(
                tx.provider_id._crm_stripe_call("retrieve_payment_intent", tx.provider_reference)
            )
        in_progress = move.transaction_ids.filtered(
            lambda tx: (
                tx.crm_flow in ("off_session", "checkout")
                and tx.state in ("pending", "authorized")
                or tx.crm_flow == "off_session"
                and tx.state == "draft"
            )
        )
        if in_progress:
            raise UserError(
                _(
                    "A payment of this invoice is already in progress (%(reference)s): wait for "
                    "it to finish, or cancel it from the transaction (Cancel Charge).",
                    reference=in_progress[0].reference,
                )
            )
        move.transaction_ids.filtered(lambda tx: tx.crm_flow == "checkout")._crm_expire_checkout_session()
        if move.currency_id.is_zero(move.amount_residual):
            return utils.notification(
                _("The customer paid %s on Stripe's page meanwhile.", move.name), title=_("Already paid")
            )
        if amount is not None and move.currency_id.compare_amounts(amount, move.amount_residual) > 0:
            raise UserError(
                _(
                    "%(invoice)s has only %(amount)s left to pay.",
                    invoice=move.name,
                    amount=format_amount(self.env, move.amount_residual, move.currency_id),
                )
            )
        tx = self.env["payment.transaction"]._crm_create(
            move.partner_id,
            move.amount_residual if amount is None else amount,
            move.currency_id,
            "off_session",
            invoices=move,
            token=token,
            lead=move.crm_lead_id,
            reason=reason,
        )
        tx._crm_charge_off_session()
        return tx._crm_notification_for_result()

    def action_crm_refund(self):
        """Open the refund wizard on the Stripe payments of this invoice."""
        self.ensure_one()
        self._crm_check_accounting_rights()
        self.check_access("write")
        return self.env["crm.payment.refund.wizard"]._crm_open_for(invoice=self)

    # === BUSINESS METHODS === #

    def _invoice_paid_hook(self):
        """An invoice paid by other means: its Stripe page is closed soon after, by a cron
        (not inside the reconciliation, which must not wait for Stripe)."""
        res = super()._invoice_paid_hook()
        if self.sudo().crm_payment_tx_id.filtered(lambda tx: tx.state == "draft"):
            self.env.ref("crm_payment_integration.ir_cron_crm_close_paid_pages")._trigger()
        return res

    @api.model
    def _cron_close_paid_pages(self, budget=None):
        """Expire the Stripe pages still open for invoices paid by other means, committed in
        batches within the run's share of Odoo's worker limits (the next run goes on).

        :param TimeBudget budget: when to stop; by default the share of Odoo's limits
        """
        txs = (
            self.env["payment.transaction"]
            .sudo()
            .search(
                [
                    ("crm_flow", "=", "checkout"),
                    ("state", "=", "draft"),
                    ("crm_checkout_session_id", "!=", False),
                    ("invoice_ids.payment_state", "in", ("paid", "in_payment")),
                ]
            )
        )
        for tx in iter_batches(
            txs,
            budget or TimeBudget.for_run(self.env, config),
            self.env.ref("crm_payment_integration.ir_cron_crm_close_paid_pages"),
            batch_size=50,
            commit=not getattr(threading.current_thread(), "testing", False),
        ):
            invoices = tx.invoice_ids
            if not invoices or not all(inv.currency_id.is_zero(inv.amount_residual) for inv in invoices):
                continue
            try:
                with self.env.cr.savepoint():
                    tx._crm_expire_checkout_session()
            except UserError as error:  # Stripe unreachable: retried at the next run
                _logger.warning("could not close the Stripe page of %s: %s", tx.reference, error)

    def _crm_lock_for_charge(self):
        """Hold the invoices until this request ends; a second click at once is told so."""
        utils.lock_nowait(
            self,
            _(
                "A charge of %(invoice)s is already in progress (a second click, another user): "
                "wait a moment, then look at the invoice's payments before charging again.",
                invoice=", ".join(self.mapped("display_name")),
            ),
        )

    def _crm_settle_earlier_charges(self):
        """Settle the charges of these invoices whose answer from Stripe was lost.

        :return: a notification when one of them reached Stripe (nothing new must be charged
            before the user sees it), else ``None``
        :raise UserError: when Stripe cannot tell yet
        """
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider(self[:1].company_id)
        if not provider_sudo:
            return None
        found = (
            self.env["crm.stripe.request"]
            .sudo()
            ._crm_settle_earlier(provider_sudo, invoices=self, operation="payment_intent")
        )
        return found[-1:]._crm_notification_for_result(earlier=True) if found else None

    def _crm_check_accounting_rights(self):
        if not self.env.user.has_group("account.group_account_invoice"):
            raise UserError(
                _("Only billing users can charge or refund payments. Ask an accountant to do it.")
            )

    def _crm_check_payable(self):
        self.ensure_one()
        if self.move_type != "out_invoice":
            raise UserError(_("Only customer invoices can be paid with Stripe."))
        if self.crm_stripe_invoice_id:
            raise UserError(
                _(
                    "%(name)s mirrors Stripe Billing invoice %(stripe)s: Stripe collects it; "
                    "pay or charge it in Stripe.",
                    name=self.name,
                    stripe=self.crm_stripe_invoice_id,
                )
            )
        if self.state != "posted":
            raise UserError(
                _("Confirm %(invoice)s before asking for its payment.", invoice=self.display_name)
            )
        if self.currency_id.is_zero(self.amount_residual):
            raise UserError(_("%(invoice)s has nothing left to pay.", invoice=self.display_name))

    def _crm_send_payment_link(self, sender):
        """Email each invoice's lasting payment link to its customer (sudo, rights checked).

        :return: the invoices whose link was sent (not those paid meanwhile)
        """
        template = self.env.ref("crm_payment_integration.mail_template_crm_payment_link")
        sent = self.browse()
        for move in self:
            move._crm_check_payable()
            if not move.partner_id.email:
                raise UserError(
                    _(
                        "%(partner)s has no email address: add one to send the link.",
                        partner=move.partner_id.display_name,
                    )
                )
            move._crm_payment_link_tx()
            if move.currency_id.is_zero(move.amount_residual):
                move.message_post(body=_("Paid on Stripe meanwhile: no link sent."))
                continue
            template.send_mail(move.id, email_layout_xmlid="mail.mail_notification_light")
            move.message_post(
                body=_("Stripe payment link sent to %(email)s.", email=move.partner_id.email),
                author_id=sender.partner_id.id,
            )
            move.write(
                {
                    "crm_payment_link_sent_at": fields.Datetime.now(),
                    "crm_payment_link_sent_to": move.partner_id.email_formatted,
                }
            )
            sent |= move
        return sent

    def _crm_payment_link_tx(self, settled=False):
        """Return the transaction of the invoice's open hosted page, replacing it when the
        amount due changed or it can no longer be paid.

        :param bool settled: the caller settled the invoice's lost charges already
        :return: the transaction, sudo
        """
        self.ensure_one()
        self._crm_check_payable()
        # A charge of the invoice whose answer was lost may have been paid: a hosted page for
        # the amount due would have the customer pay a second time.
        in_progress = self._crm_charge_in_progress(settle=not settled)
        if self.currency_id.is_zero(self.amount_residual):
            return self.transaction_ids.filtered(lambda tx: tx.state == "done")[-1:] or self.crm_payment_tx_id
        if in_progress:
            raise UserError(
                _(
                    "A charge of %(invoice)s is in progress (%(reference)s): no payment link is "
                    "opened until it ends. Look at its result before asking the customer to pay.",
                    invoice=self.display_name,
                    reference=in_progress[0].reference,
                )
            )
        tx = self.crm_payment_tx_id
        if (
            tx
            and tx._crm_checkout_is_open()
            and self.currency_id.compare_amounts(tx.amount, self.amount_residual) == 0
        ):
            return tx
        if tx:
            tx._crm_expire_checkout_session()
            if self.currency_id.is_zero(self.amount_residual):
                return tx  # the closed page had been paid: nothing is left to ask for
        tx = self.env["payment.transaction"]._crm_create(
            self.partner_id,
            self.amount_residual,
            self.currency_id,
            "checkout",
            invoices=self,
            lead=self.crm_lead_id,
        )
        url = tx._crm_create_checkout_session(description=_("Invoice %s", self.name))
        self.write({"crm_payment_tx_id": tx.id, "crm_payment_url": url})
        return tx

    def _crm_charge_in_progress(self, settle=True):
        """Settle the invoice's charges whose answer from Stripe was lost (unless ``settle`` is
        false), then return its off-session charges still under way (draft, pending,
        authorized), sudo.

        :raise UserError: when Stripe cannot tell yet what became of an earlier charge
        """
        self.ensure_one()
        if settle:
            self._crm_settle_earlier_charges()
        return self.sudo().transaction_ids.filtered(
            lambda tx: tx.crm_flow == "off_session" and tx.state in ("draft", "pending", "authorized")
        )

    def _crm_portal_pay_url(self):
        """The customer's lasting link: it opens a current hosted page for the amount due."""
        self.ensure_one()
        token = self._portal_ensure_token()
        return f"{self.get_base_url()}/crm_payment/stripe/pay/{self.id}?access_token={token}"

    def _crm_portal_pays_with_stripe(self):
        """Whether the portal's way to pay this invoice is this add-on's hosted Stripe page: a
        customer invoice (not one Stripe Billing collects) of a company with a Stripe provider."""
        self.ensure_one()
        return bool(
            self.move_type == "out_invoice"
            and not self.crm_stripe_invoice_id
            and self.env["payment.provider"]._crm_get_stripe_provider(self.company_id)
        )

    # === STRIPE BILLING MIRROR === #

    def _has_to_be_paid(self):
        # One way to pay in the portal: Stripe Billing collects the invoices it mirrors, and
        # the hosted Stripe page takes the others of a company with a Stripe provider; Odoo's
        # payment form stays for the companies without one.
        return (
            not self.crm_stripe_invoice_id
            and not self._crm_portal_pays_with_stripe()
            and super()._has_to_be_paid()
        )

    @api.model
    def _crm_sync_stripe_invoice(self, provider_sudo, remote, cache=None):
        """Mirror a finalised Stripe Billing invoice as a posted Odoo invoice, paid as in Stripe.

        Drafts still change and are left until Stripe finalises them; invoices of nothing
        (a trial's first one) are not mirrored. Paid in Stripe, the invoice gets the payment
        (a transaction of the PaymentIntent, reconciled); voided, it is cancelled.

        :param dict remote: the Stripe Invoice object
        :return: a short result for the ledger
        """
        cache = {} if cache is None else cache
        status = remote.get("status")
        subscription_id = self._crm_stripe_invoice_subscription_id(remote)
        if not subscription_id:
            return Ignored(_("Not a subscription's invoice: not mirrored."))
        Move = self.sudo()
        move = Move.search([("crm_stripe_invoice_id", "=", remote["id"])], limit=1)
        if not move:
            if status not in const.MIRRORED_INVOICE_STATUSES or status == "void":
                return Ignored(_("Invoice %(status)s in Stripe: mirrored once finalised.", status=status))
            if not remote.get("total"):
                return Ignored(_("Invoice of nothing: not mirrored."))
            Subscription = self.env["crm.subscription"].sudo()
            subscription = Subscription.search(
                [
                    ("stripe_provider_id", "=", provider_sudo.id),
                    ("stripe_subscription_id", "=", subscription_id),
                ],
                limit=1,
            )
            if not subscription:
                remote_subscription = provider_sudo._crm_stripe_call("retrieve_subscription", subscription_id)
                subscription = remote_subscription and Subscription._crm_sync_stripe_subscription(
                    provider_sudo, remote_subscription, cache
                )
            if not subscription:
                return Ignored(_("The invoice's subscription or customer is unknown to Stripe."))
            move = Move._crm_create_stripe_invoice_move(provider_sudo, subscription, remote, cache)
        if status == "void":
            return move._crm_void_stripe_invoice()
        if status == "paid":
            return move._crm_apply_stripe_invoice_payment(provider_sudo, remote)
        if status == "uncollectible" and move.payment_state == "not_paid":
            move.message_post(body=_("Marked uncollectible in Stripe."))
        return _("Invoice %(name)s is %(status)s in Stripe.", name=move.name, status=status)

    @api.model
    def _crm_stripe_invoice_subscription_id(self, remote):
        """The id of a Stripe invoice's subscription: ``subscription`` before API 2025-03-31,
        ``parent.subscription_details.subscription`` since."""
        return utils.stripe_id(remote.get("subscription")) or utils.stripe_id(
            ((remote.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        )

    @api.model
    def _crm_stripe_invoice_refusal(self, provider_sudo, remote):
        """Say why the webhook must not mirror a Stripe invoice (from the event, without asking
        Stripe): not a subscription's, or its subscription is not mirrored per the provider's
        Stripe Billing setting.

        :param dict remote: the Stripe Invoice, as the event has it
        :return: the reason, or ``False`` when it is mirrored
        :rtype: Ignored | bool
        """
        subscription_id = self._crm_stripe_invoice_subscription_id(remote)
        if subscription_id or provider_sudo.crm_billing_mirror == "none":
            return self.env["crm.subscription"]._crm_stripe_mirror_refusal(
                provider_sudo, subscription_id, remote.get("customer")
            )
        return Ignored(_("Not a subscription's invoice: not mirrored."))

    def _crm_notify_stripe_payment_needed(self, remote, reason):
        """Tell the customer and the salesperson that the payment of a mirrored Stripe Billing
        invoice needs the customer: the customer gets one email per payment attempt with
        Stripe's hosted invoice page (to confirm with their bank or pay with another card), the
        subscription's salesperson one activity per invoice.

        Stripe's retries of an event, and the ``invoice.payment_failed`` that follows
        ``invoice.payment_action_required`` for the same attempt, tell no one twice: the attempt
        told is kept on the invoice, whose row is locked while deciding.

        :param dict remote: the Stripe Invoice, as Stripe has it now
        :param str reason: ``action`` (authentication), ``failed`` or ``unpaid``
        :return: what was done, or an empty string when there was nothing to tell
        """
        self.ensure_one()
        move = self.sudo()
        if remote.get("status") != "open" or move.state != "posted" or move.payment_state != "not_paid":
            return ""
        attempt = remote.get("attempt_count") or 1
        move.flush_recordset(["crm_stripe_notified_attempt"])
        try:
            with mute_logger("odoo.sql_db"):
                self.env.cr.execute(
                    "SELECT crm_stripe_notified_attempt FROM account_move WHERE id = %s FOR UPDATE",
                    [move.id],
                )
        except psycopg2.errors.SerializationFailure as error:
            raise UserError(
                _("Another worker is telling the customer about %s: retried.", move.name)
            ) from error
        told = self.env.cr.fetchone()[0] or 0
        if told >= attempt:
            return ""
        url = remote.get("hosted_invoice_url") or move.crm_stripe_hosted_invoice_url
        move.write({"crm_stripe_notified_attempt": attempt, "crm_stripe_hosted_invoice_url": url or False})
        subscription = move.crm_subscription_id
        done = []
        customer = move.partner_id
        if url and customer.email:
            template = self.env.ref("crm_payment_integration.mail_template_crm_stripe_payment_needed")
            template.with_context(crm_stripe_reason=reason).send_mail(
                move.id, email_layout_xmlid="mail.mail_notification_light"
            )
            move.message_post(
                body=_(
                    "%(customer)s was asked to complete the payment on Stripe's invoice page.",
                    customer=customer.email,
                )
            )
            done.append(_("Customer asked to complete the payment."))
        if not told and subscription:
            subscription.activity_schedule(
                "mail.mail_activity_data_todo",
                user_id=(subscription.user_id or subscription.stripe_provider_id._crm_alert_user()).id,
                summary=_("Stripe Billing payment of %s needs the customer", move.name),
                note=self._crm_payment_needed_note(customer, url, reason),
            )
            done.append(_("Salesperson told."))
        return " ".join(done)

    def _crm_payment_needed_note(self, customer, url, reason):
        why = {
            "action": _("their bank asks them to authenticate the payment"),
            "failed": _("the payment failed"),
        }.get(reason, _("the payment was not collected"))
        if url and customer.email:
            sent = _("They were sent Stripe's invoice page to complete it.")
        elif url:
            sent = _("They have no email address: send them Stripe's invoice page %s.", url)
        else:
            sent = _("Stripe gave no invoice page: ask them to pay it in Stripe.")
        return _(
            "%(invoice)s (%(amount)s) of %(customer)s is unpaid in Stripe Billing: %(why)s. %(sent)s",
            invoice=self.name,
            amount=format_amount(self.env, self.amount_residual, self.currency_id),
            customer=customer.display_name,
            why=why,
            sent=sent,
        )

    @api.model
    def _crm_create_stripe_invoice_move(self, provider_sudo, subscription, remote, cache):
        """Create and post the Odoo invoice (a credit note for a negative total) of a Stripe
        invoice: its lines net of discounts, with the company's taxes of the same rates, the
        service period of its subscription lines, and what it owes equal to Stripe's total."""
        currency = (
            self.env["res.currency"]
            .with_context(active_test=False)
            .search([("name", "=", (remote.get("currency") or "").upper())], limit=1)
        )
        if not currency:
            raise UserError(_("Stripe invoice %(id)s is in an unknown currency.", id=remote["id"]))
        lines = remote.get("lines") or {}
        items = lines.get("data") or []
        if lines.get("has_more"):
            items = provider_sudo._crm_stripe_call("list_invoice_lines", remote["id"])
        company = provider_sudo.company_id
        total = payment_utils.to_major_currency_units(remote.get("total") or 0, currency)
        sign = -1 if total < 0 else 1
        invoice_lines, periods = [], []
        for item in items:
            minor = (item.get("amount") or 0) - sum(
                d.get("amount") or 0 for d in item.get("discount_amounts") or []
            )
            amount = sign * payment_utils.to_major_currency_units(minor, currency)
            quantity = item.get("quantity") or 1
            price_unit = amount / quantity
            if not currency.is_zero(currency.round(price_unit) * quantity - amount):
                quantity, price_unit = 1, amount
            price = (
                self.env["crm.subscription"]._crm_stripe_price(item)
                if (item.get("price") or item.get("plan"))
                else {}
            )
            price_details = (item.get("pricing") or {}).get("price_details") or {}
            if not price and price_details.get("product"):  # since API 2025-03-31
                price = {"product": price_details["product"]}
            product = (
                self.env["product.product"]._crm_from_stripe(provider_sudo, price, cache) if price else None
            )
            period = item.get("period") or {}
            name = item.get("description") or (product and product.name) or _("Stripe invoice line")
            if period.get("start") and period.get("end"):
                if self._crm_stripe_line_is_service(item):
                    periods.append((period["start"], period["end"]))
                name = _(
                    "%(name)s (%(start)s to %(end)s)",
                    name=name,
                    start=utils.stripe_date(period["start"]),
                    end=utils.stripe_date(period["end"]) - relativedelta(days=1),
                )
            invoice_lines.append(
                {
                    "product_id": product.id if product else False,
                    "name": name,
                    "quantity": quantity,
                    "price_unit": price_unit,
                    "tax_ids": [(6, 0, self._crm_stripe_taxes(provider_sudo, item, company, cache).ids)],
                }
            )
        # The lines' periods are the service period (the invoice's own period_start/end is the
        # period before, for usage billed in arrears).
        period_start = (
            utils.stripe_date(min(start for start, __ in periods))
            if periods
            else utils.stripe_date(remote.get("period_start"))
        )
        period_end = (
            utils.stripe_date(max(end for __, end in periods))
            if periods
            else utils.stripe_date(remote.get("period_end"))
        )
        move = self.with_company(company).create(
            {
                "move_type": "out_refund" if sign < 0 else "out_invoice",
                "partner_id": subscription.partner_id.id,
                "currency_id": currency.id,
                "invoice_date": utils.stripe_date(remote.get("created") or remote.get("date")),
                "invoice_origin": subscription.name,
                "invoice_user_id": subscription.user_id.id,
                "ref": remote.get("number") or remote["id"],
                "crm_subscription_id": subscription.id,
                "crm_stripe_invoice_id": remote["id"],
                "crm_period_start": period_start,
                "crm_period_end": period_end and period_end - relativedelta(days=1),
                "invoice_line_ids": [(0, 0, values) for values in invoice_lines],
            }
        )
        difference = currency.round(abs(total) - move.amount_total)
        if not currency.is_zero(difference):
            # Taxes Stripe computed that no Odoo tax of the company matches: the invoice owes
            # what Stripe asks for, so that its payment settles it exactly.
            move.invoice_line_ids = [
                (0, 0, {"name": _("Taxes computed by Stripe"), "quantity": 1, "price_unit": difference})
            ]
        move.action_post()
        from_balance = (remote.get("total") or 0) - (remote.get("amount_due") or 0)
        if sign > 0 and from_balance > 0:
            move.message_post(
                body=_(
                    "%(amount)s of this invoice was paid from the customer's balance in Stripe: "
                    "reconcile it with their credit here.",
                    amount=format_amount(
                        self.env, payment_utils.to_major_currency_units(from_balance, currency), currency
                    ),
                )
            )
        return move

    @api.model
    def _crm_stripe_line_is_service(self, item):
        """Whether an invoice line bills its subscription's current period (not a proration of
        a change, nor a one-off item)."""
        parent = item.get("parent") or {}
        if parent:  # since API 2025-03-31
            details = parent.get("subscription_item_details") or {}
            return parent.get("type") == "subscription_item_details" and not details.get("proration")
        return item.get("type") == "subscription" and not item.get("proration")

    @api.model
    def _crm_stripe_taxes(self, provider_sudo, item, company, cache):
        """The company's sale taxes of the same rates as the Stripe line's: ``tax_rates``
        (objects) before API 2025-03-31, ``taxes[].tax_rate_details`` (ids) since."""
        rates = [rate for rate in item.get("tax_rates") or [] if isinstance(rate, dict)]
        for tax in item.get("taxes") or []:
            rate = (tax.get("tax_rate_details") or {}).get("tax_rate")
            if isinstance(rate, str):
                key = ("tax_rate", rate)
                if key not in cache:
                    cache[key] = provider_sudo._crm_stripe_call("retrieve_tax_rate", rate)
                rate = cache[key]
            if isinstance(rate, dict):
                rates.append(rate)
        taxes = self.env["account.tax"]
        for rate in rates:
            if rate.get("percentage") is None:
                continue
            taxes |= (
                self.env["account.tax"]
                .sudo()
                .search(
                    [
                        ("company_id", "=", company.id),
                        ("type_tax_use", "=", "sale"),
                        ("amount_type", "=", "percent"),
                        ("amount", "=", float(rate["percentage"])),
                        ("price_include", "=", bool(rate.get("inclusive"))),
                    ],
                    limit=1,
                )
            )
        return taxes

    def _crm_void_stripe_invoice(self):
        self.ensure_one()
        if self.state == "cancel":
            return _("Already cancelled.")
        if self.payment_state not in ("not_paid",):
            self.message_post(body=_("Voided in Stripe, but a payment is reconciled with it here: check it."))
            return _("Voided in Stripe; paid here: left for review.")
        self.button_draft()
        self.button_cancel()
        self.message_post(body=_("Voided in Stripe."))
        return _("Invoice %s cancelled.", self.name)

    def _crm_apply_stripe_invoice_payment(self, provider_sudo, remote):
        """Record the payment of an invoice Stripe says is paid, through its PaymentIntent."""
        self.ensure_one()
        if self.payment_state in ("paid", "in_payment", "reversed"):
            return _("Already paid.")
        intent_id = utils.stripe_id(remote.get("payment_intent"))
        if not intent_id:  # since API 2025-03-31, among the invoice's payments
            payments = (remote.get("payments") or {}).get("data") or provider_sudo._crm_stripe_call(
                "list_invoice_payments", remote["id"]
            )
            for payment in payments:
                if (payment.get("payment") or {}).get("type") == "payment_intent" and payment.get(
                    "status"
                ) == "paid":
                    intent_id = utils.stripe_id(payment["payment"].get("payment_intent"))
        if not intent_id:
            self.message_post(
                body=_(
                    "Paid in Stripe without a card payment (credit balance or paid outside Stripe): "
                    "record how."
                )
            )
            return _("Paid without a PaymentIntent: left to a person.")
        intent = provider_sudo._crm_stripe_call("retrieve_payment_intent", intent_id)
        Transaction = self.env["payment.transaction"].sudo()
        tx = Transaction._crm_find_from_object(provider_sudo, intent)
        if tx and not tx.crm_flow:
            return _("A payment of Odoo's own Stripe flow: left to it.")
        if not tx:
            tx = Transaction._crm_create_from_intent(provider_sudo, intent)
            if not tx:
                return _("No partner is linked to this payment's customer.")
        if self not in tx.invoice_ids:
            tx.invoice_ids = [(4, self.id)]
            if tx.payment_id.state in ("in_process", "paid"):
                tx._crm_reconcile_with(self)
                return _("Payment %s reconciled with the invoice.", tx.reference)
        return tx._crm_apply_payment_intent(intent)

    # === DISPUTES === #

    crm_dispute_count = fields.Integer(
        string="Disputes",
        compute="_compute_crm_dispute_count",
        groups="sales_team.group_sale_salesman,account.group_account_invoice",
    )

    def _compute_crm_dispute_count(self):
        counts = dict(
            self.env["crm.payment.dispute"]._read_group(
                [("invoice_id", "in", self.ids)], ["invoice_id"], ["__count"]
            )
        )
        for move in self:
            move.crm_dispute_count = counts.get(move, 0)
