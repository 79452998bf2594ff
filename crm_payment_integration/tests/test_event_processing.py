import json
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import tagged

from ..const import EVENT_RETRY_DELAYS
from .common import CrmStripeCommon, stripe_event


@tagged("post_install", "-at_install")
class TestEventProcessing(CrmStripeCommon):
    """The ledger applies each stored event once, in the background, whatever the order."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Event = cls.env["crm.payment.event"]

    def _ingest(self, event):
        event_id = self.Event.sudo()._crm_ingest(self.provider, event, json.dumps(event))
        return self.Event.browse(event_id)

    def _process(self, now=None):
        return self.Event._crm_process_due(now=now)

    def test_customer_updated_applies_stripe_current_state(self):
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        stale = self._crm_customer(customer_id)
        self.gateway.update_customer(customer_id, {"email": "new@azure.example.com"})
        fresh = self._crm_customer(customer_id)
        newer = self._ingest(stripe_event("customer.updated", fresh, created=200))
        # The older event arrives last, with the old email in its payload.
        older = self._ingest(stripe_event("customer.updated", stale, created=100))
        self.assertEqual(self._process(), 2)
        self.assertEqual((newer.state, older.state), ("done", "done"))
        self.assertEqual(self.partner.email, "new@azure.example.com")

    def test_duplicate_event_stored_once(self):
        event = stripe_event("customer.updated", {"id": "cus_unknown", "object": "customer"})
        first = self._ingest(event)
        self.assertTrue(first)
        for __ in range(9):
            self.assertFalse(self._ingest(event))
        self.assertEqual(self.Event.search_count([("stripe_event_id", "=", event["id"])]), 1)

    def test_each_stored_event_wakes_the_cron(self):
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_payment_event_process")
        Trigger = self.env["ir.cron.trigger"].sudo()
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        event = stripe_event("customer.updated", {"id": "cus_x", "object": "customer"})
        self._ingest(event)
        self._ingest(stripe_event("customer.updated", {"id": "cus_y", "object": "customer"}))
        self._ingest(event)  # duplicate
        self._ingest(stripe_event("payout.paid", {"id": "po_1", "object": "payout"}))  # ignored
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]) - before, 2)

    def test_reprocess_several_from_the_list(self):
        events = self.Event
        for i in range(3):
            events |= self._ingest(
                stripe_event("customer.updated", {"id": f"cus_r{i}", "object": "customer"})
            )
        events.with_user(self.accountant).action_crm_reprocess()
        # Customers linked to no partner: applied to nothing.
        self.assertEqual(set(events.mapped("state")), {"ignored"})
        self.assertEqual(events.mapped("attempts"), [1, 1, 1])

    def test_unknown_type_is_ignored(self):
        event = self._ingest(stripe_event("payout.paid", {"id": "po_1", "object": "payout"}))
        self.assertEqual(event.state, "ignored")
        self.assertEqual(self._process(), 0)

    def test_customer_deleted_unlinks_once_gone(self):
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        pm_id = self._crm_attach_card(customer_id)
        self.partner.action_crm_stripe_sync()
        token = self.partner.payment_token_ids
        self.assertEqual(token.stripe_payment_method, pm_id)
        customer = self._crm_customer(customer_id)
        # A deletion event while Stripe still has the customer (out of order): nothing happens.
        premature = self._ingest(stripe_event("customer.deleted", customer))
        self._process()
        self.assertEqual(premature.state, "done")
        self.assertEqual(self.partner.stripe_customer_id, customer_id)
        self.gateway.client.v1.customers.delete(customer_id)
        self._ingest(stripe_event("customer.deleted", customer))
        self._process()
        self.assertFalse(self.partner.stripe_customer_id)
        self.assertFalse(token.active)
        # An older update arriving after the deletion does not crash nor relink.
        late = self._ingest(stripe_event("customer.updated", customer, created=1))
        self._process()
        self.assertEqual((late.state, late.result), ("ignored", "No partner is linked to this customer."))
        self.assertFalse(self.partner.stripe_customer_id)

    def test_payment_method_events(self):
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        pm_id = self._crm_attach_card(customer_id, default=False)
        pm = self.gateway.retrieve_payment_method(pm_id)
        attached = self._ingest(stripe_event("payment_method.attached", pm))
        self._process()
        self.assertEqual(attached.state, "done", attached.last_error)
        token = self.partner.payment_token_ids
        self.assertEqual(token.stripe_payment_method, pm_id)
        self.assertFalse(token.crm_is_default)
        self.gateway.client.v1.payment_methods.detach(pm_id)
        self._ingest(stripe_event("payment_method.detached", dict(pm, customer=None)))
        self._process()
        self.assertFalse(token.active)
        # A late "attached" for a method Stripe says is detached does not bring it back.
        self._ingest(stripe_event("payment_method.attached", pm))
        self._process()
        self.assertFalse(token.active)
        # Attached again in Stripe: the same token comes back.
        self.gateway.client.v1.payment_methods.attach(pm_id, params={"customer": customer_id})
        self._ingest(stripe_event("payment_method.attached", pm))
        self._process()
        self.assertTrue(token.active)

    def test_failure_is_retried_with_growing_delays_then_failed_with_activity(self):
        self.partner.action_crm_stripe_sync()
        event = self._ingest(
            stripe_event("customer.updated", {"id": self.partner.stripe_customer_id, "object": "customer"})
        )
        self.provider.crm_api_base = "http://127.0.0.1:9"  # Stripe unreachable
        now = fields.Datetime.now()
        for attempt, delay in enumerate(EVENT_RETRY_DELAYS, start=1):
            with patch("time.sleep"):
                self.assertEqual(self._process(now=now), 1)
            self.assertEqual(event.state, "pending")
            self.assertEqual(event.attempts, attempt)
            self.assertIn("could not be reached", event.last_error)
            self.assertEqual(event.next_attempt_at, now + timedelta(minutes=delay))
            self.assertEqual(self._process(now=now), 0, "not due before its delay")
            now = event.next_attempt_at
        with patch("time.sleep"):
            self._process(now=now)
        self.assertEqual(event.state, "failed")
        activity = event.activity_ids
        self.assertEqual(len(activity), 1)
        self.assertEqual(activity.user_id, self.env.ref("base.user_admin"))
        # Once fixed, Reprocess applies it.
        self.provider.crm_api_base = self.localstripe_url
        event.with_user(self.accountant).action_crm_reprocess()
        self.assertEqual(event.state, "done", event.last_error)

    def test_bug_in_handler_keeps_event_for_retry(self):
        event = self._ingest(stripe_event("customer.updated", {"id": "cus_x", "object": "customer"}))
        Event = type(self.Event)
        with patch.object(Event, "_crm_handle_customer_updated", side_effect=RuntimeError("boom")):
            self._process()
        self.assertEqual((event.state, event.attempts), ("pending", 1))
        self.assertIn("boom", event.last_error)

    def test_cron_drains_the_ledger(self):
        events = self.Event
        for i in range(5):
            events |= self._ingest(
                stripe_event("customer.updated", {"id": f"cus_none{i}", "object": "customer"})
            )
        self.assertEqual(self.Event._cron_process_events(), 5)
        self.assertEqual(set(events.mapped("state")), {"ignored"}, "customers linked to no partner")

    def test_access(self):
        event = self._ingest(stripe_event("customer.updated", {"id": "cus_x", "object": "customer"}))
        # The ledger is not an own-documents salesperson's (see test_access for the others).
        with self.assertRaises(AccessError):
            event.with_user(self.salesman).read(["state"])
        with self.assertRaises(AccessError):
            event.with_user(self.salesman).action_crm_reprocess()
        with self.assertRaises(AccessError):
            self.Event.with_user(self.portal_user).search([])
        with self.assertRaises(AccessError):
            event.with_user(self.portal_user).read(["payload"])

    def test_multi_company_events(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        other_provider = self._crm_make_provider(other_company)
        event = stripe_event("customer.updated", {"id": "cus_x", "object": "customer"})
        mine = self._ingest(event)
        theirs = self.Event.browse(self.Event.sudo()._crm_ingest(other_provider, event, json.dumps(event)))
        self.assertTrue(theirs, "the same event id in another account is another event")
        self.assertEqual(theirs.company_id, other_company)
        visible = self.Event.with_user(self.accountant).search([("stripe_event_id", "=", event["id"])])
        self.assertEqual(visible, mine)
