import json
import os
import time
from datetime import datetime, timezone

from dateutil.relativedelta import relativedelta

from odoo.exceptions import UserError
from odoo.tests import HttpCase, tagged

from .common import (
    CrmPaymentCommon,
    StripeHttpMock,
    post_signed_event,
    stripe_event,
    stripe_fixture,
)

SECRET = "whsec_billing_secret"


def _day(timestamp):
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).date()


class StripeBillingCommon(CrmPaymentCommon):
    """A business that already bills in Stripe: customers, plans and subscriptions made in
    Stripe (localstripe), none of them known to Odoo yet."""

    def _stripe_customer(self, name="Stripe First Ltd", email=None, card="4242424242424242"):
        email = email or f"billing-{os.urandom(4).hex()}@example.com"
        customer = self.gateway.client.v1.customers.create(params={"name": name, "email": email})
        self._crm_attach_card(customer.id, number=card)
        return customer.id

    def _stripe_subscription(
        self, customer_id=None, amount=1500, quantity=2, currency="eur", interval="month"
    ):
        customer_id = customer_id or self._stripe_customer()
        plan = self.gateway.client.v1.plans.create(
            params={
                "amount": amount,
                "currency": currency,
                "interval": interval,
                "product": {"name": f"Pro plan {os.urandom(3).hex()}"},
            }
        )
        subscription = self.gateway.client.v1.subscriptions.create(
            params={"customer": customer_id, "items": [{"plan": plan.id, "quantity": quantity}]}
        )
        return subscription.to_dict()

    def _mirror(self, remote):
        return self.env["crm.subscription"].search(
            [("stripe_provider_id", "=", self.provider.id), ("stripe_subscription_id", "=", remote["id"])]
        )

    def _import(self):
        return self.env["crm.subscription"]._crm_import_stripe_subscriptions(self.provider.sudo())


