import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from lxml import html

import odoo
from odoo.tests import HttpCase, new_test_user, tagged

from .common import CrmPaymentCommon

ADDON_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = ADDON_DIR.parent


def _has_class(name):
    """XPath predicate: the element has this class (not merely one that starts with it)."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def _texts(page, xpath):
    """The text of each element matched in an HTML page, whitespace collapsed."""
    return [" ".join(node.text_content().split()) for node in html.fromstring(page.text).xpath(xpath)]


@tagged("post_install", "-at_install")
class TestPortalUx(CrmPaymentCommon, HttpCase):
    """What a customer sees in the portal, page by page, as the portal user sees it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("account_payment.enable_portal_payment", "True")
        product = cls.env["product.product"].create({"name": "Hosting", "type": "service"})
        cls.subscription = cls.env["crm.subscription"].create(
            {
                "partner_id": cls.partner.id,
                "start_date": date(2027, 1, 15),
                "line_ids": [(0, 0, {"product_id": product.id, "price_unit": 98.0})],
            }
        )
        cls.subscription.action_start()
        new_test_user(cls.env, login="crm_portal_ux", groups="base.group_portal", partner_id=cls.contact.id)

    def setUp(self):
        super().setUp()
        self.authenticate("crm_portal_ux", "crm_portal_ux")

    def _subscription_page(self):
        page = self.url_open(f"/my/subscriptions/{self.subscription.id}")
        self.assertEqual(page.status_code, 200)
        return page

    def test_subscription_breadcrumb(self):
        invoice = self._crm_invoice(98.0, crm_subscription_id=self.subscription.id)
        page = self._subscription_page()
        self.assertIn(invoice.name, page.text)  # listed among its invoices
        crumbs = _texts(page, "//ol[contains(@class, 'o_portal_submenu')]/li")
        self.assertEqual(crumbs, ["", "Subscriptions", self.subscription.name])
        links = html.fromstring(page.text).xpath("//ol[contains(@class, 'o_portal_submenu')]//a/@href")
        self.assertEqual(links, ["/my/home", "/my/subscriptions"])
        listing = self.url_open("/my/subscriptions")
        self.assertEqual(
            _texts(listing, "//ol[contains(@class, 'o_portal_submenu')]/li"), ["", "Subscriptions"]
        )

    def test_next_charge_only_when_one_is_scheduled(self):
        sub = self.subscription
        page = self._subscription_page()
        self.assertEqual(
            _texts(page, "//p[contains(@class, 'o_crm_subscription_next_charge')]"),
            ["Next charge: $ 98.00 (before taxes) on 01/15/2027. Change payment method"],
        )
        sub.action_pause()
        page = self._subscription_page()
        self.assertNotIn("Next charge", page.text)
        self.assertNotIn("98.00 (before taxes)", page.text)
        self.assertEqual(
            _texts(page, "//div[contains(@class, 'o_crm_subscription_no_charge')]"),
            ["Paused: nothing is charged until you resume it."],
        )
        listing = self.url_open("/my/subscriptions")
        self.assertEqual(_texts(listing, "//tr[contains(@class, 'o_crm_subscription_row')]/td[3]"), ["None"])
        # Past due: the unpaid invoice is charged again on the retry day, no new period.
        invoice = self._crm_invoice(98.0, crm_subscription_id=sub.id)
        sub.write({"state": "past_due", "dunning_attempts": 1, "dunning_next_date": date(2027, 1, 18)})
        page = self._subscription_page()
        self.assertNotIn("Next charge", page.text)
        [notice] = _texts(page, "//div[contains(@class, 'o_crm_subscription_no_charge')]")
        self.assertIn("We will try again on 01/18/2027", notice)
        self.assertIn("Amount due: $ 98.00", notice)
        # Past due with nothing scheduled (a card that cannot succeed): the customer must act.
        sub.dunning_next_date = False
        [notice] = _texts(
            self._subscription_page(), "//div[contains(@class, 'o_crm_subscription_no_charge')]"
        )
        self.assertIn("no new attempt is scheduled", notice)
        self.assertIn("add another payment method", notice)
        # Paused for want of payment, cancelled, expired, ending: nothing more is charged.
        sub.write({"state": "paused", "dunning_next_date": False, "dunning_attempts": 4})
        [notice] = _texts(
            self._subscription_page(), "//div[contains(@class, 'o_crm_subscription_no_charge')]"
        )
        self.assertIn("Paused because its payments failed", notice)
        invoice.button_draft()
        invoice.button_cancel()
        sub.write({"state": "cancelled", "dunning_attempts": 0, "next_invoice_date": False})
        self.assertEqual(
            _texts(self._subscription_page(), "//div[contains(@class, 'o_crm_subscription_no_charge')]"),
            ["Cancelled: nothing more is charged."],
        )
        sub.write({"state": "expired", "end_date": date(2027, 2, 14), "next_invoice_date": date(2027, 2, 15)})
        page = self._subscription_page()
        self.assertNotIn("Next charge", page.text)
        self.assertEqual(
            _texts(page, "//div[contains(@class, 'o_crm_subscription_no_charge')]"),
            ["Ended on 02/14/2027: nothing more is charged."],
        )
        sub.write({"state": "active", "end_date": date(2027, 2, 14), "end_by_cancellation": True})
        page = self._subscription_page()
        self.assertNotIn("Next charge", page.text)
        self.assertEqual(
            _texts(page, "//div[contains(@class, 'o_crm_subscription_no_charge')]"),
            ["No renewal: it ends on 02/14/2027 and nothing more is charged."],
        )

    def _payment_method_tiles(self):
        home = self.url_open("/my")
        self.assertEqual(home.status_code, 200)
        return html.fromstring(home.text).xpath("//a[@href='/my/payment_method']")

    def test_one_payment_methods_tile(self):
        self._crm_save_card()  # Odoo's tile shows when the customer has a saved method
        tiles = self._payment_method_tiles()
        self.assertEqual(len(tiles), 1)
        self.assertIn("Add, remove or choose your saved cards", tiles[0].text_content())
        page = self.url_open("/my/payment_method")
        self.assertIn("o_crm_payment_methods", page.text)
        self.assertIn("o_crm_token_row", page.text)
        # A company without a Stripe provider keeps Odoo's entry (when it has something to
        # offer) and Odoo's page.
        self.provider.state = "disabled"
        tiles = self._payment_method_tiles()
        self.assertLessEqual(len(tiles), 1)
        self.assertFalse([tile for tile in tiles if "choose your saved cards" in tile.text_content()])
        page = self.url_open("/my/payment_method")
        self.assertEqual(page.status_code, 200)
        self.assertNotIn("o_crm_payment_methods", page.text)

    def test_one_way_to_pay_an_invoice(self):
        invoice = self._crm_invoice(275.0)
        page = self.url_open(invoice.get_portal_url())
        self.assertEqual(page.status_code, 200)
        doc = html.fromstring(page.text)
        buttons = doc.xpath(f"//a[{_has_class('o_crm_payment_pay_stripe')}]")
        self.assertEqual(
            [" ".join(b.text_content().split()) for b in buttons], ["Pay $ 275.00 on Stripe's secure page"]
        )
        self.assertIn(f"/crm_payment/stripe/pay/{invoice.id}?access_token=", buttons[0].get("href"))
        self.assertFalse(doc.xpath("//a[@data-bs-target='#pay_with']"), "Odoo's Pay Now is offered too")
        self.assertNotIn("o_payment_form", page.text)
        # Odoo's links that open its payment dialog (?payment=True) get the same hosted page.
        dialog = html.fromstring(self.url_open(invoice.get_portal_url(query_string="&payment=True")).text)
        self.assertEqual(len(dialog.xpath("//a[contains(@class, 'o_crm_payment_pay_stripe_dialog')]")), 1)
        self.assertFalse(dialog.xpath("//div[@id='pay_with']//div[@role='alert']"))
        # The invoice list: our button where Odoo's "Pay Now" was.
        listing = html.fromstring(self.url_open("/my/invoices").text)
        self.assertEqual(len(listing.xpath("//a[contains(@class, 'o_crm_payment_pay_stripe_list')]")), 1)
        self.assertFalse(listing.xpath("//a[@title='Pay Now']"))
        # "Pay Now" on /my's "Invoices to pay": the overdue invoices, each with its button.
        overdue = self.url_open("/my/invoices/overdue", allow_redirects=False)
        self.assertEqual(overdue.status_code, 303)
        self.assertTrue(
            overdue.headers["Location"].endswith("/my/invoices?filterby=overdue_invoices"),
            overdue.headers["Location"],
        )
        # A company without a Stripe provider: Odoo's way to pay, alone.
        self.provider.state = "disabled"
        doc = html.fromstring(self.url_open(invoice.get_portal_url()).text)
        self.assertFalse(doc.xpath(f"//a[{_has_class('o_crm_payment_pay_stripe')}]"))
        self.assertEqual(len(doc.xpath("//a[@data-bs-target='#pay_with']")), 1)
        listing = html.fromstring(self.url_open("/my/invoices").text)
        self.assertEqual(len(listing.xpath("//a[@title='Pay Now']")), 1)
        self.assertFalse(listing.xpath("//a[contains(@class, 'o_crm_payment_pay_stripe_list')]"))

    def test_static_assets_served(self):
        self.logout()
        icon = self.url_open("/crm_payment_integration/static/description/icon.png")
        self.assertEqual(icon.status_code, 200)
        self.assertEqual(icon.headers["Content-Type"], "image/png")
        self.assertTrue(icon.content.startswith(b"\x89PNG"))
        # Every static file the add-on's views name, and the icon Settings shows for its <app>.
        urls = set()
        for path in ADDON_DIR.glob("*/*.xml"):
            text = path.read_text()
            urls.update(re.findall(r"/[a-z0-9_]+/static/[\w./-]+\.\w+", text))
            urls.update(
                f"/{name}/static/description/icon.png"
                for name in re.findall(r'<app\b[^>]*\bname="(\w+)"', text)
            )
        self.assertIn("/crm_payment_integration/static/description/icon.png", urls)
        for url in sorted(urls):
            self.assertEqual(self.url_open(url).status_code, 200, url)
        manifest = odoo.modules.module.get_manifest("crm_payment_integration")
        for bundle, globs in manifest["assets"].items():
            for pattern in globs:
                self.assertTrue(list(REPO_DIR.glob(pattern)), f"{bundle}: {pattern} matches no file")

    def test_test_command_starts_without_errors(self):
        """Starting pytest as the README's command does logs no error: pytest-odoo imports
        Odoo's test framework before any test turns test mode on, which Odoo reports as an
        ERROR unless pytest.ini puts Odoo in test mode first."""
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(ADDON_DIR / "tests" / "test_gateway.py"),
            f"--odoo-config={odoo.tools.config.rcfile}",
            f"--odoo-database={odoo.tools.config['db_name']}",
            "--odoo-log-level=warn",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
        ]

        def start(*extra):
            run = subprocess.run(
                command + list(extra), cwd=REPO_DIR, capture_output=True, text=True, timeout=300, check=False
            )
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            return run.stdout + run.stderr

        error = re.compile(r"^\S+ \S+ \d+ (ERROR|CRITICAL) ", re.MULTILINE)
        output = start()
        self.assertNotIn("Importing test framework", output)
        self.assertFalse(error.search(output), output)
        # Without the test mode pytest.ini sets, the error is back: the check above can see it.
        self.assertRegex(start("-o", "addopts="), r"ERROR .*Importing test framework")
