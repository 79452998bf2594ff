"""Protection: risk rules at their thresholds, charges held and resumed, alerts once per cause,
and the append-only audit trail without secrets. Against localstripe; Stripe-shaped signed
events (charges with Radar's outcome, early fraud warnings) posted to the webhook route."""

import json
from datetime import date, timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..const import EVENT_RETRY_DELAYS
from .common import (
    CrmPaymentCommon,
    StripeHttpMock,
    post_signed_event,
    stripe_event,
    stripe_fixture,
)
from .test_stripe_billing import StripeBillingCommon

SECRET = "whsec_protection_secret"
DECLINING_CARD = "4000000000000341"  # attaches, then every charge is declined


class ProtectionCommon(CrmPaymentCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider.crm_webhook_secret = SECRET
        cls.Flag = cls.env["crm.payment.risk.flag"]
        cls.Alert = cls.env["crm.payment.alert"]
        cls.Audit = cls.env["crm.payment.audit"]
        cls.Event = cls.env["crm.payment.event"]
        cls.alert_user = new_test_user(
            cls.env,
            login="crm_alert_user",
            groups="account.group_account_invoice",
            email="alerts@example.com",
        )
        cls.company.crm_alert_user_id = cls.alert_user
        cls.rules = cls.env["crm.payment.risk.rule"]._crm_rules(cls.company)
        # Every rule off; each test switches on what it checks.
        cls.env["crm.payment.risk.rule"].search([("company_id", "=", cls.company.id)]).enabled = False

    def _rule(self, code, **values):
        rule = self.env["crm.payment.risk.rule"].search(
            [("company_id", "=", self.company.id), ("code", "=", code)]
        )
        rule.write({"enabled": True, **values})
        return rule

    def _flags(self, rule=None, partner=None):
        domain = [("partner_id", "=", (partner or self.partner).id)]
        if rule:
            domain.append(("rule", "=", rule))
        return self.Flag.search(domain)

    def _charge(self, amount, partner=None, token=None):
        """Charge a saved card as an accountant would (the saved-card charge path)."""
        invoice = self._crm_invoice(amount, partner=partner)
        self.env["account.move"].browse(invoice.id).with_user(self.accountant)._crm_charge_saved_method(
            token=token
        )
        return invoice.transaction_ids[-1:]

    def _customer(self, name, country="base.us"):
        partner = self.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": "x@example.com",
                "country_id": self.env.ref(country).id,
            }
        )
        partner.action_crm_stripe_sync()
        return partner

    def _card_for(self, partner, number="4242424242424242"):
        self._crm_attach_card(partner.stripe_customer_id, number=number)
        partner.action_crm_stripe_sync()
        return partner._crm_default_token()


