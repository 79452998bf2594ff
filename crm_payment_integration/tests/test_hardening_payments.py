"""Charges and refunds whose answer from Stripe was lost, two clicks at once, and refunds that
fail in Stripe after they were booked (issue 8, items 3 and 4)."""

import json
import threading
from datetime import timedelta
from unittest.mock import patch
from urllib.parse import parse_qsl

import stripe

from odoo import api, fields
from odoo.exceptions import UserError
from odoo.modules.registry import Registry
from odoo.tests import HttpCase, TransactionCase, tagged

from .common import CrmPaymentCommon, StripeHttpMock, post_signed_event, stripe_event
from .test_payments import IdempotentLocalstripe

SECRET = "whsec_hardening_payments"


class LostAnswers(IdempotentLocalstripe):
    """localstripe behind Stripe's idempotency, whose answers to some calls never come back.

    A POST to a path of ``lose`` reaches localstripe (the money is taken), then the connection
    drops before the answer arrives, on every retry of the SDK. localstripe lists all the
    PaymentIntents of the account; Stripe lists those of a customer (``customer``,
    ``created[gte]``): answered here from localstripe's list.
    """

    def __init__(self, lose=()):
        super().__init__()
        self.lose = set(lose)
        self.lost = []

    def request(self, method, url, headers, post_data=None):
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        if method == "get" and path == "/v1/payment_intents" and "customer=" in url:
            return self._customer_intents(url, headers)
        answer = super().request(method, url, headers, post_data)
        if method == "post" and path in self.lose:
            self.lost.append(path)
            raise stripe.APIConnectionError(
                "Connection aborted: remote end closed connection without response", should_retry=True
            )
        return answer

    def _customer_intents(self, url, headers):
        base, query = url.split("?", 1)
        query = dict(parse_qsl(query))
        intents, starting_after = [], None
        while True:
            page_url = f"{base}?limit=100" + (f"&starting_after={starting_after}" if starting_after else "")
            content, __, __ = self.passthrough.request("get", page_url, headers)
            page = json.loads(content)
            intents += page["data"]
            if not page.get("has_more") or not page["data"]:
                break
            starting_after = page["data"][-1]["id"]
        since = int(query.get("created[gte]") or 0)
        data = [pi for pi in intents if pi.get("customer") == query["customer"] and pi["created"] >= since]
        body = {"object": "list", "data": data, "has_more": False, "url": "/v1/payment_intents"}
        return json.dumps(body), 200, {"Request-Id": "req_test"}


class Unreachable(LostAnswers):
    """Stripe cannot be reached: the charges of ``lose`` never leave (connection refused)."""

    def request(self, method, url, headers, post_data=None):
        if method == "post" and "/v1/payment_intents" in url and self.lose:
            raise stripe.APIConnectionError("Connection refused", should_retry=True)
        return super().request(method, url, headers, post_data)


class PendingRefunds(StripeHttpMock):
    """Stripe answers a card refund ``pending`` until the card network settles it."""

    def request(self, method, url, headers, post_data=None):
        content, status, rheaders = super().request(method, url, headers, post_data)
        if method == "post" and url.endswith("/v1/refunds") and status == 200:
            content = json.dumps(dict(json.loads(content), status="pending"))
        return content, status, rheaders


