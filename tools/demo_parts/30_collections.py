# Collections: customers at each reminder level, a promise to pay, a customer on credit hold,
# and Azure Interior (the portal customer) with overdue invoices to pay all at once.
# Runs in the demo's `odoo shell` after tools/demo_setup.py (env, company, partners in scope).
from datetime import date, timedelta  # noqa: E402


def _overdue_invoice(partner, amount, days, currency=None):
    due = date.today() - timedelta(days=days)
    move = env["account.move"].create(  # noqa: F821
        {
            "move_type": "out_invoice",
            "partner_id": partner.id,
            "invoice_date": due,
            "invoice_date_due": due,
            "currency_id": (currency or company.currency_id).id,  # noqa: F821
            "invoice_line_ids": [(0, 0, {"name": "Office furniture", "quantity": 1, "price_unit": amount})],
        }
    )
    move.action_post()
    return move


collection_customers = env["res.partner"]  # noqa: F821
for name, days in (("Gemini Furniture", 1), ("Ready Mat", 9), ("The Jackson Group", 17), ("Wood Corner", 35)):
    customer = env["res.partner"].create(  # noqa: F821
        {"name": name, "is_company": True, "email": name.lower().replace(" ", ".") + "@example.com"}
    )
    _overdue_invoice(customer, 400.0 + 100 * days, days)
    collection_customers |= customer
azure = partners[0]  # noqa: F821
_overdue_invoice(azure, 1250.0, 12)
_overdue_invoice(azure, 320.0, 3)
azure.crm_statement_monthly = True
promising = env["res.partner"].create(  # noqa: F821
    {"name": "Acme Promise Corp", "is_company": True, "email": "acme.promise@example.com"}
)
_overdue_invoice(promising, 2000.0, 20)
env["crm.collection.promise"].create(  # noqa: F821
    {
        "partner_id": promising.id,
        "date": date.today() + timedelta(days=7),
        "amount": 2000.0,
        "note": "Promised on the phone: paid after their customer pays them.",
    }
)
held = env["res.partner"].create(  # noqa: F821
    {"name": "Late Payer Ltd", "is_company": True, "email": "late.payer@example.com"}
)
_overdue_invoice(held, 6400.0, 48)
company.write({"crm_credit_hold_amount": 5000.0, "crm_credit_hold_days": 90})  # noqa: F821
env["crm.lead"].create(  # noqa: F821
    {
        "name": "Late Payer: new office wing",
        "type": "opportunity",
        "partner_id": held.id,
        "expected_revenue": 9000,
    }
)
made = env["crm.collection.reminder"]._cron_run()  # noqa: F821
env.cr.commit()  # noqa: F821
levels = {p.name: p.crm_collection_level for p in collection_customers | azure}
print(
    f"demo: collections: {made} reminders sent; levels {levels}; promise by {promising.name}; "
    f"{held.name} on credit hold: {held.crm_credit_hold}"
)