@tagged("post_install", "-at_install")
class TestRiskRules(ProtectionCommon):
    """Each rule hits exactly at its threshold and not one below; one flag per cause."""

    def test_failed_attempts_of_one_customer(self):
        self._rule("failed_customer", threshold=3, window_minutes=60, hold_charges=True)
        token = self._crm_save_card(DECLINING_CARD)
        for attempt in (1, 2):
            tx = self._charge(10.0 * attempt, token=token)
            self.assertEqual(tx.state, "error")
            self.assertFalse(self._flags(), f"{attempt} failed attempts are below the threshold of 3")
        tx = self._charge(30.0, token=token)
        flag = self._flags("failed_customer")
        self.assertEqual(len(flag), 1, "the third failure reaches the threshold")
        self.assertEqual((flag.transaction_id, flag.state, flag.hold_charges), (tx, "open", True))
        self.assertEqual(flag.values["failed_attempts"], 3)
        self.assertEqual(self.partner._crm_automatic_charges_held(), flag)
        self.assertTrue(self.contact._crm_automatic_charges_held(), "a contact's charges are its company's")
        # The accountant's activity, on the flag.
        self.assertEqual(flag.activity_ids.user_id, self.alert_user)
        # Held: the next saved-card charge is refused before reaching Stripe.
        with self.assertRaisesRegex(UserError, "held by a risk flag"):
            self._charge(40.0, token=token)
        self.assertEqual(self.partner.crm_risk_open_count, 1)
        self.assertTrue(self.partner.crm_risk_hold)

    def test_failed_attempts_of_one_card_across_customers(self):
        self._rule("failed_card", threshold=2, window_minutes=60)
        other = self._customer("Other Customer")
        token = self._crm_save_card(DECLINING_CARD)
        other_token = self._card_for(other, DECLINING_CARD)
        self.assertEqual(token.crm_card_fingerprint, other_token.crm_card_fingerprint)
        self._charge(10.0, token=token)
        self.assertFalse(self.Flag.search([("rule", "=", "failed_card")]), "1 failure, threshold 2")
        tx = self._charge(11.0, partner=other, token=other_token)
        flag = self.Flag.search([("rule", "=", "failed_card")])
        self.assertEqual((len(flag), flag.partner_id, flag.transaction_id), (1, other, tx))
        self.assertEqual(flag.values["crm_card_fingerprint"], token.crm_card_fingerprint)

    def test_failed_attempts_from_one_ip(self):
        self._rule("failed_ip", threshold=2, window_minutes=60)
        Tx = self.env["payment.transaction"]
        txs = Tx
        for amount in (10.0, 20.0):
            tx = Tx._crm_create(self.partner, amount, self.company.currency_id, "checkout")
            tx._crm_store_risk_data(client_ip="203.0.113.7")  # what the customer's pages record
            tx._crm_mark_declined({"code": "card_declined", "decline_code": "generic_decline"})
            txs |= tx
            if amount == 10.0:
                self.assertFalse(self._flags("failed_ip"), "1 failure from the address, threshold 2")
        flag = self._flags("failed_ip")
        self.assertEqual(
            (len(flag), flag.transaction_id, flag.values["crm_client_ip"]), (1, txs[-1], "203.0.113.7")
        )
        # Delivered again (the same declined state applied twice): no second flag.
        txs[-1]._crm_check_risk()
        self.assertEqual(len(self._flags("failed_ip")), 1)

    def test_failed_attempts_outside_the_window_do_not_count(self):
        self._rule("failed_customer", threshold=2, window_minutes=60)
        token = self._crm_save_card(DECLINING_CARD)
        old = self._charge(10.0, token=token)
        old.last_state_change = fields.Datetime.now() - timedelta(minutes=61)
        self._charge(20.0, token=token)
        self.assertFalse(self._flags(), "the first failure is 61 minutes old: out of a 60-minute window")
        self._charge(30.0, token=token)
        self.assertEqual(len(self._flags("failed_customer")), 1)

    def test_amount_far_above_the_median(self):
        self._rule("amount_median", threshold=5.0)
        token = self._crm_save_card()
        for amount in (100.0, 200.0, 300.0):  # median 200.00
            self.assertEqual(self._charge(amount, token=token).state, "done")
        self._charge(999.99, token=token)  # 5 x 200.00 = 1000.00, one cent below
        self.assertFalse(self._flags("amount_median"))
        tx = self._charge(1250.0, token=token)  # median of 100, 200, 300, 999.99 = 250.00; 5 x 250.00
        flag = self._flags("amount_median")
        self.assertEqual((len(flag), flag.transaction_id), (1, tx))
        self.assertEqual((flag.values["median"], flag.values["factor"]), (250.0, 5.0))

    def test_first_payment_above_the_threshold(self):
        self._rule("first_payment", threshold=1000.0)
        below, at = self._customer("Below"), self._customer("At")
        self._charge(999.99, partner=below, token=self._card_for(below))
        self.assertFalse(self._flags(partner=below))
        tx = self._charge(1000.0, partner=at, token=self._card_for(at))
        flag = self._flags("first_payment", partner=at)
        self.assertEqual((len(flag), flag.transaction_id), (1, tx))
        # A second large payment is no first payment.
        self._charge(5000.0, partner=at, token=at._crm_default_token())
        self.assertEqual(len(self._flags("first_payment", partner=at)), 1)

    def test_card_country_unlike_the_customers(self):
        self._rule("card_country")
        french = self._customer("Client Français", country="base.fr")
        self._charge(10.0, partner=french, token=self._card_for(french))  # localstripe cards are FR
        self.assertFalse(self._flags(partner=french))
        token = self._crm_save_card()
        self.assertEqual(token.crm_card_country, "FR")
        self._charge(10.0, token=token)
        self._charge(12.0, token=token)
        flag = self._flags("card_country")
        self.assertEqual(len(flag), 1, "one flag per customer and card, not per payment")
        self.assertEqual(flag.values, {"card_country": "FR", "customer_country": "US"})

    def test_many_cards_for_one_customer(self):
        self._rule("many_cards", threshold=3, window_minutes=60 * 24)
        for number in ("4242424242424242", "5555555555554444"):
            self._charge(10.0, token=self._crm_save_card(number))
        self.assertFalse(self._flags("many_cards"), "2 cards, threshold 3")
        tx = self._charge(10.0, token=self._crm_save_card("4000056655665556"))
        flag = self._flags("many_cards")
        self.assertEqual((len(flag), flag.transaction_id, flag.values["cards"]), (1, tx, 3))

    def test_rules_of_a_new_company_opened_from_settings(self):
        company = self.env["res.company"].create({"name": "New Company"})
        Rule = self.env["crm.payment.risk.rule"]
        self.assertFalse(Rule.search([("company_id", "=", company.id)]))
        action = (
            self.env.ref("crm_payment_integration.crm_payment_risk_rule_action_open")
            .with_company(company)
            .run()
        )
        self.assertEqual(action["res_model"], "crm.payment.risk.rule")
        rules = Rule.search([("company_id", "=", company.id)])
        self.assertEqual(len(rules), 9)
        failed = rules.filtered(lambda r: r.code == "failed_customer")
        self.assertEqual((failed.threshold, failed.window_minutes, failed.hold_charges), (5, 60, True))

    def test_rule_switched_off_flags_nothing(self):
        self._rule("failed_customer", threshold=1, enabled=False)
        self._charge(10.0, token=self._crm_save_card(DECLINING_CARD))
        self.assertFalse(self._flags())


