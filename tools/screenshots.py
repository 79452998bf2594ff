"""Take the README's screenshots from a running demo (tools/demo.sh). Optional: needs the
`playwright` package and Debian's chromium.

Usage: python3 tools/screenshots.py [ODOO_URL]
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8069"
OUT = Path(__file__).resolve().parents[1] / "docs"


def main():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{URL}/web/login")
        page.fill("input[name=login]", "admin")
        page.fill("input[name=password]", "admin")
        page.click("button[type=submit]")
        page.wait_for_url("**/odoo**")

        page.goto(f"{URL}/odoo/action-crm_payment_integration.crm_payment_event_action")
        page.wait_for_selector(".o_list_renderer")
        if page.locator(".o_data_row").count():  # events arrive once customers change in Stripe
            page.screenshot(path=str(OUT / "stripe-events.png"))

        page.goto(f"{URL}/odoo/action-account.res_partner_action_customer")
        page.wait_for_selector(".o_kanban_record, .o_data_row")
        page.get_by_text("Azure Interior").first.click()
        page.get_by_role("tab", name="Stripe").click()
        page.wait_for_selector("[name=crm_payment_transaction_ids] .o_data_row")
        page.wait_for_timeout(800)
        page.screenshot(path=str(OUT / "partner-stripe-tab.png"), full_page=True)

        page.goto(f"{URL}/odoo/action-account.action_move_out_invoice_type")
        page.get_by_text("Deco Addict").first.click()
        page.wait_for_selector("button[name=action_crm_send_payment_link]")
        page.screenshot(path=str(OUT / "invoice-payment-buttons.png"))

        page.goto(f"{URL}/odoo/crm")
        page.get_by_text("Furniture for 12 desks").first.click()
        page.click("button[name=action_crm_request_payment]")
        page.wait_for_selector(".modal div[name=amount]")
        page.screenshot(path=str(OUT / "opportunity-request-payment.png"))

        page.goto(f"{URL}/odoo/action-payment.action_payment_provider")
        page.get_by_text("Stripe").first.click()
        page.get_by_role("tab", name="CRM Payments").click()
        page.wait_for_selector("[name=crm_webhook_url]")
        page.screenshot(path=str(OUT / "provider-crm-payments.png"))
        page.goto(f"{URL}/odoo/action-crm_payment_integration.crm_subscription_action")
        page.wait_for_selector(".o_list_view .o_data_row")
        page.locator(".o_facet_remove").first.click()  # every state, not only the running ones
        page.wait_for_timeout(800)
        page.screenshot(path=str(OUT / "subscriptions.png"))
        page.get_by_text("Gemini Furniture").first.click()  # mirrored from Stripe Billing
        page.wait_for_selector("field[name=stripe_subscription_id], [name=stripe_subscription_id]")
        page.wait_for_timeout(500)
        page.screenshot(path=str(OUT / "subscription-stripe-billing.png"))

        # The customer's side: the invoice in the portal, with its Stripe button.
        portal = browser.new_page(viewport={"width": 1200, "height": 800})
        portal.goto(f"{URL}/web/login")
        portal.fill("input[name=login]", "portal")
        portal.fill("input[name=password]", "portal")
        portal.click("button[type=submit]")
        portal.goto(f"{URL}/my/invoices")
        # an invoice still due: the row with its Stripe button
        portal.locator("tr:has(a.o_crm_payment_pay_stripe_list) a").first.click()
        portal.wait_for_selector("a.o_crm_payment_pay_stripe")
        portal.screenshot(path=str(OUT / "portal-invoice-pay.png"))
        # Their subscription from the pausable plan: next charge, invoices, payments, pause.
        portal.goto(f"{URL}/my/subscriptions")
        portal.locator("tr:has-text('Active') a").first.click()
        portal.wait_for_selector(".o_crm_subscription_page")
        portal.screenshot(path=str(OUT / "portal-subscription.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
