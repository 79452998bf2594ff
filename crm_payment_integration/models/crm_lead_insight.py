from odoo import fields, models


class CrmLead(models.Model):
    """The customer's value and subscriber figures, shown on the opportunity (read from the
    partner, in the opportunity's company)."""

    _inherit = "crm.lead"  # pylint: disable=consider-merging-classes-inherited

    crm_customer_id = fields.Many2one(
        "res.partner", related="partner_id.commercial_partner_id", string="Customer Account"
    )
    crm_customer_lifetime_value = fields.Float(
        related="partner_id.commercial_partner_id.crm_lifetime_value", string="Customer Lifetime Value"
    )
    crm_customer_average_transaction = fields.Float(
        related="partner_id.commercial_partner_id.crm_average_transaction",
        string="Customer Average Transaction",
    )
    crm_customer_last_payment_date = fields.Date(
        related="partner_id.commercial_partner_id.crm_last_payment_date", string="Customer Last Payment"
    )
    crm_customer_rfm_score = fields.Char(
        related="partner_id.commercial_partner_id.crm_rfm_score", string="RFM Score"
    )
    crm_customer_rfm_segment = fields.Selection(
        related="partner_id.commercial_partner_id.crm_rfm_segment", string="Customer Segment"
    )

    crm_partner_churn_risk = fields.Integer(
        string="Customer Churn Risk", compute="_compute_crm_partner_insight"
    )
    crm_partner_churn_risk_reasons = fields.Text(
        string="Customer Churn Risk Signals", compute="_compute_crm_partner_insight"
    )
    crm_partner_subscription_mrr = fields.Float(
        string="Customer MRR", compute="_compute_crm_partner_insight", digits="Account"
    )
    crm_partner_predicted_ltv = fields.Float(
        string="Customer Predicted LTV", compute="_compute_crm_partner_insight", digits="Account"
    )

    def _compute_crm_partner_insight(self):
        for lead in self:
            partner = lead.partner_id.commercial_partner_id.with_company(lead.company_id or self.env.company)
            lead.crm_partner_churn_risk = partner.crm_churn_risk
            lead.crm_partner_churn_risk_reasons = partner.crm_churn_risk_reasons
            lead.crm_partner_subscription_mrr = partner.crm_subscription_mrr
            lead.crm_partner_predicted_ltv = partner.crm_predicted_ltv