@tagged("post_install", "-at_install")
class TestChargesHeld(ProtectionCommon):
    """A held customer's billing run and dunning skip the charge, and resume once cleared."""

    START = date(2027, 1, 15)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product = cls.env["product.product"].create({"name": "Support plan", "type": "service"})

    def _subscription(self, token):
        subscription = self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "start_date": self.START,
                "payment_token_id": token.id,
                "line_ids": [(0, 0, {"product_id": self.product.id, "quantity": 2, "price_unit": 50.0})],
            }
        )
        subscription.action_start()
        return subscription

    def _bill(self, day):
        return self.env["crm.subscription"]._cron_bill(now=day)

    def _hold(self):
        rule = self._rule("failed_customer", threshold=1, hold_charges=True)
        tx = self.env["payment.transaction"]._crm_create(
            self.partner, 5.0, self.company.currency_id, "checkout"
        )
        tx._crm_mark_declined({"code": "card_declined"})
        flag = self._flags(rule.code)
        self.assertEqual(len(flag), 1)
        return flag

    def _clear(self, flag, reason="Customer called; card verified"):
        action = flag.with_user(self.accountant).action_crm_clear()
        wizard = (
            self.env[action["res_model"]]
            .with_user(self.accountant)
            .with_context(**action["context"])
            .create({"reason": reason})
        )
        wizard.action_confirm()

    def test_flags_cleared_only_through_the_dialog(self):
        """An accountant's direct write of a flag's state, hold or cause is refused; the
        clearing dialog, messages and activities keep working."""
        flag = self._hold()
        as_accountant = flag.with_user(self.accountant)
        for vals in (
            {"state": "cleared"},
            {"hold_charges": False},
            {"cleared_by_id": self.accountant.id, "clear_reason": "forged"},
            {"cause_key": "other"},
            {"partner_id": self.salesman.partner_id.id},
        ):
            with self.assertRaises(AccessError):
                as_accountant.write(vals)
        self.assertEqual((flag.state, flag.hold_charges), ("open", True))
        as_accountant.message_post(body="Called the customer")
        as_accountant.activity_schedule("mail.mail_activity_data_todo", user_id=self.accountant.id)
        self._clear(flag)
        self.assertEqual((flag.state, flag.cleared_by_id), ("cleared", self.accountant))

    def test_billing_run_skips_then_resumes(self):
        subscription = self._subscription(self._crm_save_card())
        flag = self._hold()
        self._bill(self.START)
        invoice = subscription.invoice_ids
        self.assertEqual(len(invoice), 1, "the period is invoiced")
        self.assertFalse(invoice.transaction_ids, "but not charged")
        self.assertEqual((subscription.state, subscription.dunning_next_date), ("past_due", False))
        self.assertEqual(subscription.dunning_attempts, 0, "a hold is no failed attempt")
        self._bill(self.START + timedelta(days=3))
        self.assertFalse(invoice.transaction_ids, "still held")
        # An accountant cannot clear without saying why.
        with self.assertRaisesRegex(UserError, "Say why"):
            flag.with_user(self.accountant)._crm_clear(" ")
        self._clear(flag)
        self.assertEqual(
            (flag.state, flag.cleared_by_id, flag.clear_reason),
            ("cleared", self.accountant, "Customer called; card verified"),
        )
        self.assertTrue(flag.cleared_at)
        self.assertFalse(self.partner._crm_automatic_charges_held())
        self._bill(self.START + timedelta(days=4))
        self.assertEqual(invoice.transaction_ids.state, "done")
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(subscription.state, "active")

    def test_dunning_skips_then_resumes(self):
        subscription = self._subscription(self._crm_save_card(DECLINING_CARD))
        self._bill(self.START)
        invoice = subscription.invoice_ids
        self.assertEqual(
            (subscription.state, subscription.dunning_next_date), ("past_due", date(2027, 1, 16))
        )
        self.assertEqual(len(invoice.transaction_ids), 1)
        flag = self._hold()
        self._bill(date(2027, 1, 16))  # the retry day
        self.assertEqual(len(invoice.transaction_ids), 1, "the retry is held: no second charge")
        self.assertEqual((subscription.dunning_attempts, subscription.dunning_next_date), (1, False))
        subscription.payment_token_id = self._crm_save_card()  # a working card meanwhile
        self.assertEqual(len(invoice.transaction_ids), 1, "a new card does not charge a held customer")
        self._clear(flag)
        self._bill(date(2027, 1, 17))
        self.assertEqual(invoice.transaction_ids.sorted("id")[-1].state, "done")
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual((subscription.state, subscription.dunning_attempts), ("active", 0))

    def test_a_flag_that_does_not_hold_leaves_charges(self):
        self._rule("failed_customer", threshold=1, hold_charges=False)
        tx = self.env["payment.transaction"]._crm_create(
            self.partner, 5.0, self.company.currency_id, "checkout"
        )
        tx._crm_mark_declined({"code": "card_declined"})
        self.assertEqual(len(self._flags()), 1)
        self.assertFalse(self.partner._crm_automatic_charges_held())
        subscription = self._subscription(self._crm_save_card())
        self._bill(self.START)
        self.assertEqual(subscription.invoice_ids.transaction_ids.state, "done")


