from odoo import fields, models


class ResCompany(models.Model):
    """The company's settings and state of the Insight figures: RFM cut points of the last
    recompute and the churn-risk weights (points, 0-100 in all, each signal adds to a
    subscriber's score)."""

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

    crm_churn_weight_failed = fields.Integer(
        string="Failed Payments Weight",
        default=25,
        help="Points when a payment of the customer failed in the last 90 days.",
    )
    crm_churn_weight_dunning = fields.Integer(
        string="Dunning Weight", default=25, help="Points when a subscription of the customer is past due."
    )
    crm_churn_weight_downgrade = fields.Integer(
        string="Downgrade Weight",
        default=15,
        help="Points when the customer's MRR contracted in the last 90 days.",
    )
    crm_churn_weight_cancel = fields.Integer(
        string="Cancel at Period End Weight",
        default=20,
        help="Points when a subscription of the customer ends at the end of its period.",
    )
    crm_churn_weight_card = fields.Integer(
        string="Card Expiring Weight",
        default=10,
        help="Points when the saved card of a running subscription expires before its next billing.",
    )
    crm_churn_weight_overdue = fields.Integer(
        string="Days Overdue Weight",
        default=20,
        help="Points for the customer's oldest overdue invoice, in proportion to its days overdue up "
        "to the days below (full weight from then on).",
    )
    crm_churn_overdue_days = fields.Integer(string="Days Overdue for Full Weight", default=60)
    crm_churn_risk_threshold = fields.Integer(
        string="At-risk Threshold",
        default=70,
        help="Customers whose churn risk reaches this score are 'At risk'.",
    )
