"""Insight: payment analysis, revenue analysis and customer value, on a small data set whose
every figure is computed by hand below.

Company USD. Two gateways: Stripe (transactions set by Stripe-shaped PaymentIntents through the
add-on's own path) and Odoo's ``payment_demo`` (through its own notification path). Rates of
the company: EUR 0.5 from 2026-01-01 then 0.8 from 2026-03-01 (1 USD = 0.8 EUR), JPY 150.
The figures are as of T = 2026-06-30; the RFM window starts after 2024-06-30.

=========  ========  =====================================  ==========  =========  =======
customer   gateway   transaction (day, method, brand/card)  amount      state      USD
=========  ========  =====================================  ==========  =========  =======
A (US)     Stripe    a1 2026-06-20 card visa US             100 USD     done       100
A          Stripe    a2 2026-05-20 card visa US             100 USD     done       100
A          Stripe    a3 2026-04-20 card visa US             100 USD     error      -
A          Stripe    a4 2025-06-20 card visa US             200 USD     done       200
A          Stripe    refund of a4, 2025-07-01               -50 USD     done       -50
B (FR)     Stripe    b1 2026-02-15 sepa_debit FR            100 EUR     done       200
B          Stripe    b2 2026-04-10 card mastercard FR       100 EUR     done       125
B          Stripe    b3 2026-04-09 card mastercard FR       50 EUR      error      -
C (JP)     Demo      c1 2026-03-01                          300 USD     done       300
C          Demo      c2 2026-03-02                          300 USD     error      -
C          Demo      c3 2026-03-03                          300 USD     done       300
D (DE)     Demo      d1 2025-01-10                          50 USD      done       50
E (BE)     Stripe    e1 2023-01-05 card visa BE             1000 USD    done       1000
F (NL)     Demo      f1 2026-06-29                          20 USD      done       20
=========  ========  =====================================  ==========  =========  =======
"""

from datetime import date, datetime

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from ..models.res_partner_insight import CUSTOMER_VALUE_FIELDS
from .common import CrmPaymentCommon, stripe_fixture

T = date(2026, 6, 30)


