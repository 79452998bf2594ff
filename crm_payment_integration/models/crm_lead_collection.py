from odoo import fields, models


class CrmLead(models.Model):  # pylint: disable=consider-merging-classes-inherited
    _inherit = "crm.lead"

    crm_credit_hold = fields.Boolean(
        related="partner_id.crm_credit_hold",
        string="Customer on Credit Hold",
        help="The customer's overdue invoices are above the company's threshold: a new sale "
        "needs a manager's approval.",
    )
