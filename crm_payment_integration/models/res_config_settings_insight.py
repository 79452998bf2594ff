from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"  # pylint: disable=consider-merging-classes-inherited

    crm_churn_weight_failed = fields.Integer(related="company_id.crm_churn_weight_failed", readonly=False)
    crm_churn_weight_dunning = fields.Integer(related="company_id.crm_churn_weight_dunning", readonly=False)
    crm_churn_weight_downgrade = fields.Integer(
        related="company_id.crm_churn_weight_downgrade", readonly=False
    )
    crm_churn_weight_cancel = fields.Integer(related="company_id.crm_churn_weight_cancel", readonly=False)
    crm_churn_weight_card = fields.Integer(related="company_id.crm_churn_weight_card", readonly=False)
    crm_churn_weight_overdue = fields.Integer(related="company_id.crm_churn_weight_overdue", readonly=False)
    crm_churn_overdue_days = fields.Integer(related="company_id.crm_churn_overdue_days", readonly=False)
    crm_churn_risk_threshold = fields.Integer(related="company_id.crm_churn_risk_threshold", readonly=False)
