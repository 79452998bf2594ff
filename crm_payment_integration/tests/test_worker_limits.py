"""Long jobs end each run inside Odoo's worker limits, and an event is picked up at once."""

import json
import threading
import types
import unittest
from datetime import date
from unittest.mock import patch

from odoo import api
from odoo.modules.registry import Registry
from odoo.tests import TransactionCase, tagged

from ..models.crm_subscription_stripe import IMPORT_PENDING_PARAM
from ..services import budget as budget_module
from ..services.budget import CRON_SLEEP, TimeBudget
from .common import CrmPaymentCommon, stripe_event
from .test_stripe_billing import StripeBillingCommon

LIMITS = {"limit_time_cpu": 60, "limit_time_real": 120, "limit_time_real_cron": -1}


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def fake_thread(name="MainThread", **attrs):
    return types.SimpleNamespace(name=name, **attrs)


class TestTimeBudget(unittest.TestCase):
    """The budget arithmetic, with fake clocks: no database."""

    def _budget(self, cpu=None, wall=None, **kwargs):
        self.wall, self.cpu = FakeClock(), FakeClock()
        return TimeBudget(cpu, wall, clock=self.wall, cpu_clock=self.cpu, **kwargs)

    def _run_batch(self, budget, wall, cpu=0.0, items=0):
        with budget.batch(items):
            self.wall.advance(wall)
            self.cpu.advance(cpu)

    def test_stops_when_less_than_twice_the_slowest_batch_is_left(self):
        budget = self._budget(wall=10)
        self.assertTrue(budget.allows_batch())
        self._run_batch(budget, 3)
        self.assertTrue(budget.allows_batch())  # 7 s left >= 2 x 3 s
        self._run_batch(budget, 2)
        self.assertFalse(budget.allows_batch())  # 5 s left < 2 x 3 s (the slowest)
        self.assertTrue(budget.exhausted)
        self.wall.now = 0  # refused once, refused for good
        self.assertFalse(budget.allows_batch())
        self.assertEqual((budget.batches, budget.slowest_wall), (2, 3))

    def test_cpu_counts_as_well_as_wall(self):
        budget = self._budget(cpu=30, wall=1000)
        self._run_batch(budget, 5, cpu=12)
        self.assertFalse(budget.allows_batch())  # 18 s of CPU left < 2 x 12 s
        self.assertEqual(budget.left(), (18, 995))

    def test_first_batch_only_when_something_is_left(self):
        self.assertTrue(self._budget(wall=0.001).allows_batch())
        self.assertFalse(self._budget(wall=-3).allows_batch())
        self.assertTrue(self._budget().allows_batch())  # no limit at all

    def test_batches_sized_by_time(self):
        budget = self._budget(wall=10)
        self.assertEqual(budget.batch_size(200), 25)  # nothing measured yet: a small first batch
        self._run_batch(budget, 1, items=25)  # 40 ms per item
        self.assertEqual(budget.batch_size(200), 50)  # 9 s left fit 112: at most twice the last
        self._run_batch(budget, 7, items=50)  # 140 ms per item, 2 s left
        self.assertEqual(budget.batch_size(200), 7)  # 2 s / (2 x 140 ms)
        self.wall.advance(1.99)
        self.assertEqual(budget.batch_size(200), 1)
        self.assertEqual(self._budget().batch_size(5), 1)

    def test_share_of_the_limits(self):
        budget = TimeBudget.from_limits(60, 120, cpu_spent=10, wall_spent=15)
        self.assertEqual((budget.cpu_seconds, budget.wall_seconds), (20, 45))
        budget = TimeBudget.from_limits(0, -1)
        self.assertEqual((budget.cpu_seconds, budget.wall_seconds), (None, None))

    def test_prefork_cron_worker(self):
        """RLIMIT_CPU was set to the CPU time when the unit of work began plus the limit; the
        watchdog counts the worker's sleep before it woke up."""
        cpu = FakeClock(112.5)
        budget = TimeBudget.for_worker(
            LIMITS,
            thread=fake_thread("Worker WorkerCron (4242) workthread"),
            rlimit_cpu=int(100.3 + 60),
            cpu_clock=cpu,
        )
        self.assertAlmostEqual(budget.cpu_seconds, 30 - 12.5)  # 12.5 s used by earlier jobs
        self.assertAlmostEqual(budget.wall_seconds, 0.5 * (120 - CRON_SLEEP) - 12.5)
        budget = TimeBudget.for_worker(
            dict(LIMITS, limit_time_real_cron=600),
            thread=fake_thread("Worker WorkerCron (4242) workthread"),
            rlimit_cpu=int(100 + 60),
            cpu_clock=FakeClock(100),
        )
        self.assertEqual((budget.cpu_seconds, budget.wall_seconds), (30, 0.5 * (600 - CRON_SLEEP)))

    def test_threaded_cron_thread(self):
        """A threaded server measures from the start of the cron thread's poll: exact."""
        budget = TimeBudget.for_worker(
            dict(LIMITS, limit_time_real_cron=300),
            thread=fake_thread("odoo.service.cron.cron0", type="cron", start_time=1000.0),
            now=1040.0,
        )
        self.assertEqual((budget.cpu_seconds, budget.wall_seconds), (30, 150 - 40))

    def test_no_limits_configured(self):
        budget = TimeBudget.for_worker(
            {"limit_time_cpu": 0, "limit_time_real": 0, "limit_time_real_cron": 0}, thread=fake_thread()
        )
        self.assertEqual(budget.left(), (float("inf"), float("inf")))

    def test_runs_of_one_unit_of_work_share_a_budget(self):
        unit, other = FakeClock(), FakeClock()  # any object living as long as the unit
        thread = fake_thread("Worker WorkerCron (1) workthread")
        first = TimeBudget.for_worker(LIMITS, unit=unit, thread=thread, rlimit_cpu=10**6)
        self.assertIs(TimeBudget.for_worker(LIMITS, unit=unit, thread=thread), first)
        self.assertIsNot(TimeBudget.for_worker(LIMITS, unit=other, thread=thread), first)
        self.assertIsNot(TimeBudget.for_worker(LIMITS, thread=thread), first)


