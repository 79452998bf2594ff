from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"  # pylint: disable=consider-merging-classes-inherited

    crm_rfm_cuts = fields.Json(
        string="RFM Quintile Cut Points",
        readonly=True,
        copy=False,
        help="The quintile cut points of the last recompute of the customers' RFM scores "
        "({'r': [...], 'f': [...], 'm': [...]}, recency as minus days), used to score a customer "
        "who pays in between.",
    )
    crm_customer_value_date = fields.Date(string="Customer Figures Computed On", readonly=True, copy=False)