@tagged("post_install", "-at_install")
class TestAlertsAndAudit(ProtectionCommon):
    """Alerts once per cause; the audit trail of calls and events, append-only, secret-free."""

    def test_failed_payment_alerts_once(self):
        self.company.crm_alert_email_payment_failed = True
        token = self._crm_save_card(DECLINING_CARD)
        tx = self._charge(25.0, token=token)
        alert = self.Alert.search([("kind", "=", "payment_failed")])
        self.assertEqual((len(alert), alert.cause_key, alert.res_id), (1, f"tx:{tx.id}", tx.id))
        self.assertEqual(alert.activity_ids.user_id, self.alert_user)
        mail = self.env["mail.mail"].search([("subject", "=", alert.summary)])
        self.assertEqual(mail.email_to, self.alert_user.email_formatted)
        # The same decline applied again (a webhook after the charge's own answer): no second alert.
        tx._crm_mark_declined({"code": "card_declined", "decline_code": "generic_decline"})
        self.Alert._crm_raise("payment_failed", f"tx:{tx.id}", tx, "again")
        self.assertEqual(self.Alert.search_count([("kind", "=", "payment_failed")]), 1)
        self.assertEqual(len(alert.activity_ids), 1)

    def test_alert_group_each_user_and_no_email_when_off(self):
        group = self.env["res.groups"].create({"name": "Payment watchers"})
        watchers = [
            new_test_user(self.env, login=f"watcher{i}", groups="base.group_user", email=f"w{i}@example.com")
            for i in (1, 2)
        ]
        group.users = [(6, 0, [w.id for w in watchers])]
        self.company.write({"crm_alert_user_id": False, "crm_alert_group_id": group.id})
        self.company.crm_alert_email_risk_flag = False
        alert = self.Alert._crm_raise("risk_flag", "flag:test", self.partner, "A risk flag")
        self.assertEqual(set(alert.user_ids.ids), {w.id for w in watchers})
        self.assertEqual(len(self.partner.activity_ids.filtered(lambda a: a.summary == "A risk flag")), 2)
        self.assertFalse(
            self.env["mail.mail"].search([("subject", "=", "A risk flag")]), "no alert email for this kind"
        )
        self.assertFalse(alert.emailed)

    @mute_logger("odoo.addons.crm_payment_integration.models.crm_payment_event")
    def test_failed_event_alerts_once_and_not_again_on_reprocessing(self):
        event = stripe_event("customer.updated", {"id": "cus_alert", "object": "customer"})
        self.partner.action_crm_stripe_sync()
        event["data"]["object"]["id"] = self.partner.stripe_customer_id
        stored = self.Event.browse(self.Event.sudo()._crm_ingest(self.provider, event, json.dumps(event)))
        self.provider.crm_api_base = "http://127.0.0.1:9"  # Stripe unreachable
        now = fields.Datetime.now()

        def fail_to_the_end(now):
            for __ in range(len(EVENT_RETRY_DELAYS) + 1):
                self.Event._crm_process_due(now=now)
                now = (stored.next_attempt_at or now) + timedelta(seconds=1)
            return now

        with patch("time.sleep"):
            now = fail_to_the_end(now)
            self.assertEqual(stored.state, "failed")
            alerts = self.Alert.search([("kind", "=", "event_failed")])
            self.assertEqual((len(alerts), alerts.cause_key), (1, f"event:{stored.id}"))
            self.assertEqual(stored.activity_ids.user_id, self.alert_user)
            # Reprocessed by a person, failing again to the end.
            stored.sudo().with_context(crm_ledger_processing=True).write(
                {"state": "pending", "attempts": 0, "next_attempt_at": now}
            )
            fail_to_the_end(now)
        self.assertEqual(stored.state, "failed")
        self.assertEqual(self.Alert.search_count([("kind", "=", "event_failed")]), 1)
        self.assertEqual(len(stored.activity_ids), 1)

    def test_webhook_silent_while_payments_are_made(self):
        Tx = self.env["payment.transaction"]
        now = fields.Datetime.now()
        self.company.crm_webhook_silence_hours = 6
        event = stripe_event("customer.updated", {"id": "cus_silent", "object": "customer"})
        self.Event.sudo()._crm_ingest(self.provider, event, json.dumps(event))
        self.env.cr.execute(
            "UPDATE crm_payment_event SET received_at = %s WHERE provider_id = %s",
            [now - timedelta(hours=7), self.provider.id],
        )
        self.Event.invalidate_model()
        first = Tx._crm_create(self.partner, 10.0, self.company.currency_id, "checkout")
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE payment_transaction SET create_date = %s WHERE id = %s",
            [now - timedelta(days=30), first.id],
        )
        self.assertFalse(
            self.Event._cron_check_webhooks(now=now), "no payment within 6 hours: silence is normal"
        )
        Tx._crm_create(self.partner, 20.0, self.company.currency_id, "checkout")
        alert = self.Event._cron_check_webhooks(now=now)
        self.assertEqual((len(alert), alert.kind, alert.res_id), (1, "webhook_silent", self.provider.id))
        self.assertIn("6 hours", alert.summary)
        self.assertFalse(self.Event._cron_check_webhooks(now=now), "one alert per silence")
        # An event arrives: no silence. Quiet again for 7 hours, with payments: a new alert.
        event = stripe_event("customer.updated", {"id": "cus_silent2", "object": "customer"})
        self.Event.sudo()._crm_ingest(self.provider, event, json.dumps(event))
        self.assertFalse(self.Event._cron_check_webhooks(now=now), "an event arrived within 6 hours")
        later = now + timedelta(hours=7)
        Tx._crm_create(self.partner, 30.0, self.company.currency_id, "checkout")
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE payment_transaction SET create_date = %s WHERE provider_id = %s AND id != %s",
            [later, self.provider.id, first.id],
        )
        self.assertEqual(len(self.Event._cron_check_webhooks(now=later)), 1)

    def test_first_payments_of_a_new_provider_are_no_silence(self):
        self.company.crm_webhook_silence_hours = 6
        self.env["payment.transaction"]._crm_create(self.partner, 10.0, self.company.currency_id, "checkout")
        self.assertFalse(self.Event._cron_check_webhooks(), "no event yet, but the first payment is new")

    def test_webhook_endpoint_disabled_at_stripe(self):
        self.company.crm_webhook_silence_hours = 0
        endpoint = {"id": "we_123", "object": "webhook_endpoint", "status": "disabled", "url": "https://x"}
        http = self._crm_use_http(StripeHttpMock({("get", "/v1/webhook_endpoints/we_123"): (200, endpoint)}))
        self.provider.write({"crm_api_base": False, "crm_webhook_endpoint_id": "we_123"})
        alert = self.Event._cron_check_webhooks()
        self.assertEqual((len(alert), alert.kind), (1, "webhook_silent"))
        self.assertIn("disabled", alert.summary)
        self.assertFalse(self.Event._cron_check_webhooks(), "once per disabled endpoint")
        self.assertEqual([r["path"] for r in http.requests], ["/v1/webhook_endpoints/we_123"] * 2)
        calls = self.Audit.search([("operation", "=", "webhook_endpoint.retrieve")])
        self.assertEqual((len(calls), calls[0].object_id, calls[0].http_status), (2, "we_123", 200))

    def _fixture_names(self):
        from .common import FIXTURES

        with FIXTURES.open() as file:
            return set(json.load(file))

    def test_audit_lines_of_calls(self):
        token = self._crm_save_card()
        declining = self._crm_save_card(DECLINING_CARD)
        paid = self._charge(30.0, token=token)
        declined = self._charge(31.0, token=declining)
        creates = self.Audit.search([("operation", "=", "payment_intent.create")], order="id")
        self.assertEqual(len(creates), 2)
        ok, refused = creates
        self.assertEqual(
            (ok.kind, ok.object_id, ok.idempotency_key, ok.http_status, ok.error_kind),
            ("call", paid.provider_reference, paid.crm_idempotency_key, 200, False),
        )
        self.assertEqual((refused.http_status, refused.error_kind), (402, "card_declined"))
        self.assertEqual(refused.idempotency_key, declined.crm_idempotency_key)
        self.assertEqual(
            (ok.user_id, ok.company_id, ok.provider_id), (self.accountant, self.company, self.provider)
        )
        self.assertGreaterEqual(ok.duration_ms, 0)
        self.assertTrue(self.Audit.search_count([("operation", "=", "customer.retrieve")]))

    def test_audit_lines_of_event_changes(self):
        tx = self.env["payment.transaction"]._crm_create(
            self.partner, 42.0, self.company.currency_id, "off_session"
        )
        tx._set_pending()
        intent = stripe_fixture("payment_intent")
        intent.update(
            {
                "id": "pi_audit",
                "amount": 4200,
                "amount_received": 4200,
                "currency": "usd",
                "status": "succeeded",
                "customer": self.customer_id,
                "metadata": {"reference": tx.reference},
            }
        )
        event = stripe_event("payment_intent.succeeded", intent)
        stored = self.Event.browse(self.Event.sudo()._crm_ingest(self.provider, event, json.dumps(event)))
        self.Event._crm_process_due()
        self.assertEqual((stored.state, tx.state), ("done", "done"))
        change = self.Audit.search([("kind", "=", "change"), ("res_model", "=", "payment.transaction")])
        self.assertEqual(len(change), 1)
        self.assertEqual(
            (change.event_id, change.res_id, change.operation, change.changes),
            (stored, tx.id, "payment_intent.succeeded", {"state": ["pending", "done"]}),
        )
        # Applied again: nothing changes, nothing more is logged.
        stored.with_user(self.accountant).action_crm_reprocess()
        self.assertEqual(self.Audit.search_count([("kind", "=", "change")]), 1)

    def test_no_secret_in_any_audit_line(self):
        token = self._crm_save_card()
        self._charge(12.0, token=token)
        self._charge(13.0, token=self._crm_save_card(DECLINING_CARD))
        self.provider.action_crm_register_webhook()  # the webhook secret is made here
        secrets = [
            self.provider.stripe_secret_key,
            self.provider.crm_webhook_secret,
            "4242424242424242",
            DECLINING_CARD,
        ]
        self.assertTrue(all(secrets))
        self.env.flush_all()
        self.env.cr.execute("SELECT row_to_json(a)::text FROM crm_payment_audit a")
        lines = [row[0] for row in self.env.cr.fetchall()]
        self.assertGreater(len(lines), 5)
        for line in lines:
            for secret in secrets:
                self.assertNotIn(secret, line)
        self.assertTrue(self.Audit.search_count([("operation", "=", "localstripe.webhook")]))

    def test_audit_lines_cannot_be_changed_or_deleted_by_anyone(self):
        self._charge(14.0, token=self._crm_save_card())
        line = self.Audit.search([], limit=1)
        admin = self.env.ref("base.user_admin")
        for env in (
            self.env(user=self.accountant),
            self.env(user=admin),
            self.env(user=admin, su=True),
            self.env(su=True),
        ):
            with self.assertRaisesRegex(UserError, "append-only"):
                line.with_env(env).write({"operation": "forged"})
            with self.assertRaisesRegex(UserError, "cannot be deleted"):
                line.with_env(env).unlink()
        self.assertEqual(line.operation, line.sudo().read(["operation"])[0]["operation"])
        self.assertNotEqual(line.operation, "forged")
        self.assertTrue(line.exists())
        # Readable and exportable by accountants (with Odoo's export right).
        self.accountant.groups_id = [(4, self.env.ref("base.group_allow_export").id)]
        exported = line.with_user(self.accountant).export_data(["operation", "object_id", "http_status"])
        self.assertEqual(exported["datas"][0][0], line.operation)

    def test_retention_purges_old_lines_only(self):
        self.company.crm_audit_retention_days = 30
        self._charge(15.0, token=self._crm_save_card())
        self.env.flush_all()
        self.env.cr.execute("SELECT count(*) FROM crm_payment_audit")
        total = self.env.cr.fetchone()[0]
        old = self.Audit.search([], limit=3, order="id")
        self.env.cr.execute(
            "UPDATE crm_payment_audit SET create_date = %s WHERE id IN %s",
            [fields.Datetime.now() - timedelta(days=31), tuple(old.ids)],
        )
        edge = self.Audit.search([("id", "not in", old.ids)], limit=1, order="id")
        self.env.cr.execute(
            "UPDATE crm_payment_audit SET create_date = %s WHERE id = %s",
            [fields.Datetime.now() - timedelta(days=29), edge.id],
        )
        self.assertEqual(self.Audit._cron_purge(), 3)
        self.env.cr.execute("SELECT count(*) FROM crm_payment_audit")
        self.assertEqual(self.env.cr.fetchone()[0], total - 3)
        self.assertFalse(old.exists())
        self.assertTrue(edge.exists())


