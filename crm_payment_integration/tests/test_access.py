"""Access: no one acts where they do not belong, over XML-RPC and JSON-RPC as in the UI.

The public methods of the add-on's models are discovered from the registry; each one has an
expectation below (who must be refused on which record, who may act), and the test fails when
a new public method appears without one. A refused call changes nothing in Odoo and sends
nothing to Stripe (counted at the gateway's HTTP client)."""

import json
import xmlrpc.client
from collections import namedtuple
from datetime import date, timedelta
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.service.model import get_public_method
from odoo.tests import HttpCase, new_test_user, tagged

from .common import CrmPaymentCommon, FakeCheckout

MODULE = "odoo.addons.crm_payment_integration."

# A case: the records the method is called on (an empty recordset: a model-level call), its
# arguments, the users who must be refused, and the user who may act (None: covered by the
# test named in ``covered_by``).
Case = namedtuple("Case", "records args kwargs refused allowed covered_by", defaults=((), {}, (), None, None))

# (model, public method) -> the builder of its case. A new public method needs a line here.
EXPECTATIONS = {
    ("account.move", "action_crm_send_payment_link"): "_case_invoice_send_link",
    ("account.move", "action_crm_charge_saved_method"): "_case_invoice_charge",
    ("account.move", "action_crm_refund"): "_case_invoice_refund",
    ("crm.lead", "action_crm_create_subscription"): "_case_lead",
    ("crm.lead", "action_crm_view_subscriptions"): "_case_lead",
    ("crm.lead", "action_crm_request_payment"): "_case_lead",
    ("crm.lead", "action_crm_view_payments"): "_case_lead",
    ("crm.payment.event", "action_crm_reprocess"): "_case_event_reprocess",
    ("crm.payment.event", "write"): "_case_event_write",
    ("crm.payment.event", "unlink"): "_case_event_unlink",
    ("crm.subscription", "action_view_invoices"): "_case_subscription_read",
    ("crm.subscription", "action_start"): "_case_subscription_start",
    ("crm.subscription", "action_cancel"): "_case_subscription_state",
    ("crm.subscription", "action_cancel_at_period_end"): "_case_subscription_state",
    ("crm.subscription", "action_reactivate"): "_case_subscription_reactivate",
    ("crm.subscription", "action_pause"): "_case_subscription_state",
    ("crm.subscription", "action_resume"): "_case_subscription_resume",
    ("crm.subscription", "create"): "_case_subscription_create",
    ("crm.subscription", "write"): "_case_subscription_write",
    ("crm.subscription.line", "create"): "_case_line_create",
    ("crm.subscription.line", "write"): "_case_line_write",
    ("crm.subscription.line", "unlink"): "_case_line_unlink",
    ("crm.subscription.template", "action_view_subscriptions"): "_case_template",
    ("payment.provider", "action_crm_register_webhook"): "_case_provider",
    ("payment.provider", "action_crm_import_stripe_subscriptions"): "_case_provider",
    ("payment.transaction", "action_crm_cancel_charge"): "_case_transaction",
    ("payment.transaction", "action_crm_open_refund_wizard"): "_case_transaction",
    ("res.partner", "action_crm_view_subscriptions"): "_case_partner_read",
    ("res.partner", "action_crm_view_transactions"): "_case_partner_read",
    ("res.partner", "action_crm_view_tokens"): "_case_partner_read",
    ("res.partner", "action_crm_send_setup_link"): "_case_partner_setup_link",
    ("res.partner", "action_crm_charge"): "_case_partner_charge",
    ("res.partner", "action_crm_stripe_sync"): "_case_partner_sync",
    ("res.partner", "write"): "_case_partner_write",
    ("crm.payment.charge.wizard", "action_charge"): "_case_charge_wizard",
    ("crm.payment.refund.wizard", "action_refund"): "_case_refund_wizard",
    ("crm.payment.request.wizard", "action_confirm"): "_case_request_wizard",
    ("crm.subscription.cancel.wizard", "action_confirm"): "_case_cancel_wizard",
    ("crm.payment.dispute", "action_crm_submit_evidence"): "_case_dispute_evidence",
    ("crm.payment.dispute", "action_crm_refresh"): "_case_dispute_refresh",
    ("crm.payment.dispute.evidence.wizard", "action_submit"): "_case_evidence_wizard",
    ("crm.payment.dispute.evidence.wizard", "create"): "_case_evidence_wizard_create",
    ("crm.payment.drift", "action_crm_repair"): "_case_drift_repair",
    ("crm.payment.audit", "write"): "_case_audit_write",
    ("crm.payment.audit", "unlink"): "_case_audit_unlink",
    ("crm.payment.risk.flag", "action_crm_clear"): "_case_risk_flag",
    ("crm.payment.risk.flag", "write"): "_case_risk_flag_write",
    ("crm.payment.risk.clear.wizard", "action_confirm"): "_case_risk_clear_wizard",
    ("res.partner", "action_crm_send_statement"): "_case_partner_statement",
    ("crm.collection.overview", "action_send_reminder"): "_case_collection_row",
    ("crm.collection.overview", "action_skip"): "_case_collection_row",
    ("crm.collection.overview", "action_call"): "_case_collection_row",
    ("crm.collection.overview", "action_send_statement"): "_case_collection_row",
    ("crm.collection.promise", "create"): "_case_promise_create",
    ("crm.collection.promise", "write"): "_case_promise_write",
}


