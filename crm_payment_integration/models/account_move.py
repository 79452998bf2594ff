import logging

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from .. import utils

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
        string="Stripe Invoice", copy=False, readonly=True, help="The Stripe Billing invoice this invoice mirrors."
    )
    crm_stripe_paid_amount = fields.Monetary(
        string="Paid with Stripe", compute="_compute_crm_stripe_paid_amount"
    )

    def init(self):
        super().init()
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

    @api.depends("transaction_ids.state", "transaction_ids.amount")
    def _compute_crm_stripe_paid_amount(self):
        for move in self:
            txs = move.sudo().transaction_ids.filtered(
                lambda tx: tx.provider_code == "stripe" and tx.state == "done" and tx.currency_id == move.currency_id
            )
            move.crm_stripe_paid_amount = sum(txs.mapped("amount"))

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
        self.sudo()._crm_send_payment_link(self.env.user)
        return utils.notification(
            _("The customer received the link to pay %(count)s invoice(s) on Stripe.", count=len(self)),
            title=_("Payment link sent"),
        )

    def action_crm_charge_saved_method(self):
        """Charge the amount due to the customer's saved payment method, off-session.

        :return: a notification saying whether the charge was paid, declined or needs the
            customer to authenticate
        :raise UserError: without accounting rights, without saved method, or with a charge
            already in progress
        """
        self.ensure_one()
        self._crm_check_accounting_rights()
        self._crm_check_payable()
        move = self.sudo()
        token = move.partner_id._crm_default_token(move.company_id)
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
            lambda tx: tx.crm_flow in ("off_session", "checkout") and tx.state in ("pending", "authorized")
            or tx.crm_flow == "off_session" and tx.state == "draft"
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
        tx = self.env["payment.transaction"]._crm_create(
            move.partner_id, move.amount_residual, move.currency_id, "off_session",
            invoices=move, token=token, lead=move.crm_lead_id,
        )
        tx._crm_charge_off_session()
        return tx._crm_notification_for_result()

    def action_crm_refund(self):
        """Open the refund wizard on the Stripe payments of this invoice."""
        self.ensure_one()
        self._crm_check_accounting_rights()
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
    def _cron_close_paid_pages(self):
        """Expire the Stripe pages still open for invoices paid by other means."""
        txs = self.env["payment.transaction"].sudo().search(
            [
                ("crm_flow", "=", "checkout"),
                ("state", "=", "draft"),
                ("crm_checkout_session_id", "!=", False),
                ("invoice_ids.payment_state", "in", ("paid", "in_payment")),
            ]
        )
        for tx in txs:
            invoices = tx.invoice_ids
            if not invoices or not all(inv.currency_id.is_zero(inv.amount_residual) for inv in invoices):
                continue
            try:
                with self.env.cr.savepoint():
                    tx._crm_expire_checkout_session()
            except UserError as error:  # Stripe unreachable: retried at the next run
                _logger.warning("could not close the Stripe page of %s: %s", tx.reference, error)

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
            raise UserError(_(
                "%(name)s mirrors Stripe Billing invoice %(stripe)s: Stripe collects it; pay or charge it in Stripe.",
                name=self.name, stripe=self.crm_stripe_invoice_id,
            ))
        if self.state != "posted":
            raise UserError(_("Confirm %(invoice)s before asking for its payment.", invoice=self.display_name))
        if self.currency_id.is_zero(self.amount_residual):
            raise UserError(_("%(invoice)s has nothing left to pay.", invoice=self.display_name))

    def _crm_send_payment_link(self, sender):
        """Email each invoice's lasting payment link to its customer (sudo, rights checked)."""
        template = self.env.ref("crm_payment_integration.mail_template_crm_payment_link")
        for move in self:
            move._crm_check_payable()
            if not move.partner_id.email:
                raise UserError(
                    _("%(partner)s has no email address: add one to send the link.",
                      partner=move.partner_id.display_name)
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

    def _crm_payment_link_tx(self):
        """Return the transaction of the invoice's open hosted page, replacing it when the
        amount due changed or it can no longer be paid.

        :return: the transaction, sudo
        """
        self.ensure_one()
        self._crm_check_payable()
        tx = self.crm_payment_tx_id
        if tx and tx._crm_checkout_is_open() and self.currency_id.compare_amounts(tx.amount, self.amount_residual) == 0:
            return tx
        if tx:
            tx._crm_expire_checkout_session()
            if self.currency_id.is_zero(self.amount_residual):
                return tx  # the closed page had been paid: nothing is left to ask for
        tx = self.env["payment.transaction"]._crm_create(
            self.partner_id, self.amount_residual, self.currency_id, "checkout",
            invoices=self, lead=self.crm_lead_id,
        )
        url = tx._crm_create_checkout_session(description=_("Invoice %s", self.name))
        self.write({"crm_payment_tx_id": tx.id, "crm_payment_url": url})
        return tx

    def _crm_portal_pay_url(self):
        """The customer's lasting link: it opens a current hosted page for the amount due."""
        self.ensure_one()
        return f"{self.get_base_url()}/crm_payment/stripe/pay/{self.id}?access_token={self._portal_ensure_token()}"
