"""Two double-charge paths found in review: a billing run rolled back after Stripe charged,
and the customer's lasting payment link while an off-session charge's answer is lost."""

from datetime import date, timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from .test_hardening_payments import HardeningCommon, LostAnswers, Unreachable

PERIOD = date(2027, 1, 15)


class WorkerKilled(Exception):
    """Not a user error: it escapes the billing batch, which is rolled back."""


@tagged("post_install", "-at_install")
class TestBillingRunRolledBackAfterCharge(HardeningCommon):
    """Stripe charged the period, then the batch was rolled back with its invoice: the charge
    comes back (webhook or cron) without invoice, and the next run must not charge again."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product = cls.env["product.product"].create(
            {"name": "Support plan", "type": "service", "list_price": 100.0}
        )

    def _subscription(self, token):
        subscription = self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "start_date": PERIOD,
                "payment_token_id": token.id,
                "line_ids": [(0, 0, {"product_id": self.product.id, "quantity": 2, "price_unit": 50.0})],
            }
        )
        subscription.action_start()
        return subscription

    def _bill_then_roll_back(self, subscription, http):
        """A billing run whose batch is rolled back right after Stripe charged the period; the
        record of the request, committed apart in production, is all that remains."""
        Subscription = type(self.env["crm.subscription"])
        original = Subscription._charge_invoice
        kept = []
        fields_kept = ["operation", "reference", "idempotency_key", "params", "tx_values", "partner_ref"]
        fields_kept += ["invoice_refs", "parent_ref", "state"]

        def charge_then_die(sub, invoice, today=None):
            original(sub, invoice, today)
            requests = self.Request.search([("reference", "=like", f"{sub.name}-%")])
            kept.extend(dict(r.read(fields_kept)[0], provider_id=r.provider_id.id) for r in requests)
            raise WorkerKilled("worker killed after Stripe charged")

        with self._crm_http(http), self.assertRaises(WorkerKilled):
            with self.env.cr.savepoint(), patch.object(Subscription, "_charge_invoice", charge_then_die):
                self.env["crm.subscription"]._cron_bill(now=PERIOD)
        self.env.invalidate_all()
        self.assertFalse(subscription.invoice_ids)  # rolled back with the batch
        self.assertEqual(subscription.next_invoice_date, PERIOD)
        for values in kept:
            values.pop("id")
            self.Request.create(values)
        self.assertEqual([pi["status"] for pi in self._new_intents()], ["succeeded"])
        return kept[0]["reference"]

    def test_charge_restored_without_invoice_pays_the_next_runs_invoice(self):
        subscription = self._subscription(self._crm_save_card())
        http = LostAnswers()
        reference = self._bill_then_roll_back(subscription, http)
        self.assertEqual(reference, f"{subscription.name}-{PERIOD}")
        # The cron settles the request: the charge is restored, paying no invoice (gone).
        with self._crm_http(http):
            self.Request._cron_resolve(now=fields.Datetime.now() + timedelta(minutes=5))
        restored = self.env["payment.transaction"].search([("reference", "=", reference)])
        self.assertEqual(
            (restored.state, restored.crm_flow, restored.invoice_ids.ids), ("done", "off_session", [])
        )
        self.assertTrue(restored.payment_id)  # the customer's credit meanwhile
        # The next run invoices the period again and does not charge it a second time.
        with self._crm_http(http):
            self.assertEqual(self.env["crm.subscription"]._cron_bill(now=PERIOD), 1)
        invoice = subscription.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.crm_period_start, PERIOD)
        self.assertEqual(len(self._new_intents()), 1)
        self.assertFalse(self.env["payment.transaction"].search([("reference", "=like", f"{reference}-%")]))
        self.assertEqual(invoice.transaction_ids, restored)
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(invoice.amount_residual, 0.0)
        self.partner.invalidate_recordset(["credit"])
        self.assertEqual(self.partner.credit, 0.0)  # no credit left over: paid once
        self.assertEqual(subscription.next_invoice_date, date(2027, 2, 15))

    def test_charge_restored_after_the_period_is_invoiced_again_pays_that_invoice(self):
        subscription = self._subscription(self._crm_save_card())
        http = LostAnswers()
        reference = self._bill_then_roll_back(subscription, http)
        # The period is invoiced again (its charge failing with a user error, say) before the
        # webhook of the first charge arrives: restored, the charge finds the new invoice.
        invoice = subscription._bill_periods()[0][1]
        self.assertEqual(invoice.state, "posted")
        intent = self._new_intents()[0]
        event = self._post_event("payment_intent.succeeded", intent)
        self._process(http, event)
        restored = self.env["payment.transaction"].search([("reference", "=", reference)])
        self.assertEqual(restored.state, "done")
        self.assertEqual(restored.invoice_ids, invoice)
        self.assertTrue(self._crm_reconciled(invoice))
        with self._crm_http(http):
            subscription._charge_invoice(invoice)  # what the run would do: nothing
        self.assertEqual(len(self._new_intents()), 1)
        self.assertEqual(invoice.transaction_ids, restored)


@tagged("post_install", "-at_install")
class TestPayLinkWhileChargeUnanswered(HardeningCommon):
    """The customer's lasting payment link while an off-session charge's answer is lost."""

    def _open_pay_link(self, invoice):
        return self.url_open(
            f"/crm_payment/stripe/pay/{invoice.id}?access_token={invoice._portal_ensure_token()}",
            allow_redirects=False,
        )

    @staticmethod
    def _checkout_calls(http):
        return [r for r in http.requests if r["method"] == "post" and "/v1/checkout/sessions" in r["url"]]

    def test_pay_link_settles_the_lost_charge_instead_of_opening_a_page(self):
        self._crm_save_card()
        invoice = self._crm_invoice(100.0)
        http = LostAnswers(lose={"/v1/payment_intents"})
        with self._crm_http(http):
            self._charge(invoice)
        tx = invoice.transaction_ids
        self.assertEqual((tx.state, tx.crm_answer_unknown), ("draft", True))
        self.assertEqual(invoice.payment_state, "not_paid")
        http.lose.clear()
        with self._crm_http(http):
            response = self._open_pay_link(invoice)
        self.assertEqual(response.status_code, 303)
        self.assertNotIn("checkout", response.headers["Location"])
        self.assertIn(invoice.get_portal_url().split("?")[0], response.headers["Location"])
        self.assertFalse(self._checkout_calls(http))
        self.env.invalidate_all()
        self.assertEqual((tx.state, tx.crm_answer_unknown), ("done", False))
        self.assertEqual(invoice.transaction_ids, tx)
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(tx.payment_id.amount, 100.0)
        self.assertEqual(len(self._new_intents()), 1)

    def test_pay_link_while_stripe_cannot_tell_says_payment_is_processed(self):
        self._crm_save_card()
        invoice = self._crm_invoice(70.0)
        http = Unreachable(lose={"/v1/payment_intents"})
        with self._crm_http(http):
            self._charge(invoice)
        tx = invoice.transaction_ids
        self.assertTrue(tx.crm_answer_unknown)
        with self._crm_http(http):
            response = self._open_pay_link(invoice)
        self.assertEqual(response.status_code, 200)
        self.assertIn("being processed", response.text)
        self.assertFalse(self._checkout_calls(http))
        # The back office is told the same, not given a link to send.
        tx.invalidate_recordset()
        tx.write({"crm_answer_unknown": False})
        self.Request.search([("reference", "=", tx.reference)]).write({"state": "done"})
        with self._crm_http(http), self.assertRaisesRegex(UserError, "is in progress"):
            invoice.with_user(self.accountant).action_crm_send_payment_link()
        self.assertFalse(self._checkout_calls(http))
        self.assertFalse(invoice.crm_payment_url)
