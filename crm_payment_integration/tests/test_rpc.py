"""Every public method of the add-on's models, called as integrators call it: over XML-RPC and
JSON-RPC on the real test server, against localstripe (hosted pages answered at the HTTP-client
boundary, which localstripe lacks)."""

import inspect
import json
import xmlrpc.client
from datetime import timedelta

from odoo import fields, models
from odoo.tests import HttpCase, new_test_user, tagged

from .common import CrmPaymentCommon, FakeCheckout, stripe_event

MODULE = "crm_payment_integration"


def discover_public_methods(registry):
    """Return ``{(model, method)}`` for every public method the add-on's own classes define on
    the models it creates or extends, the ORM's own methods (``create``, ``write``, ``init``...)
    left out."""
    framework = set(dir(models.Model)) | set(dir(models.TransientModel)) | set(dir(models.AbstractModel))
    found = set()
    for model_name, model_class in registry.items():
        for cls in model_class.__mro__:
            if getattr(cls, "_module", None) != MODULE or not cls.__module__.startswith(
                f"odoo.addons.{MODULE}"
            ):
                continue
            for name, value in vars(cls).items():
                if not name.startswith("_") and name not in framework and inspect.isfunction(value):
                    found.add((model_name, name))
    return found


@tagged("post_install", "-at_install")
class TestPublicMethodsOverRpc(CrmPaymentCommon, HttpCase):
    """Each public method runs over XML-RPC from a state where it can do its work; the set-up
    map must cover exactly the methods discovered in the registry."""

    # (model, method) -> name of the set-up method returning (record, check(result))
    SETUPS = {
        ("account.move", "action_crm_charge_saved_method"): "_setup_invoice_charge",
        ("account.move", "action_crm_refund"): "_setup_invoice_refund",
        ("account.move", "action_crm_send_payment_link"): "_setup_invoice_send_link",
        ("crm.lead", "action_crm_create_subscription"): "_setup_lead_window",
        ("crm.lead", "action_crm_request_payment"): "_setup_lead_window",
        ("crm.lead", "action_crm_view_payments"): "_setup_lead_window",
        ("crm.lead", "action_crm_view_subscriptions"): "_setup_lead_window",
        ("crm.payment.charge.wizard", "action_charge"): "_setup_charge_wizard",
        ("crm.payment.event", "action_crm_reprocess"): "_setup_event_reprocess",
        ("crm.payment.refund.wizard", "action_refund"): "_setup_refund_wizard",
        ("crm.payment.request.wizard", "action_confirm"): "_setup_request_wizard",
        ("crm.subscription", "action_cancel"): "_setup_subscription_cancel",
        ("crm.subscription", "action_cancel_at_period_end"): "_setup_subscription_cancel_at_period_end",
        ("crm.subscription", "action_pause"): "_setup_subscription_pause",
        ("crm.subscription", "action_reactivate"): "_setup_subscription_reactivate",
        ("crm.subscription", "action_resume"): "_setup_subscription_resume",
        ("crm.subscription", "action_start"): "_setup_subscription_start",
        ("crm.subscription", "action_view_invoices"): "_setup_subscription_invoices",
        ("crm.subscription.cancel.wizard", "action_confirm"): "_setup_cancel_wizard",
        ("crm.subscription.template", "action_view_subscriptions"): "_setup_template_window",
        ("payment.provider", "action_crm_import_stripe_subscriptions"): "_setup_provider_import",
        ("payment.provider", "action_crm_register_webhook"): "_setup_provider_webhook",
        ("payment.transaction", "action_crm_cancel_charge"): "_setup_tx_cancel_charge",
        ("payment.transaction", "action_crm_open_refund_wizard"): "_setup_tx_refund_wizard",
        ("res.partner", "action_crm_charge"): "_setup_partner_window",
        ("res.partner", "action_crm_send_setup_link"): "_setup_partner_setup_link",
        ("res.partner", "action_crm_stripe_sync"): "_setup_partner_sync",
        ("res.partner", "action_crm_view_subscriptions"): "_setup_partner_window",
        ("res.partner", "action_crm_view_tokens"): "_setup_partner_window",
        ("res.partner", "action_crm_view_transactions"): "_setup_partner_window",
        ("crm.payment.dispute", "action_crm_submit_evidence"): "_setup_dispute_evidence",
        ("crm.payment.dispute", "action_crm_refresh"): "_setup_dispute_refresh",
        ("crm.payment.dispute.evidence.wizard", "action_submit"): "_setup_evidence_wizard",
        ("crm.payment.drift", "action_crm_repair"): "_setup_drift_repair",
        ("crm.payment.risk.flag", "action_crm_clear"): "_setup_risk_flag_clear",
        ("crm.payment.risk.clear.wizard", "action_confirm"): "_setup_risk_clear_wizard",
        ("res.partner", "action_crm_send_statement"): "_setup_partner_statement",
        ("crm.collection.overview", "action_send_reminder"): "_setup_collection_row",
        ("crm.collection.overview", "action_skip"): "_setup_collection_row",
        ("crm.collection.overview", "action_call"): "_setup_collection_row",
        ("crm.collection.overview", "action_send_statement"): "_setup_collection_row",
    }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.integrator = new_test_user(
            cls.env,
            login="crm_integrator",
            groups="base.group_system,account.group_account_invoice,sales_team.group_sale_manager",
        )
        cls.product = cls.env["product.product"].create({"name": "Support plan", "list_price": 30.0})

    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(FakeCheckout())

    # --- calls -----------------------------------------------------------------------------

    def _xmlrpc(self, model, method, ids):
        return self.xmlrpc_object.execute_kw(
            self.env.cr.dbname, self.integrator.id, "crm_integrator", model, method, [ids]
        )

    def _jsonrpc(self, model, method, ids):
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 1,
            "params": {
                "service": "object",
                "method": "execute_kw",
                "args": [self.env.cr.dbname, self.integrator.id, "crm_integrator", model, method, [ids]],
            },
        }
        response = self.url_open(
            "/jsonrpc", data=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        self.assertEqual(response.status_code, 200)
        return response.json()

    # --- set-ups: each returns the record to call and a check of the result -----------------

    def _charged_invoice(self, amount=80.0):
        self._crm_save_card()
        invoice = self._crm_invoice(amount)
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertTrue(self._crm_reconciled(invoice))
        return invoice

    def _subscription(self, state="draft", **values):
        subscription = self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "line_ids": [(0, 0, {"product_id": self.product.id, "name": "Support", "price_unit": 30.0})],
                **values,
            }
        )
        if state != "draft":
            subscription.action_start()
        if state == "paused":
            subscription.action_pause()
        elif state == "cancelled":
            subscription.action_cancel()
        return subscription

    def _lead(self):
        return self.env["crm.lead"].create(
            {"name": "Office fit-out", "partner_id": self.partner.id, "expected_revenue": 1000.0}
        )

    def _window(self, res_model):
        def check(result):
            self.assertEqual(result["type"], "ir.actions.act_window")
            self.assertEqual(result["res_model"], res_model)

        return check

    def _notified(self, *words, kind="success"):
        def check(result):
            self.assertEqual(result["tag"], "display_notification")
            self.assertEqual(result["params"]["type"], kind)
            for word in words:
                self.assertIn(word, result["params"]["message"])

        return check

    def _setup_invoice_charge(self, method):
        self._crm_save_card()
        invoice = self._crm_invoice(120.0)

        def check(result):
            self._notified("120.00")(result)
            self.assertTrue(self._crm_reconciled(invoice))

        return invoice, check

    def _setup_invoice_refund(self, method):
        return self._charged_invoice(), self._window("crm.payment.refund.wizard")

    def _setup_invoice_send_link(self, method):
        invoice = self._crm_invoice(75.0)

        def check(result):
            self._notified("azure@example.com", "75.00")(result)
            self.assertTrue(invoice.crm_payment_url)

        return invoice, check

    def _setup_lead_window(self, method):
        res_model = {
            "action_crm_create_subscription": "crm.subscription",
            "action_crm_request_payment": "crm.payment.request.wizard",
            "action_crm_view_payments": "payment.transaction",
            "action_crm_view_subscriptions": "crm.subscription",
        }[method]
        return self._lead(), self._window(res_model)

    def _setup_charge_wizard(self, method):
        token = self._crm_save_card()
        wizard = self.env["crm.payment.charge.wizard"].create(
            {"partner_id": self.partner.id, "token_id": token.id, "amount": 45.0, "reason": "Setup fee"}
        )
        return wizard, self._notified("45.00")

    def _setup_event_reprocess(self, method):
        event = stripe_event("customer.updated", self._crm_customer(self.customer_id))
        event_id = self.env["crm.payment.event"]._crm_ingest(self.provider, event, json.dumps(event))
        record = self.env["crm.payment.event"].browse(event_id)

        def check(result):
            self.assertIs(result, True)
            self.assertEqual(record.state, "done")

        return record, check

    def _setup_refund_wizard(self, method):
        invoice = self._charged_invoice(60.0)
        wizard = self.env["crm.payment.refund.wizard"].create(
            {"invoice_id": invoice.id, "transaction_id": invoice.transaction_ids[:1].id, "amount": 20.0}
        )
        return wizard, self._notified("20.00")

    def _setup_request_wizard(self, method):
        lead = self._lead()
        wizard = self.env["crm.payment.request.wizard"].create({"lead_id": lead.id, "send_email": False})

        def check(result):
            self._window("account.move")(result)
            self.assertEqual(self.env["account.move"].browse(result["res_id"]).crm_lead_id, lead)

        return wizard, check

    def _state_check(self, subscription, state, **values):
        def check(result):
            self.assertIs(result, True)
            self.assertEqual(subscription.state, state)
            for name, value in values.items():
                self.assertEqual(subscription[name], value)

        return check

    def _setup_subscription_start(self, method):
        subscription = self._subscription()
        return subscription, self._state_check(subscription, "active")

    def _setup_subscription_pause(self, method):
        subscription = self._subscription("active")
        return subscription, self._state_check(subscription, "paused")

    def _setup_subscription_resume(self, method):
        subscription = self._subscription("paused")
        return subscription, self._state_check(subscription, "active")

    def _setup_subscription_cancel(self, method):
        subscription = self._subscription("active")
        return subscription, self._state_check(subscription, "cancelled")

    def _setup_subscription_cancel_at_period_end(self, method):
        subscription = self._subscription("active", start_date=fields.Date.today())
        subscription.next_invoice_date = fields.Date.to_date("2030-01-15")
        return subscription, self._state_check(
            subscription, "active", end_date=fields.Date.to_date("2030-01-14"), end_by_cancellation=True
        )

    def _setup_subscription_reactivate(self, method):
        subscription = self._subscription("cancelled")
        return subscription, self._state_check(subscription, "active", end_date=False)

    def _setup_subscription_invoices(self, method):
        return self._subscription("active"), self._window("account.move")

    def _risk_flag(self):
        rule = self.env["crm.payment.risk.rule"]._crm_rules(self.company)["early_fraud_warning"]
        return self.env["crm.payment.risk.flag"]._crm_flag(
            rule,
            self.env["payment.transaction"],
            self.partner,
            "efw:rpc",
            {"charge": "ch_rpc"},
            "Fraud warning",
        )

    def _setup_risk_flag_clear(self, method):
        return self._risk_flag(), self._window("crm.payment.risk.clear.wizard")

    def _setup_risk_clear_wizard(self, method):
        flag = self._risk_flag()
        wizard = self.env["crm.payment.risk.clear.wizard"].create(
            {"flag_ids": [(6, 0, flag.ids)], "reason": "Customer confirmed the payment"}
        )

        def check(result):
            self.assertEqual(result["type"], "ir.actions.act_window_close")
            self.assertEqual((flag.state, flag.cleared_by_id), ("cleared", self.integrator))

        return wizard, check

    def _setup_cancel_wizard(self, method):
        subscription = self._subscription("active")
        subscription.next_invoice_date = fields.Date.to_date("2030-01-15")
        wizard = self.env["crm.subscription.cancel.wizard"].create(
            {"subscription_id": subscription.id, "reason": "Moving to another tool"}
        )

        def check(result):
            self._notified(subscription.name)(result)
            self.assertEqual(subscription.end_date, fields.Date.to_date("2030-01-14"))

        return wizard, check

    def _setup_template_window(self, method):
        template = self.env["crm.subscription.template"].create({"name": "Monthly support"})
        return template, self._window("crm.subscription")

    def _setup_provider_import(self, method):
        # The account's Stripe Billing subscriptions (none made by this test), answered as
        # Stripe lists them: localstripe holds those of the other tests of the run.
        self.stripe.routes[("get", "/v1/subscriptions")] = (
            200,
            {"object": "list", "data": [], "has_more": False, "url": "/v1/subscriptions"},
        )
        return self.provider, self._notified("0")

    def _setup_provider_webhook(self, method):
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())

        def check(result):
            # localstripe delivers nothing more to this test's server, whose cursor it shares.
            self.gateway.configure_localstripe_webhook(
                self.provider.crm_webhook_endpoint_id, "http://127.0.0.1:9/", "whsec_off", []
            )
            self._notified(f"/crm_payment/stripe/webhook/{self.provider.id}")(result)
            self.assertTrue(self.provider.crm_webhook_secret.startswith("whsec_"))

        return self.provider, check

    def _setup_tx_cancel_charge(self, method):
        tx = self._charged_invoice(30.0).transaction_ids[:1]

        def check(result):
            self.assertIs(result, True)
            self.assertEqual(tx.state, "done", "a paid charge is not cancelled")

        return tx, check

    def _setup_tx_refund_wizard(self, method):
        return self._charged_invoice(40.0).transaction_ids[:1], self._window("crm.payment.refund.wizard")

    def _setup_partner_window(self, method):
        res_model = {
            "action_crm_charge": "crm.payment.charge.wizard",
            "action_crm_view_subscriptions": "crm.subscription",
            "action_crm_view_tokens": "payment.token",
            "action_crm_view_transactions": "payment.transaction",
        }[method]
        return self.partner, self._window(res_model)

    def _setup_partner_setup_link(self, method):
        return self.partner, self._notified(self.partner.name, "azure@example.com")

    def _setup_partner_sync(self, method):
        pm_id = self._crm_attach_card(self.customer_id, number="5555555555554444")

        def check(result):
            self._notified("1")(result)
            self.assertIn(pm_id, self.partner._crm_tokens().mapped("stripe_payment_method"))

        return self.partner, check

    def _setup_partner_statement(self, method):
        return self.partner, self._notified("azure@example.com")

    def _setup_collection_row(self, method):
        overdue = fields.Date.today() - timedelta(days=10)
        self._crm_invoice(60.0, invoice_date=overdue, invoice_date_due=overdue)
        self.env.flush_all()
        row = self.env["crm.collection.overview"].search([("partner_id", "=", self.partner.id)])
        words = {
            "action_send_reminder": "1 reminder(s) sent.",
            "action_skip": "1 reminder(s) skipped.",
            "action_call": "Call planned.",
            "action_send_statement": "azure@example.com",
        }[method]
        return row, self._notified(words)

    # --- tests -----------------------------------------------------------------------------

    def _dispute(self, status="needs_response"):
        """A dispute Stripe opened on a charged invoice (answered at the HTTP boundary)."""
        from .common_protection import FakeDisputes, dispute_object

        # Stripe's disputes answered too, from now on (later set-ups still use self.stripe).
        stripe = self.stripe = self._crm_use_http(FakeDisputes())
        invoice = self._charged_invoice(40.0)
        tx = invoice.transaction_ids
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        charge = intent["latest_charge"]
        remote = dispute_object(
            charge["id"] if isinstance(charge, dict) else charge, tx.provider_reference, 4000, status=status
        )
        remote["currency"] = tx.currency_id.name.lower()
        stripe.disputes[remote["id"]] = remote
        dispute, __ = self.env["crm.payment.dispute"]._crm_apply_stripe_dispute(
            self.provider.sudo(), dict(remote)
        )
        return dispute, remote, stripe

    def _setup_dispute_evidence(self, method):
        dispute, __, __ = self._dispute()
        return dispute, self._window("crm.payment.dispute.evidence.wizard")

    def _setup_dispute_refresh(self, method):
        dispute, remote, __ = self._dispute()
        remote["status"] = "won"

        def check(result):
            self.assertIs(result, True)
            self.assertEqual(dispute.state, "won")

        return dispute, check

    def _setup_evidence_wizard(self, method):
        dispute, __, stripe = self._dispute()
        wizard = (
            self.env["crm.payment.dispute.evidence.wizard"]
            .with_user(self.integrator)
            .create({"dispute_id": dispute.id})
        )

        def check(result):
            self._notified("Evidence submitted")(result)
            self.assertEqual(dispute.state, "under_review")
            self.assertEqual(len(stripe.posts_to("/v1/files")), 1)

        return wizard, check

    def _setup_drift_repair(self, method):
        from .common_protection import FakeDisputes

        self.stripe = self._crm_use_http(FakeDisputes())
        invoice = self._charged_invoice(25.0)
        tx = invoice.transaction_ids
        self.env.cr.execute("UPDATE payment_transaction SET amount = 20.0 WHERE id = %s", [tx.id])
        tx.invalidate_recordset()
        run = self.env["crm.payment.drift.run"]._crm_start(self.provider.sudo())
        from ..services.budget import TimeBudget

        run._crm_continue(TimeBudget(), commit=False)
        line = run.line_ids.filtered(lambda ln: ln.transaction_id == tx)
        self.assertEqual(line.kind, "amount_differs")

        def check(result):
            self._notified("0 difference(s) repaired")(result)
            self.assertEqual(line.state, "explained")

        return line, check

    def test_setups_cover_every_public_method(self):
        """A public method added without a set-up here fails this test."""
        self.assertEqual(set(self.SETUPS), discover_public_methods(self.registry))

    def test_every_public_method_answers_over_xmlrpc(self):
        for (model, method), setup in sorted(self.SETUPS.items()):
            with self.subTest(model=model, method=method), self.env.cr.savepoint():
                record, check = getattr(self, setup)(method)
                record.env.flush_all()
                try:
                    result = self._xmlrpc(model, method, record.ids)
                except xmlrpc.client.Fault as fault:
                    self.fail(f"{model}.{method} over XML-RPC: {fault.faultCode} {fault.faultString}")
                self.env.invalidate_all()
                check(result)

    def test_public_methods_answer_over_jsonrpc(self):
        sync = self._jsonrpc("res.partner", "action_crm_stripe_sync", self.partner.ids)
        self.assertNotIn("error", sync)
        self.assertEqual(sync["result"]["params"]["type"], "success")
        subscription = self._subscription()
        self.env.flush_all()
        start = self._jsonrpc("crm.subscription", "action_start", subscription.ids)
        self.assertIs(start.get("result"), True, start)
        self.env.invalidate_all()
        self.assertEqual(subscription.state, "active")

    def test_method_that_cannot_run_faults_with_the_user_error(self):
        """A method called in a state where it cannot run answers with the UserError that says
        what to do, never a marshalling error."""
        active = self._subscription("active")
        invoice = self._crm_invoice(50.0)  # the customer has no saved card
        self.env.flush_all()
        cases = [
            ("crm.subscription", "action_start", active.ids, "Only a draft subscription can be started."),
            ("account.move", "action_crm_charge_saved_method", invoice.ids, "has no saved payment method"),
            ("account.move", "action_crm_refund", invoice.ids, "no Stripe payment left to refund"),
        ]
        for model, method, ids, message in cases:
            with self.subTest(method=method), self.assertRaises(xmlrpc.client.Fault) as caught:
                self._xmlrpc(model, method, ids)
            # Odoo's fault code of a UserError (2, "warning"), its message as the fault string.
            self.assertEqual(caught.exception.faultCode, 2, caught.exception.faultString)
            self.assertIn(message, caught.exception.faultString)
