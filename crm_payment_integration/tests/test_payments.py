import json

import stripe

from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import CrmPaymentCommon, StripeHttpMock, stripe_event, stripe_fixture


class IdempotentLocalstripe(StripeHttpMock):
    """localstripe behind Stripe's idempotency: a repeated key gets the first answer back.

    localstripe ignores ``Idempotency-Key``; Stripe honours it for 24 hours.
    """

    def __init__(self):
        super().__init__({}, passthrough=True)
        self.answers = {}

    def request(self, method, url, headers, post_data=None):
        key = headers.get("Idempotency-Key")
        self.requests.append({"method": method, "url": url, "headers": headers, "data": post_data})
        if method == "post" and key in self.answers:
            first_data, answer = self.answers[key]
            if first_data != post_data:  # as Stripe: a key is for one set of parameters
                return (
                    json.dumps(
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with.",
                            }
                        }
                    ),
                    400,
                    {},
                )
            return answer
        answer = self.passthrough.request(method, url, headers, post_data)
        if method == "post" and key:
            self.answers[key] = (post_data, answer)
        return answer


@tagged("post_install", "-at_install")
class TestOffSessionPayments(CrmPaymentCommon):
    """Charging saved cards against localstripe: paid and reconciled, declined, 3-D Secure,
    never twice."""

    def _intents(self, invoice):
        """The PaymentIntents localstripe holds for an invoice of this test."""
        return [
            pi
            for pi in map(
                lambda obj: obj.to_dict(),
                self.gateway.client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter(),
            )
            if pi["customer"] == self.customer_id
            and pi["metadata"].get("odoo_invoice_ids") == str(invoice.id)
            and pi["id"] not in self.intents_before
        ]

    def setUp(self):
        super().setUp()
        self.intents_before = {
            pi["id"]
            for pi in self.gateway.client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        }

    def _deliver(self, event):
        Event = self.env["crm.payment.event"]
        Event._crm_ingest(self.provider, event, json.dumps(event))
        Event._crm_process_due()
        return Event.search([("stripe_event_id", "=", event["id"])])

    def test_charge_saved_card_pays_and_reconciles(self):
        token = self._crm_save_card()
        invoice = self._crm_invoice(250.0)
        action = invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertEqual(action["params"]["type"], "success")
        tx = invoice.transaction_ids
        self.assertEqual(tx.state, "done")
        self.assertEqual(tx.token_id, token)
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(tx.payment_id.state, "paid")
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        self.assertEqual(intent["amount"], 25000)
        self.assertEqual(intent["currency"], "usd")
        self.assertEqual(intent["metadata"]["reference"], tx.reference)
        self.assertEqual(intent["payment_method"], token.stripe_payment_method)
        mails = self.env["mail.mail"].search([("model", "=", "payment.transaction"), ("res_id", "=", tx.id)])
        self.assertIn("received", mails.subject)

    def test_declined_card_records_reason_and_activity(self):
        self._crm_save_card("4000000000000341")  # attaches, then declines when charged
        invoice = self._crm_invoice(80.0, invoice_user_id=self.salesman.id)
        action = invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertEqual(action["params"]["type"], "danger")
        tx = invoice.transaction_ids
        self.assertEqual(tx.state, "error")
        self.assertEqual(tx.crm_decline_code, "card_declined")
        self.assertIn("declined", tx.state_message)
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertFalse(tx.payment_id)
        activity = invoice.activity_ids
        self.assertEqual(activity.user_id, self.salesman)
        self.assertIn("failed", activity.summary)
        self.assertIn("declined by the bank", self.partner.message_ids[0].body)
        self.assertEqual(self.partner.crm_payment_failed_count, 1)

    def test_double_click_and_crashed_request_charge_once(self):
        self._crm_save_card()
        invoice = self._crm_invoice(120.0)
        http = IdempotentLocalstripe()
        with self._crm_http(http):
            # A worker charges, then crashes before its transaction commits.
            with self.assertRaises(RuntimeError):
                with self.env.cr.savepoint():
                    invoice.with_user(self.accountant).action_crm_charge_saved_method()
                    raise RuntimeError("worker killed")
            self.env.invalidate_all()
            self.assertFalse(invoice.transaction_ids)
            # The user clicks again: same transaction reference, same key, Stripe's first answer.
            invoice.with_user(self.accountant).action_crm_charge_saved_method()
            # And a third click once paid is refused.
            with self.assertRaisesRegex(UserError, "nothing left to pay"):
                invoice.with_user(self.accountant).action_crm_charge_saved_method()
        keys = [
            r["headers"].get("Idempotency-Key")
            for r in http.requests
            if "/v1/payment_intents" in r["url"] and r["method"] == "post"
        ]
        self.assertEqual(len(keys), 2)
        self.assertEqual(keys[0], keys[1])
        self.assertEqual(len(self._intents(invoice)), 1)
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(len(invoice.transaction_ids.filtered(lambda tx: tx.state == "done")), 1)

    def test_charge_in_progress_refused(self):
        self._crm_save_card("4000002500003155")  # needs 3-D Secure
        invoice = self._crm_invoice(60.0)
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        with self.assertRaisesRegex(UserError, "already in progress"):
            invoice.with_user(self.accountant).action_crm_charge_saved_method()
        # Cancelled, it no longer blocks: the next charge asks again.
        first = invoice.transaction_ids
        first.with_user(self.accountant).action_crm_cancel_charge()
        self.assertEqual(first.state, "cancel")
        self.assertEqual(self.gateway.retrieve_payment_intent(first.provider_reference)["status"], "canceled")
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertEqual(len(invoice.transaction_ids), 2)

    def test_authentication_required_then_completed(self):
        self._crm_save_card("4000002500003155")
        invoice = self._crm_invoice(60.0)
        action = invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertEqual(action["params"]["type"], "warning")
        tx = invoice.transaction_ids
        self.assertEqual(tx.state, "pending")
        self.assertTrue(tx.crm_action_requested)
        mail = self.env["mail.mail"].search([("model", "=", "payment.transaction"), ("res_id", "=", tx.id)])
        self.assertIn("confirm your payment", mail.subject)
        self.assertIn(f"/crm_payment/stripe/authenticate?tx={tx.id}", mail.body_html)
        # The customer authenticates on the page (localstripe's stand-in for Stripe.js).
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        stripe.RequestsClient().request(
            "post",
            f"{self.localstripe_url}/v1/payment_intents/{intent['id']}/_authenticate"
            f"?client_secret={intent['client_secret']}&success=true",
            {"Authorization": f"Bearer {self.provider.stripe_secret_key}"},
        )
        event = stripe_event("payment_intent.succeeded", self.gateway.retrieve_payment_intent(intent["id"]))
        self.assertEqual(self._deliver(event).state, "done")
        self.assertEqual(tx.state, "done")
        self.assertTrue(self._crm_reconciled(invoice))

    def test_burst_of_confirmations_reconciled_per_invoice(self):
        """A batch of payment_intent.succeeded events creates the payments together, each
        reconciled with its own invoice; the next batch too."""
        token = self._crm_save_card()
        Transaction = self.env["payment.transaction"]

        def pending_charge(amount):
            invoice = self._crm_invoice(amount)
            tx = Transaction._crm_create(
                self.partner, amount, invoice.currency_id, "off_session", invoices=invoice, token=token
            )
            tx.provider_reference = "pi_burst" + str(tx.id)
            tx._set_pending()
            intent = stripe_fixture("payment_intent")
            minor = tx._crm_minor_amount()
            intent.update(
                id=tx.provider_reference,
                amount=minor,
                amount_received=minor,
                currency="usd",
                status="succeeded",
                customer=self.customer_id,
                metadata={"reference": tx.reference},
                last_payment_error=None,
            )
            return invoice, stripe_event("payment_intent.succeeded", intent)

        Event = self.env["crm.payment.event"]
        for amounts in ((10.0, 20.5, 30.25), (7.0,)):
            charges = [pending_charge(amount) for amount in amounts]
            for __, event in charges:
                Event._crm_ingest(self.provider, event, json.dumps(event))
            Event._crm_process_due()
            for invoice, __ in charges:
                tx = invoice.transaction_ids
                self.assertEqual(tx.state, "done")
                self.assertTrue(tx.is_post_processed)
                self.assertEqual(tx.payment_id.amount, invoice.amount_total)
                self.assertTrue(self._crm_reconciled(invoice))
                self.assertEqual(invoice.matched_payment_ids, tx.payment_id)

    def test_payment_canceled_in_stripe(self):
        self._crm_save_card("4000002500003155")  # waits for 3-D Secure
        invoice = self._crm_invoice(45.0, invoice_user_id=self.salesman.id)
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        tx = invoice.transaction_ids
        self.gateway.client.v1.payment_intents.cancel(tx.provider_reference)
        event = stripe_event(
            "payment_intent.canceled", self.gateway.retrieve_payment_intent(tx.provider_reference)
        )
        self.assertEqual(self._deliver(event).state, "done")
        self.assertEqual(tx.state, "cancel")
        self.assertEqual(invoice.payment_state, "not_paid")
        # Charging again is possible once the first attempt is over.
        self.assertFalse(invoice.transaction_ids.filtered(lambda t: t.state in ("draft", "pending")))

    def test_off_session_authentication_required_by_stripe(self):
        """Stripe declines an off-session charge the bank wants authenticated (a card error
        carrying the PaymentIntent); the customer gets the authentication link."""
        token = self._crm_save_card()
        invoice = self._crm_invoice(64.0)
        intent = stripe_fixture("payment_intent")
        intent.update(
            id="pi_auth",
            status="requires_payment_method",
            client_secret="pi_auth_secret",
            last_payment_error={"code": "authentication_required", "decline_code": "authentication_required"},
        )
        error = {
            "error": {
                "type": "card_error",
                "code": "authentication_required",
                "decline_code": "authentication_required",
                "message": "This payment requires authentication.",
                "payment_intent": intent,
            }
        }
        http = StripeHttpMock({("post", "/v1/payment_intents"): (402, error)}, passthrough=True)
        with self._crm_http(http):
            action = invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertEqual(action["params"]["type"], "warning")
        tx = invoice.transaction_ids
        self.assertEqual((tx.state, tx.provider_reference, tx.token_id), ("pending", "pi_auth", token))
        self.assertTrue(tx.crm_action_requested)
        self.assertFalse(tx.crm_decline_code)
        # Stripe's payment_intent.payment_failed about it does not turn it into a decline.
        http = StripeHttpMock({("get", "/v1/payment_intents/pi_auth"): (200, intent)}, passthrough=True)
        with self._crm_http(http):
            self.assertEqual(
                self._deliver(stripe_event("payment_intent.payment_failed", intent)).state, "done"
            )
        self.assertEqual(tx.state, "pending")
        self.assertFalse(tx.crm_decline_code)

    def test_odoo_own_stripe_payments_left_to_odoo(self):
        invoice = self._crm_invoice(20.0)
        card = (
            self.env["payment.method"]
            .with_context(active_test=False)
            .search([("code", "=", "card")], limit=1)
        )
        own = self.env["payment.transaction"].create(
            {
                "provider_id": self.provider.id,
                "payment_method_id": card.id,
                "partner_id": self.partner.id,
                "amount": 20.0,
                "currency_id": invoice.currency_id.id,
                "reference": "ODOO-OWN-1",
                "invoice_ids": [(6, 0, invoice.ids)],
                "state": "pending",
            }
        )
        intent = stripe_fixture("payment_intent")
        intent.update(
            id="pi_own",
            status="succeeded",
            amount=2000,
            amount_received=2000,
            currency="usd",
            customer=self.customer_id,
            description="ODOO-OWN-1",
            metadata={},
            invoice=None,
        )
        self.assertIn("Odoo's own", self._deliver(stripe_event("payment_intent.succeeded", intent)).result)
        self.assertEqual(own.state, "pending")
        # An Odoo payment whose transaction is not committed yet: retried, never duplicated.
        intent.update(id="pi_own2", description="ODOO-OWN-2")
        event = self._deliver(stripe_event("payment_intent.succeeded", intent))
        self.assertEqual((event.state, event.attempts), ("pending", 1))
        self.assertFalse(self.env["payment.transaction"].search([("provider_reference", "=", "pi_own2")]))

    def test_salesman_cannot_charge_or_refund(self):
        invoice = self._crm_invoice(10.0)
        with self.assertRaisesRegex(UserError, "Only billing users"):
            invoice.with_user(self.salesman).action_crm_charge_saved_method()
        with self.assertRaisesRegex(UserError, "Only billing users"):
            invoice.with_user(self.salesman).action_crm_refund()
        with self.assertRaisesRegex(UserError, "Only billing users"):
            self.partner.with_user(self.salesman).action_crm_charge()

    def test_no_saved_method_says_send_a_link(self):
        invoice = self._crm_invoice(10.0)
        with self.assertRaisesRegex(UserError, "Send a payment link"):
            invoice.with_user(self.accountant).action_crm_charge_saved_method()

    def test_free_amount_charge_from_partner(self):
        token = self._crm_save_card()
        wizard = (
            self.env["crm.payment.charge.wizard"]
            .with_user(self.accountant)
            .with_context(**self.partner.with_user(self.accountant).action_crm_charge()["context"])
            .create({"amount": 75.0, "reason": "Setup fee"})
        )
        self.assertEqual(wizard.token_id, token)
        wizard.action_charge()
        tx = self.partner.crm_payment_transaction_ids
        self.assertEqual((tx.state, tx.crm_reason, tx.amount), ("done", "Setup fee", 75.0))
        self.assertIn(tx.payment_id.state, ("in_process", "paid"))
        receivable = tx.payment_id.move_id.line_ids.filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        )
        self.assertEqual(receivable.balance, -75.0)  # a credit the partner can use: visible, not lost
        self.assertFalse(receivable.reconciled)
        self.partner.invalidate_recordset()
        self.assertEqual(self.partner.crm_payment_total, 75.0)
        self.assertEqual(self.partner.crm_payment_average, 75.0)
        self.assertTrue(self.partner.crm_payment_last_date)


