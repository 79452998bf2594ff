{
    "name": "CRM Payments for Stripe – Sales credit hold",
    "summary": "Confirming a quotation of a customer on credit hold needs a manager's approval",
    "version": "18.0.1.0.0",
    "category": "Sales/Sales",
    "license": "LGPL-3",
    "author": "crm_payment_integration developers",
    "website": "https://example.com/crm_payment_integration",
    "depends": ["crm_payment_integration", "sale"],
    "data": [
        "security/crm_payment_sale_security.xml",
        "views/sale_order_views.xml",
    ],
    "auto_install": True,
    "installable": True,
}