@tagged("post_install", "-at_install")
class TestStripeBillingImport(StripeBillingCommon):
    def test_import_subscription_with_invoice_and_payment(self):
        remote = self._stripe_subscription()
        self.assertEqual(remote["status"], "active")
        self._import()
        mirror = self._mirror(remote)
        self.assertEqual(len(mirror), 1)
        self.assertEqual((mirror.managed_by, mirror.state), ("stripe", "active"))
        self.assertEqual(mirror.partner_id.name, "Stripe First Ltd")
        self.assertEqual(mirror.partner_id.email, self.gateway.retrieve_customer(remote["customer"])["email"])
        self.assertEqual(
            mirror.partner_id.payment_token_ids.payment_details, "4242", "the customer's card came along"
        )
        self.assertEqual(mirror.currency_id.name, "EUR")
        self.assertEqual((mirror.interval_number, mirror.interval_unit), (1, "month"))
        self.assertTrue(mirror.line_ids.product_id.name.startswith("Pro plan"))
        self.assertEqual((mirror.line_ids.quantity, mirror.line_ids.price_unit), (2, 15.0))
        self.assertEqual(mirror.amount_untaxed, 30.0)
        self.assertEqual(mirror.next_invoice_date, _day(remote["current_period_end"]))
        self.assertGreater(mirror.mrr, 0.0)
        invoice = mirror.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertEqual(
            (invoice.state, invoice.amount_total, invoice.currency_id.name), ("posted", 30.0, "EUR")
        )
        self.assertEqual(invoice.crm_stripe_invoice_id, remote["latest_invoice"])
        self.assertTrue(self._crm_reconciled(invoice), "paid in Stripe, paid in Odoo")
        tx = invoice.transaction_ids
        self.assertEqual((tx.crm_flow, tx.state, tx.amount), ("stripe", "done", 30.0))
        self.assertTrue(tx.provider_reference.startswith("pi_"))
        self.assertFalse(
            self.env["mail.mail"].search([("model", "=", "payment.transaction"), ("res_id", "=", tx.id)]),
            "Stripe Billing sends its own receipt: no second one from Odoo",
        )

        # Importing again, and Stripe's own payment_intent.succeeded, change nothing.
        self._import()
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        event = stripe_event("payment_intent.succeeded", intent)
        self.env["crm.payment.event"]._crm_ingest(self.provider, event, json.dumps(event))
        self.env["crm.payment.event"]._crm_process_due()
        self.assertEqual(len(self._mirror(remote)), 1)
        self.assertEqual(len(mirror.invoice_ids), 1)
        self.assertEqual(
            self.env["payment.transaction"].search_count(
                [("provider_reference", "=", tx.provider_reference)]
            ),
            1,
        )
        self.assertEqual(len(invoice.line_ids.matched_credit_ids | invoice.line_ids.matched_debit_ids), 1)

    def test_import_links_an_existing_partner_by_email(self):
        existing = self.env["res.partner"].create(
            {
                "name": "Azure Billing",
                "email": "Azure-Billing@example.com",
                "is_company": True,
                "city": "Fremont",
            }
        )
        customer_id = self._stripe_customer(name="Azure (Stripe)", email="azure-billing@example.com")
        remote = self._stripe_subscription(customer_id=customer_id)
        self._import()
        mirror = self._mirror(remote)
        self.assertEqual(mirror.partner_id, existing)
        self.assertEqual(
            (existing.name, existing.city), ("Azure Billing", "Fremont"), "Odoo's details are kept"
        )
        self.assertEqual(existing.payment_token_ids.payment_details, "4242")
        # Choosing the default card (Stripe Billing charges the customer's default) leaves the
        # mirror alone.
        existing._crm_set_default_token(existing.payment_token_ids)
        self.assertFalse(mirror.payment_token_id)
        # A contact's address does not hand a company's account to a stranger; nor does a
        # look-alike address (no wildcard matching).
        self.env["res.partner"].create({"name": "Jo", "email": "jo@example.com", "parent_id": existing.id})
        self.env["res.partner"].create({"name": "Look-alike", "email": "a_b@example.com", "is_company": True})
        remote = self._stripe_subscription(
            customer_id=self._stripe_customer(name="Jo Stripe", email="jo@example.com")
        )
        other = self._stripe_subscription(
            customer_id=self._stripe_customer(name="AXB", email="axb@example.com")
        )
        self._import()
        self.assertEqual(self._mirror(remote).partner_id.name, "Jo Stripe")
        self.assertEqual(self._mirror(other).partner_id.name, "AXB")

    def test_mirror_is_read_only_and_cancels_in_stripe(self):
        remote = self._stripe_subscription()
        self._import()
        mirror = self._mirror(remote)
        with self.assertRaisesRegex(UserError, "billed by Stripe Billing"):
            mirror.line_ids.quantity = 5
        with self.assertRaisesRegex(UserError, "billed by Stripe Billing"):
            mirror.action_pause()
        as_accountant = mirror.with_user(self.accountant)
        with self.assertRaisesRegex(UserError, "billed by Stripe Billing"):
            # A client sending the sync's context key is not the sync.
            as_accountant.with_context(crm_stripe_sync=True).write({"next_invoice_date": False})
        with self.assertRaisesRegex(UserError, "cannot be changed"):
            as_accountant.write({"managed_by": "odoo"})
        with self.assertRaisesRegex(UserError, "come from Stripe"):
            self.env["crm.subscription"].with_user(self.accountant).create(
                {
                    "partner_id": self.partner.id,
                    "managed_by": "stripe",
                    "stripe_subscription_id": "sub_forged",
                }
            )
        as_accountant.user_id = self.salesman  # who follows it up stays editable
        # The Odoo billing run leaves it to Stripe.
        self.assertEqual(
            self.env["crm.subscription"]._cron_bill(now=mirror.next_invoice_date + relativedelta(days=1)), 0
        )
        self.assertEqual(len(mirror.invoice_ids), 1)
        mirror.action_cancel_at_period_end("thinking about it")
        self.assertTrue(self.gateway.retrieve_subscription(remote["id"])["cancel_at_period_end"])
        self.assertEqual(mirror.end_date, mirror.next_invoice_date - relativedelta(days=1))
        mirror.action_reactivate()
        self.assertFalse(self.gateway.retrieve_subscription(remote["id"])["cancel_at_period_end"])
        self.assertFalse(mirror.end_date)
        mirror.action_cancel("moving to another tool")
        self.assertEqual(self.gateway.retrieve_subscription(remote["id"])["status"], "canceled")
        self.assertEqual(mirror.state, "cancelled")
        self.assertFalse(mirror.next_invoice_date)
        self.assertIn("moving to another tool", "".join(mirror.message_ids.mapped("body")))
        with self.assertRaisesRegex(UserError, "cannot reactivate"):
            mirror.action_reactivate()

    def test_declined_first_invoice_stays_open(self):
        # 4000000000000341 attaches but declines every charge: Stripe's invoice stays open.
        customer_id = self._stripe_customer(card="4000000000000341")
        remote = self._stripe_subscription(customer_id=customer_id)
        self.assertEqual(remote["status"], "incomplete")
        self._import()
        mirror = self._mirror(remote)
        self.assertEqual(mirror.state, "draft")
        invoice = mirror.invoice_ids
        self.assertEqual((invoice.state, invoice.payment_state), ("posted", "not_paid"))
        self.assertFalse(invoice.transaction_ids)
        # Stripe collects it: no second way to pay it from Odoo.
        self.assertFalse(invoice._has_to_be_paid())
        with self.assertRaisesRegex(UserError, "Stripe collects it"):
            invoice.with_user(self.accountant).action_crm_charge_saved_method()
        with self.assertRaisesRegex(UserError, "Stripe collects it"):
            invoice._crm_payment_link_tx()
        # A card saved in Odoo does not make Odoo retry what Stripe retries.
        self.env["crm.subscription"]._crm_on_new_payment_method(mirror.partner_id)
        self.assertFalse(invoice.transaction_ids)


