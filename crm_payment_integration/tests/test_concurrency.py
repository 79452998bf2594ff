"""Real concurrency on PostgreSQL: several cursors (as several Odoo workers) at once.

These tests commit in their own cursors, so they clean up what they wrote.
"""

import json
import threading
from collections import Counter
from unittest.mock import patch

from odoo import api
from odoo.modules.registry import Registry
from odoo.tests import TransactionCase, tagged

from .common import stripe_event


@tagged("post_install", "-at_install")
class TestLedgerConcurrency(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry_ = Registry(cls.env.cr.dbname)
        cls.provider_id = cls.env.ref("payment.payment_provider_stripe").id

    def _run_in_workers(self, count, func):
        """Run ``func(env)`` in ``count`` threads, each with its own committed cursor."""
        barrier = threading.Barrier(count)
        errors = []

        def work():
            try:
                with self.registry_.cursor() as cr:
                    env = api.Environment(cr, api.SUPERUSER_ID, {})
                    barrier.wait(timeout=10)
                    func(env)
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=work) for __ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertFalse(errors)

    def _cleanup(self, prefix):
        with self.registry_.cursor() as cr:
            cr.execute("DELETE FROM crm_payment_event WHERE stripe_event_id LIKE %s", [prefix + "%"])

    def test_same_event_delivered_concurrently_is_stored_once(self):
        event = stripe_event("customer.updated", {"id": "cus_concurrent", "object": "customer"})
        event["id"] = "evt_conc_store_" + event["id"][4:]
        self.addCleanup(self._cleanup, "evt_conc_store_")

        def ingest(env):
            provider = env["payment.provider"].browse(self.provider_id)
            env["crm.payment.event"]._crm_ingest(provider, event, json.dumps(event))

        self._run_in_workers(10, ingest)
        with self.registry_.cursor() as cr:
            cr.execute("SELECT count(*) FROM crm_payment_event WHERE stripe_event_id = %s", [event["id"]])
            self.assertEqual(cr.fetchone()[0], 1)

    def test_two_workers_apply_each_event_once(self):
        self.addCleanup(self._cleanup, "evt_conc_proc_")
        ids = []
        with self.registry_.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            provider = env["payment.provider"].browse(self.provider_id)
            for i in range(60):
                event = stripe_event("customer.updated", {"id": f"cus_conc{i}", "object": "customer"})
                event["id"] = f"evt_conc_proc_{i:03d}"
                ids.append(env["crm.payment.event"]._crm_ingest(provider, event, json.dumps(event)))
        applied = Counter()
        lock = threading.Lock()
        Event = type(self.env["crm.payment.event"])
        original = Event._crm_handle_customer_updated

        def counting_handler(record):
            with lock:
                applied[record.id] += 1
            threading.Event().wait(0.01)  # hold the claimed rows while the other worker runs
            return original(record)

        def drain(env):
            env["crm.payment.event"]._crm_drain(batch_size=5)

        with patch.object(Event, "_crm_handle_customer_updated", counting_handler):
            self._run_in_workers(2, drain)
        self.assertEqual(sorted(applied), sorted(ids))
        self.assertEqual(set(applied.values()), {1})
        with self.registry_.cursor() as cr:
            cr.execute("SELECT DISTINCT state FROM crm_payment_event WHERE id IN %s", [tuple(ids)])
            # Each processed once; their customers are linked to no partner: ignored.
            self.assertEqual(cr.fetchall(), [("ignored",)])
