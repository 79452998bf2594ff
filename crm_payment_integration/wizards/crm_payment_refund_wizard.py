from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_amount

from .. import utils


class CrmPaymentRefundWizard(models.TransientModel):
    """Refund all or part of a Stripe payment; a credit note is created and reconciled."""

    _name = "crm.payment.refund.wizard"
    _description = "Refund a Stripe Payment"

    invoice_id = fields.Many2one("account.move", readonly=True)
    transaction_id = fields.Many2one(
        "payment.transaction",
        string="Payment",
        required=True,
        domain="[('id', 'in', allowed_transaction_ids)]",
    )
    allowed_transaction_ids = fields.Many2many(
        "payment.transaction", compute="_compute_allowed_transaction_ids"
    )
    currency_id = fields.Many2one(related="transaction_id.currency_id")
    refundable_amount = fields.Monetary(compute="_compute_refundable_amount", string="Refundable")
    amount = fields.Monetary(string="Amount to Refund", compute="_compute_amount", store=True, readonly=False)

    @api.model
    def _crm_open_for(self, invoice=None, transaction=None):
        if transaction:
            transactions = transaction
        else:
            transactions = invoice.sudo().transaction_ids._crm_refundable()
        if not transactions:
            raise UserError(_("There is no Stripe payment left to refund here."))
        return {
            "type": "ir.actions.act_window",
            "name": _("Refund"),
            "res_model": self._name,
            "view_mode": "form",
            "target": "new",
            "context": {
                "default_invoice_id": invoice.id if invoice else False,
                "default_transaction_id": transactions[:1].id,
            },
        }

    @api.depends("invoice_id", "transaction_id")
    def _compute_allowed_transaction_ids(self):
        for wizard in self:
            if wizard.invoice_id:
                wizard.allowed_transaction_ids = wizard.invoice_id.sudo().transaction_ids._crm_refundable()
            else:
                wizard.allowed_transaction_ids = wizard.transaction_id

    @api.depends("transaction_id")
    def _compute_refundable_amount(self):
        for wizard in self:
            wizard.refundable_amount = (
                wizard.transaction_id.sudo()._crm_refundable_amount() if wizard.transaction_id else 0.0
            )

    @api.depends("transaction_id")
    def _compute_amount(self):
        for wizard in self:
            wizard.amount = wizard.refundable_amount

    def action_refund(self):
        self.ensure_one()
        self.env["account.move"]._crm_check_accounting_rights()
        # The transaction comes from the client: it must be one the user may refund (rules and
        # companies) and one of the invoice's.
        self.transaction_id.check_access("write")
        self.invoice_id.check_access("write")
        if self.invoice_id:
            if self.transaction_id not in self.invoice_id.sudo().transaction_ids:
                raise UserError(_("This payment is not one of %s.", self.invoice_id.display_name))
        refund_tx = self.transaction_id.sudo()._crm_refund(self.amount)
        title = _("Refund sent") if refund_tx.state == "done" else _("Refund requested")
        return utils.notification(
            title=title,
            message=_(
                "%(amount)s refunded on %(reference)s (%(state)s).",
                amount=format_amount(self.env, self.amount, self.currency_id),
                reference=self.transaction_id.reference,
                state=refund_tx.state,
            ),
        )
