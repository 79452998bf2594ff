import logging
from datetime import datetime, timedelta, timezone

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from odoo.addons.payment import utils as payment_utils

_logger = logging.getLogger(__name__)

# Stripe's dispute statuses (https://docs.stripe.com/api/disputes/object#dispute_object-status).
DISPUTE_STATES = [
    ("warning_needs_response", "Inquiry: Needs Response"),
    ("warning_under_review", "Inquiry: Under Review"),
    ("warning_closed", "Inquiry: Closed"),
    ("needs_response", "Needs Response"),
    ("under_review", "Under Review"),
    ("won", "Won"),
    ("lost", "Lost"),
]
CLOSED_STATES = ("won", "lost", "warning_closed")
# Stripe's dispute reasons (https://docs.stripe.com/disputes/categories).
DISPUTE_REASONS = [
    ("bank_cannot_process", "Bank Cannot Process"),
    ("check_returned", "Check Returned"),
    ("credit_not_processed", "Credit Not Processed"),
    ("customer_initiated", "Customer Initiated"),
    ("debit_not_authorized", "Debit Not Authorized"),
    ("duplicate", "Duplicate"),
    ("fraudulent", "Fraudulent"),
    ("general", "General"),
    ("incorrect_account_details", "Incorrect Account Details"),
    ("insufficient_funds", "Insufficient Funds"),
    ("noncompliant", "Noncompliant"),
    ("product_not_received", "Product Not Received"),
    ("product_unacceptable", "Product Unacceptable"),
    ("subscription_canceled", "Subscription Canceled"),
    ("unrecognized", "Unrecognized"),
    ("other", "Other"),
]


def _timestamp(value):
    return datetime.fromtimestamp(value, tz=timezone.utc).replace(tzinfo=None) if value else False


