import random
from datetime import date, datetime, timedelta
from importlib import util
from pathlib import Path
from unittest.mock import patch

from odoo.tests import tagged

from .. import billing_dates
from .test_subscriptions import SubscriptionBillingCommon


def on(day):
    """Make ``day`` the day the user acts on (the actions take today from Odoo's clock)."""
    return patch("odoo.fields.Date.context_today", return_value=day)


@tagged("post_install", "-at_install")
class TestBillingDates(SubscriptionBillingCommon):
    """Billing dates counted from the anchor day, never chained: a subscription started on the
    31st is billed on each month's last day when the month is shorter, and on the 31st again
    after; and "today" is the company's day, not UTC's."""

    START = date(2027, 1, 31)

    def _walk(self, subscription, days):
        """Bill ``subscription`` on each of ``days``: nothing the day before, one invoice on it."""
        for day in days:
            self.assertEqual(subscription.next_invoice_date, day)
            self.assertEqual(self._bill(day - timedelta(days=1)), 0)
            self.assertEqual(self._bill(day), 1)
        return subscription.invoice_ids.filtered(lambda m: m.move_type == "out_invoice").sorted(
            "crm_period_start"
        )

    def _run_upgrade_script(self, version, name):
        """Run a migration script of the add-on as an upgrade from the version before would."""
        spec = util.spec_from_file_location(
            "crm_migration", Path(__file__).parents[1] / "migrations" / version / name
        )
        script = util.module_from_spec(spec)
        spec.loader.exec_module(script)
        script.migrate(self.env.cr, "18.0.1.0.0")
        self.env.invalidate_all()

    def _periods(self, invoices):
        return [(m.invoice_date, m.crm_period_start, m.crm_period_end) for m in invoices]

    def test_periods_tile_the_calendar_from_any_anchor(self):
        """Whatever the anchor, unit, interval and day: the day is in exactly one period, and
        the period after a period start is the next one (no gap, no overlap, no drift)."""
        rng = random.Random(8)
        for __ in range(3000):
            anchor = date(2024, 1, 1) + timedelta(days=rng.randrange(3000))
            unit, number = rng.choice(["day", "week", "month", "year"]), rng.randint(1, 4)
            day = anchor + timedelta(days=rng.randrange(-2000, 3000))
            index = billing_dates.period_index(anchor, unit, number, day)
            start = billing_dates.period_start(anchor, unit, number, index)
            following = billing_dates.period_start(anchor, unit, number, index + 1)
            self.assertTrue(start <= day < following, (anchor, unit, number, day))
            self.assertEqual(billing_dates.next_period_start(anchor, unit, number, start), following)
            self.assertEqual(billing_dates.previous_period_start(anchor, unit, number, following), start)

    # === BILLING === #

    def test_monthly_from_the_31st_over_14_periods(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self.assertEqual(subscription.billing_anchor_date, date(2027, 1, 31))
        days = [
            date(2027, 1, 31),
            date(2027, 2, 28),
            date(2027, 3, 31),
            date(2027, 4, 30),
            date(2027, 5, 31),
            date(2027, 6, 30),
            date(2027, 7, 31),
            date(2027, 8, 31),
            date(2027, 9, 30),
            date(2027, 10, 31),
            date(2027, 11, 30),
            date(2027, 12, 31),
            date(2028, 1, 31),
            date(2028, 2, 29),  # a leap year
        ]
        invoices = self._walk(subscription, days)
        ends = [day - timedelta(days=1) for day in days[1:]] + [date(2028, 3, 30)]
        self.assertEqual(self._periods(invoices), list(zip(days, days, ends, strict=True)))
        self.assertEqual(
            ends[:4], [date(2027, 2, 27), date(2027, 3, 30), date(2027, 4, 29), date(2027, 5, 30)]
        )
        self.assertIn("(2027-02-28 to 2027-03-30)", invoices[1].invoice_line_ids.name)
        self.assertEqual(subscription.next_invoice_date, date(2028, 3, 31))
        self.assertEqual(set(invoices.mapped("amount_total")), {100.0})
        self.assertTrue(all(self._crm_reconciled(invoice) for invoice in invoices))

    def test_yearly_from_the_29th_of_february(self):
        subscription = self._subscription(
            self._crm_save_card(), start_date=date(2028, 2, 29), interval_unit="year"
        )
        subscription.action_start()
        days = [date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28), date(2031, 2, 28), date(2032, 2, 29)]
        invoices = self._walk(subscription, days)
        self.assertEqual(
            [m.crm_period_end for m in invoices],
            [date(2029, 2, 27), date(2030, 2, 27), date(2031, 2, 27), date(2032, 2, 28), date(2033, 2, 27)],
        )
        self.assertEqual(subscription.next_invoice_date, date(2033, 2, 28))

    def test_trial_ending_at_the_end_of_the_month(self):
        plan = self.env["crm.subscription.template"].create(
            {
                "name": "Monthly with a trial",
                "trial_days": 14,
                "line_ids": [(0, 0, {"product_id": self.product.id, "price_unit": 40.0})],
            }
        )
        subscription = self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "start_date": date(2027, 1, 17),
                "template_id": plan.id,
                "payment_token_id": self._crm_save_card().id,
            }
        )
        self.assertEqual(subscription.trial_end_date, date(2027, 1, 31))
        with on(date(2027, 1, 17)):
            subscription.action_start()
        self.assertEqual(subscription.state, "trial")
        # Stripe's rule: the trial's end anchors the billing periods.
        self.assertEqual(subscription.billing_anchor_date, date(2027, 1, 31))
        invoices = self._walk(subscription, [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31)])
        self.assertEqual(subscription.state, "active")
        self.assertEqual(
            self._periods(invoices),
            [
                (date(2027, 1, 31), date(2027, 1, 31), date(2027, 2, 27)),
                (date(2027, 2, 28), date(2027, 2, 28), date(2027, 3, 30)),
                (date(2027, 3, 31), date(2027, 3, 31), date(2027, 4, 29)),
            ],
        )

    def test_proration_counts_the_days_of_the_real_period(self):
        self.assertEqual(
            billing_dates.remaining_fraction(date(2027, 1, 31), date(2027, 2, 28), date(2027, 2, 14)), 0.5
        )
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 31))
        line = subscription.line_ids
        # 31 January to 27 February: 28 days, 14 left on the 14th. 2 -> 5 seats, 150 more a month:
        # 150 x 14 / 28 = 75.00 (not 150 x 14 / 31 = 67.74, from a period wrongly starting on the 28th).
        line.with_context(crm_today=date(2027, 2, 14)).quantity = 5
        self.assertEqual(subscription.adjustment_ids.amount, 75.0)
        self.assertIn("14 of 28 days", subscription.adjustment_ids.name)
        self._bill(date(2027, 2, 28))
        february = subscription.invoice_ids.filtered(lambda m: m.crm_period_start == date(2027, 2, 28))
        self.assertEqual(february.amount_total, 250.0 + 75.0)
        # 28 February to 30 March: 31 days, 16 left on 15 March. 5 -> 3 seats, 100 less a month:
        # -100 x 16 / 31 = -51.61.
        line.with_context(crm_today=date(2027, 3, 15)).quantity = 3
        credit = subscription.adjustment_ids.filtered(lambda a: not a.invoice_id)
        self.assertEqual(credit.amount, -51.61)
        self.assertIn("16 of 31 days", credit.name)

    def test_renewal_reminder_before_the_real_date(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 31))
        self._bill(date(2027, 2, 28))
        self.assertEqual(subscription.next_invoice_date, date(2027, 3, 31))
        Subscription = self.env["crm.subscription"]
        # Seven days before 31 March (the default setting): the 24th, not the 21st.
        self.assertEqual(Subscription._cron_reminders(now=date(2027, 3, 23)), 0)
        self.assertEqual(Subscription._cron_reminders(now=date(2027, 3, 24)), 1)
        mail = self.env["mail.mail"].search(
            [
                ("model", "=", "crm.subscription"),
                ("res_id", "=", subscription.id),
                ("subject", "ilike", "renews on"),
            ]
        )
        self.assertEqual(len(mail), 1)
        self.assertIn("renews on 2027-03-31", mail.subject)

    # === RESTARTS === #

    def test_resume_keeps_the_cycle_within_the_paid_period_else_starts_one(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 31))
        self._bill(date(2027, 2, 28))
        subscription.action_pause()
        with on(date(2027, 3, 15)):  # before the end of the period already paid
            subscription.action_resume()
        self.assertEqual(
            (subscription.next_invoice_date, subscription.billing_anchor_date),
            (date(2027, 3, 31), date(2027, 1, 31)),
        )
        self._bill(date(2027, 3, 31))
        self.assertEqual(subscription.next_invoice_date, date(2027, 4, 30))
        subscription.action_pause()
        self.assertEqual(self._bill(date(2027, 4, 30)), 0)
        with on(date(2027, 5, 10)):  # after it: a new cycle from that day
            subscription.action_resume()
        self.assertEqual(
            (subscription.next_invoice_date, subscription.billing_anchor_date),
            (date(2027, 5, 10), date(2027, 5, 10)),
        )
        self._bill(date(2027, 5, 10))
        last = subscription.invoice_ids.sorted("crm_period_start")[-1]
        self.assertEqual((last.crm_period_start, last.crm_period_end), (date(2027, 5, 10), date(2027, 6, 9)))

    def test_reactivation_on_a_billing_day_keeps_the_month_end(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 31))
        subscription.action_cancel("Too expensive")
        with on(date(2027, 4, 30)):  # April's billing day of a cycle anchored on the 31st
            subscription.action_reactivate()
        self.assertEqual(
            (subscription.next_invoice_date, subscription.billing_anchor_date),
            (date(2027, 4, 30), date(2027, 1, 31)),
        )
        self._bill(date(2027, 4, 30))
        self.assertEqual(subscription.next_invoice_date, date(2027, 5, 31))
        subscription.action_cancel("Closing the account")
        with on(date(2027, 6, 12)):  # another day: a new cycle from it
            subscription.action_reactivate()
        self.assertEqual(
            (subscription.next_invoice_date, subscription.billing_anchor_date),
            (date(2027, 6, 12), date(2027, 6, 12)),
        )

    def test_changed_interval_counts_from_the_next_billing_date(self):
        subscription = self._subscription(self._crm_save_card())
        subscription.action_start()
        self._bill(date(2027, 1, 31))
        subscription.interval_unit = "year"  # 28 February is not a yearly date from 31 January
        self.assertEqual(subscription.billing_anchor_date, date(2027, 2, 28))
        self._bill(date(2027, 2, 28))
        self.assertEqual(subscription.next_invoice_date, date(2028, 2, 28))

    def test_subscriptions_billed_before_the_anchor_was_stored(self):
        drifted = self._subscription(self._crm_save_card())
        resumed = self._subscription(start_date=date(2027, 1, 15))
        (drifted + resumed).action_start()
        # As the chained dates left them: from 31 January, the 28th since February; one resumed
        # on 2 April.
        drifted.write({"billing_anchor_date": False, "next_invoice_date": date(2027, 3, 28)})
        resumed.write({"billing_anchor_date": False, "next_invoice_date": date(2027, 4, 2)})
        self._run_upgrade_script("18.0.1.1.0", "post-migrate.py")
        self.assertEqual(drifted.billing_anchor_date, date(2027, 1, 31))  # back on the month's end
        self.assertEqual(resumed.billing_anchor_date, date(2027, 4, 2))  # its cycle does not move
        self._bill(date(2027, 3, 28))
        # One period a little longer than a month, never a few days at the price of a month.
        self.assertEqual(drifted.invoice_ids.crm_period_end, date(2027, 4, 29))
        self.assertEqual(drifted.next_invoice_date, date(2027, 4, 30))

    # === TODAY === #

    def test_today_is_the_company_day_not_utc(self):
        self.env.user.tz = "America/Los_Angeles"  # the user running the cron does not matter
        subscription = self._subscription(self._crm_save_card(), start_date=date(2026, 12, 1))
        subscription.action_start()
        self.company.partner_id.tz = "Pacific/Auckland"  # UTC+13 in summer
        self.assertEqual(self._bill(datetime(2026, 11, 30, 10, 0)), 0)  # 23:00 on 30 November there
        self.assertEqual(self._bill(datetime(2026, 11, 30, 12, 30)), 1)  # 01:30 on 1 December there
        self.assertEqual(subscription.invoice_ids.crm_period_start, date(2026, 12, 1))
        self.assertEqual(subscription.invoice_ids.invoice_date, date(2026, 12, 1))

    def test_not_yet_tomorrow_west_of_utc(self):
        subscription = self._subscription(self._crm_save_card(), start_date=date(2026, 12, 1))
        subscription.action_start()
        self.company.partner_id.tz = "America/Los_Angeles"  # UTC-8
        self.assertEqual(self._bill(datetime(2026, 12, 1, 5, 0)), 0)  # 21:00 on 30 November there
        self.assertFalse(subscription.invoice_ids)
        self.assertEqual(self._bill(datetime(2026, 12, 1, 8, 0)), 1)  # midnight on 1 December

    def test_each_company_on_its_own_day(self):
        Subscription = self.env["crm.subscription"]
        self.company.partner_id.tz = False
        self.company.resource_calendar_id.tz = "Pacific/Auckland"  # Odoo's company time zone
        west = self.env["res.company"].create(
            {"name": "West Coast Ltd", "currency_id": self.company.currency_id.id}
        )
        west.partner_id.tz = "America/Los_Angeles"
        now = datetime(2026, 11, 30, 12, 30)
        self.assertEqual(Subscription._crm_company_today(self.company, now), date(2026, 12, 1))
        self.assertEqual(Subscription._crm_company_today(west, now), date(2026, 11, 30))
        east_sub, west_sub = (
            self._subscription(start_date=date(2026, 12, 1)),
            self._subscription(start_date=date(2026, 12, 1), company_id=west.id),
        )
        (east_sub + west_sub).write({"state": "active", "next_invoice_date": date(2026, 12, 1)})
        due = Subscription.search(
            [("id", "in", (east_sub + west_sub).ids)] + Subscription._crm_due_domain("next_invoice_date", now)
        )
        self.assertEqual(due, east_sub)
        # The renewal reminder follows the company's day too.
        self.assertEqual(
            (east_sub._crm_today(now), west_sub._crm_today(now)), (date(2026, 12, 1), date(2026, 11, 30))
        )
