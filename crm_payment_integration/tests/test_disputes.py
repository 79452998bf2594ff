"""Disputes (issue 12, item 2): signed charge.dispute.* events built on Stripe's own dispute
object, evidence sent through the Files and Disputes APIs (answered at the HTTP boundary, which
localstripe lacks), the funds withdrawn booked and reinstated, in any order of delivery."""

from datetime import timedelta
from urllib.parse import parse_qsl

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged

from .common import CrmPaymentCommon, stripe_event
from .common_protection import FakeDisputes, SignedEvents, balance_transaction, dispute_object


@tagged("post_install", "-at_install")
class TestDisputes(SignedEvents, CrmPaymentCommon, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider.crm_webhook_secret = cls.webhook_secret
        cls.Event = cls.env["crm.payment.event"]
        cls.Dispute = cls.env["crm.payment.dispute"]
        cls.seller = new_test_user(cls.env, login="dispute_seller", groups="sales_team.group_sale_salesman")
        cls.other_seller = new_test_user(
            cls.env, login="dispute_other_seller", groups="sales_team.group_sale_salesman"
        )
        cls.currency = cls.company.currency_id

    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(FakeDisputes())

    # --- helpers --------------------------------------------------------------------------

    def _paid_invoice(self, amount):
        self._crm_save_card()
        invoice = self._crm_invoice(amount, invoice_user_id=self.seller.id)
        invoice.with_user(self.accountant).action_crm_charge_saved_method()
        self.assertTrue(self._crm_reconciled(invoice))
        tx = invoice.transaction_ids
        intent = self.gateway.retrieve_payment_intent(tx.provider_reference)
        charge = intent["latest_charge"]
        return invoice, tx, charge["id"] if isinstance(charge, dict) else charge

    def _stripe_dispute(self, charge_id, tx, amount_minor, **values):
        """Stripe opens a dispute: from now on it answers for it."""
        dispute = dispute_object(
            charge_id, tx.provider_reference, amount_minor, currency=self.currency.name.lower(), **values
        )
        self.stripe.disputes[dispute["id"]] = dispute
        return dispute

    def _deliver(self, *events):
        """Stripe's signed events reach the webhook route; the ledger applies them."""
        for event_type, obj in events:
            self._send_event(event_type, obj)
        self.Event._crm_process_due()
        stored = self.Event.search([("event_type", "like", "charge.dispute.%")])
        self.assertFalse(
            stored.filtered(lambda e: e.state not in ("done", "ignored")), stored.mapped("last_error")
        )
        return stored

    def _record(self, dispute):
        return self.Dispute.search([("stripe_dispute_id", "=", dispute["id"])])

    def _withdraw(self, dispute, fee):
        dispute["balance_transactions"].append(balance_transaction(dispute, -dispute["amount"], fee=fee))

    # --- tests ------------------------------------------------------------------------------

    def test_created_evidence_submitted_then_won(self):
        invoice, tx, charge_id = self._paid_invoice(100.0)
        invoice.message_post(
            body="The customer confirmed receipt of the consulting report on 3 March.",
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            author_id=self.partner.id,
        )
        remote = self._stripe_dispute(charge_id, tx, 10000)
        self._deliver(("charge.dispute.created", remote))

        dispute = self._record(remote)
        self.assertEqual(
            (dispute.amount, dispute.currency_id, dispute.state, dispute.reason),
            (100.0, self.currency, "needs_response", "product_not_received"),
        )
        self.assertEqual(
            (dispute.transaction_id, dispute.invoice_id, dispute.partner_id), (tx, invoice, self.partner)
        )
        self.assertEqual(dispute.stripe_charge_id, charge_id)
        self.assertEqual(dispute.user_id, self.seller)
        # The salesperson's activity, due the day before Stripe's deadline.
        # (the other activity on the dispute is its alert, for the alert user)
        activity = dispute.activity_ids.filtered(lambda a: a.summary.startswith("Dispute: submit evidence"))
        self.assertEqual(activity.user_id, self.seller)
        due_by = fields.Datetime.to_datetime(dispute.evidence_due_date)
        self.assertEqual(activity.date_deadline, (due_by - timedelta(days=1)).date())
        self.assertEqual(invoice.payment_state in ("paid", "in_payment"), True)  # nothing booked yet
        self.assertEqual(invoice.crm_dispute_count, 1)
        self.assertEqual(self.partner.crm_dispute_count, 1)
        alert = self.env["crm.payment.alert"].sudo().search([("kind", "=", "dispute")])
        self.assertEqual((len(alert), alert.cause_key), (1, f"dispute:{remote['id']}"))
        self.assertIn(f"100.0 {self.currency.name} (Product Not Received)", alert.summary)

        # The salesperson opens the evidence form: pre-filled, then edited.
        action = dispute.with_user(self.seller).action_crm_submit_evidence()
        wizard = (
            self.env[action["res_model"]].with_user(self.seller).with_context(**action["context"]).create({})
        )
        self.assertEqual(wizard.customer_name, "Azure Interior")
        self.assertEqual(wizard.customer_email_address, "azure@example.com")
        self.assertIn("4557 De Silva St", wizard.billing_address)
        self.assertEqual(wizard.product_description, "Consulting")
        self.assertEqual(wizard.service_date, str(invoice.invoice_date))
        self.assertIn("confirmed receipt of the consulting report", wizard.customer_communication)
        wizard.uncategorized_text = "Report delivered by email; see the customer's reply."
        result = wizard.action_submit()
        self.assertEqual(result["params"]["type"], "success")

        # At the HTTP boundary: the invoice PDF uploaded, then the evidence submitted.
        (upload,) = self.stripe.posts_to("/v1/files")
        self.assertTrue(upload["url"].startswith(self.localstripe_url))  # the provider's base
        self.assertIn(b'name="purpose"\r\n\r\ndispute_evidence', upload["data"])
        self.assertIn(f'filename="{invoice.name.replace("/", "-")}.pdf"'.encode(), upload["data"])
        self.assertIn(invoice.name.encode(), upload["data"])  # the rendered invoice itself
        self.assertTrue(upload["headers"].get("Idempotency-Key"))
        (file_id,) = self.stripe.files
        (update,) = self.stripe.posts_to(f"/v1/disputes/{remote['id']}")
        form = dict(parse_qsl(update["data"]))
        self.assertEqual(form["submit"], "true")
        self.assertEqual(form["evidence[receipt]"], file_id)
        self.assertEqual(form["evidence[customer_name]"], "Azure Interior")
        self.assertEqual(form["evidence[customer_email_address]"], "azure@example.com")
        self.assertEqual(form["evidence[product_description]"], "Consulting")
        self.assertEqual(form["evidence[service_date]"], str(invoice.invoice_date))
        self.assertIn("4557 De Silva St", form["evidence[billing_address]"])
        self.assertIn("Report delivered by email", form["evidence[uncategorized_text]"])
        self.assertIn("confirmed receipt of the consulting report", form["evidence[uncategorized_text]"])
        self.assertEqual((dispute.state, dispute.evidence_file_ids), ("under_review", file_id))
        self.assertTrue(dispute.evidence_submitted_at)
        evidence_todo = dispute.activity_ids.filtered(lambda a: a.summary.startswith("Dispute: submit"))
        self.assertFalse(evidence_todo)  # done

        # The bank decides for the merchant.
        remote["status"] = "won"
        self._deliver(("charge.dispute.closed", remote))
        self.assertEqual((dispute.state, dispute.is_open), ("won", False))
        self.assertFalse(dispute.withdrawal_move_id)
        self.assertTrue(self._crm_reconciled(invoice))

    def test_lost_with_funds_withdrawn_reopens_the_disputed_part(self):
        invoice, tx, charge_id = self._paid_invoice(100.0)
        # A partial dispute of 40.00, and Stripe's fee of 15.00.
        remote = self._stripe_dispute(charge_id, tx, 4000)
        created = dict(remote)
        self._withdraw(remote, fee=1500)
        self._deliver(("charge.dispute.created", created), ("charge.dispute.funds_withdrawn", remote))

        dispute = self._record(remote)
        move = dispute.withdrawal_move_id
        self.assertEqual(move.state, "posted")
        self.assertEqual((dispute.funds_withdrawn, dispute.fee), (40.0, 15.0))
        receivable = move.line_ids.filtered(lambda ln: ln.account_id.account_type == "asset_receivable")
        fee_line = move.line_ids.filtered(lambda ln: ln.account_id.account_type == "expense")
        outstanding = move.line_ids - receivable - fee_line
        # Dr receivable 40 / Cr outstanding 40; Dr fee 15 / Cr outstanding 15.
        self.assertEqual((receivable.debit, receivable.partner_id), (40.0, self.partner))
        self.assertEqual(fee_line.debit, 15.0)
        self.assertEqual(sum(outstanding.mapped("credit")), 55.0)
        self.assertEqual(outstanding.account_id, tx.payment_id.outstanding_account_id)
        # The invoice's amount due grows by the disputed 40.00, not the whole 100.00.
        self.assertEqual((invoice.amount_residual, invoice.payment_state), (40.0, "partial"))
        self.assertTrue(receivable.reconciled)

        remote["status"] = "lost"
        self._deliver(("charge.dispute.closed", remote))
        self.assertEqual((dispute.state, dispute.is_open), ("lost", False))
        self.assertEqual(dispute.withdrawal_move_id, move)
        self.assertEqual(invoice.amount_residual, 40.0)
        self.assertFalse(dispute.activity_ids)

        # Replayed: the same events again, and reprocessing them all, book nothing more.
        events = self.Event.search([("event_type", "like", "charge.dispute.%")])
        for event in events:
            self._send_event(event.event_type, None, event=event.sudo().payload)
        self.assertEqual(len(self.Event.search([("event_type", "like", "charge.dispute.%")])), 3)
        events.with_user(self.accountant).action_crm_reprocess()
        self.assertEqual(set(events.mapped("state")), {"done"})
        self.assertEqual(len(self._record(remote)), 1)
        self.assertEqual(self.env["account.move"].search_count([("ref", "=", f"Dispute {remote['id']}")]), 1)
        self.assertEqual(invoice.amount_residual, 40.0)

    def test_funds_reinstated_undo_the_entry(self):
        invoice, tx, charge_id = self._paid_invoice(80.0)
        remote = self._stripe_dispute(charge_id, tx, 8000)
        self._withdraw(remote, fee=1500)
        self._deliver(("charge.dispute.funds_withdrawn", remote))
        dispute = self._record(remote)
        self.assertEqual(invoice.amount_residual, 80.0)

        remote["status"] = "won"
        remote["balance_transactions"].append(balance_transaction(remote, 8000, fee=-1500))
        self._deliver(("charge.dispute.funds_reinstated", remote), ("charge.dispute.closed", remote))
        reversal = dispute.reinstatement_move_id
        self.assertEqual(reversal.reversed_entry_id, dispute.withdrawal_move_id)
        self.assertEqual(sum(reversal.line_ids.mapped("debit")), 95.0)  # 80 + 15 back
        self.assertEqual(dispute.funds_withdrawn, 0.0)
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertEqual(dispute.state, "won")

    def test_closed_delivered_before_created(self):
        invoice, tx, charge_id = self._paid_invoice(60.0)
        remote = self._stripe_dispute(charge_id, tx, 6000)
        stale_created = dict(remote, balance_transactions=[])
        self._withdraw(remote, fee=1500)
        remote["status"] = "lost"
        # Stripe's events arrive in the wrong order: closed (and withdrawn) before created.
        self._deliver(("charge.dispute.closed", remote))
        self._deliver(("charge.dispute.funds_withdrawn", remote), ("charge.dispute.created", stale_created))
        dispute = self._record(remote)
        self.assertEqual(len(dispute), 1)
        self.assertEqual((dispute.state, dispute.funds_withdrawn, dispute.fee), ("lost", 60.0, 15.0))
        self.assertEqual(len(dispute.withdrawal_move_id), 1)
        self.assertEqual(invoice.amount_residual, 60.0)
        self.assertFalse(dispute.activity_ids)  # closed at once: nothing to do
        # One alert for the dispute, though its events came in any order.
        alert = self.env["crm.payment.alert"].sudo().search([("kind", "=", "dispute")])
        self.assertEqual((len(alert), alert.cause_key), (1, f"dispute:{remote['id']}"))

    def test_evidence_form_only_for_a_dispute_the_user_may_read(self):
        invoice, tx, charge_id = self._paid_invoice(30.0)
        remote = self._stripe_dispute(charge_id, tx, 3000)
        self._deliver(("charge.dispute.created", remote))
        dispute = self._record(remote)
        stranger = self.other_seller  # a salesperson who sees their own documents only
        self.assertFalse(dispute.with_user(stranger).search_count([("id", "=", dispute.id)]))
        with self.assertRaises(AccessError):
            wizard = self.env["crm.payment.dispute.evidence.wizard"].with_user(stranger)
            wizard.create({"dispute_id": dispute.id}).read(["customer_communication", "billing_address"])

    def test_dispute_on_a_refunded_invoice_reopens_nothing(self):
        invoice, tx, charge_id = self._paid_invoice(50.0)
        self.env["crm.payment.refund.wizard"].with_user(self.accountant).create(
            {"transaction_id": tx.id, "amount": 50.0}
        ).action_refund()
        credit_note = tx.child_transaction_ids.invoice_ids
        self.assertEqual(credit_note.payment_state, "paid")
        moves_before = self.env["account.move"].search_count([])
        remote = self._stripe_dispute(charge_id, tx, 5000, status="lost")
        self._withdraw(remote, fee=1500)
        self._deliver(("charge.dispute.created", remote), ("charge.dispute.closed", remote))
        dispute = self._record(remote)
        self.assertEqual((dispute.state, dispute.amount), ("lost", 50.0))
        self.assertFalse(dispute.withdrawal_move_id)
        self.assertIn("refunded", dispute.accounting_note)
        self.assertEqual(self.env["account.move"].search_count([]), moves_before)
        self.assertEqual(credit_note.payment_state, "paid")
        self.assertTrue(invoice.currency_id.is_zero(invoice.amount_residual))

    def test_dispute_of_a_charge_not_ours_is_ignored(self):
        remote = dispute_object("ch_elsewhere", "pi_elsewhere", 1234)
        self.stripe.disputes[remote["id"]] = remote
        event = self._send_event("charge.dispute.created", remote)
        self.Event._crm_process_due()
        stored = self.Event.search([("stripe_event_id", "=", event["id"])])
        self.assertEqual(stored.state, "ignored")
        self.assertIn("not a payment of CRM Payments", stored.result)
        self.assertFalse(self._record(remote))

    def test_access_salesperson_accountant_portal(self):
        invoice, tx, charge_id = self._paid_invoice(30.0)
        remote = self._stripe_dispute(charge_id, tx, 3000)
        self._deliver(("charge.dispute.created", remote))
        dispute = self._record(remote)
        self.assertEqual(self.Dispute.with_user(self.seller).search([("id", "=", dispute.id)]), dispute)
        self.assertFalse(self.Dispute.with_user(self.other_seller).search([("id", "=", dispute.id)]))
        self.assertEqual(self.Dispute.with_user(self.accountant).search([("id", "=", dispute.id)]), dispute)
        with self.assertRaises(AccessError):
            self.Dispute.with_user(self.portal_user).search([])
        with self.assertRaises(AccessError):
            dispute.with_user(self.seller).write({"state": "won"})
        with self.assertRaises(AccessError):
            dispute.with_user(self.other_seller).action_crm_submit_evidence()

    def test_read_again_from_stripe(self):
        """A status whose event was lost: an accountant reads the dispute again."""
        __, tx, charge_id = self._paid_invoice(25.0)
        remote = self._stripe_dispute(charge_id, tx, 2500)
        self._deliver(("charge.dispute.created", remote))
        dispute = self._record(remote)
        remote["status"] = "under_review"
        self.assertIs(dispute.with_user(self.accountant).action_crm_refresh(), True)
        self.assertEqual(dispute.state, "under_review")

    def test_stripe_event_of_other_type_does_not_touch_disputes(self):
        """The dispute events are the only ones applied to disputes (registered types)."""
        handlers = self.Event._crm_get_event_handlers()
        for event_type in (
            "charge.dispute.created",
            "charge.dispute.updated",
            "charge.dispute.closed",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ):
            self.assertEqual(handlers[event_type], "_crm_handle_dispute")
        event = stripe_event("charge.dispute.unknown_thing", {"id": "dp_x", "object": "dispute"})
        self._send_event(None, None, event=event)
        self.assertEqual(self.Event.search([("stripe_event_id", "=", event["id"])]).state, "ignored")
