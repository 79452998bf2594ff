"""Subscription insight: the MRR movement log written by real actions, the monthly metrics and
cohorts over it, the subscriber figures on the partner and the forecast; every figure computed
by hand in the test."""

from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged

from ..services import forecast as method
from .common import CrmPaymentCommon, post_signed_event, stripe_event
from .test_stripe_billing import StripeBillingCommon

SECRET = "whsec_insight_secret"


class InsightCommon(CrmPaymentCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product = cls.env["product.product"].create({"name": "Seat", "type": "service"})
        cls.usd = cls.company.currency_id
        cls.Movement = cls.env["crm.subscription.movement"]
        cls.Metric = cls.env["crm.subscription.metric"]

    def _customer(self, name, company=None):
        return self.env["res.partner"].create(
            {"name": name, "is_company": True, "company_id": (company.id if company else False)}
        )

    def _start(self, partner, price, day, quantity=1, company=None, currency=None, **values):
        """A subscription of ``quantity`` × ``price`` started (a real ``action_start``) on ``day``."""
        company = company or self.company
        subscription = (
            self.env["crm.subscription"]
            .with_company(company)
            .create(
                {
                    "partner_id": partner.id,
                    "company_id": company.id,
                    "currency_id": (currency or company.currency_id).id,
                    "start_date": values.pop("start_date", day),
                    "line_ids": [
                        (0, 0, {"product_id": self.product.id, "quantity": quantity, "price_unit": price})
                    ],
                    **values,
                }
            )
        )
        subscription.with_context(crm_movement_date=day).action_start()
        return subscription

    @staticmethod
    def _on(record, day):
        """The record, its movements dated ``day`` (the log's API for back-dating)."""
        return record.with_context(crm_movement_date=day)

    def _movements(self, partner=None, company=None):
        domain = [("company_id", "=", (company or self.company).id)]
        if partner:
            domain.append(("partner_id", "=", partner.id))
        return self.Movement.search(domain, order="id")

    def _metric(self, month, company=None):
        self.env.flush_all()
        return self.Metric.search([("company_id", "=", (company or self.company).id), ("month", "=", month)])


@tagged("post_install", "-at_install")
class TestMrrMovements(InsightCommon):
    """Movements written by the actions themselves, classified per customer."""

    def test_each_kind_from_real_actions(self):
        customer = self._customer("Kinds Ltd")
        first = self._start(customer, 100.0, date(2025, 1, 10))
        self._on(first.line_ids, date(2025, 2, 3)).write({"quantity": 3})  # upgrade: 300
        self._on(first.line_ids, date(2025, 2, 20)).write({"quantity": 2})  # downgrade: 200
        second = self._start(customer, 50.0, date(2025, 3, 1))  # another subscription: 250
        self._on(second, date(2025, 3, 15)).action_cancel()  # one of two cancelled: contracts
        self._on(first, date(2025, 4, 1)).action_pause()  # the last one paused: churn
        self._on(first, date(2025, 5, 1)).action_resume()  # back: reactivation
        self._on(first, date(2025, 6, 1)).action_cancel()
        self._on(first, date(2025, 7, 1)).action_reactivate()
        got = [
            (m.date, m.kind, m.source, m.mrr_change, m.customer_mrr_before, m.customer_mrr_after)
            for m in self._movements(customer)
        ]
        self.assertEqual(
            got,
            [
                (date(2025, 1, 10), "new", "start", 100.0, 0.0, 100.0),
                (date(2025, 2, 3), "expansion", "line", 200.0, 100.0, 300.0),
                (date(2025, 2, 20), "contraction", "line", -100.0, 300.0, 200.0),
                (date(2025, 3, 1), "expansion", "start", 50.0, 200.0, 250.0),
                (date(2025, 3, 15), "contraction", "cancel", -50.0, 250.0, 200.0),
                (date(2025, 4, 1), "churn", "pause", -200.0, 200.0, 0.0),
                (date(2025, 5, 1), "reactivation", "resume", 200.0, 0.0, 200.0),
                (date(2025, 6, 1), "churn", "cancel", -200.0, 200.0, 0.0),
                (date(2025, 7, 1), "reactivation", "reactivation", 200.0, 0.0, 200.0),
            ],
        )
        # The subscription's own MRR before and after, and its movements on its form.
        self.assertEqual(first.movement_ids.sorted("id")[-1].mrr_after, 200.0)
        self.assertEqual(first.mrr, 200.0)

    def test_contact_of_a_company_counts_for_the_company(self):
        customer = self._customer("Parent Co")
        contact = self.env["res.partner"].create({"name": "Buyer", "parent_id": customer.id})
        self._start(contact, 80.0, date(2025, 1, 5))
        self._start(customer, 20.0, date(2025, 1, 6))
        self.assertEqual(self._movements(customer).mapped("kind"), ["new", "expansion"])

    def test_trial_counts_from_its_first_billing_and_expiry_churns(self):
        customer = self._customer("Trial Ltd")
        today = fields.Date.context_today(self.env.user)
        subscription = self._start(
            customer, 40.0, today - timedelta(days=20), trial_end_date=today - timedelta(days=10)
        )
        # Its trial ended in the past: billed from the trial's end, no trial state to count.
        self.assertEqual(self._movements(customer).mapped("kind"), ["new"])
        ending = self._start(customer, 10.0, today - timedelta(days=40), end_date=today - timedelta(days=5))
        ending.next_invoice_date = today
        subscription.next_invoice_date = today + timedelta(days=30)  # not due: only the ending one runs
        self.env["crm.subscription"]._cron_bill(now=today)  # past its end: expires
        self.assertEqual(ending.state, "expired")
        expiry = self._movements(customer)[-1]
        self.assertEqual((expiry.kind, expiry.source, expiry.mrr_change), ("contraction", "expiry", -10.0))
        self.assertEqual(subscription.state, "active")

    def test_multi_currency_at_the_rate_of_the_movement_date(self):
        eur, jpy = self._crm_currency("EUR"), self._crm_currency("JPY")
        self.env["res.currency.rate"].create(
            [
                # Rates are units of the currency per USD.
                {"currency_id": eur.id, "name": "2025-01-01", "rate": 0.5, "company_id": self.company.id},
                {"currency_id": eur.id, "name": "2025-03-01", "rate": 0.8, "company_id": self.company.id},
                {"currency_id": jpy.id, "name": "2025-01-01", "rate": 150.0, "company_id": self.company.id},
            ]
        )
        customer = self._customer("Euro GmbH")
        subscription = self._start(customer, 100.0, date(2025, 1, 15), currency=eur)
        self._on(subscription.line_ids, date(2025, 3, 10)).write({"price_unit": 120.0})
        self._on(subscription, date(2025, 4, 2)).action_cancel()
        japan = self._customer("Nihon KK")
        yearly = self._start(
            japan, 12000.0, date(2025, 2, 1), currency=jpy, interval_unit="year", interval_number=1
        )
        self.assertEqual(yearly.currency_id.decimal_places, 0)
        got = [
            (m.partner_id, m.kind, m.mrr_change, m.mrr_after)
            for m in self._movements().filtered(lambda m: m.partner_id in customer | japan)
        ]
        self.assertEqual(
            got,
            [
                (customer, "new", 200.0, 200.0),  # 100 EUR at 0.5 EUR per USD
                (customer, "expansion", 25.0, 225.0),  # +20 EUR at 0.8
                (customer, "churn", -225.0, 0.0),  # all of its MRR goes
                (japan, "new", 6.67, 6.67),  # 12,000 JPY a year = 1,000 a month, at 150 per USD
            ],
        )

    def test_users_read_the_log_and_nobody_writes_it(self):
        customer = self._customer("Log Ltd")
        self._start(customer, 10.0, date(2025, 1, 1))
        movement = self._movements(customer)
        self.assertEqual(movement.with_user(self.salesman).read(["kind"])[0]["kind"], "new")
        for user in (self.salesman, self.accountant):
            with self.assertRaises(AccessError):
                movement.with_user(user).write({"mrr_change": 1.0})
            with self.assertRaises(AccessError):
                movement.with_user(user).unlink()
        with self.assertRaises(AccessError):
            self.Movement.with_user(self.portal_user).search([])

    def test_rebuild_from_the_chatter(self):
        customer = self._customer("History Ltd")
        subscription = self._start(customer, 70.0, date(2025, 1, 1))
        self.env.cr.flush()  # the chatter's tracking is written at commit
        subscription.action_cancel()
        self.env.cr.flush()
        # Started in the request that created it: only the cancellation is tracked.
        (tracked,) = subscription.message_ids.filtered("tracking_value_ids")
        self.assertEqual(tracked.tracking_value_ids.new_value_char, "Cancelled")
        self.env.cr.execute(
            "DELETE FROM crm_subscription_movement WHERE subscription_id = %s", [subscription.id]
        )
        self.env.invalidate_all()
        self.assertEqual(self.Movement._crm_rebuild(subscription), 2)
        rebuilt = self._movements(customer)
        self.assertEqual(
            [(m.date, m.kind, m.source, m.mrr_change) for m in rebuilt],
            [
                (date(2025, 1, 1), "new", "rebuild", 70.0),  # active from its start
                (tracked.date.date(), "churn", "rebuild", -70.0),  # the tracked cancellation
            ],
        )
        self.assertEqual(self.Movement._crm_rebuild(subscription), 0, "rebuilt once")
        # Without tracking (a subscription written in SQL): its start and its end date.
        other = self._start(self._customer("Quiet Ltd"), 30.0, date(2025, 2, 1))
        self.env.flush_all()
        self.env.cr.execute("DELETE FROM crm_subscription_movement WHERE subscription_id = %s", [other.id])
        self.env.cr.execute(
            "DELETE FROM mail_tracking_value WHERE mail_message_id IN "
            "(SELECT id FROM mail_message WHERE model = 'crm.subscription' AND res_id = %s)",
            [other.id],
        )
        self.env.cr.execute(
            "UPDATE crm_subscription SET state = 'expired', end_date = '2025-05-31' WHERE id = %s", [other.id]
        )
        self.env.invalidate_all()
        self.assertEqual(self.Movement._crm_rebuild(other), 2)
        self.assertEqual(
            [(m.date, m.kind) for m in self._movements(other.partner_id)],
            [(date(2025, 2, 1), "new"), (date(2025, 6, 1), "churn")],
        )


@tagged("post_install", "-at_install")
class TestSubscriptionMetrics(InsightCommon):
    """Four months of three customers, every figure by hand.

    - January: A 100 and B 200 start (new 300). End: MRR 300, 2 customers.
    - February: A goes up to 150 (+50), B down to 150 (-50), C starts 100 (new). Start 300;
      end 400, 3 customers.
    - March: B cancels (churn -150), A takes a second subscription of 60 (+60). Start 400;
      end 310, 2 customers.
    - April: B comes back (reactivation +150), A cancels its second one (-60). Start 310;
      end 400, 3 customers.
    """

    def _dataset(self, company=None):
        company = company or self.company
        a, b, c = (self._customer(name, company) for name in ("A Ltd", "B Ltd", "C Ltd"))
        sub_a = self._start(a, 100.0, date(2025, 1, 10), company=company)
        sub_b = self._start(b, 200.0, date(2025, 1, 20), company=company)
        self._on(sub_a.line_ids, date(2025, 2, 5)).write({"price_unit": 150.0})
        self._on(sub_b.line_ids, date(2025, 2, 6)).write({"price_unit": 150.0})
        self._start(c, 100.0, date(2025, 2, 7), company=company)
        self._on(sub_b, date(2025, 3, 3)).action_cancel()
        second_a = self._start(a, 60.0, date(2025, 3, 9), company=company)
        self._on(sub_b, date(2025, 4, 2)).action_reactivate()
        self._on(second_a, date(2025, 4, 20)).action_cancel()
        return a, b, c

    def test_monthly_metrics_by_hand(self):
        self._dataset()
        march = self._metric(date(2025, 3, 1))
        self.assertRecordValues(
            march,
            [
                {
                    "mrr_start": 400.0,
                    "mrr": 310.0,
                    "arr": 3720.0,
                    "new_mrr": 0.0,
                    "expansion_mrr": 60.0,
                    "contraction_mrr": 0.0,
                    "churn_mrr": -150.0,
                    "reactivation_mrr": 0.0,
                    "net_new_mrr": -90.0,
                    "customers_start": 3,
                    "customers": 2,
                    "churned_customers": 1,
                    "logo_churn_rate": round(100 * 1 / 3, 2),  # 33.33
                    "gross_revenue_churn": 100 * 150 / 400,  # 37.5
                    "net_revenue_churn": 100 * (150 - 60) / 400,  # 22.5
                    "nrr": 100 * (400 + 60 - 150) / 400,  # 77.5
                    "grr": 100 * (400 - 150) / 400,  # 62.5
                    "arpa": 310 / 2,
                    "quick_ratio": 60 / 150,  # 0.4
                }
            ],
        )
        february = self._metric(date(2025, 2, 1))
        self.assertRecordValues(
            february,
            [
                {
                    "mrr_start": 300.0,
                    "mrr": 400.0,
                    "new_mrr": 100.0,
                    "expansion_mrr": 50.0,
                    "contraction_mrr": -50.0,
                    "customers": 3,
                    "quick_ratio": (100 + 50) / 50,  # 3.0
                    "nrr": 100.0,
                    "arpa": round(400 / 3, 2),
                }
            ],
        )
        april = self._metric(date(2025, 4, 1))
        self.assertRecordValues(
            april, [{"reactivation_mrr": 150.0, "contraction_mrr": -60.0, "mrr": 400.0, "customers": 3}]
        )
        # Months without movement carry the MRR on.
        self.assertRecordValues(self._metric(date(2025, 5, 1)), [{"mrr_start": 400.0, "mrr": 400.0}])

    def test_ratios_of_a_group_are_ratios_of_its_sums(self):
        self._dataset()
        self.env.flush_all()
        (group,) = self.Metric.read_group(
            [
                ("company_id", "=", self.company.id),
                ("month", ">=", "2025-02-01"),
                ("month", "<=", "2025-03-31"),
            ],
            ["logo_churn_rate:sum", "gross_revenue_churn:sum", "nrr:sum", "quick_ratio:sum", "arpa:sum"],
            [],
        )
        self.assertAlmostEqual(group["logo_churn_rate"], round(100 * (0 + 1) / (2 + 3), 2))  # 20
        self.assertAlmostEqual(group["gross_revenue_churn"], round(100 * (50 + 150) / (300 + 400), 2))
        self.assertAlmostEqual(group["nrr"], round(100 * (700 + 110 - 200) / 700, 2))
        self.assertAlmostEqual(group["quick_ratio"], round((100 + 110) / (50 + 150), 2))
        self.assertAlmostEqual(group["arpa"], round((400 + 310) / (3 + 2), 2))

    def test_cohort_cell(self):
        self._dataset()
        self.env.flush_all()
        cells = self.env["crm.subscription.cohort"].search(
            [
                ("company_id", "=", self.company.id),
                ("cohort_month", "=", "2025-01-01"),
                ("months_since", "<=", 3),
            ],
            order="months_since",
        )
        # January's cohort is A and B: 300 at the end of January; in March only A (150 + 60).
        self.assertEqual(
            [(c.months_since, c.customers, c.mrr, c.customer_retention, c.mrr_retention) for c in cells],
            [
                (0, 2, 300.0, 100.0, 100.0),
                (1, 2, 300.0, 100.0, 100.0),
                (2, 1, 210.0, 50.0, 70.0),
                (3, 2, 300.0, 100.0, 100.0),
            ],
        )
        february = self.env["crm.subscription.cohort"].search(
            [
                ("company_id", "=", self.company.id),
                ("cohort_month", "=", "2025-02-01"),
                ("months_since", "=", 0),
            ]
        )
        self.assertEqual((february.customers, february.mrr, february.cohort), (1, 100.0, "2025-02"))
        # The cohort table as the pivot reads it: cohort (YYYY-MM) x months since.
        (cell,) = [
            group
            for group in self.env["crm.subscription.cohort"].read_group(
                [("company_id", "=", self.company.id)],
                ["customers:sum", "mrr:sum", "customer_retention:sum"],
                ["cohort", "months_since"],
                lazy=False,
            )
            if group["cohort"] == "2025-01" and group["months_since"] == 2
        ]
        self.assertEqual((cell["customers"], cell["mrr"], cell["customer_retention"]), (1, 210.0, 50.0))

    def test_subscriber_figures_and_predicted_ltv(self):
        a, b, c = self._dataset()
        Partner = self.env["res.partner"]
        Partner._crm_refresh_subscription_insight(self.company, today=date(2025, 5, 15))
        # Trailing 12 complete months (May 2024 - April 2025): 1 churned customer over
        # 0 + 2 + 3 + 2 customers at the start of each month.
        churn = 1 / 7
        self.assertEqual(a.crm_subscription_mrr, 150.0)
        self.assertEqual(a.crm_subscription_tenure, 4)  # 10 January to 15 May
        self.assertAlmostEqual(a.crm_predicted_ltv, round(150 / churn, 2))  # 1,050
        self.assertEqual(b.crm_subscription_mrr, 150.0)
        self.assertEqual(c.crm_predicted_ltv, round(100 / churn, 2))
        self.assertEqual(
            Partner.search([("crm_subscription_mrr", ">", 120)]).filtered(lambda p: p in a | b | c), a | b
        )

    def test_multi_company_and_access(self):
        company_2 = self.env["res.company"].create({"name": "Insight Two", "currency_id": self.usd.id})
        self.env.user.company_ids |= company_2
        self._dataset()
        other = self._customer("Elsewhere", company_2)
        self._start(other, 999.0, date(2025, 3, 1), company=company_2)
        self.env.flush_all()
        self.assertEqual(self._metric(date(2025, 3, 1), company_2).new_mrr, 999.0)
        self.assertEqual(self._metric(date(2025, 3, 1)).new_mrr, 0.0, "the other company's start stays there")
        salesman_2 = new_test_user(
            self.env,
            login="insight_salesman_2",
            groups="sales_team.group_sale_salesman",
            company_id=company_2.id,
            company_ids=[(6, 0, company_2.ids)],
        )
        for model in ("crm.subscription.metric", "crm.subscription.movement", "crm.subscription.cohort"):
            with self.subTest(model=model):
                own = self.env[model].with_user(self.salesman).search([])
                self.assertTrue(own)
                self.assertEqual(own.company_id, self.company)
                self.assertEqual(self.env[model].with_user(salesman_2).search([]).company_id, company_2)
                with self.assertRaises(AccessError):
                    self.env[model].with_user(self.portal_user).search([])
        with self.assertRaises(AccessError):
            self.env["crm.revenue.forecast"].with_user(self.portal_user).search([])


@tagged("post_install", "-at_install")
class TestChurnRisk(InsightCommon):
    def test_score_and_signals(self):
        today = self.env["crm.subscription"]._crm_company_today(self.company)
        token = self._crm_save_card()
        customer = self.partner
        subscription = self._start(
            customer, 50.0, today - timedelta(days=20), quantity=2, payment_token_id=token.id
        )
        # Its card expires at the end of this month, before its next billing.
        token.write({"crm_exp_month": today.month, "crm_exp_year": today.year})
        subscription.next_invoice_date = today + relativedelta(months=1, day=15)
        subscription.line_ids.quantity = 1  # a downgrade today
        subscription.action_cancel_at_period_end("too expensive")
        overdue = self._crm_invoice(
            300.0, invoice_date=today - timedelta(days=60), invoice_date_due=today - timedelta(days=30)
        )
        self.assertEqual(overdue.invoice_date_due, today - timedelta(days=30))
        self.env["res.partner"]._cron_refresh_subscription_insight()
        # Downgrade 15 + cancel at period end 20 + card 10 + 30 of 60 days overdue × 20 = 10.
        self.assertEqual(customer.crm_churn_risk, 55)
        self.assertEqual(
            customer.crm_churn_risk_reasons,
            "Downgrades in the last 90 days: 1 (+15)\n"
            "Subscriptions cancelled at period end: 1 (+20)\n"
            "Cards expiring before the next billing: 1 (+10)\n"
            "Days overdue (oldest invoice): 30 (+10)",
        )
        self.assertFalse(customer.crm_churn_at_risk)
        # A failed payment: its figures are recomputed at once.
        tx = self.env["payment.transaction"].create(
            {
                "provider_id": self.provider.id,
                "payment_method_id": self.env.ref("payment.payment_method_card").id,
                "amount": 50.0,
                "currency_id": self.usd.id,
                "partner_id": customer.id,
                "reference": "INSIGHT-RISK-1",
            }
        )
        tx._set_error("Your card was declined.")
        self.assertEqual(customer.crm_churn_risk, 55 + 25)
        self.assertTrue(
            customer.crm_churn_risk_reasons.startswith("Failed payments in the last 90 days: 1 (+25)\n")
        )
        self.assertTrue(customer.crm_churn_at_risk)
        at_risk = self.env["res.partner"].search([("crm_churn_at_risk", "=", True)])
        self.assertIn(customer, at_risk)
        self.assertIn(customer, self.env["res.partner"].search([("crm_churn_risk", ">=", 80)]))
        # Shown on the customer's opportunity.
        lead = self.env["crm.lead"].create(
            {"name": "Renewal", "type": "opportunity", "partner_id": customer.id}
        )
        self.assertEqual(lead.crm_partner_churn_risk, 80)
        self.assertEqual(lead.crm_partner_subscription_mrr, 50.0)
        # The weights and the threshold are settings.
        self.company.crm_churn_risk_threshold = 90
        self.env.invalidate_all()
        self.assertNotIn(customer, self.env["res.partner"].search([("crm_churn_at_risk", "=", True)]))
        self.company.crm_churn_weight_downgrade = 0
        self.env["res.partner"]._crm_refresh_subscription_insight(self.company)
        self.assertEqual(customer.crm_churn_risk, 65)
        self.assertNotIn("Downgrades", customer.crm_churn_risk_reasons)

    def test_each_company_its_own_figures(self):
        company_2 = self.env["res.company"].create({"name": "Risk Two", "currency_id": self.usd.id})
        self.env.user.company_ids |= company_2
        customer = self._customer("Shared Customer")
        self._start(customer, 100.0, date(2025, 1, 1))
        self._start(customer, 40.0, date(2025, 1, 1), company=company_2)
        self.assertEqual(customer.crm_subscription_mrr, 100.0)
        self.assertEqual(customer.with_company(company_2).crm_subscription_mrr, 40.0)


@tagged("post_install", "-at_install")
class TestForecast(InsightCommon):
    def test_method_by_hand_and_against_seasonal_naive(self):
        # A straight line: the seasonal indexes are all 1 and the trend is the line itself.
        line = [100.0 + 5 * t for t in range(24)]
        self.assertEqual(method.seasonal_indexes(line), [1.0] * 12)
        predicted = method.forecast(line, 12)
        self.assertAlmostEqual(predicted[0], 100 + 5 * 24)  # 220
        self.assertAlmostEqual(predicted[11], 100 + 5 * 35)  # 275
        self.assertEqual(method.seasonal_naive(line, 12)[0], 100 + 5 * 12)  # 160
        # Trend × season with some noise: the method beats seasonal-naive.
        season = [0.8, 0.85, 1.0, 1.05, 1.1, 1.0, 0.9, 0.85, 1.0, 1.1, 1.2, 1.15]
        noise = [1.02, 0.98, 1.01, 0.99, 1.03, 0.97]
        series = [(1000 + 20 * t) * season[t % 12] * noise[t % 6] for t in range(36)]
        ours, naive = method.backtest(series, holdout=6)
        self.assertLess(ours, naive)
        self.assertEqual(method.mape([100.0, 200.0], [110.0, 180.0]), 10.0)

    def test_recurring_revenue_by_hand(self):
        company = self.env["res.company"].create({"name": "Forecast Co", "currency_id": self.usd.id})
        self.env.user.company_ids |= company
        # History: one customer paid 100 from January to June 2026, then churned.
        gone = self._start(self._customer("Gone", company), 100.0, date(2026, 1, 10), company=company)
        self._on(gone, date(2026, 6, 10)).action_cancel()
        start = date(2026, 12, 1)
        # Monthly 100 from 15 January 2027; yearly 1,200 from 1 March; 30 a month from January
        # to its end in March; a 50 a month trial ending on 1 February.
        self._start(
            self._customer("Monthly", company), 100.0, start, company=company, start_date=date(2027, 1, 15)
        )
        self._start(
            self._customer("Yearly", company),
            1200.0,
            start,
            company=company,
            start_date=date(2027, 3, 1),
            interval_unit="year",
        )
        self._start(
            self._customer("Ending", company),
            30.0,
            start,
            company=company,
            start_date=date(2027, 1, 1),
            end_date=date(2027, 3, 31),
        )
        trial = self._start(
            self._customer("Trying", company), 50.0, start, company=company, trial_end_date=date(2027, 2, 1)
        )
        self.assertEqual((trial.state, trial.next_invoice_date), ("trial", date(2027, 2, 1)))
        self.env.flush_all()
        Forecast = self.env["crm.revenue.forecast"]
        today = date(2026, 12, 20)
        churn, conversion = Forecast._crm_trailing_rates(company, today)
        # Churned MRR 100 over the MRR at the start of February to June 2026 (5 × 100).
        self.assertAlmostEqual(churn, 100 / 500)
        self.assertEqual(conversion, 1.0, "no trial ended in the last 12 months")
        got = Forecast._crm_recurring_forecast(company, today)
        survival = [(1 - 0.2) ** k for k in range(13)]
        self.assertNotIn(date(2026, 12, 1), got)
        self.assertAlmostEqual(got[date(2027, 1, 1)], round((100 + 30) * survival[1], 2))  # 104
        self.assertAlmostEqual(got[date(2027, 2, 1)], round((100 + 30 + 50) * survival[2], 2))  # 115.2
        # The yearly one counts 1,200 / 12 a month from March; the ending one until March.
        self.assertAlmostEqual(got[date(2027, 3, 1)], round((100 + 30 + 50 + 100) * survival[3], 2))
        self.assertAlmostEqual(got[date(2027, 4, 1)], round((100 + 50 + 100) * survival[4], 2))
        rows = Forecast._crm_refresh(company, today=today)
        recurring = rows.filtered(lambda r: r.series == "recurring" and r.kind == "forecast")
        self.assertEqual(recurring.filtered(lambda r: r.month == date(2027, 1, 1)).amount, 104.0)

    def test_total_revenue_forecast_from_invoices(self):
        company = self.env["res.company"].create({"name": "Invoices Co", "currency_id": self.usd.id})
        self.env.user.company_ids |= company
        partner = self._customer("Buyer", company)
        journal = self.env["account.journal"].search(
            [("company_id", "=", company.id), ("type", "=", "sale")], limit=1
        )
        if not journal:
            self.env["account.chart.template"].try_loading("generic_coa", company, install_demo=False)
        for t in range(24):
            day = date(2024, 12, 5) + relativedelta(months=t)
            self.env["account.move"].with_company(company).create(
                {
                    "move_type": "out_invoice",
                    "partner_id": partner.id,
                    "invoice_date": day,
                    "date": day,
                    "invoice_line_ids": [
                        (0, 0, {"name": "Sale", "quantity": 1, "price_unit": 100.0 + 5 * t, "tax_ids": []})
                    ],
                }
            ).action_post()
        rows = self.env["crm.revenue.forecast"]._crm_refresh(company, today=date(2026, 12, 10))
        total = rows.filtered(lambda r: r.series == "total")
        actual = total.filtered(lambda r: r.kind == "actual").sorted("month")
        self.assertEqual(actual[-1].month, date(2026, 11, 1))
        self.assertEqual(actual[-1].amount, 100 + 5 * 23)
        december = total.filtered(lambda r: r.kind == "forecast" and r.month == date(2026, 12, 1))
        self.assertEqual(december.amount, 100 + 5 * 24)  # the line goes on: 220


@tagged("post_install", "-at_install")
class TestMirroredMovements(StripeBillingCommon, HttpCase):
    """A Stripe Billing subscription's movements, from the import and from a signed webhook."""

    def _post_event(self, event):
        post_signed_event(self, self.provider, event, SECRET)

    def test_mirror_updated_by_webhook(self):
        eur = self._crm_currency("EUR")
        today = fields.Date.context_today(self.env.user)
        self.env["res.currency.rate"].create(
            {"currency_id": eur.id, "name": today, "rate": 0.8, "company_id": self.company.id}
        )
        remote = self._stripe_subscription(amount=1500, quantity=2, currency="eur")  # 30 EUR a month
        self._import()
        mirror = self._mirror(remote)
        movements = self.env["crm.subscription.movement"].search([("subscription_id", "=", mirror.id)])
        self.assertEqual(
            [(m.kind, m.source, m.mrr_change) for m in movements], [("new", "mirror", 37.5)]
        )  # 30 EUR at 0.8 EUR per USD
        item = remote["items"]["data"][0]
        self.gateway.client.v1.subscriptions.update(
            remote["id"], params={"items": [{"id": item["id"], "quantity": 3}]}
        )
        self.provider.crm_webhook_secret = SECRET
        updated = self.gateway.retrieve_subscription(remote["id"])
        self._post_event(stripe_event("customer.subscription.updated", updated))
        self.env["crm.payment.event"]._crm_process_due()
        self.assertEqual(mirror.amount_untaxed, 45.0)
        movements = self.env["crm.subscription.movement"].search(
            [("subscription_id", "=", mirror.id)], order="id"
        )
        self.assertEqual(
            [(m.kind, m.source, m.mrr_change) for m in movements],
            [("new", "mirror", 37.5), ("expansion", "mirror", 18.75)],
        )
        self.assertEqual(mirror.partner_id.commercial_partner_id.crm_subscription_mrr, 56.25)
        # Cancelled in Stripe, told by the webhook: churn.
        self.gateway.client.v1.subscriptions.cancel(remote["id"])
        self._post_event(
            stripe_event("customer.subscription.deleted", self.gateway.retrieve_subscription(remote["id"]))
        )
        self.env["crm.payment.event"]._crm_process_due()
        self.assertEqual(mirror.state, "cancelled")
        last = self.env["crm.subscription.movement"].search(
            [("subscription_id", "=", mirror.id)], order="id desc", limit=1
        )
        self.assertEqual((last.kind, last.source, last.mrr_change), ("churn", "mirror", -56.25))