class CrmPaymentDispute(models.Model):
    """A dispute (chargeback or inquiry) of a Stripe charge, mirrored from Stripe's events.

    Every field that comes from Stripe is written by the ledger's dispute handler from the
    dispute as Stripe has it when the event is applied (re-read), so events in any order give
    the same record. Amounts are in the dispute's currency (``currency_id``); the fee in the
    currency of Stripe's balance transaction (``fee_currency_id``).
    """

    _name = "crm.payment.dispute"
    _description = "Stripe Dispute"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "stripe_created desc, id desc"
    _rec_name = "stripe_dispute_id"

    stripe_dispute_id = fields.Char(string="Dispute ID", required=True, readonly=True, index=True)
    provider_id = fields.Many2one(
        comodel_name="payment.provider", required=True, readonly=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(comodel_name="res.company", required=True, readonly=True, index=True)
    stripe_charge_id = fields.Char(string="Charge ID", readonly=True, index=True)
    stripe_payment_intent_id = fields.Char(string="PaymentIntent ID", readonly=True)
    amount = fields.Monetary(readonly=True, currency_field="currency_id", help="The disputed amount.")
    currency_id = fields.Many2one(comodel_name="res.currency", readonly=True)
    fee = fields.Monetary(
        string="Dispute Fee",
        readonly=True,
        currency_field="fee_currency_id",
        help="What Stripe charged for the dispute (its balance transactions' fees).",
    )
    fee_currency_id = fields.Many2one(comodel_name="res.currency", readonly=True)
    reason = fields.Selection(selection=DISPUTE_REASONS, readonly=True)
    state = fields.Selection(selection=DISPUTE_STATES, string="Status", readonly=True, tracking=True)
    is_open = fields.Boolean(compute="_compute_is_open", store=True)
    evidence_due_date = fields.Datetime(string="Evidence Due", readonly=True, tracking=True)
    is_charge_refundable = fields.Boolean(
        readonly=True, help="Stripe: the charge may still be refunded (an inquiry, not a chargeback)."
    )
    stripe_created = fields.Datetime(string="Opened", readonly=True)
    transaction_id = fields.Many2one(comodel_name="payment.transaction", readonly=True, index=True)
    invoice_id = fields.Many2one(comodel_name="account.move", readonly=True, index=True)
    partner_id = fields.Many2one(comodel_name="res.partner", string="Customer", readonly=True, index=True)
    user_id = fields.Many2one(comodel_name="res.users", string="Salesperson", readonly=True)
    evidence_submitted_at = fields.Datetime(string="Evidence Submitted", readonly=True, tracking=True)
    evidence_submission_count = fields.Integer(string="Submissions", readonly=True)
    evidence_file_ids = fields.Char(string="Uploaded Files", readonly=True, help="Stripe File ids sent.")
    funds_withdrawn = fields.Monetary(
        readonly=True,
        currency_field="currency_id",
        help="What Stripe holds back for the dispute now: withdrawn minus reinstated.",
    )
    withdrawal_move_id = fields.Many2one(
        comodel_name="account.move", string="Withdrawal Entry", readonly=True
    )
    reinstatement_move_id = fields.Many2one(
        comodel_name="account.move", string="Reinstatement Entry", readonly=True
    )
    accounting_note = fields.Char(readonly=True)

    _sql_constraints = [
        (
            "provider_dispute_uniq",
            "unique(provider_id, stripe_dispute_id)",
            "A Stripe dispute is recorded once per provider.",
        ),
    ]

    @api.depends("state")
    def _compute_is_open(self):
        for dispute in self:
            dispute.is_open = dispute.state not in CLOSED_STATES

    # === ACTIONS === #

    def action_crm_submit_evidence(self):
        """Open the evidence form of this dispute, pre-filled from the invoice and the chatter.

        :return: an ``ir.actions.act_window`` of ``crm.payment.dispute.evidence.wizard``
        :raise UserError: when the dispute is closed or no longer takes evidence
        """
        self.ensure_one()
        self.check_access("read")
        self._crm_check_can_submit()
        return {
            "type": "ir.actions.act_window",
            "name": _("Submit Evidence"),
            "res_model": "crm.payment.dispute.evidence.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_dispute_id": self.id},
        }

    def action_crm_refresh(self):
        """Read the disputes again from Stripe and apply them (status, evidence, funds)."""
        self.check_access("read")
        for dispute in self.sudo():
            remote = dispute.provider_id._crm_stripe_call("retrieve_dispute", dispute.stripe_dispute_id)
            if remote:
                self._crm_apply_stripe_dispute(dispute.provider_id, remote)
        return True

    # === BUSINESS METHODS === #

    def _crm_check_can_submit(self):
        self.ensure_one()
        if self.state not in ("needs_response", "warning_needs_response"):
            raise UserError(
                _(
                    "Dispute %(dispute)s is %(state)s: Stripe takes evidence only while it needs a response.",
                    dispute=self.stripe_dispute_id,
                    state=dict(DISPUTE_STATES).get(self.state, self.state),
                )
            )

    @api.model
    def _crm_apply_stripe_dispute(self, provider_sudo, remote):
        """Create or update the dispute from Stripe's object, then book or undo the funds.

        :param recordset provider_sudo: the `payment.provider` (sudo)
        :param dict remote: the Dispute as Stripe has it now (``balance_transactions``
            expanded)
        :return: ``(dispute, created)``, or ``(empty, False)`` when the charge is not a
            payment of this add-on (the caller stores the event as ignored)
        """
        Dispute = self.sudo().with_context(mail_create_nolog=True, tracking_disable=False)
        dispute = Dispute.search(
            [("provider_id", "=", provider_sudo.id), ("stripe_dispute_id", "=", remote["id"])], limit=1
        )
        tx = dispute.transaction_id or self._crm_find_transaction(provider_sudo, remote)
        if not tx:
            return Dispute.browse(), False
        currency = (
            self.env["res.currency"]
            .with_context(active_test=False)
            .search([("name", "=", (remote.get("currency") or "").upper())], limit=1)
        )
        fee, fee_currency, withdrawn = self._crm_balance_figures(remote, currency)
        reasons = dict(DISPUTE_REASONS)
        values = {
            "amount": payment_utils.to_major_currency_units(remote.get("amount") or 0, currency),
            "currency_id": currency.id,
            "reason": remote.get("reason") if remote.get("reason") in reasons else "other",
            "evidence_due_date": _timestamp((remote.get("evidence_details") or {}).get("due_by")),
            "is_charge_refundable": bool(remote.get("is_charge_refundable")),
            "evidence_submission_count": (remote.get("evidence_details") or {}).get("submission_count") or 0,
            "fee": fee,
            "fee_currency_id": fee_currency.id,
        }
        if remote.get("status") in dict(DISPUTE_STATES):
            values["state"] = remote["status"]
        created = not dispute
        if created:
            invoice = tx.invoice_ids.filtered(lambda m: m.move_type == "out_invoice")[:1]
            values.update(
                provider_id=provider_sudo.id,
                company_id=provider_sudo.company_id.id,
                stripe_dispute_id=remote["id"],
                stripe_charge_id=self._crm_charge_id(remote),
                stripe_payment_intent_id=tx.provider_reference,
                stripe_created=_timestamp(remote.get("created")),
                transaction_id=tx.id,
                invoice_id=invoice.id,
                partner_id=tx.partner_id.commercial_partner_id.id,
                user_id=tx._crm_salesperson().id,
            )
            dispute = Dispute.create(values)
            dispute._crm_on_dispute_opened()
        else:
            dispute.write(values)
        dispute._crm_book_funds(withdrawn)
        if not dispute.is_open:
            dispute._crm_on_dispute_closed()
        return dispute, created

    @api.model
    def _crm_charge_id(self, remote):
        charge = remote.get("charge")
        return charge.get("id") if isinstance(charge, dict) else charge

    @api.model
    def _crm_find_transaction(self, provider_sudo, remote):
        """The transaction of the disputed charge, by its PaymentIntent (read from the charge
        when the dispute does not name it)."""
        intent_id = remote.get("payment_intent")
        if isinstance(intent_id, dict):
            intent_id = intent_id.get("id")
        if not intent_id and self._crm_charge_id(remote):
            charge = provider_sudo._crm_stripe_call("retrieve_charge", self._crm_charge_id(remote))
            intent_id = charge.get("payment_intent")
        if not intent_id:
            return self.env["payment.transaction"]
        return (
            self.env["payment.transaction"]
            .sudo()
            .search(
                [
                    ("provider_id", "=", provider_sudo.id),
                    ("provider_reference", "=", intent_id),
                    ("operation", "!=", "refund"),
                    ("crm_flow", "!=", False),
                ],
                limit=1,
            )
        )

    @api.model
    def _crm_balance_figures(self, remote, currency):
        """Return (fee, fee currency, amount held back) from the dispute's balance transactions.

        A withdrawal is a negative balance transaction (the disputed amount, plus Stripe's fee
        in ``fee``, both in the balance's currency), a reinstatement a positive one. What is
        held back is the disputed amount per withdrawal not yet reinstated, in the dispute's
        currency; the fee is the withdrawals' fee, in the balance transaction's currency.
        """
        fee_minor, fee_currency_code, held = 0, None, 0
        for bt in remote.get("balance_transactions") or []:
            if not isinstance(bt, dict) or not bt.get("amount"):
                continue
            if bt["amount"] < 0:
                held += 1
                fee_minor += bt.get("fee") or 0
                fee_currency_code = fee_currency_code or bt.get("currency")
            else:
                held -= 1
        fee_currency = (
            self.env["res.currency"]
            .with_context(active_test=False)
            .search([("name", "=", fee_currency_code.upper())], limit=1)
            if fee_currency_code
            else currency
        )
        fee = payment_utils.to_major_currency_units(fee_minor, fee_currency) if fee_minor else 0.0
        amount = payment_utils.to_major_currency_units(remote.get("amount") or 0, currency)
        return fee, fee_currency, amount if held > 0 else 0.0

    def _crm_on_dispute_opened(self):
        """Called once, when a dispute is first recorded: an activity for the salesperson, due
        the day before Stripe's evidence deadline (today when that is sooner), and a note on
        the invoice, and the dispute alert."""
        self.ensure_one()
        reason = dict(DISPUTE_REASONS).get(self.reason, self.reason)
        # The alert (crm.payment.alert): one per dispute, whichever of its events came first.
        self.env["crm.payment.alert"]._crm_raise(
            "dispute",
            f"dispute:{self.stripe_dispute_id}",
            self,
            _(
                "Stripe dispute %(dispute)s: %(amount)s %(currency)s (%(reason)s)",
                dispute=self.stripe_dispute_id,
                amount=self.amount,
                currency=self.currency_id.name,
                reason=reason or "-",
            ),
            company=self.company_id,
            fallback_user=self.provider_id._crm_alert_user(),
        )
        self.message_post(
            body=_(
                "Stripe dispute of %(amount)s %(currency)s (%(reason)s) on charge %(charge)s.",
                amount=self.amount,
                currency=self.currency_id.name,
                reason=reason,
                charge=self.stripe_charge_id,
            )
        )
        if self.state in CLOSED_STATES:
            return
        today = fields.Date.context_today(self)
        deadline = today
        if self.evidence_due_date:
            deadline = max(today, (self.evidence_due_date - timedelta(days=1)).date())
        self.activity_schedule(
            "mail.mail_activity_data_todo",
            date_deadline=deadline,
            user_id=(self.user_id or self.provider_id._crm_alert_user()).id,
            summary=_(
                "Dispute: submit evidence before %(due)s", due=self.evidence_due_date or _("the deadline")
            ),
            note=_(
                "The customer disputed %(amount)s %(currency)s. Open the dispute and click Submit "
                "Evidence: the invoice, the customer's messages and the service period are "
                "pre-filled.",
                amount=self.amount,
                currency=self.currency_id.name,
            ),
        )
        if self.invoice_id:
            self.invoice_id.message_post(
                body=_(
                    "The payment of this invoice is disputed in Stripe (%(dispute)s).",
                    dispute=self.stripe_dispute_id,
                )
            )

    def _crm_on_dispute_closed(self):
        """Won, lost or an inquiry closed: the evidence activity is no longer due."""
        self.activity_ids.action_feedback(
            feedback=_("Dispute closed: %(state)s.", state=dict(DISPUTE_STATES).get(self.state))
        )

    # === ACCOUNTING === #

    def _crm_settled_reason(self):
        """Why the invoice must not be reopened (refunded or cancelled already), or ``None``."""
        invoice = self.invoice_id
        if not invoice:
            return _("No invoice: nothing to reopen.")
        if invoice.state == "cancel":
            return _("The invoice is cancelled: it is not reopened.")
        if invoice.payment_state == "reversed" or invoice.reversal_move_ids.filtered(
            lambda m: m.state == "posted"
        ):
            return _("The invoice was refunded (credit note): it is not reopened.")
        if self.transaction_id.child_transaction_ids.filtered(
            lambda t: t.operation == "refund" and t.state == "done"
        ):
            return _("The payment was refunded: the invoice is not reopened.")
        return None

    def _crm_book_funds(self, withdrawn):
        """Book the funds Stripe holds back, or undo the booking once they are reinstated.

        Idempotent: the entry follows ``withdrawn`` (what Stripe holds back now), whatever the
        order or repetition of the events.
        """
        self.ensure_one()
        self.funds_withdrawn = withdrawn
        booked = self.withdrawal_move_id and not self.reinstatement_move_id
        if withdrawn and not booked and not self.withdrawal_move_id:
            reason = self._crm_settled_reason()
            if reason:
                self.accounting_note = reason
                return
            self._crm_book_withdrawal(withdrawn)
        elif not withdrawn and booked:
            self._crm_book_reinstatement()

    def _crm_journal_and_outstanding(self):
        payment = self.transaction_id.payment_id
        journal = self.provider_id.journal_id or payment.journal_id
        outstanding = payment.outstanding_account_id or journal.default_account_id
        return journal, outstanding

    def _crm_fee_account(self):
        company = self.company_id
        return company.crm_dispute_fee_account_id or self.env["account.account"].search(
            [*self.env["account.account"]._check_company_domain(company), ("account_type", "=", "expense")],
            limit=1,
        )

    def _crm_book_withdrawal(self, amount):
        """Dr receivable (customer) / Cr outstanding receipts for the disputed amount, and Dr
        fee expense / Cr outstanding receipts for the fee; the payment's receivable line then
        settles the withdrawal first, so that the invoice's amount due grows by the disputed
        amount (not the whole payment: a partial dispute reopens only its part)."""
        invoice = self.invoice_id
        journal, outstanding = self._crm_journal_and_outstanding()
        receivable_lines = invoice.line_ids.filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        )
        receivable = receivable_lines[:1].account_id
        company = self.company_id
        date = fields.Date.context_today(self)

        def line(name, account, amount_currency, currency, partner=None):
            balance = currency._convert(amount_currency, company.currency_id, company, date)
            return (
                0,
                0,
                {
                    "name": name,
                    "account_id": account.id,
                    "partner_id": (partner or self.partner_id).id,
                    "currency_id": currency.id,
                    "amount_currency": amount_currency,
                    "balance": company.currency_id.round(balance),
                },
            )

        label = _("Dispute %(dispute)s", dispute=self.stripe_dispute_id)
        lines = [
            line(label, receivable, amount, self.currency_id),
            line(label, outstanding, -amount, self.currency_id),
        ]
        fee_account = self._crm_fee_account()
        if self.fee and fee_account:
            fee_label = _("Dispute fee %(dispute)s", dispute=self.stripe_dispute_id)
            lines += [
                line(fee_label, fee_account, self.fee, self.fee_currency_id),
                line(fee_label, outstanding, -self.fee, self.fee_currency_id),
            ]
        move = (
            self.env["account.move"]
            .sudo()
            .create(
                {
                    "move_type": "entry",
                    "journal_id": journal.id,
                    "date": date,
                    "ref": label,
                    "company_id": company.id,
                    "line_ids": lines,
                }
            )
        )
        move.action_post()
        self.withdrawal_move_id = move
        self._crm_reopen_invoice(move)
        self.message_post(
            body=_(
                "Stripe withdrew %(amount)s %(currency)s and a fee of %(fee)s %(fee_currency)s: "
                "entry %(move)s reopens the invoice.",
                amount=amount,
                currency=self.currency_id.name,
                fee=self.fee,
                fee_currency=self.fee_currency_id.name,
                move=move.name,
            )
        )

    def _crm_reopen_invoice(self, move):
        """Let the payment settle the withdrawal's receivable line before the invoice."""
        invoice = self.invoice_id
        dispute_line = move.line_ids.filtered(lambda line: line.account_id.account_type == "asset_receivable")
        invoice_lines = invoice.line_ids.filtered(lambda line: line.account_id == dispute_line.account_id)
        payment_lines = self._crm_payment_receivable_lines(dispute_line.account_id)
        partials = (invoice_lines.matched_credit_ids | invoice_lines.matched_debit_ids).filtered(
            lambda p: p.credit_move_id in payment_lines or p.debit_move_id in payment_lines
        )
        if not partials:
            # Paid otherwise (a credit note, another payment): the withdrawal stays open on the
            # customer's account, the invoice is left as it is.
            return
        partials.unlink()
        (payment_lines + dispute_line).reconcile()
        (payment_lines.filtered(lambda line: not line.reconciled) + invoice_lines).reconcile()

    def _crm_payment_receivable_lines(self, account):
        payment = self.transaction_id.payment_id
        return payment.move_id.line_ids.filtered(lambda line: line.account_id == account)

    def _crm_book_reinstatement(self):
        """Reverse the withdrawal (funds back), and let the payment settle the invoice again."""
        move = self.withdrawal_move_id
        account = move.line_ids.filtered(
            lambda ln: ln.account_id.account_type == "asset_receivable"
        ).account_id
        move.line_ids.remove_move_reconcile()
        reversal = move._reverse_moves(
            [{"ref": _("Reinstated: %(ref)s", ref=move.ref), "date": fields.Date.context_today(self)}],
            cancel=True,
        )
        self.reinstatement_move_id = reversal
        invoice_lines = self.invoice_id.line_ids.filtered(lambda line: line.account_id == account)
        payment_lines = self._crm_payment_receivable_lines(account)
        open_lines = (payment_lines + invoice_lines).filtered(lambda line: not line.reconciled)
        if payment_lines.filtered(lambda line: not line.reconciled) and invoice_lines.filtered(
            lambda line: not line.reconciled
        ):
            open_lines.reconcile()
        self.message_post(
            body=_("Stripe reinstated the funds: entry %(move)s undoes the withdrawal.", move=reversal.name)
        )
