{
    "name": "CRM Payments for Stripe - Dashboard",
    "summary": "Insight dashboard of CRM Payments in Odoo's Dashboards app: MRR, net new MRR, NRR, "
    "payment success rate, collected, overdue, at-risk MRR",
    "version": "18.0.1.0.0",
    "category": "Hidden",
    "license": "LGPL-3",
    "author": "crm_payment_integration developers",
    "website": "https://example.com/crm_payment_integration",
    "depends": ["crm_payment_integration", "spreadsheet_dashboard"],
    "data": ["data/dashboards.xml"],
    "installable": True,
    "auto_install": True,
}
