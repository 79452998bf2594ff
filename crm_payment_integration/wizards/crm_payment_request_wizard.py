from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_amount

from .. import utils


class CrmPaymentRequestWizard(models.TransientModel):
    """Ask the customer of an opportunity for a deposit or the full amount on Stripe."""

    _name = "crm.payment.request.wizard"
    _description = "Request a Payment for an Opportunity"

    lead_id = fields.Many2one("crm.lead", required=True, readonly=True)
    partner_id = fields.Many2one(
        "res.partner",
        precompute=True,
        string="Customer",
        required=True,
        compute="_compute_partner_id",
        store=True,
        readonly=False,
    )
    company_id = fields.Many2one(related="lead_id.company_id")
    currency_id = fields.Many2one(
        "res.currency",
        precompute=True,
        required=True,
        compute="_compute_currency_id",
        store=True,
        readonly=False,
    )
    request_type = fields.Selection(
        [("deposit", "Deposit"), ("full", "Full Amount")], required=True, default="deposit"
    )
    total_amount = fields.Monetary(
        string="Total",
        precompute=True,
        compute="_compute_total_amount",
        store=True,
        readonly=False,
        help="The amount of the deal; the expected revenue of the opportunity by default.",
    )
    deposit_percent = fields.Float(
        string="Deposit (%)", precompute=True, compute="_compute_deposit_percent", store=True, readonly=False
    )
    amount = fields.Monetary(
        string="Amount to Pay", precompute=True, compute="_compute_amount", store=True, readonly=False
    )
    description = fields.Char(
        compute="_compute_description",
        store=True,
        readonly=False,
        required=True,
        precompute=True,
    )
    send_email = fields.Boolean(string="Email the Payment Link", default=True)

    @api.depends("lead_id")
    def _compute_partner_id(self):
        for wizard in self:
            wizard.partner_id = wizard.lead_id.partner_id.commercial_partner_id

    @api.depends("lead_id")
    def _compute_currency_id(self):
        for wizard in self:
            wizard.currency_id = wizard.lead_id.company_currency or wizard.env.company.currency_id

    @api.depends("lead_id")
    def _compute_total_amount(self):
        for wizard in self:
            wizard.total_amount = wizard.lead_id.expected_revenue

    @api.depends("lead_id")
    def _compute_deposit_percent(self):
        for wizard in self:
            company = wizard.lead_id.company_id or wizard.env.company
            wizard.deposit_percent = company.crm_payment_deposit_percent

    @api.depends("request_type", "total_amount", "deposit_percent", "currency_id")
    def _compute_amount(self):
        for wizard in self:
            if wizard.request_type == "full":
                wizard.amount = wizard.total_amount
            else:
                wizard.amount = wizard.currency_id.round(wizard.total_amount * wizard.deposit_percent / 100)

    @api.depends("request_type", "lead_id", "deposit_percent")
    def _compute_description(self):
        for wizard in self:
            if wizard.request_type == "full":
                wizard.description = wizard.lead_id.name
            else:
                percent = f"{wizard.deposit_percent:g}"
                wizard.description = _(
                    "Down payment of %(percent)s%% on %(deal)s", percent=percent, deal=wizard.lead_id.name
                )

    def action_confirm(self):
        """Create and post the invoice (or down-payment invoice), link it to the opportunity and
        send its hosted-page link.

        Salespeople without accounting rights may do this: the invoice is created on their
        behalf, for the opportunity they can edit, and can only be paid.

        :return: the invoice's form for billing users, a notification for the others
        """
        self.ensure_one()
        lead = self.lead_id
        lead.check_access("write")
        self.partner_id.check_access("read")
        if not self.partner_id:
            raise UserError(_("Set the customer of the opportunity first."))
        if self.currency_id.compare_amounts(self.amount, 0.0) <= 0:
            raise UserError(_("The amount to pay must be positive."))
        if self.request_type == "deposit" and not 0 < self.deposit_percent <= 100:
            raise UserError(_("A deposit is between 0 and 100% of the total."))
        if (
            self.request_type == "deposit"
            and self.currency_id.compare_amounts(self.amount, self.total_amount) > 0
        ):
            raise UserError(_("A deposit cannot be more than the total amount."))
        self.env["payment.transaction"]._crm_check_amount_is_payable(self.amount, self.currency_id)
        invoice = (
            self.env["account.move"]
            .sudo()
            .with_company(lead.company_id or self.env.company)
            .create(
                {
                    "move_type": "out_invoice",
                    "partner_id": self.partner_id.id,
                    "currency_id": self.currency_id.id,
                    "invoice_user_id": (lead.user_id or self.env.user).id,
                    "crm_lead_id": lead.id,
                    "invoice_origin": lead.name,
                    "invoice_line_ids": [
                        (
                            0,
                            0,
                            {
                                "name": self.description,
                                "quantity": 1,
                                "price_unit": self.amount,
                                "tax_ids": [(6, 0, [])],
                            },
                        )
                    ],
                }
            )
        )
        invoice.action_post()
        if self.send_email:
            invoice._crm_send_payment_link(self.env.user)
        else:
            invoice._crm_payment_link_tx()
        lead.message_post(
            body=_(
                "Payment of %(amount)s requested: %(invoice)s.",
                amount=format_amount(self.env, self.amount, self.currency_id),
                invoice=invoice._get_html_link(),
            )
        )
        if self.env.user.has_group("account.group_account_invoice"):
            return {
                "type": "ir.actions.act_window",
                "res_model": "account.move",
                "res_id": invoice.id,
                "view_mode": "form",
                "views": [(False, "form")],
            }
        return utils.notification(
            _("%(invoice)s was created and its payment link sent to the customer.", invoice=invoice.name),
            title=_("Payment requested"),
        )
