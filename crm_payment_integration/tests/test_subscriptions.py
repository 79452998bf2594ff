import re
from datetime import date
from unittest.mock import patch

import psycopg2
from dateutil.relativedelta import relativedelta

from odoo.exceptions import UserError
from odoo.tests import Form, HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from .common import CrmPaymentCommon, FakeCheckout, StripeHttpMock
from .test_payments import IdempotentLocalstripe


class SubscriptionBillingCommon(CrmPaymentCommon):
    """A monthly subscription of 2 × 50.00 starting on ``START``, and the billing run at a time."""

    START = date(2027, 1, 15)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product = cls.env["product.product"].create(
            {"name": "Support plan", "type": "service", "list_price": 100.0}
        )

    def _subscription(self, token=None, **values):
        return self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "start_date": self.START,
                "payment_token_id": token.id if token else False,
                "line_ids": [(0, 0, {"product_id": self.product.id, "quantity": 2, "price_unit": 50.0})],
                **values,
            }
        )

    def _bill(self, now):
        return self.env["crm.subscription"]._cron_bill(now=now)


@tagged("post_install", "-at_install")
class TestSubscriptionBilling(SubscriptionBillingCommon):
    """The billing run: one invoice per subscription and period, one charge per invoice,
    whatever the run goes through. Time is a parameter: a year is walked in seconds."""

    def test_a_year_of_monthly_billing(self):
        token = self._crm_save_card()
        subscription = self._subscription(token)
        subscription.action_start()
        self.assertEqual((subscription.state, subscription.next_invoice_date), ("active", date(2027, 1, 15)))
        self.assertEqual(subscription.mrr, 100.0)
        for month in range(12):
            day = date(2027, 1, 15) + relativedelta(months=month)
            self.assertEqual(self._bill(day), 1)
            self.assertEqual(self._bill(day), 0)  # the same run again does nothing
        invoices = subscription.invoice_ids.sorted("crm_period_start")
        self.assertEqual(len(invoices), 12)
        self.assertEqual(invoices[0].crm_period_start, date(2027, 1, 15))
        self.assertEqual(invoices[0].crm_period_end, date(2027, 2, 14))
        self.assertEqual(invoices[-1].crm_period_start, date(2027, 12, 15))
        self.assertIn("2027-12-15", invoices[-1].invoice_line_ids.name)
        self.assertTrue(all(self._crm_reconciled(invoice) for invoice in invoices))
        charges = invoices.transaction_ids
        self.assertEqual(len(charges), 12)
        self.assertEqual(set(charges.mapped("state")), {"done"})
        self.assertEqual(len(set(charges.mapped("provider_reference"))), 12)
        self.assertEqual(subscription.next_invoice_date, date(2028, 1, 15))

    def test_run_killed_halfway_resumes_without_second_charge(self):
        token = self._crm_save_card()
        first, second = self._subscription(token), self._subscription(token)
        (first + second).action_start()
        http = IdempotentLocalstripe()
        Subscription = type(self.env["crm.subscription"])
        original = Subscription._charge_invoice

        def charge_then_die(subscription, invoice, today=None):
            original(subscription, invoice, today)
            if subscription == second:
                raise KeyboardInterrupt("worker killed after Stripe charged")

        with self._crm_http(http):
            with self.assertRaises(KeyboardInterrupt):
                with self.env.cr.savepoint(), patch.object(Subscription, "_charge_invoice", charge_then_die):
                    self._bill(date(2027, 1, 15))
            self.env.invalidate_all()
            self.assertFalse((first + second).invoice_ids)  # the batch in progress is lost...
            # ...meanwhile an accountant posts an invoice: the run's invoices get other names...
            self._crm_invoice(10.0)
            self.assertEqual(self._bill(date(2027, 1, 15)), 2)  # ...and the next run redoes it
        keys = [
            r["headers"].get("Idempotency-Key")
            for r in http.requests
            if r["method"] == "post" and r["url"].endswith("/v1/payment_intents")
        ]
        self.assertEqual(len(keys), 4)
        self.assertEqual(len(set(keys)), 2)  # Stripe answered the repeats with the first charges
        for subscription in first + second:
            self.assertEqual(len(subscription.invoice_ids), 1)
            self.assertTrue(self._crm_reconciled(subscription.invoice_ids))

    def test_one_invoice_per_period_is_a_database_rule(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        invoice = subscription.invoice_ids
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
            invoice.copy(
                {"crm_subscription_id": subscription.id, "crm_period_start": invoice.crm_period_start}
            )

    def test_without_saved_method_the_invoice_is_sent_with_a_link(self):
        fake = FakeCheckout()
        subscription = self._subscription()
        subscription.action_start()
        with self._crm_http(fake):
            self._bill(date(2027, 1, 15))
        invoice = subscription.invoice_ids
        self.assertEqual(invoice.state, "posted")
        self.assertTrue(invoice.crm_payment_url)
        self.assertTrue(
            self.env["mail.mail"].search([("model", "=", "account.move"), ("res_id", "=", invoice.id)])
        )
        self.assertFalse(invoice.transaction_ids.filtered(lambda tx: tx.crm_flow == "off_session"))

    def test_a_failing_subscription_does_not_stop_the_run(self):
        failing = self._subscription()  # no saved method: a link, and localstripe has no Checkout
        billed = self._subscription(self._crm_save_card())
        (failing + billed).action_start()
        self.assertEqual(self._bill(date(2027, 1, 15)), 1)
        self.assertTrue(self._crm_reconciled(billed.invoice_ids))
        # Its invoice stands, unpaid and without a link; due again, the next run sends it.
        self.assertEqual(
            (failing.invoice_ids.state, failing.invoice_ids.payment_state), ("posted", "not_paid")
        )
        self.assertFalse(failing.invoice_ids.crm_payment_url)
        self.assertEqual(failing.next_invoice_date, date(2027, 1, 15))
        self.assertIn("Billing failed", failing.message_ids[0].body)
        with self._crm_http(FakeCheckout()):
            self.assertEqual(self._bill(date(2027, 1, 16)), 1)
        self.assertEqual(len(failing.invoice_ids), 1)
        self.assertTrue(failing.invoice_ids.crm_payment_url)
        self.assertEqual(failing.next_invoice_date, date(2027, 2, 15))
        self.assertEqual(len(billed.invoice_ids), 1)

    def test_trial_then_active(self):
        token = self._crm_save_card()
        subscription = self._subscription(token, trial_end_date=date(2099, 2, 1))
        subscription.action_start()
        self.assertEqual(subscription.state, "trial")
        self.assertEqual(subscription.mrr, 0.0)
        self.assertEqual(self._bill(date(2099, 1, 31)), 0)
        self.assertEqual(self._bill(date(2099, 2, 1)), 1)
        self.assertEqual(subscription.state, "active")
        self.assertEqual(subscription.invoice_ids.crm_period_start, date(2099, 2, 1))

    def test_created_from_a_plan(self):
        tax = self.env["account.tax"].create({"name": "VAT 21", "amount": 21, "type_tax_use": "sale"})
        plan = self.env["crm.subscription.template"].create(
            {
                "name": "Quarterly support",
                "interval_number": 3,
                "interval_unit": "month",
                "trial_days": 14,
                "line_ids": [
                    (
                        0,
                        0,
                        {
                            "product_id": self.product.id,
                            "quantity": 3,
                            "price_unit": 40.0,
                            "tax_ids": [(6, 0, tax.ids)],
                        },
                    )
                ],
            }
        )
        subscription = self.env["crm.subscription"].create(
            {"partner_id": self.partner.id, "start_date": date(2027, 1, 15), "template_id": plan.id}
        )
        self.assertEqual((subscription.interval_number, subscription.interval_unit), (3, "month"))
        self.assertEqual(subscription.trial_end_date, date(2027, 1, 29))
        self.assertEqual(
            (subscription.line_ids.quantity, subscription.line_ids.price_unit, subscription.line_ids.tax_ids),
            (3, 40.0, tax),
        )
        with patch("odoo.fields.Date.context_today", return_value=date(2027, 1, 15)):
            subscription.action_start()
        self.assertEqual((subscription.state, subscription.next_invoice_date), ("trial", date(2027, 1, 29)))
        self.assertEqual(plan.subscription_count, 1)
        # In the form, choosing the plan fills the subscription in; it can then be changed.
        with Form(self.env["crm.subscription"]) as form:
            form.partner_id = self.partner
            form.template_id = plan
            self.assertEqual(len(form.line_ids), 1)
            with form.line_ids.edit(0) as line:
                line.quantity = 5
        self.assertEqual(form.record.line_ids.quantity, 5)
        self.assertEqual(form.record.interval_number, 3)
        # A subscription in another currency gets the plan's prices converted.
        eur = self._crm_currency("EUR")
        eur.active = True
        self.env["res.currency.rate"].create({"currency_id": eur.id, "name": date(2027, 1, 1), "rate": 0.5})
        in_eur = self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "start_date": date(2027, 1, 15),
                "template_id": plan.id,
                "currency_id": eur.id,
            }
        )
        self.assertEqual(in_eur.line_ids.price_unit, 20.0)

    def test_mrr_normalised_per_month_in_company_currency(self):
        yearly = self._subscription(interval_unit="year")
        yearly.line_ids.price_unit = 600.0  # 1,200 a year
        yearly.action_start()
        self.assertEqual(yearly.mrr, 100.0)
        yearly.action_cancel("Too expensive")
        self.assertEqual(yearly.mrr, 0.0)
        self.assertIn("Too expensive", yearly.message_ids[0].body)

    def test_expires_after_end_date(self):
        subscription = self._subscription(self._crm_save_card(), end_date=date(2027, 2, 20))
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        self._bill(date(2027, 2, 15))
        self._bill(date(2027, 3, 15))
        self.assertEqual(len(subscription.invoice_ids), 2)
        self.assertEqual(subscription.state, "expired")

    def test_pause_resume_and_cancel_at_period_end(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        subscription.action_pause()
        self.assertEqual((subscription.state, subscription.mrr), ("paused", 0.0))
        self.assertEqual(self._bill(date(2027, 3, 15)), 0)  # paused: nothing billed
        with patch("odoo.fields.Date.context_today", return_value=date(2027, 4, 2)):
            subscription.action_resume()
        self.assertEqual((subscription.state, subscription.next_invoice_date), ("active", date(2027, 4, 2)))
        self._bill(date(2027, 4, 2))
        subscription.action_cancel_at_period_end("Moving to a competitor")
        self.assertEqual(subscription.end_date, date(2027, 5, 1))
        self._bill(date(2027, 5, 2))
        self.assertEqual(subscription.state, "expired")
        self.assertEqual(len(subscription.invoice_ids), 2)

    def test_reactivation(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        subscription.action_cancel_at_period_end("Too expensive")
        self.assertEqual(subscription.end_date, date(2027, 2, 14))
        subscription.action_reactivate()  # changed their mind before the end
        self.assertFalse(subscription.end_date)
        self._bill(date(2027, 2, 15))
        self.assertEqual((subscription.state, len(subscription.invoice_ids)), ("active", 2))
        subscription.action_cancel("Closing the account")
        with patch("odoo.fields.Date.context_today", return_value=date(2027, 3, 1)):
            subscription.action_reactivate()  # within the period already paid: billed after it
        self.assertEqual((subscription.state, subscription.next_invoice_date), ("active", date(2027, 3, 15)))
        subscription.action_cancel("Closing the account, really")
        self.assertEqual(self._bill(date(2027, 4, 1)), 0)
        with patch("odoo.fields.Date.context_today", return_value=date(2027, 4, 1)):
            subscription.action_reactivate()  # back after a while: a new period from that day
        self.assertEqual((subscription.state, subscription.next_invoice_date), ("active", date(2027, 4, 1)))
        self._bill(date(2027, 4, 1))
        self.assertEqual(
            subscription.invoice_ids.sorted("crm_period_start")[-1].crm_period_start, date(2027, 4, 1)
        )
        self.assertTrue(self._crm_reconciled(subscription.invoice_ids.sorted("crm_period_start")[-1]))
        with self.assertRaisesRegex(UserError, "nothing to reactivate"):
            subscription.action_reactivate()
        # Cancelled for want of payment: reactivated, its unpaid invoice is charged again first.
        declining = self._subscription(self._crm_save_card("4000000000000341"))
        declining.action_start()
        self._bill(date(2027, 1, 15))
        self.assertEqual(declining.state, "past_due")
        declining.action_cancel("unpaid")
        with patch("odoo.fields.Date.context_today", return_value=date(2027, 1, 20)):
            declining.action_reactivate()
        self.assertEqual((declining.state, declining.dunning_next_date), ("past_due", date(2027, 1, 20)))
        self.assertEqual(declining.next_invoice_date, date(2027, 2, 15))

    def test_created_from_an_opportunity_and_shown_on_partner(self):
        lead = self.env["crm.lead"].create(
            {
                "name": "Support contract",
                "type": "opportunity",
                "partner_id": self.contact.id,
                "user_id": self.salesman.id,
            }
        )
        action = lead.with_user(self.salesman).action_crm_create_subscription()
        subscription = (
            self.env["crm.subscription"]
            .with_user(self.salesman)
            .with_context(**action["context"])
            .create({"line_ids": [(0, 0, {"product_id": self.product.id, "price_unit": 30.0})]})
        )
        self.assertEqual(
            (subscription.partner_id, subscription.lead_id, subscription.user_id),
            (self.partner, lead, self.salesman),
        )
        self.assertTrue(subscription.name.startswith("SUB/"))
        self.assertEqual(lead.crm_subscription_count, 1)
        self.assertEqual(self.contact.crm_subscription_count, 1)
        self.assertEqual(
            self.partner.action_crm_view_subscriptions()["domain"], [("partner_id", "=", self.partner.id)]
        )

    def test_dunning_retries_on_schedule_then_pauses(self):
        token = self._crm_save_card("4000000000000341")  # attaches, declines every charge
        subscription = self._subscription(token, user_id=self.salesman.id)
        subscription.action_start()
        start = date(2027, 1, 15)
        self._bill(start)
        self.assertEqual(
            (subscription.state, subscription.dunning_next_date), ("past_due", date(2027, 1, 16))
        )
        self.assertEqual(subscription.mrr, 100.0)  # still owed: counts until paused or cancelled
        self.assertEqual(self._bill(date(2027, 1, 15)), 0)  # nothing before the retry day
        for retry_day, next_retry in ((16, 18), (18, 20), (20, 22)):
            self._bill(date(2027, 1, retry_day))
            self.assertEqual(subscription.dunning_next_date, date(2027, 1, next_retry))
        self._bill(date(2027, 1, 22))  # the last retry
        self.assertEqual((subscription.state, subscription.dunning_attempts), ("paused", 5))
        self.assertEqual(subscription.activity_ids.user_id, self.salesman)
        invoice = subscription.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual(len(invoice.transaction_ids), 5)
        self.assertEqual(set(invoice.transaction_ids.mapped("state")), {"error"})

    def test_dunning_recovers_when_a_retry_succeeds(self):
        token = self._crm_save_card("4000000000000341")
        subscription = self._subscription(token)
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        self.assertEqual(subscription.state, "past_due")
        subscription.payment_token_id = self._crm_save_card()  # a working card
        self._bill(date(2027, 1, 16))
        self.assertEqual((subscription.state, subscription.dunning_attempts), ("active", 0))
        self.assertTrue(self._crm_reconciled(subscription.invoice_ids))

    def test_lost_card_is_not_retried(self):
        token = self._crm_save_card()
        subscription = self._subscription(token)
        subscription.action_start()
        error = {
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "lost_card",
                "message": "Your card was declined.",
            }
        }
        http = StripeHttpMock({("post", "/v1/payment_intents"): (402, error)}, passthrough=True)
        with self._crm_http(http):
            self._bill(date(2027, 1, 15))
        self.assertEqual(subscription.state, "past_due")
        self.assertFalse(subscription.dunning_next_date)
        self.assertIn("cannot succeed", "".join(subscription.message_ids.mapped("body")))

    def test_dunning_can_cancel_instead(self):
        self.company.write({"crm_dunning_retry_days": "2", "crm_dunning_final_action": "cancel"})
        subscription = self._subscription(self._crm_save_card("4000000000000341"))
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        self.assertEqual(subscription.dunning_next_date, date(2027, 1, 17))
        self._bill(date(2027, 1, 17))
        self.assertEqual(subscription.state, "cancelled")

    def test_new_payment_method_pays_past_due_invoices_at_once(self):
        subscription = self._subscription(self._crm_save_card("4000000000000341"))
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        self.assertEqual(subscription.state, "past_due")
        fake = FakeCheckout()
        with self._crm_http(fake):
            self.partner.action_crm_send_setup_link()
            tx = self.env["payment.transaction"].search(
                [("partner_id", "=", self.partner.id), ("operation", "=", "validation")]
            )
            self._crm_attach_card(self.customer_id)  # saved on the page, made the default
            session = fake.save_method(tx.crm_checkout_session_id)
            tx._crm_apply_checkout_session(session)
        self.assertEqual(subscription.state, "active")
        self.assertTrue(self._crm_reconciled(subscription.invoice_ids))
        self.assertNotEqual(subscription.payment_token_id.stripe_payment_method, False)

    def test_upgrade_prorated_on_next_invoice(self):
        subscription = self._subscription(self._crm_save_card(), start_date=date(2027, 1, 1))
        subscription.action_start()
        self._bill(date(2027, 1, 1))  # January: 2 x 50
        # On the 22nd, 10 of 31 days left: 2 -> 5 seats, 150 more a month -> 48.39.
        subscription.line_ids.with_context(crm_today=date(2027, 1, 22)).quantity = 5
        self.assertEqual(subscription.adjustment_ids.amount, 48.39)
        self._bill(date(2027, 2, 1))
        february = subscription.invoice_ids.filtered(lambda m: m.crm_period_start == date(2027, 2, 1))
        self.assertEqual(february.amount_total, 250.0 + 48.39)
        self.assertEqual(subscription.adjustment_ids.invoice_id, february)
        self.assertTrue(self._crm_reconciled(february))

    def test_downgrade_credited_at_once(self):
        self.company.crm_proration_mode = "immediate"
        subscription = self._subscription(self._crm_save_card(), start_date=date(2027, 1, 1))
        subscription.action_start()
        self._bill(date(2027, 1, 1))
        subscription.line_ids.with_context(crm_today=date(2027, 1, 17)).quantity = 1  # 15 of 31 days
        credit = subscription.invoice_ids.filtered(lambda m: m.move_type == "out_refund")
        self.assertEqual(credit.amount_total, 24.19)
        self.assertEqual(credit.state, "posted")
        self.assertFalse(subscription.adjustment_ids)

    def test_bad_lines_and_dates_refused(self):
        subscription = self._subscription()
        for values in ({"quantity": -1}, {"price_unit": -5.0}, {"discount": 150.0}):
            with (
                mute_logger("odoo.sql_db"),
                self.assertRaises(psycopg2.IntegrityError),
                self.env.cr.savepoint(),
            ):
                subscription.line_ids.write(values)
                subscription.line_ids.flush_recordset()
        with self.assertRaisesRegex(UserError, "cannot come before its start"):
            subscription.end_date = date(2026, 12, 31)

    def test_retry_does_not_charge_again_while_a_charge_waits(self):
        subscription = self._subscription(self._crm_save_card("4000002500003155"))  # needs 3-D Secure
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        invoice = subscription.invoice_ids
        self.assertEqual(invoice.transaction_ids.state, "pending")
        subscription.write({"state": "past_due", "dunning_next_date": date(2027, 1, 16)})
        self._bill(date(2027, 1, 16))
        self.assertEqual(len(invoice.transaction_ids), 1)

    def test_renewal_and_card_expiry_reminders_sent_once(self):
        self._crm_attach_card(self.customer_id, exp_year=2027)  # expires end of August 2027
        self.partner.action_crm_stripe_sync()
        token = self.partner._crm_default_token()
        subscription = self._subscription(token)
        subscription.action_start()
        self._bill(date(2027, 1, 15))
        Mail = self.env["mail.mail"]
        renewals = [("model", "=", "crm.subscription"), ("res_id", "=", subscription.id)]
        self.assertEqual(self.env["crm.subscription"]._cron_reminders(now=date(2027, 2, 7)), 0)
        self.assertEqual(self.env["crm.subscription"]._cron_reminders(now=date(2027, 2, 8)), 1)
        self.assertEqual(self.env["crm.subscription"]._cron_reminders(now=date(2027, 2, 9)), 0)  # once
        self.assertIn("renews on 2027-02-15", Mail.search(renewals).subject)
        fake = FakeCheckout()
        with self._crm_http(fake):
            subscription.renewal_reminded_for = subscription.next_invoice_date = date(2027, 9, 15)
            self.assertEqual(self.env["crm.subscription"]._cron_reminders(now=date(2027, 8, 1)), 1)
            self.assertEqual(self.env["crm.subscription"]._cron_reminders(now=date(2027, 8, 2)), 0)
        setup = self.env["payment.transaction"].search(
            [("partner_id", "=", self.partner.id), ("operation", "=", "validation")]
        )
        mail = Mail.search([("model", "=", "payment.transaction"), ("res_id", "=", setup.id)])
        self.assertIn("expires soon", mail.subject)
        self.assertIn(setup.crm_checkout_url, mail.body_html)


@tagged("post_install", "-at_install")
class TestSubscriptionPortal(CrmPaymentCommon, HttpCase):
    """/my/subscriptions: a customer sees and cancels only their company's subscriptions."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        product = cls.env["product.product"].create({"name": "Hosting", "type": "service"})
        other = cls.env["res.partner"].create({"name": "Other Customer", "is_company": True})
        cls.mine, cls.theirs = cls.env["crm.subscription"].create(
            [
                {
                    "partner_id": partner.id,
                    "start_date": date(2027, 1, 15),
                    "line_ids": [(0, 0, {"product_id": product.id, "price_unit": 20.0})],
                }
                for partner in (cls.partner, other)
            ]
        )
        (cls.mine + cls.theirs).action_start()
        new_test_user(cls.env, login="crm_portal_sub", groups="base.group_portal", partner_id=cls.contact.id)

    def setUp(self):
        super().setUp()
        self.authenticate("crm_portal_sub", "crm_portal_sub")

    def test_list_and_detail_show_only_own(self):
        page = self.url_open("/my/subscriptions")
        self.assertEqual(page.status_code, 200)
        self.assertIn(self.mine.name, page.text)
        self.assertNotIn(self.theirs.name, page.text)
        detail = self.url_open(f"/my/subscriptions/{self.mine.id}")
        self.assertEqual(detail.status_code, 200)
        self.assertIn("Hosting", detail.text)
        self.assertEqual(self.url_open(f"/my/subscriptions/{self.theirs.id}").status_code, 404)
        self.assertEqual(self.url_open("/my/subscriptions/999999").status_code, 404)

    def test_cancel_needs_csrf_and_a_reason_and_only_own(self):
        detail = self.url_open(f"/my/subscriptions/{self.mine.id}").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', detail).group(1)
        url = f"/my/subscriptions/{self.mine.id}/cancel"
        with mute_logger("odoo.http"):
            forged = self.url_open(url, data={"reason": "Too expensive"})  # no CSRF token
        self.assertEqual(forged.status_code, 400)
        self.assertFalse(self.mine.end_date)
        self.url_open(url, data={"reason": "", "csrf_token": token})
        self.assertFalse(self.mine.end_date)
        done = self.url_open(url, data={"reason": "Too expensive", "csrf_token": token})
        self.assertEqual(done.status_code, 200)
        self.assertEqual(self.mine.end_date, date(2027, 1, 14))
        self.assertIn("Too expensive", "".join(self.mine.message_ids.mapped("body")))
        other = self.url_open(
            f"/my/subscriptions/{self.theirs.id}/cancel", data={"reason": "x", "csrf_token": token}
        )
        self.assertEqual(other.status_code, 404)
        self.assertFalse(self.theirs.end_date)
        # Changed their mind: "Keep my subscription" drops the planned end.
        self.assertIn("o_crm_subscription_keep", done.text)
        with mute_logger("odoo.http"):
            self.assertEqual(
                self.url_open(f"/my/subscriptions/{self.mine.id}/keep", data={"x": "1"}).status_code, 400
            )
        self.assertEqual(self.mine.end_date, date(2027, 1, 14))
        kept = self.url_open(f"/my/subscriptions/{self.mine.id}/keep", data={"csrf_token": token})
        self.assertEqual(kept.status_code, 200)
        self.assertFalse(self.mine.end_date)
        # A fixed term the salesperson set is not the customer's to lift.
        self.mine.end_date = date(2027, 6, 30)
        self.assertNotIn("o_crm_subscription_keep", self.url_open(f"/my/subscriptions/{self.mine.id}").text)
        self.url_open(f"/my/subscriptions/{self.mine.id}/keep", data={"csrf_token": token})
        self.assertEqual(self.mine.end_date, date(2027, 6, 30))

    def test_payment_methods_page(self):
        first = self._crm_save_card()
        self._crm_attach_card(self.customer_id, number="5555555555554444", default=False)
        self.partner.action_crm_stripe_sync()
        second = self.partner._crm_tokens() - first
        self.mine.payment_token_id = first
        page = self.url_open("/my/payment_method")
        self.assertEqual(page.status_code, 200)
        self.assertEqual(page.text.count("o_crm_token_row"), 2)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        # Another customer's method, or no CSRF token: refused.
        with mute_logger("odoo.http"):
            self.assertEqual(
                self.url_open(f"/my/payment_method/{second.id}/default", data={"x": "1"}).status_code, 400
            )
        other_token = self.env["payment.token"].create(
            {
                "provider_id": self.provider.id,
                "payment_method_id": first.payment_method_id.id,
                "partner_id": self.theirs.partner_id.id,
                "provider_ref": "cus_other",
                "stripe_payment_method": "pm_other",
                "payment_details": "0000",
            }
        )
        self.assertEqual(
            self.url_open(
                f"/my/payment_method/{other_token.id}/remove", data={"csrf_token": token}
            ).status_code,
            404,
        )
        self.assertTrue(other_token.active)
        # Choose the second as default: Stripe and the running subscription follow.
        self.url_open(f"/my/payment_method/{second.id}/default", data={"csrf_token": token})
        customer = self.gateway.retrieve_customer(self.customer_id)
        self.assertEqual(customer["invoice_settings"]["default_payment_method"], second.stripe_payment_method)
        self.assertEqual(self.mine.payment_token_id, second)
        # Remove it: detached in Stripe, archived here, the subscription falls back to the first.
        self.url_open(f"/my/payment_method/{second.id}/remove", data={"csrf_token": token})
        self.assertFalse(second.active)
        self.assertFalse(self.gateway.retrieve_payment_method(second.stripe_payment_method)["customer"])
        self.assertEqual(self.mine.payment_token_id, first)
        # Add one: straight to Stripe's setup page.
        fake = FakeCheckout()
        with self._crm_http(fake):
            response = self.url_open(
                "/my/payment_method/add", data={"csrf_token": token}, allow_redirects=False
            )
        self.assertEqual(response.status_code, 303)
        self.assertTrue(response.headers["Location"].startswith("https://checkout.stripe.com/"))
        self.assertEqual(list(fake.sessions.values())[0]["mode"], "setup")

    def test_pause_and_resume_only_where_the_plan_allows(self):
        detail = self.url_open(f"/my/subscriptions/{self.mine.id}").text
        self.assertNotIn("o_crm_subscription_pause", detail)
        self.assertIn("/my/payment_method", detail)  # change the payment method from here
        token = re.search(r'name="csrf_token" value="([^"]+)"', detail).group(1)
        pause = f"/my/subscriptions/{self.mine.id}/pause"
        with mute_logger("odoo.http"):
            self.assertEqual(self.url_open(pause, data={"csrf_token": token}).status_code, 403)
        self.assertEqual(self.mine.state, "active")
        plan = self.env["crm.subscription.template"].create({"name": "Flexible", "portal_pause": True})
        (self.mine + self.theirs).template_id = plan
        detail = self.url_open(f"/my/subscriptions/{self.mine.id}").text
        self.assertIn("o_crm_subscription_pause", detail)
        with mute_logger("odoo.http"):
            self.assertEqual(self.url_open(pause, data={"x": "1"}).status_code, 400)  # no CSRF token
        self.assertEqual(self.mine.state, "active")
        self.assertEqual(
            self.url_open(
                f"/my/subscriptions/{self.theirs.id}/pause", data={"csrf_token": token}
            ).status_code,
            404,
        )
        self.assertEqual(self.theirs.state, "active")
        page = self.url_open(pause, data={"csrf_token": token})
        self.assertEqual(page.status_code, 200)
        self.assertEqual(self.mine.state, "paused")
        self.assertIn("o_crm_subscription_resume", page.text)
        self.url_open(f"/my/subscriptions/{self.mine.id}/resume", data={"csrf_token": token})
        self.assertEqual(self.mine.state, "active")
        self.assertIn("Resumed by the customer", "".join(self.mine.message_ids.mapped("body")))
        # Paused for want of payment, it is resumed by paying, not from the portal.
        self.mine.write({"state": "paused", "dunning_attempts": 4})
        self.url_open(f"/my/subscriptions/{self.mine.id}/resume", data={"csrf_token": token})
        self.assertEqual(self.mine.state, "paused")

    def test_tour_customer_cancels(self):
        self.start_tour("/my/subscriptions", "crm_subscription_portal_cancel_tour", login="crm_portal_sub")
        self.assertEqual(self.mine.end_date, date(2027, 1, 14))
        self.assertIn("Too expensive for us", "".join(self.mine.message_ids.mapped("body")))