@tagged("post_install", "-at_install")
class TestRefunds(CrmPaymentCommon):
    """Refunds from Odoo and from Stripe's dashboard, with their credit notes."""

    def _paid_invoice(self, amount, currency=None):
        self._crm_save_card()
        invoice = self._crm_invoice(amount, currency=currency)
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertTrue(self._crm_reconciled(invoice))
        return invoice, invoice.transaction_ids

    def _refund(self, invoice, amount):
        action = invoice.with_user(self.accountant).action_crm_refund()
        wizard = (
            self.env["crm.payment.refund.wizard"]
            .with_user(self.accountant)
            .with_context(**action["context"])
            .create({})
        )
        wizard.amount = amount
        return wizard.action_refund()

    def test_partial_refund_creates_reconciled_credit_note(self):
        invoice, tx = self._paid_invoice(100.0)
        self._refund(invoice, 40.0)
        refund_tx = tx.child_transaction_ids
        self.assertEqual((refund_tx.operation, refund_tx.state, refund_tx.amount), ("refund", "done", -40.0))
        credit_note = refund_tx.invoice_ids
        self.assertEqual(credit_note.move_type, "out_refund")
        self.assertEqual(credit_note.reversed_entry_id, invoice)
        self.assertAlmostEqual(credit_note.amount_total, 40.0)
        self.assertEqual(credit_note.payment_state, "paid")
        self.assertEqual(refund_tx.payment_id.payment_type, "outbound")
        refund = self.gateway.retrieve_refund(refund_tx.provider_reference)
        self.assertEqual(refund["amount"], 4000)
        self.assertEqual(tx._crm_refundable_amount(), 60.0)
        with self.assertRaisesRegex(UserError, r"at most \$\s60\.00 on"):
            self._refund(invoice, 70.0)
        self._refund(invoice, 60.0)
        self.assertEqual(tx._crm_refundable_amount(), 0.0)
        self.assertEqual(sum(tx.child_transaction_ids.invoice_ids.mapped("amount_total")), 100.0)

    def test_partial_refund_with_taxes_rounds_to_the_cent(self):
        tax = self.env["account.tax"].create({"name": "VAT 21", "amount": 21.0, "type_tax_use": "sale"})
        self._crm_save_card()
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": self.partner.id,
                "invoice_line_ids": [
                    (0, 0, {"name": "A", "quantity": 3, "price_unit": 33.33, "tax_ids": [(6, 0, tax.ids)]})
                ],
            }
        )
        invoice.action_post()
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self._refund(invoice, 10.01)
        credit_note = invoice.transaction_ids.child_transaction_ids.invoice_ids
        self.assertEqual(credit_note.amount_total, 10.01)
        self.assertEqual(credit_note.payment_state, "paid")

    def test_partial_refund_of_a_payment_of_two_invoices(self):
        token = self._crm_save_card()
        first, second = self._crm_invoice(100.0), self._crm_invoice(50.0)
        tx = self.env["payment.transaction"]._crm_create(
            self.partner, 150.0, first.currency_id, "off_session", invoices=first + second, token=token
        )
        tx._crm_charge_off_session()
        self.assertTrue(self._crm_reconciled(first) and self._crm_reconciled(second))
        self.env["crm.payment.refund.wizard"].with_user(self.accountant).create(
            {"transaction_id": tx.id, "amount": 50.0}
        ).action_refund()
        credit_notes = tx.child_transaction_ids.invoice_ids
        self.assertEqual(sorted(credit_notes.mapped("amount_total")), [16.67, 33.33])
        self.assertEqual(set(credit_notes.mapped("payment_state")), {"paid"})
        self.assertEqual(credit_notes.reversed_entry_id, first + second)

    def test_failed_refund_keeps_its_amount_and_alerts(self):
        invoice, tx = self._paid_invoice(100.0)
        self._refund(invoice, 30.0)
        refund_tx = tx.child_transaction_ids
        refund = self.gateway.retrieve_refund(refund_tx.provider_reference)
        refund.update(status="failed", failure_reason="expired_or_canceled_card")
        refund_tx._crm_apply_refund(refund)
        self.assertEqual(refund_tx.state, "error")
        self.assertIn("refund failed", invoice.activity_ids.summary)
        self.assertEqual(tx._crm_refundable_amount(), 70.0)  # not 100: the credit note stands

    def test_refund_made_in_stripe_arrives_by_webhook(self):
        invoice, tx = self._paid_invoice(90.0)
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        # Refunded in Stripe's dashboard: Odoo hears of it only through charge.refunded.
        refund = self.gateway.create_refund({"payment_intent": intent["id"], "amount": 9000}, "dashboard-1")
        charge = stripe_fixture("charge")
        latest_charge = intent["latest_charge"]
        charge.update(
            id=latest_charge["id"] if isinstance(latest_charge, dict) else latest_charge,
            payment_intent=intent["id"],
            amount=9000,
            amount_refunded=9000,
            refunded=True,
            currency="usd",
            customer=self.customer_id,
        )
        event = stripe_event("charge.refunded", charge)
        Event = self.env["crm.payment.event"]
        Event._crm_ingest(self.provider, event, json.dumps(event))
        Event._crm_process_due()
        stored = Event.search([("stripe_event_id", "=", event["id"])])
        self.assertEqual(stored.state, "done", stored.last_error)
        refund_tx = tx.child_transaction_ids
        self.assertEqual(
            (refund_tx.provider_reference, refund_tx.state, refund_tx.amount), (refund["id"], "done", -90.0)
        )
        credit_note = refund_tx.invoice_ids
        self.assertEqual(credit_note.amount_total, 90.0)
        self.assertEqual(credit_note.payment_state, "paid")
        # The same event again, and refund.updated about it, change nothing.
        event2 = stripe_event("refund.updated", refund)
        Event._crm_ingest(self.provider, event2, json.dumps(event2))
        Event._crm_process_due()
        self.assertEqual(len(tx.child_transaction_ids), 1)
        self.assertEqual(len(self.env["account.move"].search([("reversed_entry_id", "=", invoice.id)])), 1)


