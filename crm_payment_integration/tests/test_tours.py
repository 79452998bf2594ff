from unittest.mock import patch

from odoo.tests import HttpCase, new_test_user, tagged

from .common import CrmPaymentCommon, FakeCheckout


@tagged("post_install", "-at_install")
class TestTours(CrmPaymentCommon, HttpCase):
    """In headless Chromium: a portal customer paying an invoice, a salesperson requesting a
    deposit from an opportunity."""

    def _fake_checkout(self, **kwargs):
        fake = FakeCheckout(**kwargs)
        patcher = patch.object(
            type(self.env["payment.provider"]), "_crm_stripe_http_client", return_value=fake
        )
        patcher.start()
        self.addCleanup(patcher.stop)
        return fake

    def test_portal_customer_pays_invoice(self):
        self._fake_checkout(pay_on_visit=True)
        new_test_user(
            self.env, login="crm_portal_azure", groups="base.group_portal", partner_id=self.contact.id
        )
        invoice = self._crm_invoice(275.0)
        self.start_tour(f"/my/invoices/{invoice.id}", "crm_payment_portal_pay_tour", login="crm_portal_azure")
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(invoice.transaction_ids.state, "done")

    def test_salesperson_requests_deposit(self):
        fake = self._fake_checkout()
        lead = self.env["crm.lead"].create(
            {
                "name": "Meeting room",
                "type": "opportunity",
                "partner_id": self.partner.id,
                "user_id": self.salesman.id,
                "expected_revenue": 1000.0,
            }
        )
        self.start_tour(f"/odoo/crm/{lead.id}", "crm_payment_request_tour", login="crm_salesman")
        invoice = self.env["account.move"].search([("crm_lead_id", "=", lead.id)])
        self.assertEqual((invoice.state, invoice.amount_total), ("posted", 400.0))
        self.assertEqual(
            fake.sessions[invoice.crm_payment_tx_id.crm_checkout_session_id]["amount_total"], 40000
        )
        self.assertTrue(
            self.env["mail.mail"].search([("model", "=", "account.move"), ("res_id", "=", invoice.id)])
        )