class BudgetedClockMixin:
    """A budget whose wall clock moves by one second for each batch the job runs."""

    def _one_second_per_call(self, model, method):
        clock = FakeClock()
        original = getattr(type(model), method)

        def timed(records, *args, **kwargs):
            clock.advance(1)
            return original(records, *args, **kwargs)

        self.startPatcher(patch.object(type(model), method, timed))
        return clock

    def _cron_context(self, xmlid):
        """The job and the progress record Odoo's cron gives a run (``ir.cron._run_job``)."""
        cron = self.env.ref(xmlid)
        progress = self.env["ir.cron.progress"].sudo().create({"cron_id": cron.id})
        return cron.with_context(ir_cron_progress_id=progress.id), progress


@tagged("post_install", "-at_install")
class TestLedgerUnderLimits(BudgetedClockMixin, CrmPaymentCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Event = cls.env["crm.payment.event"].sudo()

    def _ingest(self, customer_id):
        event = stripe_event("customer.updated", {"id": customer_id, "object": "customer"})
        return self.Event.browse(self.Event._crm_ingest(self.provider, event, json.dumps(event)))

    def test_drain_stops_at_the_budget_and_resumes(self):
        events = self.Event
        for i in range(5):
            events |= self._ingest(f"cus_budget{i}")
        clock = self._one_second_per_call(self.Event, "_crm_process_due")
        cron, progress = self._cron_context("crm_payment_integration.ir_cron_crm_payment_event_process")
        Cron = type(self.env["ir.cron"])
        with (
            patch.object(Cron, "_notify_progress", autospec=True, side_effect=Cron._notify_progress) as spy,
            patch.object(Cron, "_trigger", autospec=True) as trigger,
        ):
            # 2.5 s: after one batch (1 s), less than twice the slowest batch is left.
            budget = TimeBudget(wall_seconds=2.5, clock=clock)
            runner = self.Event.with_context(ir_cron_progress_id=progress.id)
            # The first batch claims 2 (an eighth of 16).
            self.assertEqual(runner._cron_process_events(batch_size=16, budget=budget), 2)
            self.assertEqual(spy.call_args.kwargs, {"done": 2, "remaining": 3})
            self.assertEqual((progress.done, progress.remaining), (2, 3))  # Odoo runs it again at once
            # About no partner of ours: applied as ignored (the ledger says why), not left pending.
            self.assertEqual(sorted(events.mapped("state")), ["ignored"] * 2 + ["pending"] * 3)
            trigger.assert_not_called()
            # Called again at once in the same unit of work, whose budget is spent: nothing is
            # claimed, a new unit of work (trigger and NOTIFY) takes over.
            self.assertEqual(runner._cron_process_events(batch_size=16, budget=budget), 0)
            self.assertEqual(spy.call_args.kwargs, {"done": 0, "remaining": 3})
            self.assertEqual(trigger.call_args.args[0].id, cron.id)
            # The next unit of work applies the rest and says nothing is left.
            budget = TimeBudget(wall_seconds=100, clock=clock)
            self.assertEqual(runner._cron_process_events(batch_size=16, budget=budget), 3)
            self.assertEqual(spy.call_args.kwargs, {"done": 3, "remaining": 0})
        self.assertEqual(set(events.mapped("state")), {"ignored"})
        self.assertEqual(events.mapped("attempts"), [1] * 5)

    def test_event_stored_right_after_a_run_wakes_the_workers(self):
        """The run consumed the trigger of the event it applied; the next event must wake the
        cron workers itself (NOTIFY), not wait for their next poll."""
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_payment_event_process")
        Cron = type(self.env["ir.cron"])
        Trigger = self.env["ir.cron.trigger"].sudo()
        with patch.object(Cron, "_trigger", autospec=True, side_effect=Cron._trigger) as trigger:
            first = self._ingest("cus_latency1")
            self.assertEqual(trigger.call_count, 1)
            self.assertEqual(self.Event._cron_process_events(), 1)
            self.assertEqual(first.state, "ignored")
            # The run has ended; its trigger, due, is still there until Odoo's cron deletes it.
            self.assertTrue(Trigger.search_count([("cron_id", "=", cron.id)]))
            self.env.cr.postcommit.clear()
            second = self._ingest("cus_latency2")
            self.assertEqual(trigger.call_count, 2)
            self.assertEqual(trigger.call_args.args[0], cron)
            notified = [f for f in self.env.cr.postcommit._funcs if getattr(f, "__name__", "") == "_notifydb"]
            self.assertTrue(notified, "the cron workers are woken when this transaction commits")
            # Another event while that one is pending relies on its wake-up: one NOTIFY per
            # burst, and a due trigger for each event.
            before = Trigger.search_count([("cron_id", "=", cron.id)])
            third = self._ingest("cus_latency3")
            self.assertEqual(trigger.call_count, 2)
            self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before + 1)
            self.assertEqual(self.Event._cron_process_events(), 2)
        self.assertEqual((second.state, third.state), ("ignored", "ignored"))


