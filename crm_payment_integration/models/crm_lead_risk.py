from odoo import api, fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"

    crm_risk_open_count = fields.Integer(
        string="Open Risk Flags", compute="_compute_crm_risk_open_count", compute_sudo=True
    )

    @api.depends("partner_id.commercial_partner_id")
    def _compute_crm_risk_open_count(self):
        for lead in self:
            lead.crm_risk_open_count = lead.partner_id.crm_risk_open_count if lead.partner_id else 0