@tagged("post_install", "-at_install")
class TestRiskEvents(ProtectionCommon, HttpCase):
    """Signed charge and early-fraud-warning events, in Stripe's shapes, through the route."""

    def _post(self, event):
        post_signed_event(self, self.provider, event, SECRET)
        return self.Event.search([("stripe_event_id", "=", event["id"])])

    def _paid(self, amount=20.0):
        tx = self._charge(amount, token=self._crm_save_card())
        self.assertEqual(tx.state, "done")
        return tx

    def _charge_object(self, tx, charge_id, risk_level="normal", risk_score=10):
        charge = stripe_fixture("charge") if "charge" in self._fixture_names() else {}
        charge.update(
            {
                "id": charge_id,
                "object": "charge",
                "amount": tx._crm_minor_amount(),
                "currency": "usd",
                "customer": self.customer_id,
                "payment_intent": tx.provider_reference,
                "status": "succeeded",
                "outcome": {
                    "network_status": "approved_by_network",
                    "reason": None,
                    "risk_level": risk_level,
                    "risk_score": risk_score,
                    "seller_message": "Payment complete.",
                    "type": "authorized",
                },
                "payment_method_details": {
                    "type": "card",
                    "card": {
                        "brand": "visa",
                        "country": "US",
                        "fingerprint": "fp_" + charge_id,
                        "last4": "4242",
                    },
                },
            }
        )
        return charge

    def _fixture_names(self):
        from .common import FIXTURES

        with FIXTURES.open() as file:
            return set(json.load(file))

    def test_radar_score_at_threshold_and_level(self):
        self._rule("radar", threshold=75)
        below, at, elevated = self._paid(20.0), self._paid(21.0), self._paid(22.0)
        for tx, charge_id, level, score in (
            (below, "ch_below", "normal", 74),
            (at, "ch_at", "normal", 75),
            (elevated, "ch_elevated", "elevated", 30),
        ):
            stored = self._post(
                stripe_event("charge.succeeded", self._charge_object(tx, charge_id, level, score))
            )
            self.Event._crm_process_due()
            self.assertEqual(stored.state, "done", stored.result)
        self.assertEqual(
            (below.crm_risk_score, below.crm_charge_id, below.crm_card_fingerprint),
            (74, "ch_below", "fp_ch_below"),
        )
        flags = self._flags("radar")
        self.assertEqual(
            set(flags.transaction_id.ids), {at.id, elevated.id}, "74 is below 75; elevated flags"
        )
        self.assertEqual(flags.filtered(lambda f: f.transaction_id == at).values["risk_score"], 75)
        # The same charge event again (redelivered with a new id, then reprocessed): no new flag.
        stored = self._post(stripe_event("charge.succeeded", self._charge_object(at, "ch_at", "normal", 75)))
        self.Event._crm_process_due()
        stored.with_user(self.accountant).action_crm_reprocess()
        self.assertEqual(len(self._flags("radar")), 2)
        self.assertEqual(self.Alert.search_count([("kind", "=", "risk_flag")]), 2)

    def test_early_fraud_warning_flags_holds_and_alerts_once(self):
        self._rule("early_fraud_warning", hold_charges=True)
        self.company.crm_alert_email_early_fraud_warning = True
        tx = self._paid(50.0)
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        charge_id = (
            intent["latest_charge"]["id"]
            if isinstance(intent["latest_charge"], dict)
            else intent["latest_charge"]
        )
        warning = (
            stripe_fixture("radar.early_fraud_warning")
            if "radar.early_fraud_warning" in self._fixture_names()
            else {}
        )
        warning.update(
            {
                "id": "issfr_test1",
                "object": "radar.early_fraud_warning",
                "charge": charge_id,
                "fraud_type": "made_with_stolen_card",
                "actionable": True,
            }
        )
        warning.pop("payment_intent", None)  # an older shape: the charge is read from Stripe
        stored = self._post(stripe_event("radar.early_fraud_warning.created", warning))
        self.Event._crm_process_due()
        self.assertEqual(stored.state, "done", stored.result)
        flag = self._flags("early_fraud_warning")
        self.assertEqual((len(flag), flag.transaction_id, flag.hold_charges), (1, tx, True))
        self.assertEqual(flag.values["fraud_type"], "made_with_stolen_card")
        self.assertEqual(tx.crm_charge_id, charge_id)
        alert = self.Alert.search([("kind", "=", "early_fraud_warning")])
        self.assertEqual((len(alert), alert.cause_key), (1, "efw:issfr_test1"))
        self.assertEqual(flag.activity_ids.user_id, self.alert_user)
        self.assertTrue(self.env["mail.mail"].search([("subject", "=", alert.summary)]))
        self.assertFalse(
            self.Alert.search([("kind", "=", "risk_flag")]), "the warning's own alert, not a second one"
        )
        audit = self.Audit.search([("event_id", "=", stored.id), ("res_model", "=", "crm.payment.risk.flag")])
        self.assertEqual(audit.changes, {"state": [None, "open"]})
        # Delivered again under another event id, and reprocessed: nothing more.
        again = self._post(stripe_event("radar.early_fraud_warning.created", warning))
        self.Event._crm_process_due()
        again.with_user(self.accountant).action_crm_reprocess()
        self.assertEqual(len(self._flags("early_fraud_warning")), 1)
        self.assertEqual(self.Alert.search_count([("kind", "=", "early_fraud_warning")]), 1)
        self.assertEqual(self.partner._crm_automatic_charges_held(), flag)

    def test_partner_and_opportunity_show_the_banner(self):
        lead = self.env["crm.lead"].create({"name": "Big deal", "partner_id": self.contact.id})
        self.assertEqual((self.partner.crm_risk_open_count, lead.crm_risk_open_count), (0, 0))
        self._rule("failed_customer", threshold=1)
        tx = self.env["payment.transaction"]._crm_create(
            self.partner, 5.0, self.company.currency_id, "checkout"
        )
        tx._crm_mark_declined({"code": "card_declined"})
        self.env.invalidate_all()
        self.assertEqual((self.partner.crm_risk_open_count, lead.crm_risk_open_count), (1, 1))
        arch = self.env["res.partner"].get_view(view_type="form")["arch"]
        self.assertIn("Payment risk", arch)
        self.assertIn("Payment risk", self.env["crm.lead"].get_view(view_type="form")["arch"])