@tagged("post_install", "-at_install")
class TestRunSeesEventsInFlight(TransactionCase):
    """A run that starts while a webhook is storing an event waits for it and applies it
    (committed cursors, as two Odoo workers)."""

    def test_run_waits_for_the_webhook_storing_an_event(self):
        registry = Registry(self.env.cr.dbname)
        provider_id = self.env.ref("payment.payment_provider_stripe").id
        event = stripe_event("customer.updated", {"id": "cus_inflight", "object": "customer"})
        event["id"] = "evt_inflight_" + event["id"][4:]

        def cleanup():
            with registry.cursor() as cr:
                cr.execute("DELETE FROM crm_payment_event WHERE stripe_event_id = %s", [event["id"]])

        self.addCleanup(cleanup)
        applied = []
        with registry.cursor() as webhook_cr:
            env = api.Environment(webhook_cr, api.SUPERUSER_ID, {})
            provider = env["payment.provider"].browse(provider_id)
            env["crm.payment.event"]._crm_ingest(provider, event, json.dumps(event))  # not committed

            def run():
                with registry.cursor() as run_cr:
                    run_env = api.Environment(run_cr, api.SUPERUSER_ID, {})
                    run_cr.execute("SELECT 1")  # the job's transaction began before the event
                    applied.append(run_env["crm.payment.event"]._cron_process_events())

            worker = threading.Thread(target=run)
            worker.start()
            worker.join(1)
            self.assertTrue(worker.is_alive(), "the run waits for the webhook's transaction")
            webhook_cr.commit()
        worker.join(30)
        self.assertEqual(applied, [1])
        with registry.cursor() as cr:
            cr.execute("SELECT state FROM crm_payment_event WHERE stripe_event_id = %s", [event["id"]])
            self.assertEqual(cr.fetchone()[0], "ignored")


