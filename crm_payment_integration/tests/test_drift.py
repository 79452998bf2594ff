"""The drift check (issue 12, item 5) against localstripe (charges, refunds) and Stripe-shaped
disputes at the HTTP boundary (localstripe has none)."""

from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from ..models import crm_payment_drift
from ..services.budget import TimeBudget
from .common import CrmPaymentCommon
from .common_protection import FakeDisputes, dispute_object


@tagged("post_install", "-at_install")
class TestDrift(CrmPaymentCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Run = cls.env["crm.payment.drift.run"]

    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(FakeDisputes())
        self.token = self._crm_save_card()

    def _paid_invoice(self, amount):
        invoice = self._crm_invoice(amount)
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertTrue(self._crm_reconciled(invoice))
        return invoice, invoice.transaction_ids

    def _charge_in_stripe_only(self, amount_minor):
        """A payment made in Stripe's dashboard: Odoo never heard of it."""
        intent = self.gateway.client.v1.payment_intents.create(
            params={
                "amount": amount_minor,
                "currency": self.company.currency_id.name.lower(),
                "customer": self.customer_id,
                "payment_method": self.token.stripe_payment_method,
                "confirm": True,
                "off_session": True,
            }
        )
        self.assertEqual(intent.status, "succeeded")
        charge = intent.latest_charge
        return intent.id, charge if isinstance(charge, str) else charge.id

    def _check(self):
        run = self.Run._crm_start(self.provider.sudo())
        run._crm_continue(TimeBudget(), commit=False)
        self.assertEqual(run.state, "done", run.last_error)
        return run

    def _lines(self, run, stripe_id):
        return run.line_ids.filtered(lambda line: line.stripe_id == stripe_id)

    def test_drift_found_and_repaired(self):
        __, agreed_tx = self._paid_invoice(20.0)
        __, edited_tx = self._paid_invoice(50.0)
        # Someone edited the amount of a confirmed transaction in Odoo: 50.00 -> 45.00.
        self.env.cr.execute("UPDATE payment_transaction SET amount = 45.0 WHERE id = %s", [edited_tx.id])
        edited_tx.invalidate_recordset()
        stripe_intent, stripe_charge = self._charge_in_stripe_only(2500)
        # Odoo has a confirmed payment Stripe never had (another account, a restored database).
        ghost = self.env["payment.transaction"].create(
            {
                "provider_id": self.provider.id,
                "payment_method_id": self.env.ref("payment.payment_method_card").id,
                "partner_id": self.partner.id,
                "amount": 12.0,
                "currency_id": self.company.currency_id.id,
                "operation": "offline",
                "crm_flow": "off_session",
                "provider_reference": "pi_ghost_0000",
                "reference": "DRIFT-GHOST",
            }
        )
        ghost._set_done()
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE payment_transaction SET create_date = %s WHERE id = %s",
            [fields.Datetime.now() - timedelta(hours=1), ghost.id],
        )
        # A dispute Stripe opened about the agreed payment, before Odoo heard of it.
        intent = self.gateway.retrieve_payment_intent(agreed_tx.provider_reference)
        charge = intent["latest_charge"]
        remote = dispute_object(
            charge["id"] if isinstance(charge, dict) else charge,
            agreed_tx.provider_reference,
            2000,
            currency=self.company.currency_id.name.lower(),
        )
        self.stripe.disputes[remote["id"]] = remote

        run = self._check()
        self.assertFalse(self._lines(run, agreed_tx.provider_reference))
        self.assertGreaterEqual(run.charge_count, 3)
        self.assertEqual(run.dispute_count, 1)

        (missing,) = self._lines(run, stripe_charge)
        self.assertEqual(
            (missing.object_type, missing.kind, missing.stripe_amount, missing.stripe_intent_id),
            ("charges", "missing_in_odoo", 2500, stripe_intent),
        )
        self.assertTrue(missing.repairable)
        (amount,) = run.line_ids.filtered(lambda line: line.transaction_id == edited_tx)
        self.assertEqual(
            (amount.kind, amount.stripe_amount, amount.odoo_amount), ("amount_differs", 5000, 4500)
        )
        self.assertFalse(amount.repairable)
        (ghost_line,) = self._lines(run, "pi_ghost_0000")
        self.assertEqual(
            (ghost_line.kind, ghost_line.odoo_amount, ghost_line.transaction_id),
            ("missing_in_stripe", 1200, ghost),
        )
        (dispute_line,) = self._lines(run, remote["id"])
        self.assertEqual((dispute_line.kind, dispute_line.stripe_amount), ("missing_in_odoo", 2000))

        # Repair: what is safe is applied through the ledger, the rest explained.
        lines = missing | amount | ghost_line | dispute_line
        result = lines.with_user(self.accountant).action_crm_repair()
        self.assertIn("2 difference(s) repaired", result["params"]["message"])
        self.assertEqual(missing.state, "repaired", missing.result)
        imported = self.env["payment.transaction"].search([("provider_reference", "=", stripe_intent)])
        self.assertEqual((imported.state, imported.amount, imported.partner_id), ("done", 25.0, self.partner))
        event = self.env["crm.payment.event"].search([("stripe_event_id", "like", f"drift_{missing.id}_")])
        self.assertEqual((event.event_type, event.state), ("payment_intent.succeeded", "done"))
        self.assertEqual(dispute_line.state, "repaired", dispute_line.result)
        dispute = self.env["crm.payment.dispute"].search([("stripe_dispute_id", "=", remote["id"])])
        self.assertEqual((dispute.amount, dispute.transaction_id), (20.0, agreed_tx))
        self.assertEqual(amount.state, "explained")
        self.assertIn("never changed automatically", amount.result)
        self.assertEqual(ghost_line.state, "explained")
        self.assertEqual(edited_tx.amount, 45.0)  # nothing changed in the accounts
        self.assertEqual(ghost.state, "done")

        # Once repaired, the next check finds only what could not be repaired.
        again = self._check()
        self.assertFalse(self._lines(again, stripe_charge))
        self.assertFalse(self._lines(again, remote["id"]))
        self.assertEqual(self._lines(again, "pi_ghost_0000").kind, "missing_in_stripe")
        self.assertEqual(
            again.line_ids.filtered(lambda ln: ln.transaction_id == edited_tx).kind, "amount_differs"
        )

    def test_refund_made_in_stripe_and_status_of_a_dispute(self):
        __, tx = self._paid_invoice(30.0)
        refund = self.gateway.create_refund(
            {"payment_intent": tx.provider_reference, "amount": 1000}, "dash-r1"
        )
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        charge = intent["latest_charge"]
        remote = dispute_object(
            charge["id"] if isinstance(charge, dict) else charge,
            tx.provider_reference,
            3000,
            currency=self.company.currency_id.name.lower(),
        )
        self.stripe.disputes[remote["id"]] = remote
        self.env["crm.payment.dispute"]._crm_apply_stripe_dispute(self.provider.sudo(), dict(remote))
        remote["status"] = "under_review"  # changed in Stripe; its event was lost

        run = self._check()
        (refund_line,) = self._lines(run, refund["id"])
        self.assertEqual(
            (refund_line.object_type, refund_line.kind, refund_line.stripe_amount),
            ("refunds", "missing_in_odoo", 1000),
        )
        (status_line,) = self._lines(run, remote["id"])
        self.assertEqual(
            (status_line.kind, status_line.stripe_status, status_line.odoo_status),
            ("status_differs", "under_review", "needs_response"),
        )
        (refund_line | status_line).with_user(self.accountant).action_crm_repair()
        self.assertEqual((refund_line.state, status_line.state), ("repaired", "repaired"), refund_line.result)
        refund_tx = tx.child_transaction_ids
        self.assertEqual(
            (refund_tx.provider_reference, refund_tx.amount, refund_tx.state), (refund["id"], -10.0, "done")
        )
        self.assertEqual(status_line.dispute_id.state, "under_review")

    def test_budget_spent_resumes_where_it_stopped(self):
        self._paid_invoice(10.0)
        stripe_intent, stripe_charge = self._charge_in_stripe_only(700)
        run = self.Run._crm_start(self.provider.sudo())
        with patch.object(crm_payment_drift, "CHUNK_SIZE", 1):
            budget = TimeBudget()
            calls = {"n": 0}

            def allows_batch():
                calls["n"] += 1
                return calls["n"] <= 1  # one chunk, then the budget is spent

            budget.allows_batch = allows_batch
            run._crm_continue(budget, commit=False)
            self.assertEqual((run.state, run.phase, run.charge_count), ("running", "charges", 1))
            cursor = run.cursor
            self.assertTrue(cursor)
            run._crm_continue(TimeBudget(), commit=False)
        self.assertEqual(run.state, "done")
        self.env.cr.execute("SELECT count(*) FROM crm_payment_drift_seen WHERE run_id = %s", [run.id])
        self.assertEqual(self.env.cr.fetchone()[0], 0)  # the staging is emptied
        self.assertEqual(len(self._lines(run, stripe_charge)), 1)

    def test_cron_and_menu_and_access(self):
        self.env["crm.payment.drift.run"].search([]).unlink()
        self.Run._cron_drift_check(budget=TimeBudget())
        runs = self.Run.search([("provider_id", "=", self.provider.id)])
        self.assertEqual(len(runs), 1)
        self.assertEqual(runs.state, "done")
        self.assertEqual(runs.date_to - runs.date_from, timedelta(days=self.company.crm_drift_days))
        action = self.Run.with_user(self.accountant)._crm_action_start()
        self.assertEqual(action["res_model"], "crm.payment.drift.run")
        self.assertEqual(self.Run.browse(action["res_id"]).state, "done")
        with self.assertRaises(UserError):
            self.Run.with_user(self.salesman)._crm_action_start()
        with self.assertRaises(AccessError):
            self.env["crm.payment.drift"].with_user(self.salesman).search([])
        with self.assertRaises(AccessError):
            self.env["crm.payment.drift"].with_user(self.portal_user).search([])
        # Another company's accountant sees none of this company's checks.
        company_2 = self.env["res.company"].create({"name": "Drift Co 2"})
        accountant_2 = self.env["res.users"].create(
            {
                "name": "Accountant 2",
                "login": "drift_acc_2",
                "company_id": company_2.id,
                "company_ids": [(6, 0, company_2.ids)],
                "groups_id": [(6, 0, [self.env.ref("account.group_account_invoice").id])],
            }
        )
        self.assertFalse(self.Run.with_user(accountant_2).search([]))