@tagged("post_install", "-at_install")
class TestAuditOfSubscriptionEvents(StripeBillingCommon):
    def test_subscription_cancelled_in_stripe_is_audited(self):
        remote = self._stripe_subscription()
        self._import()
        mirror = self._mirror(remote)
        self.assertEqual(mirror.state, "active")
        cancelled = self.gateway.cancel_subscription(remote["id"])
        event = stripe_event("customer.subscription.deleted", cancelled)
        Event = self.env["crm.payment.event"]
        stored = Event.browse(Event.sudo()._crm_ingest(self.provider, event, json.dumps(event)))
        Event._crm_process_due()
        self.assertEqual((stored.state, mirror.state), ("done", "cancelled"), stored.result)
        line = self.env["crm.payment.audit"].search(
            [("event_id", "=", stored.id), ("res_model", "=", "crm.subscription")]
        )
        self.assertEqual(
            (len(line), line.res_id, line.operation, line.changes),
            (1, mirror.id, "customer.subscription.deleted", {"state": ["active", "cancelled"]}),
        )

    def test_client_context_cannot_forge_event_change_lines(self):
        """A client putting ``crm_audit_event`` in its context writes no "changed by a Stripe
        event" line: only the ledger applying an event does."""
        remote = self._stripe_subscription()
        event = stripe_event("customer.subscription.updated", remote)
        Event = self.env["crm.payment.event"]
        stored = Event.browse(Event.sudo()._crm_ingest(self.provider, event, json.dumps(event)))
        product = self.env["product.product"].create({"name": "Support plan", "type": "service"})
        mirror = self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "line_ids": [(0, 0, {"product_id": product.id, "quantity": 1, "price_unit": 10.0})],
            }
        )
        Audit = self.env["crm.payment.audit"]
        before = Audit.search_count([("kind", "=", "change")])
        mirror.user_id = self.salesman
        forged = {"crm_audit_event": stored.id, "crm_audit_event_type": "customer.subscription.deleted"}
        mirror.with_user(self.salesman).with_context(**forged).write({"state": "cancelled"})
        self.assertEqual(mirror.state, "cancelled")
        # Even as superuser, without the ledger's own flag, the context forges nothing.
        mirror.sudo().with_context(**forged).write({"state": "active"})
        self.assertEqual(Audit.search_count([("kind", "=", "change")]), before)
