"""Collections: reminder levels walked day by day, the grouped email and its pay-all link,
automatic charges against localstripe, statements, promises to pay and the portal.

Every figure asserted is computed by hand in the test from the amounts it booked."""

import re
from datetime import date, timedelta

from markupsafe import escape

from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged

from .common import CrmPaymentCommon, FakeCheckout

D = date(2030, 3, 1)  # the due date of the invoices walked through the levels


@tagged("post_install", "-at_install")
class TestCollections(CrmPaymentCommon, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Reminder = cls.env["crm.collection.reminder"]
        levels = cls.env["crm.collection.level"].search([("company_id", "=", cls.company.id)])
        levels.unlink()
        cls.levels = cls.env["crm.collection.level"].create(
            [
                {
                    "name": name,
                    "level": number,
                    "days": days,
                    "mail_template_id": cls.env.ref(
                        f"crm_payment_integration.mail_template_crm_collection_level_{number}"
                    ).id,
                }
                for number, days, name in (
                    (1, 0, "Due"),
                    (2, 7, "First"),
                    (3, 15, "Second"),
                    (4, 30, "Final"),
                )
            ]
        )
        cls.usd = cls.company.currency_id
        cls.eur = cls.env.ref("base.EUR")

    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(FakeCheckout())

    # --- helpers ---------------------------------------------------------------------------

    def _invoice_due(self, amount, due, currency=None, partner=None):
        return self._crm_invoice(
            amount, currency=currency, partner=partner, invoice_date=due, invoice_date_due=due
        )

    def _run(self, day):
        self.Reminder._cron_run(today=day)
        return self.Reminder.search([("partner_id", "=", self.partner.id)])

    def _mails(self, reminders):
        return self.env["mail.mail"].search(
            [("model", "=", "crm.collection.reminder"), ("res_id", "in", reminders.ids)]
        )

    def _payment(self, amount, day, partner=None):
        payment = self.env["account.payment"].create(
            {
                "payment_type": "inbound",
                "partner_type": "customer",
                "partner_id": (partner or self.partner).id,
                "amount": amount,
                "date": day,
                "journal_id": self.env["account.journal"]
                .search([("type", "=", "bank"), ("company_id", "=", self.company.id)], limit=1)
                .id,
            }
        )
        payment.action_post()
        return payment

    def _intents(self):
        """The PaymentIntents created (POST /v1/payment_intents), as sent to localstripe."""
        return [
            r for r in self.stripe.requests if r["method"] == "post" and r["path"] == "/v1/payment_intents"
        ]

    # --- levels ----------------------------------------------------------------------------

    def test_levels_walked_with_time_each_once(self):
        invoice = self._invoice_due(120.0, D)
        self.assertFalse(self._run(D - timedelta(days=1)), "not due yet: no level reached")
        subjects = {
            D: "Payment reminder (USD)",
            D + timedelta(days=7): "Overdue invoices (USD)",
            D + timedelta(days=15): "Second reminder: overdue invoices (USD)",
            D + timedelta(days=30): "Final notice: overdue invoices (USD)",
        }
        seen = self.Reminder
        for number, (day, subject) in enumerate(subjects.items(), start=1):
            reminders = self._run(day)
            self._run(day)  # a second run the same day: nothing more
            self._run(day + timedelta(days=1))  # nor the next day, the level unchanged
            new = reminders - seen
            self.assertEqual(len(new), 1, f"one reminder at level {number}")
            self.assertEqual((new.level, new.state, new.invoice_ids), (number, "sent", invoice))
            self.assertEqual(len(self.Reminder.search([("partner_id", "=", self.partner.id)])), number)
            mail = self._mails(new)
            self.assertEqual(len(mail), 1)
            self.assertTrue(mail.subject.endswith(subject), mail.subject)
            self.assertIn(invoice.name, mail.body_html)
            self.assertIn(f"/crm_payment/stripe/pay_all/{self.partner.id}/", mail.body_html)
            self.assertEqual(mail.recipient_ids, self.partner)
            self.partner.invalidate_recordset(["crm_collection_level"])
            self.assertEqual(self.partner.crm_collection_level, number)
            seen |= new
        self.assertIn("level 4", self.partner.message_ids[:1].body)
        # Paid: no level any more, never reminded again.
        self._payment(120.0, D + timedelta(days=31))
        self._run(D + timedelta(days=40))
        self.assertTrue(self._crm_reconciled(invoice))
        self.partner.invalidate_recordset(["crm_collection_level"])
        self.assertEqual(self.partner.crm_collection_level, 0)
        self.assertEqual(self.Reminder.search([("partner_id", "=", self.partner.id)]), seen)

    def test_reminder_templates_filled_in_without_compiling_each_email(self):
        """The reminder templates read only allowed fields of the reminder: Odoo fills them in
        (no QWeb compilation per email, a run queues thousands) and the email is complete."""
        for number in (1, 2, 3, 4):
            template = self.env.ref(f"crm_payment_integration.mail_template_crm_collection_level_{number}")
            self.assertFalse(
                template._has_unsafe_expression_template_qweb(template.body_html, "crm.collection.reminder"),
                f"level {number}: an expression the fast rendering refuses",
            )
        QWeb = self.env["ir.qweb"]
        self.assertFalse(QWeb._is_expression_allowed("object.email_details", "res.partner"))
        self.assertFalse(QWeb._is_expression_allowed("object.sudo()", "crm.collection.reminder"))
        first = self._invoice_due(80.0, D - timedelta(days=2))
        second = self._invoice_due(45.5, D)
        reminder = self._run(D)
        mail = self._mails(reminder)
        self.assertEqual(len(mail), 1)
        body = mail.body_html
        self.assertIn(f"Dear {escape(self.partner.name)},", body)
        self.assertIn(str(escape(self.company.name)), body)
        self.assertLess(body.index(first.name), body.index(second.name), "oldest due first")
        self.assertIn("125.50", body, "80.00 + 45.50")
        self.assertIn(f"/crm_payment/stripe/pay_all/{self.partner.id}/{self.company.id}/{self.usd.id}", body)

    def test_letter_attached_and_disputed_invoice_left_out(self):
        kept = self._invoice_due(75.0, D)
        disputed = self._invoice_due(500.0, D - timedelta(days=3))
        self.levels.filtered(lambda level: level.level == 1).letter = True
        dispute = (
            self.env["crm.payment.dispute"]
            .sudo()
            .create(
                {
                    "stripe_dispute_id": "dp_collections",
                    "provider_id": self.provider.id,
                    "company_id": self.company.id,
                    "invoice_id": disputed.id,
                    "partner_id": self.partner.id,
                    "amount": 500.0,
                    "currency_id": self.usd.id,
                    "state": "needs_response",
                }
            )
        )
        reminder = self._run(D)
        self.assertEqual((reminder.invoice_ids, reminder.amount), (kept, 75.0))
        mail = self._mails(reminder)
        self.assertEqual(len(mail.attachment_ids), 1, "the PDF letter")
        self.assertNotIn(disputed.name, mail.body_html)
        # Lost: the invoice is no longer in dispute and is reminded again.
        dispute.state = "lost"
        self.assertIn(disputed, self._run(D + timedelta(days=7)).invoice_ids)

    def test_monthly_statement_once_a_month(self):
        self._invoice_due(30.0, fields.Date.today())
        self.partner.crm_statement_monthly = True
        Partner = self.env["res.partner"]
        Partner._cron_crm_monthly_statements()
        Partner._cron_crm_monthly_statements()
        mails = self.env["mail.mail"].search(
            [("model", "=", "res.partner"), ("res_id", "=", self.partner.id)]
        )
        self.assertEqual(len(mails), 1, "one statement a month, whatever the runs")
        self.assertEqual(mails.recipient_ids, self.partner)

    def test_reminder_key_is_unique_in_the_database(self):
        self._invoice_due(50.0, D)
        reminder = self._run(D)
        group = self.Reminder._crm_due_groups(D, partner=self.partner, force=True)[0]
        self.assertEqual(group["key"], reminder.key)
        self.assertFalse(self.Reminder._crm_create_once(group), "a second run at once makes nothing")
        other = self._invoice_due(20.0, D, partner=self.env["res.partner"].create({"name": "Other Co"}))
        groups = self.Reminder._crm_due_groups(D) + [group]
        made = self.Reminder._crm_create_all(groups)
        self.assertEqual(made.invoice_ids, other, "the batch made what was not made yet, once")

    def test_grouped_email_per_currency_contacts_included(self):
        first = self._invoice_due(100.0, D - timedelta(days=10))
        second = self._invoice_due(250.0, D - timedelta(days=3), partner=self.contact)
        euro = self._invoice_due(80.0, D - timedelta(days=5), currency=self.eur)
        reminders = self._run(D)
        self.assertEqual(len(reminders), 2, "one reminder per currency")
        usd = reminders.filtered(lambda r: r.currency_id == self.usd)
        eur = reminders.filtered(lambda r: r.currency_id == self.eur)
        self.assertEqual(usd.invoice_ids, first | second)
        self.assertEqual(usd.amount, 100.0 + 250.0)
        self.assertEqual((usd.level, eur.level), (2, 1), "levels of the oldest: 10 and 5 days")
        self.assertEqual((eur.invoice_ids, eur.amount), (euro, 80.0))
        usd_mail, eur_mail = self._mails(usd), self._mails(eur)
        self.assertEqual(usd_mail.recipient_ids, self.partner, "the company, not each contact")
        for name in (first.name, second.name):
            self.assertIn(name, usd_mail.body_html)
        self.assertNotIn(euro.name, usd_mail.body_html)
        self.assertIn("350.00", usd_mail.body_html)
        self.assertIn(euro.name, eur_mail.body_html)
        self.assertIn(f"/{self.company.id}/{self.eur.id}?access_token=", eur_mail.body_html)

    # --- pay-all link ----------------------------------------------------------------------

    def _open_pay_all(self, currency=None):
        url = self.partner._crm_pay_all_url(self.company, currency or self.usd)
        return self.url_open(url.replace(self.partner.get_base_url(), ""), allow_redirects=False)

    def test_pay_all_paid_in_full_reconciles_every_invoice(self):
        today = fields.Date.today()
        invoices = (
            self._invoice_due(100.0, today - timedelta(days=20))
            | self._invoice_due(200.0, today - timedelta(days=10), partner=self.contact)
            | self._invoice_due(300.0, today)
        )
        response = self._open_pay_all()
        self.assertEqual(response.status_code, 303)
        tx = self.env["payment.transaction"].search(
            [("crm_collection_pay_all", "=", True), ("partner_id", "=", self.partner.id)]
        )
        self.assertEqual(response.headers["Location"], tx.crm_checkout_url)
        self.assertEqual(tx.invoice_ids, invoices)
        session = self.stripe.sessions[tx.crm_checkout_session_id]
        self.assertEqual((session["amount_total"], session["currency"]), (60000, "usd"))
        # The same link again, nothing changed: the same page.
        self.assertEqual(self._open_pay_all().headers["Location"], tx.crm_checkout_url)
        self.assertEqual(len(self.stripe.sessions), 1)
        self.stripe.pay(tx.crm_checkout_session_id)
        page = self.url_open(tx._crm_return_url().replace(tx._crm_base_url(), ""))
        self.assertIn('data-state="done"', page.text)
        for invoice in invoices:
            self.assertTrue(self._crm_reconciled(invoice), invoice.name)
        self.assertEqual(len(tx.payment_id), 1)
        self.assertEqual(tx.payment_id.amount, 600.0)
        # Nothing left: the link says so.
        self.assertIn("Nothing is overdue", self._open_pay_all().text)
        # A forged token: nothing.
        url = f"/crm_payment/stripe/pay_all/{self.partner.id}/{self.company.id}/{self.usd.id}?access_token=x"
        self.assertEqual(self.url_open(url).status_code, 404)

    def test_pay_all_page_replaced_when_total_changes(self):
        today = fields.Date.today()
        old = self._invoice_due(100.0, today - timedelta(days=5))
        self._open_pay_all()
        first_tx = self.env["payment.transaction"].search([("crm_collection_pay_all", "=", True)])
        self._invoice_due(40.0, today - timedelta(days=1))
        self._open_pay_all()
        txs = self.env["payment.transaction"].search([("crm_collection_pay_all", "=", True)])
        second_tx = txs - first_tx
        self.assertEqual(first_tx.state, "cancel")
        self.assertEqual(self.stripe.sessions[first_tx.crm_checkout_session_id]["status"], "expired")
        self.assertEqual(self.stripe.sessions[second_tx.crm_checkout_session_id]["amount_total"], 14000)
        # A page for one invoice alone closes the page paying them all: never paid twice.
        old._crm_payment_link_tx()
        self.assertEqual(second_tx.state, "cancel")

    def test_partial_payment_allocated_oldest_first(self):
        oldest = self._invoice_due(100.0, D - timedelta(days=30))
        middle = self._invoice_due(200.0, D - timedelta(days=20))
        newest = self._invoice_due(300.0, D - timedelta(days=10))
        self._payment(250.0, D - timedelta(days=1))
        reminders = self._run(D)
        # 250 = 100 (oldest, paid) + 150 of the next one (200 - 150 = 50 left).
        self.assertTrue(self._crm_reconciled(oldest))
        self.assertEqual((middle.amount_residual, newest.amount_residual), (50.0, 300.0))
        self.assertEqual(reminders.invoice_ids, middle | newest, "a paid invoice is never reminded")
        self.assertEqual(reminders.amount, 350.0)

    def test_payment_not_allocated_to_disputed_nor_stripe_billing_invoices(self):
        disputed = self._invoice_due(100.0, D - timedelta(days=30))
        billed = self._invoice_due(80.0, D - timedelta(days=25))
        billed.sudo().crm_stripe_invoice_id = "in_collections_test"
        plain = self._invoice_due(200.0, D - timedelta(days=10))
        self.env["crm.payment.dispute"].sudo().create(
            {
                "stripe_dispute_id": "dp_allocation",
                "provider_id": self.provider.id,
                "company_id": self.company.id,
                "invoice_id": disputed.id,
                "partner_id": self.partner.id,
                "amount": 100.0,
                "currency_id": self.usd.id,
                "state": "needs_response",
            }
        )
        self._payment(150.0, D - timedelta(days=1))
        self._run(D)
        # The 150 goes to the only invoice left to allocate to: 200 - 150 = 50 left.
        self.assertEqual(plain.amount_residual, 50.0)
        self.assertEqual((disputed.amount_residual, billed.amount_residual), (100.0, 80.0))

    # --- automatic charge ------------------------------------------------------------------

    def _consent(self, card="4242424242424242"):
        self._crm_save_card(card)
        self.partner._crm_set_autopay_consent(True, "portal")
        self.levels.filtered(lambda level: level.level in (2, 3)).auto_charge = True

    def test_consented_auto_charge_once_never_twice(self):
        self._consent()
        self.assertEqual(
            (self.partner.crm_autopay_consent_source, bool(self.partner.crm_autopay_consent_date)),
            ("portal", True),
        )
        invoices = self._invoice_due(70.0, D) | self._invoice_due(30.5, D + timedelta(days=2))
        self.assertEqual(self._run(D + timedelta(days=1)).state, "sent", "level 1 does not charge")
        charged = self._run(D + timedelta(days=7)).filtered(lambda r: r.level == 2)
        self.assertEqual(charged.state, "charged")
        self.assertEqual(charged.transaction_id.amount, 100.5)
        self.assertFalse(self._mails(charged), "charged: no reminder email")
        for invoice in invoices:
            self.assertTrue(self._crm_reconciled(invoice))
        for day in (D + timedelta(days=7), D + timedelta(days=8), D + timedelta(days=15)):
            self._run(day)
        intents = self._intents()
        self.assertEqual(len(intents), 1, "one charge, never a second on a rerun")
        self.assertIn("amount=10050", intents[0]["data"])
        self.assertIn("currency=usd", intents[0]["data"])

    def test_consent_only_from_the_customer(self):
        """A user cannot give (or fake) a customer's consent to automatic charges."""
        seller = new_test_user(self.env, login="consent_seller", groups="sales_team.group_sale_salesman")
        accountant = new_test_user(self.env, login="consent_billing", groups="account.group_account_invoice")
        for user in (seller, accountant):
            with self.assertRaises(AccessError):
                self.partner.with_user(user).write(
                    {
                        "crm_autopay_consent": True,
                        "crm_autopay_consent_source": "portal",
                        "crm_autopay_consent_date": "2026-01-01 00:00:00",
                    }
                )
        self.assertFalse(self.partner.crm_autopay_consent)
        self.partner._crm_set_autopay_consent(True, "portal")  # the portal switch's path
        self.assertEqual(self.partner.crm_autopay_consent_source, "portal")

    def test_not_consented_email_only(self):
        self._crm_save_card()
        self.levels.filtered(lambda level: level.level == 2).auto_charge = True
        self._invoice_due(90.0, D)
        reminder = self._run(D + timedelta(days=7)).filtered(lambda r: r.level == 2)
        self.assertEqual(reminder.state, "sent")
        self.assertEqual(len(self._mails(reminder)), 1)
        self.assertFalse(self._intents(), "nothing charged")

    def test_auto_charge_held_by_a_risk_flag_sends_the_link(self):
        self._consent()
        self._invoice_due(90.0, D)
        flag = (
            self.env["crm.payment.risk.flag"]
            .sudo()
            .create(
                {
                    "partner_id": self.partner.id,
                    "company_id": self.company.id,
                    "rule": "failed_customer",
                    "cause_key": "collections-test",
                    "summary": "5 failed payment attempts of Azure Interior",
                    "hold_charges": True,
                }
            )
        )
        reminder = self._run(D + timedelta(days=7)).filtered(lambda r: r.level == 2)
        self.assertEqual(reminder.state, "sent", "held: emailed with its link, not charged")
        self.assertIn(f"/crm_payment/stripe/pay_all/{self.partner.id}/", self._mails(reminder).body_html)
        self.assertFalse(self._intents(), "nothing charged while the flag holds")
        flag._crm_clear("The customer called: the card was replaced.")
        charged = self._run(D + timedelta(days=15)).filtered(lambda r: r.level == 3)
        self.assertEqual(charged.state, "charged", "cleared: the next level charges")
        self.assertEqual(len(self._intents()), 1)

    def test_declined_auto_charge_sends_reminder_with_link_and_reason(self):
        self._consent(card="4000000000000341")
        invoice = self._invoice_due(65.0, D)
        reminder = self._run(D + timedelta(days=7)).filtered(lambda r: r.level == 2)
        self.assertEqual(reminder.state, "declined")
        self.assertTrue(reminder.decline_reason)
        mail = self._mails(reminder)
        self.assertEqual(len(mail), 1)
        self.assertIn(reminder.decline_reason, mail.body_html)
        self.assertIn(f"/crm_payment/stripe/pay_all/{self.partner.id}/", mail.body_html)
        self.assertEqual(invoice.payment_state, "not_paid")
        failed = self.env["mail.mail"].search(
            [("model", "=", "payment.transaction"), ("res_id", "=", reminder.transaction_id.id)]
        )
        self.assertFalse(failed, "the reminder tells the customer, not a second email")
        self.assertIn("Charge declined", self.partner.message_ids[:1].body)

    def _pay_all_opened_then_level_2(self):
        """Invoices of 60 + 45 due 10 days ago, the customer opens the pay-all page (105)."""
        today = fields.Date.today()
        self._consent()
        invoices = self._invoice_due(60.0, today - timedelta(days=10)) | self._invoice_due(
            45.0, today - timedelta(days=9)
        )
        self._open_pay_all()
        page_tx = self.env["payment.transaction"].search(
            [("crm_collection_pay_all", "=", True), ("partner_id", "=", self.partner.id)]
        )
        self.assertEqual(self.stripe.sessions[page_tx.crm_checkout_session_id]["amount_total"], 10500)
        return today, invoices, page_tx

    def test_auto_charge_closes_the_open_pay_all_page_then_charges_once(self):
        today, invoices, page_tx = self._pay_all_opened_then_level_2()
        reminder = self._run(today).filtered(lambda r: r.level == 2)
        self.assertEqual(reminder.state, "charged")
        self.assertEqual(self.stripe.sessions[page_tx.crm_checkout_session_id]["status"], "expired")
        self.assertEqual(page_tx.state, "cancel", "the page can no longer be paid")
        intents = self._intents()
        self.assertEqual(len(intents), 1)
        self.assertIn("amount=10500", intents[0]["data"])  # 60 + 45
        for invoice in invoices:
            self.assertTrue(self._crm_reconciled(invoice))

    def test_auto_charge_applies_a_page_paid_meanwhile_and_charges_nothing(self):
        today, invoices, page_tx = self._pay_all_opened_then_level_2()
        self.stripe.pay(page_tx.crm_checkout_session_id)  # no webhook nor return yet
        reminder = self._run(today).filtered(lambda r: r.level == 2)
        self.assertNotEqual(reminder.state, "charged")
        self.assertFalse(self._intents(), "paid on the page: never charged again")
        self.assertEqual(page_tx.state, "done")
        self.assertEqual(page_tx.payment_id.amount, 105.0)
        for invoice in invoices:
            self.assertTrue(self._crm_reconciled(invoice))

    def test_auto_charge_waits_for_a_page_payment_settling_later(self):
        today, invoices, page_tx = self._pay_all_opened_then_level_2()
        self.stripe.pay(page_tx.crm_checkout_session_id, delayed=True)
        page_tx._crm_expire_checkout_session()  # the customer came back: a payment settling later
        self.assertEqual(page_tx.state, "pending")
        reminder = self._run(today).filtered(lambda r: r.level == 2)
        self.assertEqual(reminder.state, "pending")
        self.assertFalse(self._intents(), "a page payment is under way: no charge")
        self.assertEqual(sum(invoices.mapped("amount_residual")), 105.0)
        # and no second page to pay them either
        with self.assertRaisesRegex(UserError, "in progress"):
            self.partner._crm_pay_all_tx(self.company, self.usd)

    # --- statement -------------------------------------------------------------------------

    def _statement_data(self):
        """Opening: invoice 1000 and payment 400 in January; February: invoices 500 and 300
        (the contact's), credit note 100, payment 350."""
        jan, feb = date(2030, 1, 10), date(2030, 2, 5)
        self._invoice_due(1000.0, jan)
        self._payment(400.0, date(2030, 1, 20))
        self._invoice_due(500.0, feb)
        self._invoice_due(300.0, date(2030, 2, 20), partner=self.contact)
        refund = self._crm_invoice(
            100.0,
            post=False,
            move_type="out_refund",
            invoice_date=date(2030, 2, 15),
            invoice_date_due=date(2030, 2, 15),
        )
        refund.action_post()
        self._payment(350.0, date(2030, 2, 25))
        # Another customer's invoice: never on this statement.
        other = self.env["res.partner"].create({"name": "Other Customer", "email": "o@example.com"})
        self._invoice_due(777.0, feb, partner=other)
        return other

    def test_statement_totals_by_hand_and_pdf(self):
        self._statement_data()
        st = self.partner._crm_statement(date(2030, 2, 1), date(2030, 2, 28))
        opening = 1000.0 - 400.0
        invoices, payments, credit_notes = 500.0 + 300.0, 350.0, 100.0
        closing = opening + invoices - payments - credit_notes
        self.assertEqual(
            (st["opening"], st["invoices"], st["payments"], st["credit_notes"], st["closing"]),
            (600.0, 800.0, 350.0, 100.0, 950.0),
        )
        self.assertEqual(st["closing"], closing)
        self.assertEqual(len(st["lines"]), 4)
        self.assertEqual(st["lines"][-1]["balance"], 950.0)
        # Ageing at 28 February: the January invoice (49 days) and payment (39 days) 31-60;
        # the rest 1-30: 500 (23) + 300 (8) - 100 (13) - 350 (3).
        self.assertEqual(st["ageing"], [0.0, 350.0, 600.0, 0.0, 0.0])
        self.assertEqual(sum(st["ageing"]), closing)
        data = {"date_from": "2030-02-01", "date_to": "2030-02-28", "company_id": self.company.id}
        Report = self.env["ir.actions.report"]
        html = Report._render_qweb_html(
            "crm_payment_integration.report_crm_statement", self.partner.ids, data
        )[0]
        self.assertIn(b"950.00", html)
        self.assertNotIn(b"777.00", html)
        pdf, kind = Report.with_context(force_report_rendering=True)._render_qweb_pdf(
            "crm_payment_integration.report_crm_statement", self.partner.ids, data
        )
        self.assertEqual(kind, "pdf")
        self.assertTrue(pdf.startswith(b"%PDF"))
        # On demand, emailed with the PDF.
        result = self.partner.with_user(self.accountant).action_crm_send_statement()
        self.assertIn("azure@example.com", result["params"]["message"])
        mail = self.env["mail.mail"].search([("model", "=", "res.partner"), ("res_id", "=", self.partner.id)])
        self.assertEqual(mail.recipient_ids, self.partner)
        self.assertEqual(len(mail.attachment_ids), 1)

    def test_statement_rendered_by_billing_users_only(self):
        self._statement_data()
        data = {"date_from": "2030-02-01", "date_to": "2030-02-28", "company_id": self.company.id}
        name = "crm_payment_integration.report_crm_statement"
        Report = self.env["ir.actions.report"]
        with self.assertRaises(UserError):
            Report.with_user(self.salesman)._render_qweb_html(name, self.partner.ids, data)
        other = self.env["res.company"].create({"name": "Other statements Co"})
        with self.assertRaises(AccessError):
            Report.with_user(self.accountant)._render_qweb_html(
                name, self.partner.ids, dict(data, company_id=other.id)
            )
        # the accountant, and the portal and email paths (superuser): 950 (see the test above)
        html = Report.with_user(self.accountant)._render_qweb_html(name, self.partner.ids, data)[0]
        self.assertIn(b"950.00", html)
        self.assertIn(
            b"950.00",
            Report.with_user(self.salesman).sudo()._render_qweb_html(name, self.partner.ids, data)[0],
        )

    def test_portal_statement_only_own_lines(self):
        other = self._statement_data()
        new_test_user(
            self.env,
            login="coll_portal",
            password="coll_portal",
            groups="base.group_portal",
            partner_id=self.contact.id,
        )
        new_test_user(
            self.env,
            login="coll_other",
            password="coll_other",
            groups="base.group_portal",
            partner_id=other.id,
        )
        self.authenticate("coll_portal", "coll_portal")
        page = self.url_open("/my/statement?date_from=2030-02-01&date_to=2030-02-28")
        self.assertEqual(page.status_code, 200)
        self.assertIn("950.00", page.text)
        self.assertNotIn("777.00", page.text)
        self.assertEqual(self.url_open(f"/my/statement/{self.partner.id}").status_code, 200)
        self.assertEqual(self.url_open(f"/my/statement/{other.id}").status_code, 404)
        self.authenticate("coll_other", "coll_other")
        self.assertEqual(self.url_open(f"/my/statement/{self.partner.id}").status_code, 404)
        page = self.url_open("/my/statement?date_from=2030-02-01&date_to=2030-02-28")
        self.assertIn("777.00", page.text)
        self.assertNotIn("950.00", page.text)

    def test_portal_invoices_pay_all_and_consent_switch(self):
        self._invoice_due(45.0, fields.Date.today() - timedelta(days=3))
        new_test_user(
            self.env,
            login="coll_portal2",
            password="coll_portal2",
            groups="base.group_portal",
            partner_id=self.contact.id,
        )
        self.authenticate("coll_portal2", "coll_portal2")
        page = self.url_open("/my/invoices")
        self.assertIn("Pay all overdue", page.text)
        self.assertIn(
            self.partner._crm_pay_all_url(self.company, self.usd).split("?")[0].split("/crm_payment")[1],
            page.text,
        )
        self.assertIn("/my/statement", page.text)
        # The switch is a POST with a CSRF token: without one, refused.
        refused = self.url_open("/my/collection/autopay", data={"consent": "1"})
        self.assertEqual(refused.status_code, 400)
        self.assertFalse(self.partner.crm_autopay_consent)
        self._crm_save_card()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        answer = self.url_open(
            "/my/collection/autopay",
            data={"consent": "1", "csrf_token": token},
            allow_redirects=False,
        )
        self.assertEqual(answer.status_code, 303)
        self.partner.invalidate_recordset()
        self.assertTrue(self.partner.crm_autopay_consent)
        self.assertEqual(self.partner.crm_autopay_consent_source, "portal")

    # --- promise to pay --------------------------------------------------------------------

    def test_promise_pauses_then_broken_resumes(self):
        self._invoice_due(500.0, D)
        self._run(D)
        promise = (
            self.env["crm.collection.promise"]
            .with_user(self.salesman)
            .create(
                {
                    "partner_id": self.contact.id,
                    "date": D + timedelta(days=10),
                    "amount": 500.0,
                    "start_date": D,
                }
            )
        )
        self.assertEqual(promise.partner_id, self.partner, "promised by the company")
        self.assertFalse(self._run(D + timedelta(days=7)).filtered(lambda r: r.level == 2), "paused")
        reminders = self._run(D + timedelta(days=11))
        self.assertEqual(promise.state, "broken")
        self.assertEqual(reminders.filtered(lambda r: r.level == 2).state, "sent", "levels resume")
        activity = self.partner.activity_ids.filtered(lambda a: a.summary == "Promise to pay broken")
        self.assertEqual(activity.user_id, self.salesman)

    def test_promise_kept_when_paid_by_the_date(self):
        invoice = self._invoice_due(300.0, D)
        promise = self.env["crm.collection.promise"].create(
            {"partner_id": self.partner.id, "date": D + timedelta(days=10), "amount": 300.0, "start_date": D}
        )
        self._payment(300.0, D + timedelta(days=9))
        self.assertFalse(self._run(D + timedelta(days=9)))
        self.assertEqual((promise.state, promise.paid_amount), ("kept", 300.0))
        self.assertTrue(self._crm_reconciled(invoice))

    def test_promise_not_reopened_nor_stretched_by_hand(self):
        self._invoice_due(500.0, D)
        Promise = self.env["crm.collection.promise"].with_user(self.salesman)
        promise = Promise.create(
            {"partner_id": self.partner.id, "date": D + timedelta(days=10), "amount": 500.0, "start_date": D}
        )
        self._run(D + timedelta(days=11))
        self.assertEqual(promise.state, "broken")
        for vals in ({"state": "open"}, {"start_date": D + timedelta(days=11)}, {"paid_amount": 500.0}):
            with self.assertRaises(UserError):
                promise.write(vals)
        self.assertEqual(promise.state, "broken")
        # at most 90 days after the day of the promise (D + 90 allowed, D + 91 not)
        promise.write({"date": D + timedelta(days=90)})
        with self.assertRaises(ValidationError):
            promise.write({"date": D + timedelta(days=91)})
        with self.assertRaises(ValidationError):
            Promise.create(
                {
                    "partner_id": self.partner.id,
                    "date": D + timedelta(days=91),
                    "amount": 1.0,
                    "start_date": D,
                }
            )

    # --- collections list ------------------------------------------------------------------

    def test_collections_list_buckets_and_actions(self):
        today = fields.Date.today()
        self._invoice_due(100.0, today - timedelta(days=5))
        self._invoice_due(200.0, today - timedelta(days=45))
        self._invoice_due(400.0, today + timedelta(days=10))
        Overview = self.env["crm.collection.overview"].with_user(self.accountant)
        row = Overview.search([("partner_id", "=", self.partner.id)])
        self.assertEqual(
            (row.amount_current, row.amount_1_30, row.amount_31_60, row.amount_61_90, row.amount_90_plus),
            (400.0, 100.0, 200.0, 0.0, 0.0),
        )
        self.assertEqual((row.overdue_amount, row.total_due, row.days_overdue), (300.0, 700.0, 45))
        self.assertEqual(row.level, 0)
        self.assertEqual(row.next_action_date, today - timedelta(days=45), "level 1 was due at once")
        row.action_skip()
        skipped = self.Reminder.search([("partner_id", "=", self.partner.id)])
        self.assertEqual((skipped.state, skipped.level), ("skipped", 4))
        self.assertFalse(self._run(today) - skipped, "a skipped reminder is not sent by the run")
        result = row.action_send_reminder()
        self.assertEqual(result["params"]["message"], "1 reminder(s) sent.")
        sent = self.Reminder.search([("partner_id", "=", self.partner.id)]) - skipped
        self.assertEqual((sent.manual, sent.level, sent.amount), (True, 4, 300.0))
        row.invalidate_recordset()
        self.assertEqual((row.level, row.next_action_date), (4, False))
        row.action_call()
        self.assertEqual(
            self.partner.activity_ids.filtered(lambda a: a.summary == "Call about overdue invoices").user_id,
            self.accountant,
        )
        self.assertFalse(Overview.with_user(self.salesman).env["crm.collection.overview"].has_access("read"))

    # --- credit hold -----------------------------------------------------------------------

    def test_credit_hold_threshold(self):
        today = fields.Date.today()
        self._invoice_due(300.0, today - timedelta(days=3))
        self._invoice_due(900.0, today + timedelta(days=3))  # not overdue: not counted
        self.company.write({"crm_credit_hold_amount": 300.0, "crm_credit_hold_days": 0})
        self.assertTrue(self.contact.crm_credit_hold, "the contact of a held company too")
        self.company.crm_credit_hold_amount = 300.01
        self.partner.invalidate_recordset()
        self.assertFalse(self.partner.crm_credit_hold)
        self.company.crm_credit_hold_days = 3
        self.partner.invalidate_recordset()
        self.assertTrue(self.partner.crm_credit_hold)
        self.assertIn(self.partner, self.env["res.partner"].search([("crm_credit_hold", "=", True)]))
        lead = self.env["crm.lead"].create({"name": "More desks", "partner_id": self.contact.id})
        self.assertTrue(lead.crm_credit_hold)
