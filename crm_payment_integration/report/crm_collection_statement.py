from odoo import api, fields, models


class ReportCrmStatement(models.AbstractModel):
    """The values of the statement of account PDF: one statement per customer, for the period
    and company given in the report's data (default: previous month's first day to today, the
    current company)."""

    _name = "report.crm_payment_integration.report_crm_statement"
    _description = "Collections: statement of account"

    @api.model
    def _get_report_values(self, docids, data=None):
        data = data or {}
        company = self.env["res.company"].browse(data.get("company_id")) or self.env.company
        partners = self.env["res.partner"].browse(docids)
        date_from, date_to = partners._crm_statement_period(data.get("date_from"), data.get("date_to"))
        return {
            "doc_ids": docids,
            "doc_model": "res.partner",
            "docs": partners,
            "company": company,
            "statements": {
                partner.id: partner._crm_statement(date_from, date_to, company) for partner in partners
            },
            "kinds": {
                "invoice": self.env._("Invoice"),
                "credit_note": self.env._("Credit note"),
                "payment": self.env._("Payment"),
                "other": self.env._("Other"),
            },
            "today": fields.Date.context_today(self),
        }
