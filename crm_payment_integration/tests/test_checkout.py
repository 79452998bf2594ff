import json
from urllib.parse import parse_qs, urlparse

from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from .common import CrmPaymentCommon, FakeCheckout, sign_payload, stripe_event

SECRET = "whsec_checkout"


@tagged("post_install", "-at_install")
class TestCheckout(CrmPaymentCommon, HttpCase):
    """Hosted pages, answered at the HTTP-client boundary (localstripe has no Checkout): the
    link, the customer's return and the webhooks, in either order."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider.crm_webhook_secret = SECRET

    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(FakeCheckout())

    # --- helpers ---------------------------------------------------------------------------

    def _send_link(self, invoice, user=None):
        invoice.with_user(user or self.accountant).action_crm_send_payment_link()
        return invoice.crm_payment_tx_id

    def _session_requests(self, suffix=""):
        return [
            r
            for r in self.stripe.requests
            if r["method"] == "post" and r["path"] == "/v1/checkout/sessions" + suffix
        ]

    def _webhook(self, event_type, session_id):
        event = stripe_event(event_type, self.stripe.public(session_id))
        body = json.dumps(event)
        response = self.url_open(
            f"/crm_payment/stripe/webhook/{self.provider.id}",
            data=body.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": sign_payload(body, SECRET)},
        )
        self.assertEqual(response.status_code, 200)
        Event = self.env["crm.payment.event"]
        Event._crm_process_due()
        return Event.search([("stripe_event_id", "=", event["id"])])

    def _return(self, tx, session_id=None, token=None):
        url = (
            tx._crm_return_url()
            if token is None
            else f"/crm_payment/stripe/return?tx={tx.id}&access_token={token}"
        )
        url = url.replace(tx._crm_base_url(), "")
        if session_id:
            url += f"&session_id={session_id}"
        return self.url_open(url)

    # --- link ------------------------------------------------------------------------------

    def test_link_created_emailed_reused_and_replaced(self):
        invoice = self._crm_invoice(150.0, invoice_user_id=self.salesman.id)
        tx = self._send_link(invoice)
        self.assertEqual(tx.crm_flow, "checkout")
        self.assertEqual(invoice.crm_payment_url, tx.crm_checkout_url)
        self.assertTrue(invoice.crm_payment_url.startswith("https://checkout.stripe.com/"))
        session = self.stripe.sessions[tx.crm_checkout_session_id]
        self.assertEqual(
            (session["amount_total"], session["currency"], session["mode"]), (15000, "usd", "payment")
        )
        self.assertEqual(session["customer"], self.customer_id)
        self.assertEqual(session["metadata"]["reference"], tx.reference)
        query = parse_qs(urlparse(session["success_url"]).query)
        self.assertEqual(query["tx"], [str(tx.id)])
        self.assertTrue(tx._crm_check_access_token(query["access_token"][0]))
        self.assertEqual(query["session_id"], ["{CHECKOUT_SESSION_ID}"])
        form = self._session_requests()[0]["data"]
        self.assertIn("saved_payment_method_options[payment_method_save]=enabled", form)
        self.assertTrue(self._session_requests()[0]["headers"].get("Idempotency-Key"))
        mail = self.env["mail.mail"].search([("model", "=", "account.move"), ("res_id", "=", invoice.id)])
        self.assertIn(invoice._crm_portal_pay_url(), mail.body_html)
        self.assertEqual(mail.recipient_ids, self.partner)
        # Sent again with the same amount due: the same page.
        self.assertEqual(self._send_link(invoice), tx)
        self.assertEqual(len(self._session_requests()), 1)
        # Part paid by hand: the old page is closed, a new one asks for the rest.
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids
        ).create({"amount": 50.0})._create_payments()
        new_tx = self._send_link(invoice)
        self.assertNotEqual(new_tx, tx)
        self.assertEqual(tx.state, "cancel")
        self.assertEqual(self.stripe.sessions[tx.crm_checkout_session_id]["status"], "expired")
        self.assertEqual(self.stripe.sessions[new_tx.crm_checkout_session_id]["amount_total"], 10000)

    def test_pay_route_redirects_to_hosted_page(self):
        invoice = self._crm_invoice(42.0)
        response = self.url_open(
            f"/crm_payment/stripe/pay/{invoice.id}?access_token={invoice._portal_ensure_token()}",
            allow_redirects=False,
        )
        self.assertEqual(response.status_code, 303)
        self.assertEqual(response.headers["Location"], invoice.crm_payment_url)
        # Another customer's invoice id without its token: nothing.
        self.assertEqual(
            self.url_open(f"/crm_payment/stripe/pay/{invoice.id}?access_token=forged").status_code, 404
        )
        self.assertEqual(self.url_open(f"/crm_payment/stripe/pay/{invoice.id}").status_code, 404)

    def test_salesman_without_accounting_can_send_link_from_opportunity(self):
        lead = self.env["crm.lead"].create(
            {
                "name": "Office chairs",
                "type": "opportunity",
                "partner_id": self.contact.id,
                "user_id": self.salesman.id,
                "expected_revenue": 1000.0,
            }
        )
        action = lead.with_user(self.salesman).action_crm_request_payment()
        wizard = (
            self.env[action["res_model"]]
            .with_user(self.salesman)
            .with_context(**action["context"])
            .create({})
        )
        self.assertEqual(
            (wizard.partner_id, wizard.request_type, wizard.amount), (self.partner, "deposit", 300.0)
        )
        result = wizard.action_confirm()
        self.assertEqual(result["tag"], "display_notification")
        invoice = self.env["account.move"].search([("crm_lead_id", "=", lead.id)])
        self.assertEqual((invoice.state, invoice.amount_total), ("posted", 300.0))
        self.assertIn("Down payment of 30%", invoice.invoice_line_ids.name)
        tx = invoice.crm_payment_tx_id
        self.assertEqual(tx.crm_lead_id, lead)
        # The customer pays: invoice reconciled, opportunity won, salesperson told.
        self.stripe.pay(tx.crm_checkout_session_id)
        self.assertEqual(
            self._webhook("checkout.session.completed", tx.crm_checkout_session_id).state, "done"
        )
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertTrue(lead.stage_id.is_won)
        notice = lead.message_ids.filtered(lambda m: self.salesman.partner_id in m.partner_ids)
        self.assertIn("paid", notice[:1].body)
        self.assertEqual(lead.crm_payment_count, 1)
        self.assertEqual(lead.crm_paid_amount, 300.0)
        # The salesperson sees the payments, but cannot refund them.
        self.assertEqual(
            self.env["payment.transaction"].with_user(self.salesman).search([("crm_lead_id", "=", lead.id)]),
            tx,
        )
        with self.assertRaises(AccessError):
            self.env["crm.payment.refund.wizard"].with_user(self.salesman).create({"transaction_id": tx.id})
        with self.assertRaisesRegex(UserError, "Only billing users"):
            self.env["crm.payment.refund.wizard"].create({"transaction_id": tx.id}).with_user(
                self.salesman
            ).action_refund()

    def test_lead_not_won_when_setting_off(self):
        self.company.crm_payment_lead_won = False
        lead = self.env["crm.lead"].create(
            {"name": "Desks", "type": "opportunity", "partner_id": self.partner.id, "expected_revenue": 80.0}
        )
        wizard = (
            self.env["crm.payment.request.wizard"]
            .with_context(default_lead_id=lead.id)
            .create({"request_type": "full"})
        )
        wizard.action_confirm()
        tx = self.env["account.move"].search([("crm_lead_id", "=", lead.id)]).crm_payment_tx_id
        self.stripe.pay(tx.crm_checkout_session_id)
        self._webhook("checkout.session.completed", tx.crm_checkout_session_id)
        self.assertEqual(tx.state, "done")
        self.assertFalse(lead.stage_id.is_won)

    # --- return and webhook, in either order --------------------------------------------------

    def test_return_before_webhook(self):
        invoice = self._crm_invoice(99.0)
        tx = self._send_link(invoice)
        session_id = tx.crm_checkout_session_id
        self.stripe.pay(session_id)
        page = self._return(tx, session_id)
        self.assertEqual(page.status_code, 200)
        self.assertIn('data-state="done"', page.text)
        self.assertEqual(tx.state, "done")
        self.assertTrue(self._crm_reconciled(invoice))
        event = self._webhook("checkout.session.completed", session_id)
        self.assertEqual(event.state, "done")
        self.assertIn("Already", event.result)
        self.assertEqual(len(self.env["account.payment"].search([("payment_transaction_id", "=", tx.id)])), 1)

    def test_webhook_before_return(self):
        invoice = self._crm_invoice(99.0)
        tx = self._send_link(invoice)
        session_id = tx.crm_checkout_session_id
        self.stripe.pay(session_id)
        self._webhook("checkout.session.completed", session_id)
        self.assertEqual(tx.state, "done")
        # payment_intent.succeeded about the same payment is a no-op too.
        intent = self.stripe.intents[self.stripe.sessions[session_id]["payment_intent"]]
        event = stripe_event("payment_intent.succeeded", intent)
        self.env["crm.payment.event"]._crm_ingest(self.provider, event, json.dumps(event))
        self.env["crm.payment.event"]._crm_process_due()
        page = self._return(tx, session_id)
        self.assertIn('data-state="done"', page.text)
        self.assertEqual(len(self.env["account.payment"].search([("payment_transaction_id", "=", tx.id)])), 1)
        self.assertTrue(self._crm_reconciled(invoice))

    def test_return_does_not_trust_the_query_string(self):
        invoice = self._crm_invoice(99.0)
        tx = self._send_link(invoice)
        # The customer comes back without paying, claiming success in the URL.
        page = self.url_open(
            tx._crm_return_url().replace(tx._crm_base_url(), "")
            + f"&session_id={tx.crm_checkout_session_id}&payment_status=paid&status=complete"
        )
        self.assertIn('data-state="pending"', page.text)
        self.assertEqual(tx.state, "draft")
        self.assertEqual(invoice.payment_state, "not_paid")

    @mute_logger("odoo.http")
    def test_return_safe_against_other_ids(self):
        invoice = self._crm_invoice(99.0)
        tx = self._send_link(invoice)
        other = self._send_link(self._crm_invoice(5.0))
        self.assertEqual(self._return(tx, token="forged").status_code, 404)
        # Another transaction's token does not open this one.
        self.assertEqual(self._return(tx, token=other._crm_access_token()).status_code, 404)
        # Another session id with this transaction's token: refused too.
        self.assertEqual(self._return(tx, session_id=other.crm_checkout_session_id).status_code, 404)
        self.assertEqual(self.url_open("/crm_payment/stripe/return?tx=abc").status_code, 404)
        self.assertEqual(
            self.url_open(f"/crm_payment/stripe/authenticate?tx={tx.id}&access_token=x").status_code, 404
        )

    def test_expired_session(self):
        invoice = self._crm_invoice(70.0)
        tx = self._send_link(invoice)
        self.stripe.expire(tx.crm_checkout_session_id)
        self.assertEqual(self._webhook("checkout.session.expired", tx.crm_checkout_session_id).state, "done")
        self.assertEqual(tx.state, "cancel")
        self.assertEqual(invoice.payment_state, "not_paid")
        # Sending the link again opens a new page.
        new_tx = self._send_link(invoice)
        self.assertNotEqual(new_tx.crm_checkout_session_id, tx.crm_checkout_session_id)
        self.assertEqual(self._return(tx).status_code, 200)

    def test_async_payment_succeeded(self):
        invoice = self._crm_invoice(70.0)
        tx = self._send_link(invoice)
        session_id = tx.crm_checkout_session_id
        self.stripe.pay(session_id, delayed=True)
        self._webhook("checkout.session.completed", session_id)
        self.assertEqual(tx.state, "pending")
        self.assertIn('data-state="pending"', self._return(tx, session_id).text)
        self.stripe.settle(session_id)
        self._webhook("checkout.session.async_payment_succeeded", session_id)
        self.assertEqual(tx.state, "done")
        self.assertTrue(self._crm_reconciled(invoice))

    def test_async_payment_failed(self):
        invoice = self._crm_invoice(70.0, invoice_user_id=self.salesman.id)
        tx = self._send_link(invoice)
        session_id = tx.crm_checkout_session_id
        self.stripe.pay(session_id, delayed=True)
        self._webhook("checkout.session.completed", session_id)
        self.stripe.settle(session_id, succeeded=False)
        self._webhook("checkout.session.async_payment_failed", session_id)
        self.assertEqual(tx.state, "error")
        self.assertEqual(tx.crm_decline_code, "insufficient_funds")
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual(invoice.activity_ids.user_id, self.salesman)
        page = self._return(tx, session_id)
        self.assertIn('data-state="error"', page.text)
        self.assertIn("insufficient funds", page.text)
        self.assertIn(f"/crm_payment/stripe/pay/{invoice.id}", page.text)  # try again

    def test_amount_mismatch_flagged_never_paid(self):
        invoice = self._crm_invoice(70.0)
        tx = self._send_link(invoice)
        self.stripe.pay(tx.crm_checkout_session_id, amount=700)
        self._webhook("checkout.session.completed", tx.crm_checkout_session_id)
        self.assertEqual(tx.state, "pending")
        self.assertTrue(tx.crm_needs_review)
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertIn("review", invoice.activity_ids.summary)
        self.assertIn('data-state="review"', self._return(tx).text)

    def test_currency_mismatch_flagged_never_paid(self):
        invoice = self._crm_invoice(70.0)
        tx = self._send_link(invoice)
        self.stripe.pay(tx.crm_checkout_session_id, currency="eur")
        self._webhook("checkout.session.completed", tx.crm_checkout_session_id)
        self.assertEqual(tx.state, "pending")
        self.assertTrue(tx.crm_needs_review)
        self.assertEqual(invoice.payment_state, "not_paid")

    def test_zero_decimal_link(self):
        invoice = self._crm_invoice(5000, currency=self._crm_currency("JPY"))
        tx = self._send_link(invoice)
        self.assertEqual(self.stripe.sessions[tx.crm_checkout_session_id]["amount_total"], 5000)
        self.stripe.pay(tx.crm_checkout_session_id)
        self._webhook("checkout.session.completed", tx.crm_checkout_session_id)
        self.assertTrue(self._crm_reconciled(invoice))

    def test_page_paid_before_its_link_is_replaced_is_not_lost(self):
        invoice = self._crm_invoice(150.0)
        tx = self._send_link(invoice)
        self.stripe.pay(tx.crm_checkout_session_id)  # paid; the webhook is not there yet
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids
        ).create({"amount": 50.0})._create_payments()
        self._send_link(invoice)  # the amount due changed: the page would be replaced
        self.assertEqual(tx.state, "done")
        self.assertEqual(tx.payment_id.amount, 150.0)
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(invoice.crm_payment_tx_id, tx)  # no new page for nothing
        credit = tx.payment_id.move_id.line_ids.filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        )
        self.assertEqual(credit.amount_residual, -50.0)  # the overpayment is the customer's credit
        self.assertEqual(len(self._session_requests()), 1)

    def test_declined_attempt_on_the_page_then_paid(self):
        invoice = self._crm_invoice(80.0)
        tx = self._send_link(invoice)
        session = self.stripe.sessions[tx.crm_checkout_session_id]
        failed = self.stripe._intent(
            session,
            "requires_payment_method",
            error={"code": "card_declined", "decline_code": "insufficient_funds", "message": "Declined."},
        )
        event = stripe_event("payment_intent.payment_failed", failed)
        Event = self.env["crm.payment.event"]
        Event._crm_ingest(self.provider, event, json.dumps(event))
        Event._crm_process_due()
        self.assertIn("hosted page", Event.search([("stripe_event_id", "=", event["id"])]).result)
        self.assertEqual(tx.state, "draft")
        self.stripe.pay(tx.crm_checkout_session_id)  # second card
        self._webhook("checkout.session.completed", tx.crm_checkout_session_id)
        self.assertEqual(tx.state, "done")
        self.assertTrue(self._crm_reconciled(invoice))

    def test_page_closed_when_invoice_paid_by_other_means(self):
        invoice = self._crm_invoice(60.0)
        tx = self._send_link(invoice)
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids
        ).create({})._create_payments()
        self.env["account.move"]._cron_close_paid_pages()  # woken by the invoice-paid hook
        self.assertEqual(self.stripe.sessions[tx.crm_checkout_session_id]["status"], "expired")
        self.assertEqual(tx.state, "cancel")
        # The lasting link now leads to the paid invoice.
        response = self.url_open(
            f"/crm_payment/stripe/pay/{invoice.id}?access_token={invoice.access_token}", allow_redirects=False
        )
        self.assertNotIn("checkout.stripe.com", response.headers.get("Location", ""))

    def test_setup_link_saves_a_card(self):
        self.partner.with_user(self.salesman).action_crm_send_setup_link()
        tx = self.env["payment.transaction"].search(
            [("partner_id", "=", self.partner.id), ("operation", "=", "validation")]
        )
        session = self.stripe.sessions[tx.crm_checkout_session_id]
        self.assertEqual(
            (session["mode"], session["currency"], session["customer"]), ("setup", "usd", self.customer_id)
        )
        mail = self.env["mail.mail"].search([("model", "=", "payment.transaction"), ("res_id", "=", tx.id)])
        self.assertIn(tx.crm_checkout_url, mail.body_html)
        # The customer saves a card on the page (localstripe holds it), Stripe says so.
        self._crm_attach_card(self.customer_id)
        self.stripe.save_method(tx.crm_checkout_session_id)
        self._webhook("checkout.session.completed", tx.crm_checkout_session_id)
        self.assertEqual(tx.state, "done")
        self.assertFalse(tx.payment_id)
        self.assertEqual(len(self.partner._crm_tokens()), 1)
        self.assertIn('data-state="done"', self._return(tx).text)

    def test_portal_invoice_page_shows_stripe_button(self):
        invoice = self._crm_invoice(33.0)
        page = self.url_open(invoice.get_portal_url())
        self.assertEqual(page.status_code, 200)
        self.assertIn("o_crm_payment_pay_stripe", page.text)
