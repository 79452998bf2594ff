from odoo import fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"  # pylint: disable=consider-merging-classes-inherited

    crm_credit_hold = fields.Boolean(
        related="partner_id.crm_credit_hold",
        string="Customer on Credit Hold",
        help="The customer's overdue invoices are above the company's threshold: a new sale "
        "needs a manager's approval.",
    )
