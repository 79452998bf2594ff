{
    "name": "CRM Payments benchmark timing",
    "summary": "Benchmarks only: times every Stripe call of the add-on's gateway in each Odoo process.",
    "version": "18.0.1.0.0",
    "license": "LGPL-3",
    "depends": ["base"],
    "post_load": "post_load",
    "installable": True,
}
