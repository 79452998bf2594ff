"""Issue 8, items 5 and 8: a Stripe account shared with other apps, and mirrored Stripe Billing
renewals that need the customer.

Events are signed and posted to the webhook as Stripe sends them, around Stripe's own object
shapes; what localstripe lacks (renewal invoices, Checkout Sessions, invoice payments) is
answered at the HTTP-client boundary.
"""

import os
import time

from odoo.tests import HttpCase, tagged

from . import test_stripe_billing
from .common import StripeHttpMock, stripe_event, stripe_fixture
from .test_stripe_billing import SECRET, StripeBillingCommon

HOSTED_URL = "https://invoice.stripe.com/i/acct_1Nv0FGQ9RKHgCVdK/test_YWNjdF8xTnYwRkdROVJLSGdDVmRLLF9"


@tagged("post_install", "-at_install")
class TestHardeningMirror(StripeBillingCommon, HttpCase):
    # The renewal builders of the Stripe Billing webhook tests (not their tests).
    _post_event = test_stripe_billing.TestStripeBillingWebhooks._post_event
    _renewal = test_stripe_billing.TestStripeBillingWebhooks._renewal
    _routes = test_stripe_billing.TestStripeBillingWebhooks._routes

    def setUp(self):
        super().setUp()
        self.provider.crm_webhook_secret = SECRET
        self.Event = self.env["crm.payment.event"]

    def _counts(self):
        """What an event about someone else's objects must not create."""
        return {
            model: self.env[model].with_context(active_test=False).search_count([])
            for model in (
                "res.partner",
                "crm.stripe.customer",
                "crm.subscription",
                "account.move",
                "account.payment",
                "payment.transaction",
                "payment.token",
            )
        }

    def _stored(self, event):
        return self.Event.search([("stripe_event_id", "=", event["id"])])

    def _deliver(self, http, *events):
        with self._crm_http(http):
            for event in events:
                self._post_event(event)
            self.Event._crm_process_due()
        return [self._stored(event) for event in events]

    def _foreign_renewal_events(self, remote, renewal, renewed, intent):
        return (
            stripe_event("invoice.paid", renewal),
            stripe_event("invoice.payment_succeeded", renewal),
            stripe_event("customer.subscription.updated", renewed),
            # Stripe's own event of the invoice's payment (an hour old: not awaited as Odoo's).
            stripe_event("payment_intent.succeeded", intent, created=int(time.time()) - 3600),
        )

    # === ITEM 5: the Stripe Billing setting === #

    def test_new_provider_mirrors_nothing_and_the_setting_is_on_the_form(self):
        self.assertEqual(
            self.env["payment.provider"].default_get(["crm_billing_mirror"]), {"crm_billing_mirror": "none"}
        )
        arch = self.env["payment.provider"].get_view(self.env.ref("payment.payment_provider_form").id)["arch"]
        self.assertIn('name="crm_billing_mirror"', arch)

    def test_foreign_invoice_paid_is_ignored_when_mirroring_linked_customers(self):
        self.provider.crm_billing_mirror = "linked"
        remote = self._stripe_subscription()  # made by another app: customer unknown to Odoo
        renewal, renewed, intent = self._renewal(remote, status="paid")
        before = self._counts()
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        paid, succeeded, updated, intent_paid = self._deliver(
            http, *self._foreign_renewal_events(remote, renewal, renewed, intent)
        )
        for event in (paid, succeeded, updated):
            self.assertEqual(event.state, "ignored", event.result)
            self.assertIn("never imported", event.result)
            self.assertIn(remote["customer"], event.result)
        self.assertEqual(intent_paid.state, "ignored", intent_paid.last_error)
        self.assertIn("left to Stripe Billing", intent_paid.result)
        self.assertEqual(self._counts(), before, "no partner, subscription, invoice nor payment")
        self.assertFalse(self._mirror(remote))
        # Decided from the event: Stripe was not even asked about the invoice or subscription.
        paths = [request["path"] for request in http.requests]
        self.assertFalse([p for p in paths if p.startswith(("/v1/invoices", "/v1/subscriptions"))], paths)

    def test_foreign_invoice_paid_is_ignored_when_mirroring_nothing(self):
        self.assertEqual(self.provider.crm_billing_mirror, "none")
        # Even a customer linked to a partner: no subscription is mirrored.
        self._crm_attach_card(self.customer_id)
        remote = self._stripe_subscription(customer_id=self.customer_id)
        renewal, renewed, intent = self._renewal(remote, status="paid")
        before = self._counts()
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        events = self._foreign_renewal_events(remote, renewal, renewed, intent)
        stored = self._deliver(http, *events)
        self.assertEqual([event.state for event in stored], ["ignored"] * 4, [e.result for e in stored])
        self.assertIn("does not mirror Stripe Billing", stored[0].result)
        self.assertEqual(self._counts(), before)

        # Mirroring linked customers: the same events, applied again, mirror it.
        self.provider.crm_billing_mirror = "linked"
        with self._crm_http(http):
            self.Event.browse([event.id for event in stored]).action_crm_reprocess()
        self.assertEqual(stored[0].state, "done", stored[0].result)
        mirror = self._mirror(remote)
        self.assertEqual((mirror.partner_id, mirror.state), (self.partner, "active"))
        invoice = mirror.invoice_ids
        self.assertEqual(invoice.crm_stripe_invoice_id, renewal["id"])
        self.assertTrue(self._crm_reconciled(invoice))

    def test_foreign_invoice_paid_is_mirrored_when_mirroring_all(self):
        self.provider.crm_billing_mirror = "all"
        remote = self._stripe_subscription(customer_id=self._stripe_customer(name="Shared Account Ltd"))
        renewal, renewed, intent = self._renewal(remote, status="paid")
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        paid, succeeded, updated, intent_paid = self._deliver(
            http, *self._foreign_renewal_events(remote, renewal, renewed, intent)
        )
        self.assertEqual((paid.state, succeeded.state, updated.state), ("done", "done", "done"), paid.result)
        mirror = self._mirror(remote)
        self.assertEqual((mirror.managed_by, mirror.state), ("stripe", "active"))
        self.assertEqual(mirror.partner_id.name, "Shared Account Ltd")
        invoice = mirror.invoice_ids
        self.assertEqual((invoice.crm_stripe_invoice_id, invoice.amount_total), (renewal["id"], 30.0))
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(invoice.transaction_ids.provider_reference, intent["id"])
        # Its PaymentIntent's own event finds the payment already recorded.
        self.assertEqual(intent_paid.state, "done", intent_paid.result)
        self.assertEqual(
            self.env["payment.transaction"].search_count([("provider_reference", "=", intent["id"])]), 1
        )

    def test_import_turns_the_mirror_on_and_an_upgrade_keeps_it(self):
        remote = self._stripe_subscription()
        action = self.provider.action_crm_import_stripe_subscriptions()
        self.assertEqual(self.provider.crm_billing_mirror, "linked")
        self.assertIn("now on for imported or linked customers", action["params"]["message"])
        self.assertTrue(self._mirror(remote))
        self.provider.crm_billing_mirror = "all"
        action = self.provider.action_crm_import_stripe_subscriptions()
        self.assertEqual(self.provider.crm_billing_mirror, "all", "an explicit choice is kept")
        self.assertNotIn("now on", action["params"]["message"])
        # An installation upgrading: providers with mirrors keep following them, others not.
        other = self._crm_make_provider(self.env["res.company"].create({"name": "No Billing Co"}))
        (self.provider | other).write({"crm_billing_mirror": "none"})
        self.env["payment.provider"]._crm_init_billing_mirror()
        self.assertEqual((self.provider.crm_billing_mirror, other.crm_billing_mirror), ("linked", "none"))

    def test_events_that_matched_nothing_are_ignored_with_the_reason(self):
        self.provider.crm_billing_mirror = "all"
        other_app = self.gateway.client.v1.customers.create(params={"name": "Other app's customer"})
        pm = stripe_fixture("payment_method")
        pm.update(id="pm_" + os.urandom(8).hex(), customer=other_app.id)
        intent = stripe_fixture("payment_intent")
        intent.update(
            id="pi_other_" + os.urandom(6).hex(),
            status="succeeded",
            amount=2500,
            amount_received=2500,
            currency="usd",
            customer=other_app.id,
            description=None,
            metadata={},
            invoice=None,
        )
        session = stripe_fixture("checkout_session")
        session.update(id="cs_other_" + os.urandom(6).hex(), metadata={}, client_reference_id=None)
        charge = stripe_fixture("charge")
        charge.update(id="ch_other_" + os.urandom(6).hex(), payment_intent=None)
        one_off = stripe_fixture("invoice")
        one_off.update(id="in_oneoff_" + os.urandom(6).hex(), customer=other_app.id, status="paid")
        one_off.pop("subscription", None)
        one_off["parent"] = None
        http = StripeHttpMock(
            {
                ("get", f"/v1/payment_methods/{pm['id']}"): (200, pm),
                ("get", f"/v1/checkout/sessions/{session['id']}"): (200, session),
                ("get", "/v1/invoice_payments"): (
                    200,
                    {"object": "list", "data": [], "has_more": False, "url": "/v1/invoice_payments"},
                ),
            },
            passthrough=True,
        )
        before = self._counts()
        expected = {
            "customer.updated": (
                stripe_event("customer.updated", other_app.to_dict()),
                "No partner is linked to this customer.",
            ),
            "customer.deleted": (
                stripe_event("customer.deleted", other_app.to_dict()),
                "No partner is linked to this customer.",
            ),
            "payment_method.attached": (
                stripe_event("payment_method.attached", pm),
                "No partner is linked to this customer.",
            ),
            "payment_intent.succeeded": (
                stripe_event("payment_intent.succeeded", intent),
                "No partner is linked to this payment's customer.",
            ),
            "payment_intent.payment_failed": (
                stripe_event("payment_intent.payment_failed", dict(intent, status="canceled")),
                "No transaction for this PaymentIntent.",
            ),
            "checkout.session.completed": (
                stripe_event("checkout.session.completed", session),
                "No transaction for this Checkout Session.",
            ),
            "charge.refunded": (
                stripe_event("charge.refunded", charge),
                "The charge has no PaymentIntent; nothing to refund in Odoo.",
            ),
            "invoice.paid": (
                stripe_event("invoice.paid", one_off),
                "Not a subscription's invoice: not mirrored.",
            ),
        }
        stored = self._deliver(http, *(event for event, __ in expected.values()))
        for (event_type, (__, reason)), event in zip(expected.items(), stored, strict=True):
            self.assertEqual((event_type, event.state, event.result), (event_type, "ignored", reason))
        self.assertEqual(self._counts(), before)

    # === ITEM 8: a mirrored renewal that needs the customer === #

    def _past_due_renewal(self, remote, attempt=1):
        renewal, renewed, intent = self._renewal(remote, status="open", subscription_status="past_due")
        renewal.update(attempt_count=attempt, attempted=True, hosted_invoice_url=HOSTED_URL)
        intent.update(
            status="requires_action",
            next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {}},
            last_payment_error=None,
        )
        return renewal, renewed, intent

    def _mails_to(self, move, partner):
        return (
            self.env["mail.mail"]
            .search([("model", "=", "account.move"), ("res_id", "=", move.id)])
            .filtered(lambda mail: partner in mail.recipient_ids)
        )

    def test_renewal_needing_authentication_tells_the_customer_and_salesperson_once(self):
        remote = self._stripe_subscription()
        self._import()
        mirror = self._mirror(remote)
        mirror.user_id = self.salesman
        renewal, renewed, intent = self._past_due_renewal(remote)
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        action_required = stripe_event("invoice.payment_action_required", renewal)
        stored = self._deliver(
            http,
            action_required,
            action_required,  # Stripe delivers it again
            stripe_event("invoice.payment_action_required", renewal),  # and once more, as a new event
            stripe_event("invoice.payment_failed", renewal),  # the same attempt failed
            stripe_event("customer.subscription.updated", renewed),  # past due
        )
        self.assertEqual([event.state for event in stored], ["done"] * 5, [e.last_error for e in stored])
        self.assertIn("Customer asked to complete the payment", stored[0].result)
        self.assertEqual(mirror.state, "past_due")
        invoice = mirror.invoice_ids.filtered(lambda m: m.crm_stripe_invoice_id == renewal["id"])
        self.assertEqual(
            (invoice.payment_state, invoice.crm_stripe_hosted_invoice_url), ("not_paid", HOSTED_URL)
        )
        mail = self._mails_to(invoice, mirror.partner_id)
        self.assertEqual(len(mail), 1, "one email to the customer")
        self.assertIn(HOSTED_URL, mail.body_html)
        self.assertIn("Your bank asks you to confirm the payment", mail.body_html)
        self.assertIn(invoice.name, mail.subject)
        activity = mirror.activity_ids
        self.assertEqual(len(activity), 1, "one activity")
        self.assertEqual(activity.user_id, self.salesman)
        self.assertIn(invoice.name, activity.summary)

        # Stripe's next automatic retry fails too: the customer hears of it, the salesperson
        # already has the activity.
        renewal["attempt_count"] = 2
        failed_again = self._deliver(http, stripe_event("invoice.payment_failed", renewal))[0]
        self.assertEqual(failed_again.state, "done", failed_again.last_error)
        mails = self._mails_to(invoice, mirror.partner_id)
        self.assertEqual(len(mails), 2)
        self.assertIn("We could not collect the payment", (mails - mail).body_html)
        self.assertEqual(len(mirror.activity_ids), 1)

        # Paid at last on Stripe's page: a late failure event of the first attempt tells no one.
        renewal.update(status="paid", amount_paid=3000)
        intent.update(status="succeeded", amount_received=3000)
        self._invoice_payments[0].update(status="paid", amount_paid=3000)
        renewed["status"] = "active"
        paid, late = self._deliver(
            http, stripe_event("invoice.paid", renewal), stripe_event("invoice.payment_failed", renewal)
        )
        self.assertEqual((paid.state, late.state), ("done", "done"), paid.last_error)
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(len(self._mails_to(invoice, mirror.partner_id)), 2)
        self.assertEqual(mirror.state, "active")

    def test_subscription_turned_past_due_tells_the_customer_once(self):
        remote = self._stripe_subscription()
        self._import()
        mirror = self._mirror(remote)
        renewal, renewed, intent = self._past_due_renewal(remote)
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        updated = stripe_event("customer.subscription.updated", renewed)
        first, again = self._deliver(http, updated, stripe_event("customer.subscription.updated", renewed))
        self.assertEqual((first.state, again.state), ("done", "done"), first.last_error)
        self.assertEqual(mirror.state, "past_due")
        invoice = mirror.invoice_ids.filtered(lambda m: m.crm_stripe_invoice_id == renewal["id"])
        self.assertEqual(invoice.state, "posted", "the open renewal invoice is mirrored")
        mail = self._mails_to(invoice, mirror.partner_id)
        self.assertEqual(len(mail), 1)
        self.assertIn(HOSTED_URL, mail.body_html)
        self.assertIn("We have not received the payment", mail.body_html)
        self.assertEqual(len(mirror.activity_ids), 1)
        self.assertEqual(mirror.activity_ids.user_id, mirror.user_id)

    def test_failed_renewal_of_a_subscription_not_mirrored_tells_no_one(self):
        self.provider.crm_billing_mirror = "linked"
        remote = self._stripe_subscription()
        renewal, renewed, intent = self._past_due_renewal(remote)
        before = self._counts()
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        stored = self._deliver(
            http,
            stripe_event("invoice.payment_action_required", renewal),
            stripe_event("invoice.payment_failed", renewal),
            stripe_event("customer.subscription.updated", renewed),
        )
        self.assertEqual([event.state for event in stored], ["ignored"] * 3)
        self.assertEqual(self._counts(), before)
        self.assertFalse(self.env["mail.mail"].search([("body_html", "ilike", HOSTED_URL)]))
