from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_amount

from .. import utils


class CrmPaymentChargeWizard(models.TransientModel):
    """Charge a free amount to one of a partner's saved payment methods, with a reason."""

    _name = "crm.payment.charge.wizard"
    _description = "Charge a Saved Payment Method"

    invoice_id = fields.Many2one(
        "account.move",
        readonly=True,
        help="Charge part of this invoice: the payment is reconciled with it.",
    )
    partner_id = fields.Many2one(
        "res.partner",
        required=True,
        readonly=False,
        compute="_compute_partner_id",
        store=True,
        precompute=True,
    )
    token_id = fields.Many2one(
        "payment.token",
        precompute=True,
        string="Payment Method",
        required=True,
        compute="_compute_token_id",
        store=True,
        readonly=False,
        domain="[('id', 'in', allowed_token_ids)]",
    )
    allowed_token_ids = fields.Many2many("payment.token", compute="_compute_allowed_token_ids")
    currency_id = fields.Many2one(
        "res.currency",
        required=True,
        compute="_compute_currency_id",
        store=True,
        precompute=True,
        readonly=False,
    )
    amount = fields.Monetary(
        required=True, compute="_compute_amount", store=True, precompute=True, readonly=False
    )
    reason = fields.Char(
        required=True,
        compute="_compute_reason",
        store=True,
        precompute=True,
        readonly=False,
        help="Shown to the customer on their receipt.",
    )
    summary = fields.Char(compute="_compute_summary", help="What the button will do.")

    @api.depends("invoice_id")
    def _compute_partner_id(self):
        for wizard in self:
            wizard.partner_id = wizard.invoice_id.commercial_partner_id or wizard.partner_id

    @api.depends("invoice_id")
    def _compute_currency_id(self):
        for wizard in self:
            wizard.currency_id = (
                wizard.invoice_id.currency_id or wizard.currency_id or wizard.env.company.currency_id
            )

    @api.depends("invoice_id")
    def _compute_amount(self):
        for wizard in self:
            wizard.amount = wizard.invoice_id.amount_residual if wizard.invoice_id else wizard.amount

    @api.depends("invoice_id")
    def _compute_reason(self):
        for wizard in self:
            wizard.reason = _("Invoice %s", wizard.invoice_id.name) if wizard.invoice_id else wizard.reason

    @api.depends("amount", "currency_id", "token_id", "partner_id")
    def _compute_summary(self):
        for wizard in self:
            token = wizard.token_id.sudo()
            wizard.summary = (
                _(
                    "Charge %(amount)s to %(card)s of %(partner)s?",
                    amount=format_amount(wizard.env, wizard.amount, wizard.currency_id),
                    card=token._crm_label(),
                    partner=wizard.partner_id.display_name,
                )
                if token and wizard.currency_id
                else False
            )

    @api.depends("partner_id")
    def _compute_allowed_token_ids(self):
        for wizard in self:
            wizard.allowed_token_ids = wizard.partner_id._crm_tokens()

    @api.depends("partner_id")
    def _compute_token_id(self):
        for wizard in self:
            company = wizard.invoice_id.company_id or None
            wizard.token_id = wizard.partner_id._crm_tokens(company)[:1]

    @api.constrains("token_id", "partner_id")
    def _check_token_id(self):
        """The card charged is the paying customer's, whatever the client sent."""
        for wizard in self.sudo().filtered("token_id"):
            wizard.token_id._crm_check_owner(wizard.partner_id)

    def action_charge(self):
        self.ensure_one()
        self.env["account.move"]._crm_check_accounting_rights()
        # Rules and companies before any sudo work: the customer, the invoice (charged), the card.
        self.partner_id.check_access("read")
        self.invoice_id.check_access("write")
        # The card of the Stripe account that charges: the invoice's company's.
        if self.token_id not in self.partner_id._crm_tokens(self.invoice_id.company_id or None):
            raise UserError(_("This payment method does not belong to %s.", self.partner_id.display_name))
        invoice = self.invoice_id.sudo()
        if invoice:
            if invoice.commercial_partner_id != self.partner_id.commercial_partner_id:
                raise UserError(
                    _(
                        "%(invoice)s is not an invoice of %(partner)s.",
                        invoice=invoice.name,
                        partner=self.partner_id.display_name,
                    )
                )
            invoice._crm_check_payable()
            if invoice.currency_id != self.currency_id:
                raise UserError(
                    _(
                        "Charge %(invoice)s in its currency, %(currency)s.",
                        invoice=invoice.name,
                        currency=invoice.currency_id.name,
                    )
                )
            if invoice.currency_id.compare_amounts(self.amount, invoice.amount_residual) > 0:
                raise UserError(
                    _(
                        "%(invoice)s has only %(amount)s left to pay.",
                        invoice=invoice.name,
                        amount=format_amount(self.env, invoice.amount_residual, invoice.currency_id),
                    )
                )
            # The invoice's own checks: a charge or a hosted page already paying it first, a
            # charge whose answer from Stripe was lost settled first.
            return invoice._crm_charge_saved_method(
                token=self.token_id, amount=self.amount, reason=self.reason
            )
        partner_sudo = self.partner_id.commercial_partner_id.sudo()
        partner_sudo._crm_check_charges_not_held(self.token_id.provider_id.company_id)
        utils.lock_nowait(
            partner_sudo,
            _(
                "A charge of %(partner)s is already in progress (a second click, another user): "
                "wait a moment, then look at the customer's payments before charging again.",
                partner=partner_sudo.display_name,
            ),
        )
        found = (
            self.env["crm.stripe.request"]
            .sudo()
            ._crm_settle_earlier(
                self.token_id.provider_id.sudo(), partner=partner_sudo, operation="payment_intent"
            )
        )
        if found:
            return found[-1:]._crm_notification_for_result(earlier=True)
        tx = self.env["payment.transaction"]._crm_create(
            self.partner_id,
            self.amount,
            self.currency_id,
            "off_session",
            invoices=invoice,
            token=self.token_id,
            reason=self.reason,
            lead=invoice.crm_lead_id,
        )
        tx._crm_charge_off_session()
        return tx._crm_notification_for_result()
