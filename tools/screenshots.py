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
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{URL}/web/login")
        page.fill("input[name=login]", "admin")
        page.fill("input[name=password]", "admin")
        page.click("button[type=submit]")
        page.wait_for_url("**/odoo**")

        page.goto(f"{URL}/odoo/action-crm_payment_integration.crm_payment_event_action")
        page.wait_for_selector(".o_list_view .o_data_row")
        page.screenshot(path=str(OUT / "stripe-events.png"))

        page.goto(f"{URL}/odoo/action-account.res_partner_action_customer")
        page.wait_for_selector(".o_kanban_record, .o_data_row")
        page.get_by_text("Deco Addict").first.click()
        page.get_by_role("tab", name="Stripe").click()
        page.wait_for_selector("[name=payment_token_ids]")
        page.screenshot(path=str(OUT / "partner-stripe-tab.png"))

        page.goto(f"{URL}/odoo/action-payment.action_payment_provider")
        page.get_by_text("Stripe").first.click()
        page.get_by_role("tab", name="CRM Payments").click()
        page.wait_for_selector("[name=crm_webhook_url]")
        page.screenshot(path=str(OUT / "provider-crm-payments.png"))
        browser.close()


if __name__ == "__main__":
    main()