@tagged("post_install", "-at_install")
class TestInsight(CrmPaymentCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.usd = cls.company.currency_id
        assert cls.usd.name == "USD", "the hand-computed figures assume a USD company"
        cls.eur = cls._crm_currency(cls, "EUR")
        cls.jpy = cls._crm_currency(cls, "JPY")
        Rate = env["res.currency.rate"]
        for currency, day, rate in (
            (cls.usd, "2020-01-01", 1.0),
            (cls.eur, "2026-01-01", 0.5),
            (cls.eur, "2026-03-01", 0.8),
            (cls.jpy, "2026-01-01", 150.0),
        ):
            Rate.create({"currency_id": currency.id, "name": day, "rate": rate, "company_id": cls.company.id})
        # The second gateway: Odoo's payment_demo (installed with the tests, see tools/test.sh).
        cls.demo = env.ref("payment.payment_provider_demo")
        cls.demo.write({"state": "test", "company_id": cls.company.id})
        cls.card = env.ref("payment.payment_method_card")
        cls.demo_method = env.ref("payment_demo.payment_method_demo")
        cls.salesperson = new_test_user(
            env, login="ins_sales", groups="sales_team.group_sale_salesman", company_id=cls.company.id
        )

        def customer(name, country):
            return env["res.partner"].create(
                {"name": name, "is_company": True, "country_id": env.ref(f"base.{country}").id}
            )

        cls.a = customer("Insight A", "us")
        cls.a.user_id = cls.salesperson
        cls.b = customer("Insight B", "fr")
        cls.c = customer("Insight C", "jp")
        cls.d = customer("Insight D", "de")
        cls.e = customer("Insight E", "be")
        cls.f = customer("Insight F", "nl")
        cls.a_contact = env["res.partner"].create({"name": "Ann of A", "parent_id": cls.a.id})

        cls.a1 = cls._stripe_paid(cls.a_contact, 100, cls.usd, "2026-06-20", "card", "visa", "US")
        cls.a2 = cls._stripe_paid(cls.a, 100, cls.usd, "2026-05-20", "card", "visa", "US")
        cls.a3 = cls._stripe_declined(cls.a, 100, cls.usd, "2026-04-20", "visa", "US")
        cls.a4 = cls._stripe_paid(cls.a, 200, cls.usd, "2025-06-20", "card", "visa", "US")
        cls.a4_refund = cls.a4._create_child_transaction(50, is_refund=True)
        cls.a4_refund._set_done()
        cls._backdate(cls.a4_refund, "2025-07-01")
        cls.b1 = cls._stripe_paid(cls.b, 100, cls.eur, "2026-02-15", "sepa_debit", None, "FR")
        cls.b2 = cls._stripe_paid(cls.b, 100, cls.eur, "2026-04-10", "card", "mastercard", "FR")
        cls.b3 = cls._stripe_declined(cls.b, 50, cls.eur, "2026-04-09", "mastercard", "FR")
        cls.c1 = cls._demo(cls.c, 300, "2026-03-01", "done")
        cls.c2 = cls._demo(cls.c, 300, "2026-03-02", "error")
        cls.c3 = cls._demo(cls.c, 300, "2026-03-03", "done")
        cls.d1 = cls._demo(cls.d, 50, "2025-01-10", "done")
        cls.e1 = cls._stripe_paid(cls.e, 1000, cls.usd, "2023-01-05", "card", "visa", "BE")
        cls.f1 = cls._demo(cls.f, 20, "2026-06-29", "done")
        cls.Partner = env["res.partner"]

    # === DATA SET === #

    _count = 0

    @classmethod
    def _new_tx(cls, provider, partner, amount, currency, method):
        TestInsight._count += 1
        return (
            cls.env["payment.transaction"]
            .sudo()
            .create(
                {
                    "provider_id": provider.id,
                    "payment_method_id": method.id,
                    "partner_id": partner.id,
                    "amount": amount,
                    "currency_id": currency.id,
                    "operation": "online_direct",
                    "reference": f"INSIGHT-{TestInsight._count}",
                }
            )
        )

    @classmethod
    def _backdate(cls, tx, day):
        """Move the transaction's last state change to ``day`` (noon, UTC)."""
        tx.last_state_change = datetime.fromisoformat(f"{day}T12:00:00")

    @classmethod
    def _intent(cls, tx, status, currency):
        intent = stripe_fixture("payment_intent")
        minor = round(tx.amount * 10**currency.decimal_places)
        intent.update(
            {
                "id": f"pi_insight_{tx.id}",
                "status": status,
                "amount": minor,
                "amount_received": minor if status == "succeeded" else 0,
                "currency": currency.name.lower(),
                "metadata": {"reference": tx.reference},
                "last_payment_error": None,
            }
        )
        return intent

    @classmethod
    def _stripe_paid(cls, partner, amount, currency, day, method_type, brand, country):
        """A Stripe payment confirmed from a PaymentIntent whose charge is expanded (Stripe's
        shape: ``latest_charge.payment_method_details``)."""
        tx = cls._new_tx(cls.provider, partner, amount, currency, cls.card)
        intent = cls._intent(tx, "succeeded", currency)
        charge = stripe_fixture("charge")
        details = {"type": method_type, method_type: {"country": country}}
        if brand:
            details[method_type]["brand"] = brand
        charge["payment_method_details"] = details
        intent["latest_charge"] = charge
        tx._crm_apply_payment_intent(intent)
        cls._backdate(tx, day)
        return tx

    @classmethod
    def _stripe_declined(cls, partner, amount, currency, day, brand, country):
        """A Stripe decline: the PaymentMethod comes with ``last_payment_error``."""
        tx = cls._new_tx(cls.provider, partner, amount, currency, cls.card)
        intent = cls._intent(tx, "requires_payment_method", currency)
        payment_method = stripe_fixture("payment_method")
        payment_method["card"].update({"brand": brand, "country": country})
        intent["latest_charge"] = None
        intent["last_payment_error"] = {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "payment_method": payment_method,
        }
        tx._crm_apply_payment_intent(intent)
        cls._backdate(tx, day)
        return tx

    @classmethod
    def _demo(cls, partner, amount, day, state):
        """A payment_demo transaction, processed by payment_demo's own notification path."""
        tx = cls._new_tx(cls.demo, partner, amount, cls.usd, cls.demo_method)
        tx._handle_notification_data("demo", {"reference": tx.reference, "simulated_state": state})
        cls._backdate(tx, day)
        return tx

    def _groups(self, model, groupby, measures, domain=None):
        """Read a report as the web client's pivot does."""
        groups = self.env[model].read_group(domain or [], measures, [groupby], lazy=False)
        key = groupby if ":" in groupby and groups and groupby in groups[0] else groupby.split(":")[0]
        return {
            (g[key][1] if isinstance(g[key], tuple) else g[key]): {
                m.split(":")[0]: g[m.split(":")[0]] for m in measures
            }
            for g in groups
        }

    def _mine(self):
        return [
            ("company_id", "=", self.company.id),
            ("partner_id", "in", (self.a | self.b | self.c | self.d | self.e | self.f).ids),
        ]

    # === PAYMENT ANALYSIS === #

    def test_stripe_method_details_are_stored_from_the_charge(self):
        self.assertRecordValues(
            self.b1 | self.b2 | self.b3 | self.a3,
            [
                {
                    "crm_method_type": "sepa_debit",
                    "crm_card_brand": False,
                    "crm_card_country_id": self.env.ref("base.fr").id,
                },
                {
                    "crm_method_type": "card",
                    "crm_card_brand": "mastercard",
                    "crm_card_country_id": self.env.ref("base.fr").id,
                },
                {
                    "crm_method_type": "card",
                    "crm_card_brand": "mastercard",
                    "crm_card_country_id": self.env.ref("base.fr").id,
                },
                {
                    "crm_method_type": "card",
                    "crm_card_brand": "visa",
                    "crm_card_country_id": self.env.ref("base.us").id,
                },
            ],
        )
        self.assertEqual(self.a3.crm_decline_code, "insufficient_funds")

    def test_success_rate_by_gateway_method_brand_and_card_country(self):
        measures = ["success_rate:avg", "attempt_count:sum", "success_count:sum", "failure_count:sum"]
        by_gateway = self._groups("crm.payment.analysis", "provider_id", measures, self._mine())
        stripe = by_gateway[self.provider.display_name]
        demo = by_gateway[self.demo.display_name]
        # Stripe: a1 a2 a3 a4 b1 b2 b3 e1 answered, a3 and b3 declined; the refund is no attempt.
        self.assertEqual(
            (stripe["attempt_count"], stripe["success_count"], stripe["failure_count"]), (8, 6, 2)
        )
        self.assertAlmostEqual(stripe["success_rate"], 6 / 8 * 100)
        # Demo: c1 c2 c3 d1 f1, c2 failed.
        self.assertEqual((demo["attempt_count"], demo["success_count"]), (5, 4))
        self.assertAlmostEqual(demo["success_rate"], 4 / 5 * 100)
        # All together: successes over attempts, not an average of the two rates (77.5).
        total = self.env["crm.payment.analysis"].read_group(self._mine(), ["success_rate:avg"], [])[0]
        self.assertAlmostEqual(total["success_rate"], 10 / 13 * 100)

        by_method = self._groups("crm.payment.analysis", "method_type", measures, self._mine())
        # card: a1 a2 a3 a4 b2 b3 e1 (a3, b3 failed); sepa_debit: b1; demo: Odoo's method code.
        self.assertAlmostEqual(by_method["card"]["success_rate"], 5 / 7 * 100)
        self.assertEqual(by_method["card"]["attempt_count"], 7)
        self.assertAlmostEqual(by_method["sepa_debit"]["success_rate"], 100.0)
        self.assertAlmostEqual(by_method["demo"]["success_rate"], 4 / 5 * 100)

        by_brand = self._groups("crm.payment.analysis", "card_brand", measures, self._mine())
        self.assertAlmostEqual(by_brand["visa"]["success_rate"], 4 / 5 * 100)  # a1 a2 a4 e1 / +a3
        self.assertAlmostEqual(by_brand["mastercard"]["success_rate"], 1 / 2 * 100)  # b2 / b3

        by_card_country = self._groups("crm.payment.analysis", "card_country_id", measures, self._mine())
        self.assertAlmostEqual(by_card_country["United States"]["success_rate"], 3 / 4 * 100)
        self.assertAlmostEqual(by_card_country["France"]["success_rate"], 2 / 3 * 100)
        self.assertAlmostEqual(by_card_country["Belgium"]["success_rate"], 100.0)

    def test_amounts_in_company_currency_at_the_transaction_date(self):
        rows = self.env["crm.payment.analysis"].search([("transaction_id", "in", (self.b1 | self.b2).ids)])
        # 100 EUR at 0.5 EUR per USD on 2026-02-15, then at 0.8 on 2026-04-10.
        self.assertEqual(
            {row.transaction_id: row.amount_company for row in rows}, {self.b1: 200.0, self.b2: 125.0}
        )
        self.assertEqual(self.b2.currency_id._convert(100, self.usd, self.company, date(2026, 4, 10)), 125.0)
        measures = ["amount_paid:sum", "amount_refunded:sum", "amount_net:sum"]
        by_gateway = self._groups("crm.payment.analysis", "provider_id", measures, self._mine())
        stripe = by_gateway[self.provider.display_name]
        # 100 + 100 + 200 + 200 + 125 + 1000 paid, 50 refunded.
        self.assertEqual(
            (stripe["amount_paid"], stripe["amount_refunded"], stripe["amount_net"]), (1725, 50, 1675)
        )
        self.assertEqual(by_gateway[self.demo.display_name]["amount_net"], 300 + 300 + 50 + 20)
        refund_row = self.env["crm.payment.analysis"].search([("transaction_id", "=", self.a4_refund.id)])
        # A refund keeps its payment's method, brand, card country and customer.
        self.assertRecordValues(
            refund_row,
            [
                {
                    "partner_id": self.a.id,
                    "method_type": "card",
                    "card_brand": "visa",
                    "attempt_count": 0,
                    "amount_company": -50.0,
                    "date": date(2025, 7, 1),
                    "user_id": self.salesperson.id,
                }
            ],
        )
        declined = self.env["crm.payment.analysis"].search([("transaction_id", "=", self.a3.id)])
        self.assertEqual(declined.decline_reason, self.a3.crm_decline_reason)
        self.assertTrue(declined.decline_reason)
        demo_failed = self.env["crm.payment.analysis"].search([("transaction_id", "=", self.c2.id)])
        self.assertIn("error", demo_failed.decline_reason)

    def test_payment_by_month_drills_down_to_transactions(self):
        groups = self.env["crm.payment.analysis"].read_group(
            self._mine(), ["attempt_count:sum", "success_rate:avg"], ["date:month"], lazy=False
        )
        march = next(g for g in groups if g["date:month"] == "March 2026")
        self.assertEqual(march["attempt_count"], 3)  # c1 c2 c3
        rows = self.env["crm.payment.analysis"].search(march["__domain"])
        self.assertEqual(rows.transaction_id, self.c1 | self.c2 | self.c3)

    # === CUSTOMER VALUE === #

    def _figures(self, partner):
        return partner.read(list(CUSTOMER_VALUE_FIELDS))[0]

    def test_customer_value_and_rfm(self):
        self.Partner._crm_recompute_customer_value(companies=self.company, today=T)
        # Window (2024-06-30, 2026-06-30]: per customer, payments F and net collected M:
        #   A: a1 a2 a4 -> F 3, M 100 + 100 + 200 - 50 = 350, last 2026-06-20 (10 days)
        #   B: b1 b2    -> F 2, M 200 + 125 = 325, last 2026-04-10 (81 days)
        #   C: c1 c3    -> F 2, M 600, last 2026-03-03 (119 days)
        #   D: d1       -> F 1, M 50, last 2025-01-10 (536 days)
        #   F: f1       -> F 1, M 20, last 2026-06-29 (1 day)
        #   E: nothing in the window -> 1, 1, 1: Lost.
        self.assertEqual((T - date(2025, 1, 10)).days, 536)
        # Quintile cut points (20, 40, 60, 80 %: the 1st to 4th of 5 sorted values), score =
        # 1 + cut points strictly below the value:
        #   recency (minus days) -536 -119 -81 -10 -1 -> cuts -536 -119 -81 -10: D1 C2 B3 A4 F5
        #   frequency 1 1 2 2 3 -> cuts 1 1 2 2: D1 F1 B3 C3 A5 (ties share a score)
        #   monetary 20 50 325 350 600 -> cuts 20 50 325 350: F1 D2 B3 A4 C5
        # FM = (F + M + 1) // 2: A (5+4+1)//2 = 5, B 3, C 4, D 2, F 1.
        # Segments (USAGE.md grid): A R4 FM5 Loyal, B R3 FM3 Needs attention, C R2 FM4 At risk,
        # D R1 FM2 Hibernating, F R5 FM1 New.
        expected = {
            self.a: (
                350.0,
                round(400 / 3, 2),
                round(3 / (375 / 365.25), 2),
                3,
                "2025-06-20",
                "2026-06-20",
                10,
                "454",
                "loyal",
            ),
            self.b: (325.0, 162.5, 2.0, 2, "2026-02-15", "2026-04-10", 81, "333", "needs_attention"),
            self.c: (600.0, 300.0, 2.0, 2, "2026-03-01", "2026-03-03", 119, "235", "at_risk"),
            self.d: (
                50.0,
                50.0,
                round(1 / (536 / 365.25), 2),
                1,
                "2025-01-10",
                "2025-01-10",
                536,
                "112",
                "hibernating",
            ),
            self.e: (
                1000.0,
                1000.0,
                round(1 / (1272 / 365.25), 2),
                1,
                "2023-01-05",
                "2023-01-05",
                1272,
                "111",
                "lost",
            ),
            self.f: (20.0, 20.0, 1.0, 1, "2026-06-29", "2026-06-29", 1, "511", "new"),
        }
        self.assertEqual((T - date(2025, 6, 20)).days, 375)
        self.assertEqual((T - date(2023, 1, 5)).days, 1272)
        for partner, (ltv, atv, freq, count, first, last, days, score, segment) in expected.items():
            with self.subTest(partner=partner.name):
                figures = self._figures(partner)
                self.assertEqual(
                    (
                        figures["crm_lifetime_value"],
                        figures["crm_average_transaction"],
                        figures["crm_purchase_frequency"],
                        figures["crm_value_payment_count"],
                        str(figures["crm_first_payment_date"]),
                        str(figures["crm_last_payment_date"]),
                        figures["crm_days_since_payment"],
                        figures["crm_rfm_score"],
                        figures["crm_rfm_segment"],
                    ),
                    (ltv, atv, freq, count, first, last, days, score, segment),
                )
                self.assertEqual(
                    (figures["crm_rfm_recency"], figures["crm_rfm_frequency"], figures["crm_rfm_monetary"]),
                    tuple(int(digit) for digit in score),
                )
        # Contacts carry no figures: their company does.
        self.assertFalse(self.a_contact.crm_lifetime_value)
        # Searchable and sortable, as a customer list or a mailing's recipients filter does.
        found = self.Partner.search(
            [("crm_rfm_segment", "in", ("at_risk", "loyal")), ("crm_lifetime_value", ">", 340)],
            order="crm_lifetime_value desc",
        )
        self.assertEqual(found, self.c | self.a)
        self.assertEqual(list(found.ids), [self.c.id, self.a.id])
        grouped = self.Partner.read_group(
            [("id", "in", (self.a | self.b | self.c | self.d | self.e | self.f).ids)],
            ["crm_lifetime_value:sum"],
            ["crm_rfm_segment"],
        )
        self.assertEqual(
            {g["crm_rfm_segment"]: g["crm_lifetime_value"] for g in grouped},
            {
                "loyal": 350,
                "needs_attention": 325,
                "at_risk": 600,
                "hibernating": 50,
                "lost": 1000,
                "new": 20,
            },
        )

    def test_a_payment_updates_its_customer_at_once(self):
        self.Partner._crm_recompute_customer_value(companies=self.company, today=T)
        before = self.f.crm_lifetime_value
        # f pays 30 more through payment_demo today: recomputed on confirmation, no cron.
        today = str(date.today())
        self._demo(self.f, 30, today, "done")
        self.f.invalidate_recordset()
        self.assertEqual(self.f.crm_lifetime_value, before + 30)
        self.assertEqual(self.f.crm_value_payment_count, 2)
        self.assertEqual(str(self.f.crm_last_payment_date), today)
        self.assertEqual(self.f.crm_days_since_payment, 0)
        # The others are untouched (no recompute of everyone on each payment).
        self.assertEqual(self.a.crm_days_since_payment, 10)

    def test_nightly_recompute_is_budgeted_and_once_a_day(self):
        self.assertEqual(
            self.Partner._cron_crm_recompute_customer_value(), len(self.env["res.company"].search([]))
        )
        self.assertEqual(self.company.crm_customer_value_date, date.today())
        self.assertTrue(self.a.crm_rfm_segment)
        # Already done today: nothing left.
        self.assertEqual(self.Partner._cron_crm_recompute_customer_value(), 0)

    # === REVENUE ANALYSIS === #

    def _revenue_data(self):
        env = self.env
        software = env["product.category"].create({"name": "Insight Software"})
        services = env["product.category"].create({"name": "Insight Services"})
        licence = env["product.product"].create(
            {"name": "Licence", "categ_id": software.id, "type": "service"}
        )
        training = env["product.product"].create(
            {"name": "Training", "categ_id": services.id, "type": "service"}
        )
        tax = env["account.tax"].create({"name": "Insight 10%", "amount": 10, "type_tax_use": "sale"})
        newsletter = env["utm.source"].create({"name": "Insight Newsletter"})
        lead = env["crm.lead"].create(
            {
                "name": "Licences for A",
                "type": "opportunity",
                "partner_id": self.a.id,
                "source_id": newsletter.id,
            }
        )

        def invoice(partner, currency, day, lines, move_type="out_invoice", **values):
            move = env["account.move"].create(
                {
                    "move_type": move_type,
                    "partner_id": partner.id,
                    "currency_id": currency.id,
                    "invoice_date": day,
                    "invoice_line_ids": [
                        Command.create(
                            {"product_id": product.id, "quantity": qty, "price_unit": price, "tax_ids": taxes}
                        )
                        for product, qty, price, taxes in lines
                    ],
                    **values,
                }
            )
            move.action_post()
            return move

        # A: 2 licences at 100 + 10 % tax, 1 training at 50 -> 250 untaxed, 270 with tax.
        inv_a = invoice(
            self.a,
            self.usd,
            "2026-05-05",
            [(licence, 2, 100, [Command.set(tax.ids)]), (training, 1, 50, [])],
            crm_lead_id=lead.id,
        )
        # Its training credited (50), reconciled with it; the 220 left paid.
        credit = invoice(self.a, self.usd, "2026-05-10", [(training, 1, 50, [])], move_type="out_refund")
        (inv_a.line_ids | credit.line_ids).filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        ).reconcile()
        env["account.payment.register"].with_context(
            active_model="account.move", active_ids=inv_a.ids
        ).create({"amount": 220, "payment_date": "2026-05-20"})._create_payments()
        # C: 1 licence at 30,000 JPY (150 JPY per USD: 200 USD), half paid (15,000 JPY).
        inv_c = invoice(self.c, self.jpy, "2026-02-01", [(licence, 1, 30000, [])])
        env["account.payment.register"].with_context(
            active_model="account.move", active_ids=inv_c.ids
        ).create(
            {"amount": 15000, "currency_id": self.jpy.id, "payment_date": "2026-02-10"}
        )._create_payments()
        return software, services, newsletter, inv_a, inv_c

    def test_revenue_by_category_country_channel_and_segment(self):
        software, services, newsletter, inv_a, inv_c = self._revenue_data()
        self.assertTrue(self._crm_reconciled(inv_a))
        self.assertEqual(inv_c.amount_total_signed, 200)
        domain = [("partner_id", "in", (self.a | self.c).ids)]
        measures = ["revenue:sum", "revenue_collected:sum", "revenue_open:sum"]
        by_categ = self._groups("crm.revenue.analysis", "product_categ_id", measures, domain)
        # Software: 2 x 100 (A, untaxed) + 200 (C's JPY invoice); collected 200 + 200 x 1/2.
        self.assertEqual(
            by_categ[software.display_name], {"revenue": 400, "revenue_collected": 300, "revenue_open": 100}
        )
        # Services: 50 invoiced - 50 credited: 0 net.
        self.assertEqual(
            by_categ[services.display_name], {"revenue": 0, "revenue_collected": 0, "revenue_open": 0}
        )
        by_country = self._groups("crm.revenue.analysis", "country_id", measures, domain)
        self.assertEqual(
            by_country["United States"], {"revenue": 200, "revenue_collected": 200, "revenue_open": 0}
        )
        self.assertEqual(by_country["Japan"], {"revenue": 200, "revenue_collected": 100, "revenue_open": 100})
        by_source = self._groups("crm.revenue.analysis", "source_id", ["revenue:sum"], domain)
        self.assertEqual(
            by_source[newsletter.display_name], {"revenue": 250}
        )  # A's invoice, from its opportunity
        self.Partner._crm_recompute_customer_value(companies=self.company, today=T)
        by_segment = self._groups("crm.revenue.analysis", "customer_segment", ["revenue:sum"], domain)
        self.assertEqual(by_segment, {"loyal": {"revenue": 200}, "at_risk": {"revenue": 200}})
        by_month = self._groups("crm.revenue.analysis", "date:month", ["revenue:sum"], domain)
        self.assertEqual(by_month, {"February 2026": {"revenue": 200}, "May 2026": {"revenue": 200}})

    # === COMPANIES AND ACCESS === #

    def test_each_company_sees_its_own_figures(self):
        env = self.env
        company_2 = env["res.company"].create({"name": "Insight Europe"})
        env["account.chart.template"].try_loading("generic_coa", company_2, install_demo=False)
        company_2.currency_id = self.eur
        demo_2 = self.demo.copy({"company_id": company_2.id, "state": "test"})
        tx = (
            self.env["payment.transaction"]
            .sudo()
            .create(
                {
                    "provider_id": demo_2.id,
                    "payment_method_id": self.demo_method.id,
                    "partner_id": self.a.id,
                    "amount": 999,
                    "currency_id": self.eur.id,
                    "operation": "online_direct",
                    "reference": "INSIGHT-EU-1",
                }
            )
        )
        tx._handle_notification_data("demo", {"reference": tx.reference, "simulated_state": "done"})
        invoice_2 = (
            env["account.move"]
            .with_company(company_2)
            .create(
                {
                    "move_type": "out_invoice",
                    "partner_id": self.a.id,
                    "invoice_date": "2026-05-01",
                    "invoice_line_ids": [
                        Command.create({"name": "Audit", "quantity": 1, "price_unit": 700, "tax_ids": []})
                    ],
                }
            )
        )
        invoice_2.action_post()
        self._revenue_data()
        self.Partner._crm_recompute_customer_value(today=T)
        both = env.user.company_ids | company_2
        env.user.company_ids = both

        # Company 1: its own payments, revenue and figures; company 2's are not there.
        user_1 = new_test_user(
            env,
            login="ins_crm_1",
            groups="sales_team.group_sale_salesman",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        analysis_1 = env["crm.payment.analysis"].with_user(user_1)
        self.assertFalse(analysis_1.search([("transaction_id", "=", tx.id)]))
        self.assertEqual(
            analysis_1.read_group([("partner_id", "=", self.a.id)], ["amount_net:sum"], [])[0]["amount_net"],
            350,
        )
        revenue_1 = env["crm.revenue.analysis"].with_user(user_1)
        self.assertEqual(
            revenue_1.read_group([("partner_id", "=", self.a.id)], ["revenue:sum"], [])[0]["revenue"], 200
        )
        self.assertEqual(self.a.with_user(user_1).crm_lifetime_value, 350)

        # Company 2: 999 EUR in its own currency, its invoice only, its own customer figures.
        user_2 = new_test_user(
            env,
            login="ins_crm_2",
            groups="sales_team.group_sale_salesman",
            company_id=company_2.id,
            company_ids=[Command.set(company_2.ids)],
        )
        analysis_2 = env["crm.payment.analysis"].with_user(user_2)
        rows = analysis_2.search([("partner_id", "=", self.a.id)])
        self.assertEqual(rows.transaction_id, tx)
        self.assertEqual((rows.amount_company, rows.company_currency_id), (999, self.eur))
        revenue_2 = env["crm.revenue.analysis"].with_user(user_2)
        self.assertEqual(revenue_2.search([("partner_id", "=", self.a.id)]).move_id, invoice_2)
        partner_2 = self.a.with_user(user_2).with_company(company_2)
        self.assertEqual((partner_2.crm_lifetime_value, partner_2.crm_value_payment_count), (999, 1))
        # Alone in its company, A's values are each company's only value: every cut point
        # equals it, no cut point is below it, so R = F = M = 1 and FM = 1.
        self.assertEqual(partner_2.crm_rfm_score, "111")

    def test_portal_user_sees_no_report(self):
        for model in ("crm.payment.analysis", "crm.revenue.analysis"):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.portal_user).read_group([], ["id:count"], [])
        with self.assertRaises(AccessError):
            self.env["crm.payment.analysis"].with_user(self.portal_user).search([])
