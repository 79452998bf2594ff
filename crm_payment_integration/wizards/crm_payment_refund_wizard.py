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
    summary = fields.Char(compute="_compute_summary", help="What the button will do.")

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

    @api.depends("amount", "transaction_id")
    def _compute_summary(self):
        for wizard in self:
            tx = wizard.transaction_id.sudo()
            wizard.summary = (
                _(
                    "Refund %(amount)s of %(reference)s to %(partner)s (%(method)s)?",
                    amount=format_amount(wizard.env, wizard.amount, tx.currency_id),
                    reference=tx.reference,
                    partner=tx.partner_id.display_name,
                    method=tx.token_id._crm_label() if tx.token_id else tx.payment_method_id.name,
                )
                if tx
                else False
            )

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
        source_sudo = self.transaction_id.sudo()
        source_sudo._crm_lock_for_refund()  # before settling: two clicks settle nothing twice
        # A refund of this payment whose answer from Stripe was lost is settled first.
        found = (
            self.env["crm.stripe.request"]
            .sudo()
            ._crm_settle_earlier(
                source_sudo.provider_id, payment_intent=source_sudo.provider_reference, operation="refund"
            )
        )
        if found:
            return utils.notification(
                title=_("Earlier refund settled: nothing new refunded"),
                message=_(
                    "The earlier refund %(reference)s of %(amount)s, whose answer from Stripe had "
                    "been lost, reached Stripe and is now recorded (%(state)s). Nothing new was "
                    "refunded; open the refund again if more is to be refunded.",
                    reference=found[-1].reference,
                    amount=format_amount(self.env, -found[-1].amount, found[-1].currency_id),
                    state=found[-1].state,
                ),
                kind="warning",
                sticky=True,
            )
        refund_tx = source_sudo._crm_refund(self.amount)
        if refund_tx.crm_answer_unknown:
            return utils.notification(
                title=_("No answer from Stripe"),
                message=_(
                    "The refund of %(amount)s on %(reference)s was sent to Stripe but its answer was "
                    "lost. Odoo asks Stripe what became of it within minutes, and before any new "
                    "refund of this payment: do not refund it another way meanwhile.",
                    amount=format_amount(self.env, self.amount, self.currency_id),
                    reference=self.transaction_id.reference,
                ),
                kind="warning",
                sticky=True,
            )
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