@tagged("post_install", "-at_install")
class TestStripeBillingWebhooks(StripeBillingCommon, HttpCase):
    """Stripe Billing kept current by webhooks: localstripe's own, and Stripe-shaped renewals
    signed and posted by the test (localstripe does not renew subscriptions)."""

    def _post_event(self, event):
        post_signed_event(self, self.provider, event, SECRET)

    def _wait_for_localstripe(self, subscription_id, event_types):
        """Wait for localstripe's webhooks, reading only under the test lock the server threads
        take (they share this test's cursor)."""
        Event = self.env["crm.payment.event"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with self.registry.test_lock:
                self.env.invalidate_all()
                events = Event.search([("event_type", "in", event_types)])
                if set(event_types) <= set(events.mapped("event_type")) and subscription_id in events.mapped(
                    "object_id"
                ):
                    return events
        self.fail(f"localstripe did not deliver {event_types}")

    def test_subscription_created_in_stripe_arrives_by_webhook_then_renews(self):
        self.provider.crm_billing_mirror = "all"  # a customer Odoo does not know yet
        self._crm_listen_to_localstripe()
        remote = self._stripe_subscription()
        self._wait_for_localstripe(
            remote["id"], ["customer.subscription.created", "invoice.payment_succeeded"]
        )
        with self.registry.test_lock:
            self.env["crm.payment.event"]._crm_process_due()
            mirror = self._mirror(remote)
            self.assertEqual((mirror.managed_by, mirror.state), ("stripe", "active"))
            first = mirror.invoice_ids
            self.assertEqual(len(first), 1)
            self.assertTrue(self._crm_reconciled(first))
            failed = self.env["crm.payment.event"].search([("state", "=", "failed")])
            self.assertFalse(failed, failed.mapped("last_error"))

        # The renewal, as Stripe (API 2025-03-31 and later) sends it.
        self.provider.crm_webhook_secret = SECRET
        renewal, renewed, intent = self._renewal(remote, status="paid")
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        with self._crm_http(http):
            # Its PaymentIntent's event may come first (here late, so that it is not waited for);
            # the intent no longer names its invoice: the invoice payments tell.
            paid_intent = stripe_event("payment_intent.succeeded", intent, created=int(time.time()) - 3600)
            self._post_event(paid_intent)
            self.env["crm.payment.event"]._crm_process_due()
            stored = self.env["crm.payment.event"].search([("stripe_event_id", "=", paid_intent["id"])])
            self.assertIn("Stripe Billing", stored.result)
            self.assertFalse(
                self.env["payment.transaction"].search([("provider_reference", "=", intent["id"])])
            )
            event = stripe_event("invoice.paid", renewal)
            self._post_event(event)
            self._post_event(event)  # Stripe delivers it again
            self._post_event(stripe_event("invoice.payment_succeeded", renewal))
            self._post_event(stripe_event("customer.subscription.updated", renewed))
            self.env["crm.payment.event"]._crm_process_due()
        invoices = mirror.invoice_ids.sorted("id")
        self.assertEqual(len(invoices), 2)
        second = invoices[1]
        self.assertEqual(second.crm_stripe_invoice_id, renewal["id"])
        self.assertEqual(second.crm_period_start, _day(renewal["lines"]["data"][0]["period"]["start"]))
        self.assertEqual(
            second.crm_period_end, _day(renewal["lines"]["data"][0]["period"]["end"]) - relativedelta(days=1)
        )
        self.assertEqual(second.amount_total, 30.0)
        self.assertTrue(self._crm_reconciled(second))
        self.assertEqual(second.transaction_ids.provider_reference, intent["id"])
        self.assertEqual(
            self.env["payment.transaction"].search_count([("provider_reference", "=", intent["id"])]), 1
        )
        self.assertEqual(mirror.next_invoice_date, _day(renewed["items"]["data"][0]["current_period_end"]))
        self.assertEqual(mirror.state, "active")

    def test_failed_renewal_then_voided_and_cancelled(self):
        self.provider.crm_webhook_secret = SECRET
        remote = self._stripe_subscription()
        self._import()
        mirror = self._mirror(remote)
        renewal, renewed, intent = self._renewal(remote, status="open", subscription_status="past_due")
        http = StripeHttpMock(self._routes(renewal, renewed, intent), passthrough=True)
        with self._crm_http(http):
            self._post_event(stripe_event("invoice.payment_failed", renewal))
            self.env["crm.payment.event"]._crm_process_due()
            self.assertEqual(mirror.state, "past_due")
            unpaid = mirror.invoice_ids.filtered(lambda m: m.crm_stripe_invoice_id == renewal["id"])
            self.assertEqual((unpaid.state, unpaid.payment_state), ("posted", "not_paid"))
            self.assertEqual(mirror.mrr > 0, True, "past due still counts")

            renewal["status"] = "void"
            renewed.update(
                {"status": "canceled", "ended_at": renewed["items"]["data"][0]["current_period_start"]}
            )
            self._post_event(stripe_event("invoice.voided", renewal))
            self._post_event(stripe_event("customer.subscription.deleted", renewed))
            self.env["crm.payment.event"]._crm_process_due()
        self.assertEqual(unpaid.state, "cancel")
        self.assertEqual(mirror.state, "cancelled")
        self.assertEqual(mirror.mrr, 0.0)
        self.assertEqual(mirror.end_date, _day(renewed["ended_at"]) - relativedelta(days=1))

    def _renewal(self, remote, status, subscription_status="active"):
        """The next period's invoice, its payment and the subscription, in Stripe's current shape."""
        period_start = remote["current_period_end"]
        period_end = int(
            (datetime.fromtimestamp(period_start, tz=timezone.utc) + relativedelta(months=1)).timestamp()
        )
        item = remote["items"]["data"][0]
        intent = stripe_fixture("payment_intent")
        intent.update(
            {
                "id": "pi_renewal_" + os.urandom(6).hex(),
                "amount": 3000,
                "amount_received": 3000 if status == "paid" else 0,
                "currency": "eur",
                "customer": remote["customer"],
                "status": "succeeded" if status == "paid" else "requires_payment_method",
                "metadata": {},
                "description": "Subscription update",
            }
        )
        invoice = stripe_fixture("invoice")
        line = invoice["lines"]["data"][0]
        line.update(
            {
                "amount": 3000,
                "currency": "eur",
                "description": f"2 × {item['plan']['product']}",
                "quantity": 2,
                "period": {"start": period_start, "end": period_end},
                "pricing": {
                    "type": "price_details",
                    "price_details": {"price": item["plan"]["id"], "product": item["plan"]["product"]},
                    "unit_amount_decimal": "1500",
                },
            }
        )
        # A change made last period, prorated on this invoice: lines of their own periods.
        prorations = []
        for amount, description in ((500, "Remaining time on 3 × plan"), (-500, "Unused time on 2 × plan")):
            proration = json.loads(json.dumps(line))
            proration.update(
                {
                    "id": "il_" + os.urandom(6).hex(),
                    "amount": amount,
                    "quantity": 1,
                    "description": description,
                    "period": {"start": remote["current_period_start"] + 86400 * 10, "end": period_start},
                    "parent": {
                        "type": "subscription_item_details",
                        "subscription_item_details": {
                            "proration": True,
                            "subscription": remote["id"],
                            "subscription_item": item["id"],
                        },
                    },
                }
            )
            prorations.append(proration)
        line["parent"] = {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "proration": False,
                "subscription": remote["id"],
                "subscription_item": item["id"],
            },
        }
        invoice.update(
            {
                "id": "in_renewal_" + os.urandom(6).hex(),
                "customer": remote["customer"],
                "currency": "eur",
                "status": status,
                "billing_reason": "subscription_cycle",
                "created": period_start,
                # Stripe's invoice period is the one before (usage billed in arrears); the
                # lines carry the service period.
                "period_start": remote["current_period_start"],
                "period_end": period_start,
                "subtotal": 3000,
                "total": 3000,
                "amount_due": 3000,
                "amount_paid": 3000 if status == "paid" else 0,
                "lines": {"object": "list", "data": [line, *prorations], "has_more": False},
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": remote["id"], "metadata": {}},
                },
            }
        )
        invoice.pop("subscription", None)
        invoice.pop("payment_intent", None)
        invoice_payment = stripe_fixture("invoice_payment")
        invoice_payment.update(
            {
                "id": "inpay_" + os.urandom(6).hex(),
                "invoice": invoice["id"],
                "amount_paid": 3000 if status == "paid" else None,
                "currency": "eur",
                "status": "paid" if status == "paid" else "open",
                "payment": {"type": "payment_intent", "payment_intent": intent["id"]},
            }
        )
        self._invoice_payments = [invoice_payment]
        renewed = json.loads(json.dumps(remote))
        renewed["status"] = subscription_status
        renewed["latest_invoice"] = invoice["id"]
        renewed["items"]["data"][0].update(
            {"current_period_start": period_start, "current_period_end": period_end}
        )
        renewed.pop("current_period_start", None)
        renewed.pop("current_period_end", None)
        return invoice, renewed, intent

    def _routes(self, invoice, subscription, intent):
        def listing(data):
            return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/invoice_payments"}

        return {
            ("get", f"/v1/invoices/{invoice['id']}"): lambda request: (200, invoice),
            ("get", f"/v1/subscriptions/{subscription['id']}"): lambda request: (200, subscription),
            ("get", f"/v1/payment_intents/{intent['id']}"): lambda request: (200, intent),
            ("get", "/v1/invoice_payments"): lambda request: listing(self._invoice_payments),
        }