@tagged("post_install", "-at_install")
class TestCurrencies(CrmPaymentCommon):
    """Zero-, two- and three-decimal currencies, paid in part and in full."""

    def _charge(self, invoice, amount=None):
        wizard = (
            self.env["crm.payment.charge.wizard"]
            .with_user(self.accountant)
            .create(
                {
                    "partner_id": self.partner.id,
                    "invoice_id": invoice.id,
                    "amount": amount if amount is not None else invoice.amount_residual,
                    "currency_id": invoice.currency_id.id,
                    "reason": "Instalment",
                }
            )
        )
        wizard.action_charge()
        return invoice.transaction_ids.sorted("id")[-1]

    def _check(self, currency_name, total, part, minor_part, minor_rest):
        self._crm_save_card()
        currency = self._crm_currency(currency_name)
        invoice = self._crm_invoice(total, currency=currency)
        tx = self._charge(invoice, part)
        self.assertEqual(tx.state, "done")
        self.assertEqual(self.gateway.retrieve_payment_intent(tx.provider_reference)["amount"], minor_part)
        self.assertEqual(invoice.payment_state, "partial")
        self.assertTrue(currency.is_zero(invoice.amount_residual - (total - part)))
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        last = invoice.transaction_ids.sorted("id")[-1]
        intent = self.gateway.retrieve_payment_intent(last.provider_reference)
        self.assertEqual((intent["amount"], intent["currency"]), (minor_rest, currency_name.lower()))
        self.assertTrue(self._crm_reconciled(invoice))

    def test_jpy(self):
        self._check("JPY", 12345, 5000, 5000, 7345)

    def test_kwd(self):
        self._check("KWD", 12.34, 2.1, 2100, 10240)

    def test_eur(self):
        self._check("EUR", 99.99, 33.33, 3333, 6666)

    def test_kwd_amount_stripe_cannot_take_is_refused(self):
        self._crm_save_card()
        invoice = self._crm_invoice(2.47, currency=self._crm_currency("KWD"), post=False)
        invoice.invoice_line_ids.quantity = 0.5  # 1.235 KWD
        invoice.action_post()
        with self.assertRaisesRegex(UserError, "rounded to 0.01"):
            invoice.with_user(self.accountant).action_crm_charge_saved_method()