def discover_public_methods(env):
    """Every (model, name) of a public method defined by a class of this add-on, and whether
    Odoo's RPC refuses it anyway (``@api.private`` somewhere in the class hierarchy)."""
    found = {}
    for model_name in env.registry:
        model = env[model_name]
        for klass in type(model).__mro__:
            if not klass.__module__.startswith(MODULE):
                continue
            for name, value in vars(klass).items():
                if name.startswith("_") or not callable(value):
                    continue
                try:
                    get_public_method(model, name)
                    found[model_name, name] = True
                except AccessError:
                    found[model_name, name] = False
    return found


class CountingStripe(FakeCheckout):
    """Stripe (localstripe, Checkout answered in Stripe's shape) with every request counted."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def request(self, method, url, headers, post_data=None):
        self.count += 1
        return super().request(method, url, headers, post_data)


@tagged("post_install", "-at_install")
class TestAccess(CrmPaymentCommon, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.company_2 = env["res.company"].create(
            {"name": "Second Company", "currency_id": cls.company.currency_id.id}
        )
        cls.provider_2 = cls._crm_make_provider(cls.company_2)
        cls.product = env["product.product"].create(
            {"name": "Support plan", "type": "service", "list_price": 100.0}
        )

        def user(login, groups, **values):
            values.setdefault("company_id", cls.company.id)
            values.setdefault("company_ids", [(6, 0, [values["company_id"]])])
            return new_test_user(env, login=login, groups=groups, password=login + "-pass", **values)

        cls.sales_own = user("acc_sales_own", "sales_team.group_sale_salesman")
        cls.sales_other = user("acc_sales_other", "sales_team.group_sale_salesman")
        cls.sales_all = user("acc_sales_all", "sales_team.group_sale_salesman_all_leads")
        partner_groups = "base.group_partner_manager"
        cls.billing_1 = user("acc_billing_1", f"account.group_account_invoice,{partner_groups}")
        cls.billing_2 = user(
            "acc_billing_2", f"account.group_account_invoice,{partner_groups}", company_id=cls.company_2.id
        )
        cls.accountant = user("acc_accountant", f"account.group_account_manager,{partner_groups}")
        cls.admin = user(
            "acc_admin",
            f"base.group_system,account.group_account_manager,sales_team.group_sale_manager,{partner_groups}",
            company_ids=[(6, 0, [cls.company.id, cls.company_2.id])],
        )
        # Two customers of company 1, each with a card saved in Stripe, and their portal users.
        cls.customer_a = cls._customer("Customer A", cls.sales_other)
        cls.customer_b = cls._customer("Customer B", cls.sales_other)
        cls.token_a = cls.customer_a._crm_default_token()
        cls.token_b = cls.customer_b._crm_default_token()
        cls.portal_a = user(
            "acc_portal_a",
            "base.group_portal",
            partner_id=env["res.partner"].create({"name": "Ann of A", "parent_id": cls.customer_a.id}).id,
        )
        cls.portal_b = user(
            "acc_portal_b",
            "base.group_portal",
            partner_id=env["res.partner"].create({"name": "Bob of B", "parent_id": cls.customer_b.id}).id,
        )

    @classmethod
    def _customer(cls, name, salesperson):
        partner = cls.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": f"{name.lower().replace(' ', '.')}@example.com",
                "company_id": cls.company.id,
                "user_id": salesperson.id,
            }
        )
        partner.action_crm_stripe_sync()
        partner_customer = partner.stripe_customer_id
        cls._crm_attach_card(cls, partner_customer)
        partner.action_crm_stripe_sync()
        return partner

    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(CountingStripe())

    # === RPC === #

    def _password(self, user):
        return user.login + "-pass"

    def _xmlrpc(self, user, model, method, args, kwargs):
        """Call over XML-RPC; return ``(error name or None, result or message)``."""
        try:
            result = self.xmlrpc_object.execute_kw(
                self.env.cr.dbname, user.id, self._password(user), model, method, args, kwargs
            )
        except xmlrpc.client.Fault as fault:
            names = {2: "UserError", 4: "AccessError", 3: "AccessDenied"}
            return names.get(fault.faultCode, "ServerError"), fault.faultString
        return None, result

    def _jsonrpc(self, user, model, method, args, kwargs):
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 1,
            "params": {
                "service": "object",
                "method": "execute_kw",
                "args": [self.env.cr.dbname, user.id, self._password(user), model, method, args, kwargs],
            },
        }
        answer = self.url_open(
            "/jsonrpc", data=json.dumps(payload), headers={"Content-Type": "application/json"}
        ).json()
        if "error" in answer:
            data = answer["error"].get("data", {})
            return data.get("name", "").rsplit(".", 1)[-1] or "ServerError", data.get("message", "")
        return None, answer.get("result")

    def _rpc_args(self, case):
        return ([case.records.ids] if case.records.ids else []) + list(case.args)

    def _snapshot(self, records):
        """What a call could change: the records themselves, and rows it could add anywhere."""
        self.env.flush_all()
        self.env.invalidate_all()
        counts = {}
        for table in (
            "account_move",
            "payment_transaction",
            "crm_subscription",
            "crm_subscription_line",
            "crm_payment_event",
            "crm_stripe_customer",
            "mail_mail",
            "mail_message",
        ):
            self.env.cr.execute(f"SELECT count(*), max(write_date) FROM {table}")  # noqa: S608
            counts[table] = self.env.cr.fetchone()
        fields = [
            name for name in ("write_date", "state", "company_id", "payload") if name in records._fields
        ]
        values = records.sudo().exists().read(fields) if records.ids else []
        return counts, values

    def _assert_refused(self, model, method, case, user):
        before, stripe_before = self._snapshot(case.records), self.stripe.count
        for protocol, call in (("XML-RPC", self._xmlrpc), ("JSON-RPC", self._jsonrpc)):
            error, message = call(user, model, method, self._rpc_args(case), dict(case.kwargs))
            self.assertIn(
                error,
                ("AccessError", "UserError", "ValidationError"),
                f"{user.login} must be refused {model}.{method} over {protocol}: {message}",
            )
        self.assertEqual(self.stripe.count, stripe_before, f"{model}.{method} by {user.login} reached Stripe")
        self.assertEqual(
            self._snapshot(case.records), before, f"{model}.{method} by {user.login} changed data"
        )

    # === THE EXPECTATIONS === #

    def test_every_public_method_has_an_expectation(self):
        discovered = discover_public_methods(self.env)
        remote = {key for key, callable_remotely in discovered.items() if callable_remotely}
        self.assertFalse(
            remote - set(EXPECTATIONS),
            "public methods of the add-on without an access expectation in test_access.EXPECTATIONS",
        )
        self.assertFalse(set(EXPECTATIONS) - remote, "expectations of methods that no longer exist")
        # What Odoo refuses remotely anyway (``@api.private`` in the hierarchy, e.g. init).
        self.assertIn(("account.move", "init"), discovered)
        self.assertFalse(discovered["account.move", "init"])

    def test_refused_over_rpc_and_allowed_users_act(self):
        for (model, method), builder in sorted(EXPECTATIONS.items()):
            case = getattr(self, builder)(model, method)
            with self.subTest(model=model, method=method):
                self.assertTrue(case.refused, f"{model}.{method}: name who must be refused")
                for user in case.refused:
                    self._assert_refused(model, method, case, user)
                if case.allowed:
                    error, message = self._jsonrpc(
                        case.allowed, model, method, self._rpc_args(case), dict(case.kwargs)
                    )
                    self.assertIsNone(error, f"{case.allowed.login} may call {model}.{method}: {message}")
                else:
                    self.assertTrue(case.covered_by, f"{model}.{method}: who may act, or which test says so")

    # === CASE BUILDERS === #

    def _invoice(self, partner=None, user=None, post=True):
        return self._crm_invoice(
            100.0,
            partner=partner or self.customer_a,
            post=post,
            invoice_user_id=(user or self.sales_other).id,
        )

    def _subscription(self, user=None, state="draft", token=None, **values):
        subscription = self.env["crm.subscription"].create(
            {
                "partner_id": self.customer_a.id,
                "user_id": (self.sales_other if user is None else user).id,
                "payment_token_id": (token or self.token_a).id,
                "start_date": date.today(),
                "line_ids": [(0, 0, {"product_id": self.product.id, "quantity": 1, "price_unit": 100.0})],
                **values,
            }
        )
        if state != "draft":
            subscription.write({"state": state, "next_invoice_date": date(2099, 1, 1)})
        return subscription

    def _case_invoice_send_link(self, model, method):
        return Case(self._invoice(), refused=(self.billing_2, self.portal_b), allowed=self.billing_1)

    def _case_invoice_charge(self, model, method):
        return Case(self._invoice(), refused=(self.billing_2, self.sales_all), allowed=self.billing_1)

    def _case_invoice_refund(self, model, method):
        return Case(
            self._invoice(),
            refused=(self.billing_2, self.sales_all),
            covered_by="test_payments (refund of a charged invoice)",
        )

    def _case_lead(self, model, method):
        lead = self.env["crm.lead"].create(
            {
                "name": "Desks",
                "type": "opportunity",
                "partner_id": self.customer_a.id,
                "user_id": self.sales_other.id,
            }
        )
        return Case(lead, refused=(self.sales_own, self.billing_2), allowed=self.sales_all)

    def _event(self, event_id):
        from .common import stripe_event

        event = stripe_event(
            "customer.updated", {"id": "cus_none_" + event_id, "object": "customer"}, event_id
        )
        Event = self.env["crm.payment.event"]
        return Event.browse(Event._crm_ingest(self.provider.sudo(), event, json.dumps(event)))

    def _case_event_reprocess(self, model, method):
        return Case(
            self._event(f"evt_acc_reprocess_{method}"),
            refused=(self.sales_own, self.sales_all, self.billing_2, self.portal_a),
            allowed=self.billing_1,
        )

    def _case_event_write(self, model, method):
        return Case(
            self._event("evt_acc_write"),
            args=[{"state": "done", "company_id": self.company_2.id}],
            refused=(self.billing_1, self.accountant, self.admin),
            covered_by="test_ledger_is_append_only (nobody edits an event)",
        )

    def _case_event_unlink(self, model, method):
        return Case(
            self._event("evt_acc_unlink"),
            refused=(self.billing_1, self.accountant, self.sales_all),
            allowed=self.admin,
        )

    def _case_subscription_read(self, model, method):
        return Case(self._subscription(), refused=(self.sales_own, self.billing_2), allowed=self.portal_a)

    def _case_subscription_start(self, model, method):
        return Case(
            self._subscription(),
            refused=(self.portal_a, self.sales_own, self.billing_2),
            allowed=self.sales_all,
        )

    def _case_subscription_state(self, model, method):
        return Case(
            self._subscription(state="active"),
            refused=(self.portal_a, self.portal_b, self.sales_own, self.billing_2),
            allowed=self.sales_all,
        )

    def _case_subscription_reactivate(self, model, method):
        return Case(
            self._subscription(state="cancelled"),
            refused=(self.portal_a, self.sales_own, self.billing_2),
            allowed=self.billing_1,  # reads the invoices: salespeople without Invoicing cannot
        )

    def _case_subscription_resume(self, model, method):
        return Case(
            self._subscription(state="paused"),
            refused=(self.portal_a, self.sales_own, self.billing_2),
            allowed=self.sales_all,
        )

    def _case_subscription_create(self, model, method):
        values = {
            "partner_id": self.customer_a.id,
            "user_id": self.sales_own.id,
            "line_ids": [(0, 0, {"product_id": self.product.id, "quantity": 1, "price_unit": 10.0})],
        }
        return Case(self.env[model], args=[values], refused=(self.portal_a,), allowed=self.sales_own)

    def _case_subscription_write(self, model, method):
        return Case(
            self._subscription(),
            args=[{"interval_number": 2}],
            refused=(self.portal_a, self.sales_own, self.billing_2),
            allowed=self.sales_all,
        )

    def _case_line_create(self, model, method):
        values = {
            "subscription_id": self._subscription().id,
            "product_id": self.product.id,
            "price_unit": 5.0,
        }
        return Case(
            self.env[model], args=[values], refused=(self.portal_a, self.sales_own), allowed=self.sales_all
        )

    def _case_line_write(self, model, method):
        return Case(
            self._subscription().line_ids,
            args=[{"quantity": 3}],
            refused=(self.portal_a, self.sales_own, self.billing_2),
            allowed=self.sales_all,
        )

    def _case_line_unlink(self, model, method):
        return Case(
            self._subscription().line_ids,
            refused=(self.portal_a, self.sales_own, self.billing_2),
            allowed=self.sales_all,
        )

    def _case_template(self, model, method):
        template = self.env[model].create({"name": "Pro", "company_id": self.company.id})
        return Case(template, refused=(self.portal_a, self.billing_2), allowed=self.sales_own)

    def _case_provider(self, model, method):
        return Case(
            self.provider,
            refused=(self.billing_1, self.accountant, self.sales_all),
            covered_by="test_provider / test_stripe_billing (the administrator registers and imports)",
        )

    def _pending_charge(self):
        tx = self.env["payment.transaction"]._crm_create(
            self.customer_a,
            40.0,
            self.company.currency_id,
            "off_session",
            invoices=self._invoice(),
            token=self.token_a,
        )
        tx.write({"state": "pending", "provider_reference": "pi_acc_" + str(tx.id)})
        return tx

    def _case_transaction(self, model, method):
        return Case(
            self._pending_charge(),
            refused=(self.billing_2, self.sales_all, self.portal_a),
            covered_by="test_payments (cancel a charge waiting for 3-D Secure, refund)",
        )

    def _case_partner_read(self, model, method):
        return Case(self.customer_a, refused=(self.billing_2,), allowed=self.sales_own)

    def _case_partner_setup_link(self, model, method):
        return Case(self.customer_a, refused=(self.billing_2, self.portal_a), allowed=self.sales_own)

    def _case_partner_charge(self, model, method):
        return Case(self.customer_a, refused=(self.billing_2, self.sales_all), allowed=self.billing_1)

    def _case_partner_sync(self, model, method):
        return Case(self.customer_a, refused=(self.billing_2, self.portal_a), allowed=self.billing_1)

    def _case_partner_write(self, model, method):
        return Case(
            self.customer_a,
            args=[{"phone": "+32 2 000 00 00"}],
            refused=(self.billing_2, self.portal_a),
            allowed=self.billing_1,
        )

    def _wizard(self, model, user, values):
        """A wizard the user opened (theirs: transient records are their creator's)."""
        return self.env[model].with_user(user).sudo().create(values).with_user(user).sudo(False)

    def _case_charge_wizard(self, model, method):
        values = {
            "partner_id": self.customer_a.id,
            "invoice_id": self._invoice().id,
            "token_id": self.token_a.id,
            "amount": 10.0,
            "reason": "Extra hours",
        }
        return Case(
            self._wizard(model, self.billing_2, values),
            refused=(self.billing_2,),
            covered_by="test_partner_charge_with_another_customers_card and test_payments (partner charge)",
        )

    def _case_refund_wizard(self, model, method):
        tx = self._pending_charge()
        return Case(
            self._wizard(model, self.billing_2, {"transaction_id": tx.id, "amount": 1.0}),
            refused=(self.billing_2,),
            covered_by="test_payments (refund wizard)",
        )

    def _case_request_wizard(self, model, method):
        lead = self.env["crm.lead"].create(
            {
                "name": "Chairs",
                "type": "opportunity",
                "partner_id": self.customer_a.id,
                "user_id": self.sales_other.id,
            }
        )
        return Case(
            self._wizard(model, self.sales_own, {"lead_id": lead.id, "request_type": "full", "amount": 50.0}),
            refused=(self.sales_own,),
            covered_by="test_checkout (a salesperson requests a payment on their opportunity)",
        )

    def _case_cancel_wizard(self, model, method):
        values = {"subscription_id": self._subscription(state="active").id, "reason": "Too expensive"}
        return Case(
            self._wizard(model, self.sales_own, values),
            refused=(self.sales_own,),
            covered_by="test_backoffice_ux (a salesperson cancels their subscription at period end)",
        )

    def _dispute(self):
        """A dispute of customer A's payment; its salesperson is sales_other."""
        return (
            self.env["crm.payment.dispute"]
            .sudo()
            .create(
                {
                    "stripe_dispute_id": "dp_acc_" + str(self._pending_charge().id),
                    "provider_id": self.provider.id,
                    "company_id": self.company.id,
                    "partner_id": self.customer_a.id,
                    "user_id": self.sales_other.id,
                    "amount": 40.0,
                    "currency_id": self.company.currency_id.id,
                    "state": "needs_response",
                }
            )
            .sudo(False)
        )

    def _case_dispute_evidence(self, model, method):
        return Case(
            self._dispute(),
            refused=(self.sales_own, self.billing_2, self.portal_a),
            allowed=self.billing_1,
        )

    def _case_dispute_refresh(self, model, method):
        return Case(
            self._dispute(),
            refused=(self.sales_own, self.billing_2, self.portal_a),
            covered_by="test_disputes.test_read_again_from_stripe (an accountant re-reads a dispute)",
        )

    def _case_evidence_wizard(self, model, method):
        return Case(
            self._wizard(model, self.sales_own, {"dispute_id": self._dispute().id}),
            refused=(self.sales_own,),
            covered_by="test_disputes.test_created_evidence_submitted_then_won",
        )

    def _case_evidence_wizard_create(self, model, method):
        return Case(
            self.env[model],
            args=[{"dispute_id": self._dispute().id}],
            refused=(self.billing_2, self.portal_a),
            allowed=self.billing_1,
            covered_by="test_disputes.test_evidence_form_only_for_a_dispute_the_user_may_read",
        )

    def _case_drift_repair(self, model, method):
        run = (
            self.env["crm.payment.drift.run"]
            .sudo()
            .create(
                {
                    "provider_id": self.provider.id,
                    "company_id": self.company.id,
                    "date_from": "2026-01-01 00:00:00",
                    "date_to": "2026-01-31 00:00:00",
                    "state": "done",
                }
            )
        )
        line = (
            self.env[model]
            .sudo()
            .create(
                {
                    "run_id": run.id,
                    "company_id": self.company.id,
                    "provider_id": self.provider.id,
                    "object_type": "charges",
                    "stripe_id": "pi_acc_ghost",
                    "kind": "missing_in_stripe",
                    "odoo_amount": 1000,
                }
            )
        )
        return Case(
            line.sudo(False),
            refused=(self.sales_all, self.billing_2, self.portal_a),
            allowed=self.billing_1,
        )

    def _audit_line(self):
        self.customer_a.action_crm_stripe_sync()  # a call: one audit line
        return self.env["crm.payment.audit"].search([("company_id", "=", self.company.id)], limit=1)

    def _case_audit_write(self, model, method):
        return Case(
            self._audit_line(),
            args=[{"operation": "forged"}],
            refused=(self.billing_1, self.accountant, self.admin),
            covered_by="test_protection (nobody edits an audit line, the superuser included)",
        )

    def _case_audit_unlink(self, model, method):
        return Case(
            self._audit_line(),
            refused=(self.billing_1, self.accountant, self.admin),
            covered_by="test_protection (nobody deletes an audit line, the superuser included)",
        )

    def _risk_flag(self, key):
        rule = self.env["crm.payment.risk.rule"]._crm_rules(self.company)["early_fraud_warning"]
        return self.env["crm.payment.risk.flag"]._crm_flag(
            rule, self.env["payment.transaction"], self.customer_a, key, {}, "Fraud warning"
        )

    def _case_risk_flag(self, model, method):
        return Case(
            self._risk_flag("efw:acc1"), refused=(self.sales_all, self.billing_2), allowed=self.billing_1
        )

    def _case_risk_flag_write(self, model, method):
        return Case(
            self._risk_flag("efw:acc3"),
            args=[{"state": "cleared", "hold_charges": False}],
            refused=(self.billing_1, self.billing_2, self.sales_all, self.admin),
            covered_by="test_protection (flags are cleared through the dialog only)",
        )

    def _case_risk_clear_wizard(self, model, method):
        values = {
            "flag_ids": [(6, 0, self._risk_flag("efw:acc2").ids)],
            "reason": "Checked with the customer",
        }
        return Case(
            self._wizard(model, self.billing_2, values),
            refused=(self.billing_2,),
            covered_by="test_protection (an accountant clears a flag; charges resume)",
        )

    def _case_partner_statement(self, model, method):
        return Case(
            self.customer_a, refused=(self.billing_2, self.sales_all, self.portal_a), allowed=self.billing_1
        )

    def _case_collection_row(self, model, method):
        overdue = date.today() - timedelta(days=10)
        self._crm_invoice(100.0, partner=self.customer_a, invoice_date=overdue, invoice_date_due=overdue)
        self.env.flush_all()
        row = self.env[model].search([("partner_id", "=", self.customer_a.id)])
        return Case(row, refused=(self.billing_2, self.sales_all, self.portal_a), allowed=self.billing_1)

    def _case_promise_create(self, model, method):
        values = {"partner_id": self.customer_a.id, "date": str(date.today()), "amount": 100.0}
        return Case(self.env[model], args=[values], refused=(self.portal_a,), allowed=self.sales_own)

    def _case_promise_write(self, model, method):
        values = {"partner_id": self.customer_a.id, "date": str(date.today()), "amount": 100.0}
        promise = self.env[model].create(values)
        return Case(
            promise, args=[{"note": "Called again."}], refused=(self.portal_a,), allowed=self.sales_own
        )

    # === A STRIPE-BILLED SUBSCRIPTION: THE PORTAL CANNOT CANCEL IT OVER RPC === #

    def test_portal_user_cannot_cancel_in_stripe_over_rpc(self):
        from .test_stripe_billing import StripeBillingCommon

        remote = StripeBillingCommon._stripe_subscription(
            self, customer_id=self.customer_a.stripe_customer_id
        )
        mirror = self.env["crm.subscription"]._crm_sync_stripe_subscription(self.provider.sudo(), remote, {})
        self.assertEqual((mirror.managed_by, mirror.partner_id), ("stripe", self.customer_a))
        self.assertTrue(mirror.with_user(self.portal_a).has_access("read"), "the customer sees it")
        stripe_before = self.stripe.count
        for method in ("action_cancel", "action_cancel_at_period_end", "action_reactivate"):
            for user in (self.portal_a, self.portal_b, self.sales_own, self.billing_2):
                self._assert_refused("crm.subscription", method, Case(mirror), user)
        self.assertEqual(self.stripe.count, stripe_before, "nothing reached Stripe")
        self.assertEqual(self.gateway.client.v1.subscriptions.retrieve(remote["id"]).status, "active")
        self.assertEqual(mirror.state, "active")
        # Those who may act still can: Stripe first (after Odoo's checks), the mirror follows.
        error, message = self._jsonrpc(self.sales_all, "crm.subscription", "action_cancel", [mirror.ids], {})
        self.assertIsNone(error, message)
        self.assertEqual(self.gateway.client.v1.subscriptions.retrieve(remote["id"]).status, "canceled")
        mirror.invalidate_recordset()
        self.assertEqual(mirror.state, "cancelled")

    def test_stripe_acted_then_odoo_failed_the_webhook_reconciles(self):
        from .common import stripe_event
        from .test_stripe_billing import StripeBillingCommon

        remote = StripeBillingCommon._stripe_subscription(
            self, customer_id=self.customer_a.stripe_customer_id
        )
        self.provider.sudo().crm_billing_mirror = "linked"
        mirror = self.env["crm.subscription"]._crm_sync_stripe_subscription(self.provider.sudo(), remote, {})
        Subscription = type(self.env["crm.subscription"])
        # Over JSON-RPC as a client would: the failed request rolls back what Odoo did.
        with patch.object(Subscription, "message_post", side_effect=UserError("The chatter is down.")):
            error, message = self._jsonrpc(
                self.sales_all, "crm.subscription", "action_cancel", [mirror.ids], {}
            )
        self.assertEqual((error, message), ("UserError", "The chatter is down."))
        mirror.invalidate_recordset()
        self.assertEqual(mirror.state, "active", "Odoo could not record it")
        cancelled = self.gateway.client.v1.subscriptions.retrieve(remote["id"]).to_dict()
        self.assertEqual(cancelled["status"], "canceled", "Stripe did it")
        event = stripe_event("customer.subscription.deleted", cancelled)
        Event = self.env["crm.payment.event"]
        Event._crm_ingest(self.provider.sudo(), event, json.dumps(event))
        Event._crm_process_due()
        mirror.invalidate_recordset()
        self.assertEqual(mirror.state, "cancelled", "the webhook brought Odoo in step with Stripe")

    # === ANOTHER COMPANY'S PENDING CHARGE === #

    def test_billing_user_of_another_company_cannot_cancel_a_charge(self):
        tx = self._pending_charge()
        for protocol in (self._xmlrpc, self._jsonrpc):
            error, message = protocol(
                self.billing_2, "payment.transaction", "action_crm_cancel_charge", [tx.ids], {}
            )
            self.assertEqual(error, "AccessError", message)
        self.assertEqual(self.stripe.count, 0)
        tx.invalidate_recordset()
        self.assertEqual(tx.state, "pending")

    # === INVARIANTS ARE CONSTRAINTS === #

    def test_subscription_with_another_customers_card(self):
        with self.assertRaisesRegex(ValidationError, "belongs to Customer B, not to Customer A"):
            self._subscription(token=self.token_b)
        subscription = self._subscription()
        with self.assertRaisesRegex(ValidationError, "belongs to Customer B"):
            subscription.with_user(self.sales_all).payment_token_id = self.token_b
        error, message = self._jsonrpc(
            self.sales_all,
            "crm.subscription",
            "write",
            [subscription.ids],
            {"vals": {"payment_token_id": self.token_b.id}},
        )
        self.assertEqual(error, "ValidationError")
        self.assertIn("belongs to Customer B, not to Customer A", message)
        with self.assertRaisesRegex(ValidationError, "belongs to Customer A, not to Customer B"):
            self._subscription().partner_id = self.customer_b  # the card stays A's: refused too

    def test_partner_charge_with_another_customers_card(self):
        Wizard = self.env["crm.payment.charge.wizard"].with_user(self.billing_1)
        with self.assertRaisesRegex(ValidationError, "belongs to Customer B, not to Customer A"):
            Wizard.create(
                {"partner_id": self.customer_a.id, "token_id": self.token_b.id, "amount": 5.0, "reason": "x"}
            )
        with self.assertRaisesRegex(ValidationError, "belongs to Customer B, not to Customer A"):
            self.env["payment.transaction"]._crm_create(
                self.customer_a, 5.0, self.company.currency_id, "off_session", token=self.token_b
            )
        self.assertEqual(self.stripe.count, 0)
        # The customer's own card is charged.
        wizard = Wizard.create(
            {"partner_id": self.customer_a.id, "token_id": self.token_a.id, "amount": 5.0, "reason": "x"}
        )
        wizard.action_charge()
        tx = self.env["payment.transaction"].search(
            [("partner_id", "=", self.customer_a.id), ("crm_reason", "=", "x")]
        )
        self.assertEqual((tx.state, tx.token_id), ("done", self.token_a))

    def test_billing_run_never_charges_another_customers_card(self):
        subscription = self._subscription(start_date=date(2030, 1, 1))
        subscription.action_start()
        # Data already inconsistent (written before the constraint existed, or in SQL).
        self.env.cr.execute(
            "UPDATE crm_subscription SET payment_token_id = %s WHERE id = %s",
            [self.token_b.id, subscription.id],
        )
        subscription.invalidate_recordset()
        self.env["crm.subscription"]._cron_bill(now=date(2030, 1, 1))
        invoice = subscription.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertFalse(invoice.transaction_ids.filtered(lambda tx: tx.token_id == self.token_b))
        charges = [
            r for r in self.stripe.requests if r["path"] == "/v1/payment_intents" and r["method"] == "post"
        ]
        self.assertFalse(charges, "no PaymentIntent was created: B's card was not charged")
        self.assertEqual(
            invoice.transaction_ids.crm_flow, "checkout", "the customer gets the link to pay instead"
        )

    # === THE LEDGER IS APPEND-ONLY === #

    def test_ledger_is_append_only(self):
        event = self._event("evt_acc_ledger")
        for user in (self.billing_1, self.admin):
            for vals in (
                {"state": "done"},
                {"company_id": self.company_2.id},
                {"payload": {}},
                {"event_type": "x"},
            ):
                with self.assertRaisesRegex(UserError, "Stripe events cannot be edited"):
                    event.with_user(user).write(vals)
                with self.assertRaisesRegex(UserError, "cannot be edited"):
                    event.with_user(user).with_context(crm_ledger_processing=True).write(vals)
            error, message = self._jsonrpc(
                user,
                "crm.payment.event",
                "write",
                [event.ids, {"company_id": self.company_2.id}],
                {"context": {"crm_ledger_processing": True}},
            )
            self.assertEqual(error, "UserError", message)
        with self.assertRaisesRegex(UserError, "cannot be edited"):
            event.sudo().write({"provider_id": self.provider_2.id})  # sudo without processing
        with self.assertRaisesRegex(UserError, "cannot be deleted"):
            event.with_user(self.billing_1).unlink()
        event.invalidate_recordset()
        self.assertEqual(
            (event.state, event.company_id, event.provider_id), ("pending", self.company, self.provider)
        )
        # Processing and reprocessing still write it.
        # (About no partner of ours: applied as ignored, with the reason.)
        event.with_user(self.billing_1).action_crm_reprocess()
        self.assertEqual(event.state, "ignored")
        event.with_user(self.billing_1).action_crm_reprocess()
        self.assertEqual((event.state, event.attempts), ("ignored", 1))
        # The chatter stays open.
        event.with_user(self.billing_1).message_post(body="Checked with Stripe support.")

    def test_payloads_are_for_accounting_and_admins(self):
        event = self._event("evt_acc_payload")
        for user in (self.billing_1, self.accountant, self.admin):
            self.assertIn(
                "cus_none_evt_acc_payload", event.with_user(user).read(["payload_text"])[0]["payload_text"]
            )
        self.assertEqual(event.with_user(self.sales_all).read(["state"])[0]["state"], "pending")
        for field in ("payload", "payload_text"):
            with self.assertRaises(AccessError):
                event.with_user(self.sales_all).read([field])
        error, message = self._jsonrpc(
            self.sales_all, "crm.payment.event", "read", [event.ids, ["payload"]], {}
        )
        self.assertEqual(error, "AccessError", message)
        self.assertFalse(
            self.env["crm.payment.event"].with_user(self.sales_own).search([]), "not their documents"
        )
        self.assertFalse(
            self.env["crm.payment.event"].with_user(self.billing_2).search([("id", "=", event.id)])
        )

    # === OWN DOCUMENTS ONLY === #

    def test_own_documents_salesperson(self):
        mine = self._subscription(user=self.sales_own)
        nobodys = self._subscription(user=self.env["res.users"])
        theirs = self._subscription(user=self.sales_other)
        subscriptions = mine | nobodys | theirs
        Subscription = self.env["crm.subscription"]
        visible = Subscription.with_user(self.sales_own).search([("id", "in", subscriptions.ids)])
        self.assertEqual(visible, mine | nobodys)
        self.assertEqual(
            Subscription.with_user(self.sales_all).search([("id", "in", subscriptions.ids)]), subscriptions
        )
        self.assertEqual(
            Subscription.with_user(self.billing_1).search([("id", "in", subscriptions.ids)]), subscriptions
        )
        self.assertFalse(Subscription.with_user(self.billing_2).search([("id", "in", subscriptions.ids)]))
        self.assertFalse(
            self.env["crm.subscription.line"]
            .with_user(self.sales_own)
            .search([("id", "in", theirs.line_ids.ids)])
        )
        # Transactions: those of their opportunities, invoices, subscriptions and customers.
        own_lead = self.env["crm.lead"].create(
            {
                "name": "Mine",
                "type": "opportunity",
                "partner_id": self.customer_a.id,
                "user_id": self.sales_own.id,
            }
        )
        Tx = self.env["payment.transaction"]
        currency = self.company.currency_id
        by_lead = Tx._crm_create(self.customer_a, 1.0, currency, "checkout", lead=own_lead)
        by_invoice = Tx._crm_create(
            self.customer_a, 1.0, currency, "checkout", invoices=self._invoice(user=self.sales_own)
        )
        other = Tx._crm_create(self.customer_a, 1.0, currency, "checkout", invoices=self._invoice())
        all_txs = by_lead | by_invoice | other
        self.assertEqual(
            Tx.with_user(self.sales_own).search([("id", "in", all_txs.ids)]), by_lead | by_invoice
        )
        self.assertEqual(Tx.with_user(self.sales_all).search([("id", "in", all_txs.ids)]), all_txs)
        # The customer's payment profile counts only what they may read.
        self.assertEqual(self.customer_a.with_user(self.sales_own).crm_payment_count, 2)
        # Stripe customers: those of the customers they follow up (or nobody does).
        Binding = self.env["crm.stripe.customer"]
        bindings = Binding.search([("partner_id", "in", (self.customer_a | self.customer_b).ids)])
        self.assertFalse(Binding.with_user(self.sales_own).search([("id", "in", bindings.ids)]))
        self.customer_b.user_id = self.sales_own
        self.assertEqual(
            Binding.with_user(self.sales_own).search([("id", "in", bindings.ids)]).partner_id, self.customer_b
        )
        self.assertEqual(Binding.with_user(self.sales_all).search([("id", "in", bindings.ids)]), bindings)

    # === FOUND IN REVIEW OF THE MERGED WORK === #

    def test_lost_answer_records_stay_in_their_company(self):
        """What was sent to Stripe (customer and card ids, amounts) is read in its company only."""
        Request = self.env["crm.stripe.request"].sudo()
        record = Request.create(
            {
                "provider_id": self.provider.id,
                "operation": "payment_intent",
                "reference": "INV/ACC/0001",
                "idempotency_key": "odoo-acc-review",
                "params": {"customer": "cus_acc", "amount": 1000},
            }
        )
        self.assertEqual(
            Request.with_user(self.billing_1).sudo(False).search([("id", "=", record.id)]), record
        )
        self.assertFalse(Request.with_user(self.billing_2).sudo(False).search([("id", "=", record.id)]))
        error, __ = self._jsonrpc(self.billing_2, "crm.stripe.request", "read", [record.ids, ["params"]], {})
        self.assertEqual(error, "AccessError")

    def test_default_card_moves_only_its_company_subscriptions(self):
        """A default card chosen in the portal pays the subscriptions of its own Stripe account:
        one of another company keeps its card, and nothing is refused halfway (Stripe then Odoo)."""
        self.customer_a.sudo().company_id = False  # a customer of both companies
        here = self._subscription(state="active", token=self.token_a)
        token_2 = (
            self.env["payment.token"]
            .sudo()
            .create(
                {
                    "provider_id": self.provider_2.id,
                    "payment_method_id": self.token_a.payment_method_id.id,
                    "partner_id": self.customer_a.id,
                    "provider_ref": "cus_acc_company_2",
                    "stripe_payment_method": "pm_acc_company_2",
                    "payment_details": "4242",
                }
            )
        )
        there = self._subscription(state="active", token=token_2, company_id=self.company_2.id)
        self.customer_a._crm_set_default_token(self.token_a)
        self.assertEqual((here.payment_token_id, there.payment_token_id), (self.token_a, token_2))