@tagged("post_install", "-at_install")
class TestBillingUnderLimits(BudgetedClockMixin, CrmPaymentCommon):
    def test_billing_stops_after_a_batch_and_the_next_run_bills_the_rest(self):
        token = self._crm_save_card()
        product = self.env["product.product"].create({"name": "Plan", "type": "service", "list_price": 10})
        subscriptions = self.env["crm.subscription"].create(
            [
                {
                    "partner_id": self.partner.id,
                    "start_date": date(2027, 3, 1),
                    "payment_token_id": token.id,
                    "line_ids": [(0, 0, {"product_id": product.id, "quantity": 1, "price_unit": 10.0 + i})],
                }
                for i in range(3)
            ]
        )
        subscriptions.action_start()
        Subscription = self.env["crm.subscription"]
        clock = self._one_second_per_call(Subscription, "_bill_batch")
        cron, progress = self._cron_context("crm_payment_integration.ir_cron_crm_subscription_bill")
        runner = Subscription.with_context(ir_cron_progress_id=progress.id)
        day = date(2027, 3, 1)
        Cron = type(self.env["ir.cron"])
        with patch.object(Cron, "_notify_progress", autospec=True, side_effect=Cron._notify_progress) as spy:
            # A tiny budget: the run stops after its first batch.
            budget = TimeBudget(wall_seconds=1.5, clock=clock)
            # The first batch bills 2 (an eighth of 16).
            self.assertEqual(runner._cron_bill(now=day, batch_size=16, budget=budget), 2)
            self.assertEqual(spy.call_args.kwargs, {"done": 2, "remaining": 1})
            self.assertEqual((progress.done, progress.remaining), (2, 1))
            self.assertEqual(len(subscriptions.invoice_ids), 2)
            # The next run bills the rest; a third one finds nothing.
            self.assertEqual(runner._cron_bill(now=day, batch_size=16, budget=TimeBudget(clock=clock)), 1)
            self.assertEqual(spy.call_args.kwargs, {"done": 1, "remaining": 0})
            self.assertEqual(runner._cron_bill(now=day, batch_size=16, budget=TimeBudget(clock=clock)), 0)
        for subscription in subscriptions:
            self.assertEqual(len(subscription.invoice_ids), 1, "billed once")
            self.assertEqual(len(subscription.invoice_ids.transaction_ids), 1, "charged once")
            self.assertTrue(self._crm_reconciled(subscription.invoice_ids))
            self.assertEqual(subscription.next_invoice_date, date(2027, 4, 1))

    def test_reminders_stop_at_the_budget(self):
        """The same helper bounds the other long jobs: what is left is reported to the cron."""
        cron, progress = self._cron_context("crm_payment_integration.ir_cron_crm_subscription_reminders")
        clock = FakeClock()
        records = self.env["res.partner"].search([], limit=5)
        budget = TimeBudget(wall_seconds=1.5, clock=clock)
        seen = []
        for partner in budget_module.iter_batches(records, budget, cron, batch_size=2, commit=False):
            seen.append(partner)
            clock.advance(0.5)
        self.assertEqual(len(seen), 2)
        self.assertEqual((progress.done, progress.remaining), (2, len(records) - 2))


@tagged("post_install", "-at_install")
class TestImportUnderLimits(BudgetedClockMixin, StripeBillingCommon):
    def test_import_button_hands_what_does_not_fit_to_the_cron(self):
        first = self._stripe_subscription()
        second = self._stripe_subscription()
        Subscription = self.env["crm.subscription"]
        clock = self._one_second_per_call(Subscription, "_crm_sync_stripe_subscription")
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_import_stripe_subscriptions")
        Trigger = self.env["ir.cron.trigger"].sudo()
        # The request's budget fits one subscription (1 s) with less than twice that left.
        with patch.object(TimeBudget, "for_run", return_value=TimeBudget(wall_seconds=1.5, clock=clock)):
            action = self.provider.action_crm_import_stripe_subscriptions()
        self.assertEqual(clock.now, 1, "one subscription mirrored by the button")
        self.assertIn("in the background", action["params"]["message"])
        self.assertTrue(Trigger.search_count([("cron_id", "=", cron.id)]), "the import cron goes on at once")
        self.assertEqual(
            self.env["ir.config_parameter"].sudo().get_param(IMPORT_PENDING_PARAM), str(self.provider.id)
        )
        Subscription._cron_import_stripe_subscriptions()
        self.assertTrue(self._mirror(first) and self._mirror(second), "both mirrored")
        self.assertFalse(self.env["ir.config_parameter"].sudo().get_param(IMPORT_PENDING_PARAM))
