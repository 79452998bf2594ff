from odoo import fields, models


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"  # pylint: disable=consider-merging-classes-inherited

    crm_collection_pay_all = fields.Boolean(
        string="Pays All Overdue Invoices",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="The hosted page of a customer's pay-all link (every overdue invoice in one currency).",
    )

    def _crm_send_mail(self, template_xmlid):
        """A charge declined during a reminder run is told to the customer by the reminder
        itself (with the link and the reason): no second email."""
        if self.env.context.get("crm_collection_reminder") and template_xmlid.endswith("payment_failed"):
            return
        return super()._crm_send_mail(template_xmlid)