class HardeningCommon(CrmPaymentCommon, HttpCase):
    """Over HTTP (signed webhooks) and in Odoo's test mode, where a cursor of its own (the
    record of a request sent to Stripe) is Odoo's test cursor."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider.crm_webhook_secret = SECRET
        cls.Event = cls.env["crm.payment.event"]
        cls.Request = cls.env["crm.stripe.request"]

    def setUp(self):
        super().setUp()
        self.intents_before = {pi["id"] for pi in self._customer_intents()}

    def _customer_intents(self):
        return [
            pi.to_dict()
            for pi in self.gateway.client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
            if pi.customer == self.customer_id
        ]

    def _new_intents(self):
        """The PaymentIntents made for the customer in localstripe by this test."""
        return [pi for pi in self._customer_intents() if pi["id"] not in self.intents_before]

    def _post_event(self, event_type, obj):
        """Stripe sends a signed event to the webhook route."""
        event = stripe_event(event_type, obj)
        post_signed_event(self, self.provider, event, SECRET)
        return event

    def _process(self, client, *events):
        with self._crm_http(client):
            self.Event._crm_process_due()
        stored = self.Event.search([("stripe_event_id", "in", [event["id"] for event in events])])
        self.assertEqual(set(stored.mapped("state")), {"done"}, stored.mapped("last_error"))
        return stored

    def _credit_note(self, invoice, amount):
        """A credit note of ``amount`` reconciled with the invoice: its amount due shrinks."""
        credit_note = self._crm_invoice(amount, move_type="out_refund")
        (invoice.line_ids + credit_note.line_ids).filtered(
            lambda line: line.account_id.account_type == "asset_receivable" and not line.reconciled
        ).reconcile()
        return credit_note

    def _charge(self, invoice):
        return invoice.with_user(self.accountant).action_crm_charge_saved_method()


@tagged("post_install", "-at_install")
class TestLostAnswers(HardeningCommon):
    """Stripe took the money, the answer never arrived: nothing is charged twice."""

    def test_lost_charge_kept_then_settled_before_a_second_charge(self):
        token = self._crm_save_card()
        invoice = self._crm_invoice(100.0)
        http = LostAnswers(lose={"/v1/payment_intents"})
        with self._crm_http(http):
            action = self._charge(invoice)
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("answer was lost", action["params"]["message"])
        self.assertEqual(len(http.lost), 3)  # the first try and the SDK's two retries
        intents = self._new_intents()
        self.assertEqual([(pi["status"], pi["amount"]) for pi in intents], [("succeeded", 10000)])
        # The attempt is kept, saying so, with its key and the exact parameters sent.
        tx = invoice.transaction_ids
        self.assertEqual((tx.state, tx.crm_answer_unknown, tx.token_id), ("draft", True, token))
        self.assertEqual(tx.crm_request_params["amount"], 10000)
        self.assertEqual(tx.crm_request_params["metadata"]["reference"], tx.reference)
        sent = self.Request.search([("reference", "=", tx.reference)])
        self.assertEqual(sent.state, "sent")
        self.assertEqual((sent.idempotency_key, sent.params), (tx.crm_idempotency_key, tx.crm_request_params))
        posted = [r for r in http.requests if r["method"] == "post" and "/v1/payment_intents" in r["url"]]
        self.assertEqual({r["headers"]["Idempotency-Key"] for r in posted}, {tx.crm_idempotency_key})
        self.assertEqual(invoice.payment_state, "not_paid")
        # A credit note changes the amount due: a new charge would be a new intention.
        self._credit_note(invoice, 30.0)
        self.assertEqual(invoice.amount_residual, 70.0)
        http.lose.clear()
        with self._crm_http(http):
            action = self._charge(invoice)
        self.assertIn("Nothing new was charged", action["params"]["message"])
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(len(self._new_intents()), 1)
        self.assertEqual((tx.state, tx.crm_answer_unknown), ("done", False))
        self.assertEqual(invoice.transaction_ids, tx)
        self.assertEqual(invoice.payment_state, "paid")
        self.assertEqual(tx.payment_id.amount, 100.0)  # 30 more than due: the customer's credit
        self.assertEqual(sent.state, "done")
        with self.assertRaisesRegex(UserError, "nothing left to pay"):
            self._charge(invoice)
        self.assertEqual(len(self._new_intents()), 1)

    def test_lost_charge_whose_transaction_was_rolled_back_restored_by_the_cron(self):
        token = self._crm_save_card()
        invoice = self._crm_invoice(80.0, invoice_user_id=self.salesman.id)
        http = LostAnswers(lose={"/v1/payment_intents"})
        with self._crm_http(http):
            self._charge(invoice)
        tx = invoice.transaction_ids
        reference = tx.reference
        # The request was rolled back (a worker killed): only the record made apart remains.
        self.env.cr.execute("DELETE FROM payment_transaction WHERE id = %s", [tx.id])
        self.env.invalidate_all()
        self.assertFalse(invoice.transaction_ids)
        sent = self.Request.search([("reference", "=", reference)])
        self.assertEqual(sent.state, "sent")
        # Too early: its client may still be waiting for Stripe.
        self.Request._cron_resolve()
        self.assertEqual(sent.state, "sent")
        with self._crm_http(http):
            self.Request._cron_resolve(now=fields.Datetime.now() + timedelta(minutes=5))
        self.assertEqual(sent.state, "done")
        restored = invoice.transaction_ids
        self.assertEqual(
            (restored.reference, restored.state, restored.crm_flow, restored.token_id),
            (reference, "done", "off_session", token),
        )
        self.assertEqual(restored.provider_reference, self._new_intents()[0]["id"])
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(len(self._new_intents()), 1)

    def test_lost_charge_settled_by_its_webhook(self):
        self._crm_save_card()
        kept, rolled_back = self._crm_invoice(40.0), self._crm_invoice(60.0)
        http = LostAnswers(lose={"/v1/payment_intents"})
        with self._crm_http(http):
            self._charge(kept)
            self._charge(rolled_back)
        lost = rolled_back.transaction_ids
        reference = lost.reference
        self.env.cr.execute("DELETE FROM payment_transaction WHERE id = %s", [lost.id])
        self.env.invalidate_all()
        intents = {pi["amount"]: pi for pi in self._new_intents()}
        events = [self._post_event("payment_intent.succeeded", intents[amount]) for amount in (4000, 6000)]
        self._process(http, *events)
        tx = kept.transaction_ids
        self.assertEqual((tx.state, tx.crm_answer_unknown), ("done", False))
        self.assertTrue(self._crm_reconciled(kept))
        restored = rolled_back.transaction_ids
        self.assertEqual(
            (restored.reference, restored.state, restored.crm_flow), (reference, "done", "off_session")
        )
        self.assertTrue(self._crm_reconciled(rolled_back))
        self.assertEqual(
            set(self.Request.search([("reference", "in", (tx.reference, reference))]).mapped("state")),
            {"done"},
        )
        self.assertEqual(len(self._new_intents()), 2)

    def test_charge_stripe_never_received_is_made_anew(self):
        self._crm_save_card()
        invoice = self._crm_invoice(50.0)

        http = Unreachable(lose={"/v1/payment_intents"})
        with self._crm_http(http):
            self._charge(invoice)
        first = invoice.transaction_ids
        self.assertTrue(first.crm_answer_unknown)
        self.assertFalse(self._new_intents())
        http.lose.clear()
        # A moment later Stripe cannot tell yet whether it will ever see it: nothing new is sent.
        with self._crm_http(http), self.assertRaisesRegex(UserError, "Nothing new is sent"):
            self._charge(invoice)
        sent = self.Request.search([("reference", "=", first.reference)])
        sent.flush_recordset()
        self.env.cr.execute(
            "UPDATE crm_stripe_request SET create_date = create_date - interval '10 minutes' WHERE id = %s",
            [sent.id],
        )
        sent.invalidate_recordset()
        with self._crm_http(http):
            action = self._charge(invoice)
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(first.state, "cancel")
        self.assertIn("never received", first.state_message)
        self.assertEqual(len(self._new_intents()), 1)
        self.assertTrue(self._crm_reconciled(invoice))

    def test_lost_refund_answer_settled_before_a_second_refund(self):
        self._crm_save_card()
        invoice = self._crm_invoice(110.0)
        self._charge(invoice)
        tx = invoice.transaction_ids
        http = LostAnswers(lose={"/v1/refunds"})

        def refund(amount):
            wizard = (
                self.env["crm.payment.refund.wizard"]
                .with_user(self.accountant)
                .create({"transaction_id": tx.id, "amount": amount})
            )
            with self._crm_http(http):
                return wizard.action_refund()

        action = refund(40.0)
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("answer was lost", action["params"]["message"])
        refund_tx = tx.child_transaction_ids
        self.assertEqual((refund_tx.state, refund_tx.crm_answer_unknown), ("draft", True))
        self.assertEqual(tx._crm_refundable_amount(), 70.0)  # never refunded twice meanwhile
        http.lose.clear()
        action = refund(70.0)
        self.assertIn("Nothing new was refunded", action["params"]["message"])
        self.assertEqual((refund_tx.state, refund_tx.crm_answer_unknown), ("done", False))
        self.assertEqual(tx.child_transaction_ids, refund_tx)
        self.assertEqual([r["amount"] for r in self.gateway.list_refunds(tx.provider_reference)], [4000])
        self.assertEqual(refund_tx.invoice_ids.amount_total, 40.0)
        self.assertEqual(refund_tx.invoice_ids.payment_state, "paid")


@tagged("post_install", "-at_install")
class TestTwoClicksAtOnce(TransactionCase):
    """Two users charge the same invoice at the same moment, each in their own worker."""

    def test_second_click_told_a_charge_is_in_progress(self):
        registry = Registry(self.env.cr.dbname)
        with registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            partner = env["res.partner"].create({"name": "Two Clicks Ltd", "email": "two@example.com"})
            invoice = env["account.move"].create(
                {
                    "move_type": "out_invoice",
                    "partner_id": partner.id,
                    "invoice_line_ids": [(0, 0, {"name": "Desk", "quantity": 1, "price_unit": 50.0})],
                }
            )
            invoice.action_post()
            invoice_id, partner_id = invoice.id, partner.id

        def cleanup():
            with registry.cursor() as cr:
                env = api.Environment(cr, api.SUPERUSER_ID, {})
                move = env["account.move"].browse(invoice_id)
                move.button_draft()
                move.button_cancel()
                env["res.partner"].browse(partner_id).active = False

        self.addCleanup(cleanup)
        admin = self.env.ref("base.user_admin").id
        first_is_charging, second_answered = threading.Event(), threading.Event()
        Move = type(self.env["account.move"])
        settle = Move._crm_settle_earlier_charges

        def slow_settle(move):
            first_is_charging.set()  # the first click holds the invoice while Stripe answers
            second_answered.wait(20)
            return settle(move)

        errors = []

        def first_click():
            try:
                with registry.cursor() as cr:
                    env = api.Environment(cr, admin, {})
                    env["account.move"].browse(invoice_id).action_crm_charge_saved_method()
            except UserError as error:
                errors.append(str(error))

        with patch.object(Move, "_crm_settle_earlier_charges", slow_settle):
            thread = threading.Thread(target=first_click)
            thread.start()
            self.assertTrue(first_is_charging.wait(20))
            try:
                with registry.cursor() as cr:
                    env = api.Environment(cr, admin, {})
                    with self.assertRaisesRegex(UserError, "already in progress") as caught:
                        env["account.move"].browse(invoice_id).action_crm_charge_saved_method()
            finally:
                second_answered.set()
                thread.join(30)
        self.assertIn("a second click, another user", str(caught.exception))
        self.assertNotIn("unique", str(caught.exception).lower())
        # The first click went on (and stopped on its own: no saved card).
        self.assertEqual(len(errors), 1)
        self.assertIn("no saved payment method", errors[0])


@tagged("post_install", "-at_install")
class TestRefundFailingLate(HardeningCommon):
    """A refund Stripe could not make after all (card expired or closed): the accounting is
    undone, a person told once, the customer sent nothing, whatever the events' order."""

    def _paid_and_refunded(self, refund_client=None):
        self._crm_save_card()
        invoice = self._crm_invoice(100.0, invoice_user_id=self.salesman.id)
        self._charge(invoice)
        tx = invoice.transaction_ids
        wizard = (
            self.env["crm.payment.refund.wizard"]
            .with_user(self.accountant)
            .create({"transaction_id": tx.id, "amount": 30.0})
        )
        with self._crm_http(refund_client or StripeHttpMock({}, passthrough=True)):
            wizard.action_refund()
        return invoice, tx, tx.child_transaction_ids

    def _failed(self, refund_tx):
        """The refund as Stripe shows it once it failed."""
        refund = self.gateway.retrieve_refund(refund_tx.provider_reference)
        refund.update(status="failed", failure_reason="expired_or_canceled_card")
        return refund

    def _stripe_with(self, refund):
        return StripeHttpMock({("get", f"/v1/refunds/{refund['id']}"): (200, refund)}, passthrough=True)

    def _mails(self):
        """The emails to the customer (the salesperson's activity may notify them by email)."""
        return self.env["mail.mail"].search(
            [
                "|",
                ("recipient_ids", "in", (self.partner | self.contact).ids),
                ("email_to", "ilike", "azure@example.com"),
            ]
        )

    def _failure_activities(self, invoice):
        return invoice.activity_ids.filtered(lambda a: a.summary == "Stripe refund failed")

    def test_booked_refund_failing_is_undone_once_whatever_the_events(self):
        invoice, tx, refund_tx = self._paid_and_refunded()
        credit_note = refund_tx.invoice_ids
        payment = refund_tx.payment_id
        self.assertEqual((refund_tx.state, credit_note.payment_state), ("done", "paid"))
        self.assertIn(payment.state, ("in_process", "paid"))
        self.assertEqual(self.partner.credit, 0.0)
        mails_before = self._mails()
        failed = self._failed(refund_tx)
        succeeded = dict(failed, status="succeeded", failure_reason=None)
        stripe_now = self._stripe_with(failed)
        # Each name Stripe gives it, a stale "succeeded" after it, and the first one again.
        events = [
            self._post_event("refund.failed", failed),
            self._post_event("refund.updated", succeeded),
            self._post_event("charge.refund.updated", failed),
            self._post_event("refund.updated", failed),
            self._post_event("refund.failed", failed),
        ]
        self._process(stripe_now, *events)
        self.assertEqual(refund_tx.state, "error")
        self.assertIn("expired_or_canceled_card", refund_tx.state_message)
        self.assertEqual(payment.state, "canceled")
        # The credit note is open again: the customer is owed the 30 that never reached them.
        self.assertEqual(credit_note.state, "posted")
        self.assertEqual(credit_note.amount_residual, 30.0)
        self.assertEqual(credit_note.payment_state, "not_paid")
        self.partner.invalidate_recordset(["credit"])
        self.assertEqual(self.partner.credit, -30.0)
        self.assertTrue(self._crm_reconciled(invoice))  # its own payment stands
        activity = self._failure_activities(invoice)
        self.assertEqual(len(activity), 1)
        self.assertIn(credit_note.name, activity.note)
        self.assertEqual(self._mails(), mails_before)  # no "refund sent", nor anything else
        # Refunding again would book a second credit note while this one stands.
        self.assertEqual(tx._crm_refundable_amount(), 70.0)
        credit_note.button_draft()
        credit_note.button_cancel()
        self.assertEqual(tx._crm_refundable_amount(), 100.0)

    def test_refund_failing_before_it_was_booked(self):
        invoice, tx, refund_tx = self._paid_and_refunded(PendingRefunds({}, passthrough=True))
        self.assertEqual(refund_tx.state, "pending")
        self.assertFalse(refund_tx.payment_id)
        mails_before = self._mails()
        failed = self._failed(refund_tx)
        succeeded = dict(failed, status="succeeded", failure_reason=None)
        # The failure is delivered before the (stale) success, then again.
        events = [
            self._post_event("refund.failed", failed),
            self._post_event("charge.refund.updated", succeeded),
            self._post_event("refund.updated", failed),
        ]
        self._process(self._stripe_with(failed), *events)
        self.assertEqual(refund_tx.state, "error")
        self.assertFalse(refund_tx.payment_id)
        self.assertFalse(self.env["account.move"].search([("reversed_entry_id", "=", invoice.id)]))
        self.assertEqual(len(self._failure_activities(invoice)), 1)
        self.assertEqual(self._mails(), mails_before)
        self.assertEqual(tx._crm_refundable_amount(), 100.0)

    def test_webhook_endpoint_subscribes_to_every_refund_failure_event(self):
        http = StripeHttpMock({}, passthrough=False)
        http.routes[
            ("post", f"/_config/webhooks/odoo-{self.provider._crm_database_uuid()[:8]}-{self.provider.id}")
        ] = (
            200,
            {},
        )
        with self._crm_http(http):
            self.provider.action_crm_register_webhook()
        events = json.loads(http.requests[-1]["data"])["events"]
        for name in ("refund.updated", "refund.failed", "charge.refund.updated"):
            self.assertIn(name, events)
