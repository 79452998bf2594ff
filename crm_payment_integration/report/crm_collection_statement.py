from odoo import api, fields, models
from odoo.exceptions import AccessError


class ReportCrmStatement(models.AbstractModel):
    """The values of the statement of account PDF: one statement per customer, for the period
    and company given in the report's data (default: previous month's first day to today, the
    current company)."""

    _name = "report.crm_payment_integration.report_crm_statement"
    _description = "Collections: statement of account"

    @api.model
    def _get_report_values(self, docids, data=None):
        """:raise UserError: without billing rights (the statement lists a customer's whole
        account with a pay-all link); AccessError: for a company not among the user's
        allowed companies or a customer they cannot read. The portal route and the emails
        render it as superuser, for the customer's own statement."""
        data = data or {}
        company = self.env["res.company"].browse(data.get("company_id")) or self.env.company
        partners = self.env["res.partner"].browse(docids)
        if not self.env.su:
            self.env["account.move"]._crm_check_accounting_rights()
            if company not in self.env.companies:
                raise AccessError(self.env._("You cannot read the statements of %s.", company.display_name))
            partners.check_access("read")
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
