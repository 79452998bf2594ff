from odoo import _, fields, models
from odoo.exceptions import UserError


class SaleOrder(models.Model):
    _inherit = "sale.order"

    crm_credit_hold = fields.Boolean(
        related="partner_id.crm_credit_hold",
        string="Customer on Credit Hold",
        help="The customer's overdue invoices are above the company's threshold: confirming "
        "needs a manager's approval (Credit hold approval group).",
    )

    def action_confirm(self):
        """Override of `sale` to hold the sales of customers on credit hold: only a user of
        the approval group confirms them (the approval is logged on the order).

        :raise UserError: for a user without the approval group
        """
        # Decided on the invoices as they are now, not on what this request read before.
        self.partner_id.invalidate_recordset(["crm_credit_hold"])
        held = self.filtered(lambda order: order.with_company(order.company_id).partner_id.crm_credit_hold)
        if held:
            if not self.env.user.has_group("crm_payment_integration_sale.group_credit_hold_approver"):
                raise UserError(
                    _(
                        "%(customers)s on credit hold (overdue invoices above the company's "
                        "threshold): a sales manager must approve and confirm %(orders)s.",
                        customers=", ".join(held.partner_id.commercial_partner_id.mapped("display_name")),
                        orders=", ".join(held.mapped("name")),
                    )
                )
            for order in held:
                order.message_post(
                    body=_(
                        "Confirmed despite the customer's credit hold, approved by %s.", self.env.user.name
                    )
                )
        return super().action_confirm()
