import threading

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config, consteq
from odoo.tools.misc import hmac as hmac_tool

from .. import utils
from ..services.budget import TimeBudget, iter_batches


class ResPartner(models.Model):
    _inherit = "res.partner"  # pylint: disable=consider-merging-classes-inherited

    crm_collection_level = fields.Integer(
        string="Reminder Level",
        compute="_compute_crm_collection_level",
        search="_search_crm_collection_level",
        help="The highest reminder level reached for this customer's invoices still due, in the "
        "current company (0: none).",
    )
    crm_credit_hold = fields.Boolean(
        string="Credit Hold",
        compute="_compute_crm_credit_hold",
        search="_search_crm_credit_hold",
        help="The customer's overdue invoices are above the company's threshold (amount or days "
        "overdue): a new sale needs a manager's approval.",
    )
    crm_autopay_consent = fields.Boolean(
        string="Automatic Payment of Overdue Invoices",
        copy=False,
        tracking=True,
        help="The customer agreed that their overdue invoices be charged to their default saved "
        "payment method at the reminder levels that charge.",
    )
    crm_autopay_consent_date = fields.Datetime(string="Consent Given On", copy=False, readonly=True)
    crm_autopay_consent_source = fields.Selection(
        [("portal", "Customer portal"), ("backoffice", "Recorded by a user")],
        string="Consent Source",
        copy=False,
        readonly=True,
    )
    crm_statement_monthly = fields.Boolean(
        string="Monthly Statement",
        copy=False,
        help="Email this customer their statement of account at the start of every month.",
    )
    crm_statement_sent_month = fields.Date(copy=False, readonly=True)
    crm_collection_reminder_ids = fields.One2many(
        "crm.collection.reminder", "partner_id", string="Reminders", groups="base.group_user"
    )

    # === COMPUTES === #

    @api.depends_context("company")
    def _compute_crm_collection_level(self):
        levels = self._crm_collection_levels()
        for partner in self:
            partner.crm_collection_level = levels.get(partner.commercial_partner_id.id, 0)

    def _crm_collection_levels(self, partner_ids=None):
        """``{commercial partner id: level}`` in the current company: the highest level of their
        reminders (not skipped) of which an invoice is still due."""
        self.env["crm.collection.reminder"].flush_model()
        self.env["account.move"].flush_model(["payment_state", "state"])
        self.env.cr.execute(
            """
            SELECT r.partner_id, max(r.level)
              FROM crm_collection_reminder r
             WHERE r.company_id = %(company)s AND r.state != 'skipped'
               AND (%(all)s OR r.partner_id = ANY(%(ids)s))
               AND EXISTS (
                   SELECT 1 FROM account_move_crm_collection_reminder_rel rel
                     JOIN account_move m ON m.id = rel.account_move_id
                    WHERE rel.crm_collection_reminder_id = r.id AND m.state = 'posted'
                      AND m.payment_state IN ('not_paid', 'partial'))
             GROUP BY r.partner_id
            """,
            {
                "company": self.env.company.id,
                "all": partner_ids is None and not self.ids,
                "ids": partner_ids if partner_ids is not None else self.commercial_partner_id.ids,
            },
        )
        return dict(self.env.cr.fetchall())

    def _search_crm_collection_level(self, operator, value):
        levels = self.browse()._crm_collection_levels(partner_ids=None)
        ops = {
            "=": lambda a: a == value,
            "!=": lambda a: a != value,
            ">": lambda a: a > value,
            ">=": lambda a: a >= value,
            "<": lambda a: a < value,
            "<=": lambda a: a <= value,
        }
        if operator not in ops:
            raise UserError(_("Unsupported search on the reminder level."))
        matching = [pid for pid, level in levels.items() if ops[operator](level)]
        if ops[operator](0):  # the customers without reminder match too
            return [("commercial_partner_id", "not in", [p for p in levels if p not in matching])]
        return [("commercial_partner_id", "in", matching)]

    @api.depends_context("company")
    def _compute_crm_credit_hold(self):
        held = self._crm_held_partner_ids(self.commercial_partner_id.ids)
        for partner in self:
            partner.crm_credit_hold = partner.commercial_partner_id.id in held

    def _search_crm_credit_hold(self, operator, value):
        if operator not in ("=", "!="):
            raise UserError(_("Unsupported search on the credit hold."))
        held = list(self._crm_held_partner_ids())
        positive = (operator == "=") == bool(value)
        return [("commercial_partner_id", "in" if positive else "not in", held)]

    @api.model
    def _crm_held_partner_ids(self, partner_ids=None, today=None):
        """The customers (commercial partners) of the current company above its credit hold
        threshold: their overdue invoices' residual in the company currency at or above the
        amount, or their oldest overdue invoice at or above the days (0: that test is off).

        :return: a set of partner ids
        """
        company = self.env.company
        amount, days = company.crm_credit_hold_amount, company.crm_credit_hold_days
        if not amount and not days:
            return set()
        self.env["account.move"].flush_model()
        self.env.cr.execute(
            """
            SELECT m.commercial_partner_id
              FROM account_move m
             WHERE m.company_id = %(company)s AND m.move_type = 'out_invoice' AND m.state = 'posted'
               AND m.payment_state IN ('not_paid', 'partial') AND m.invoice_date_due < %(today)s
               AND (%(all)s OR m.commercial_partner_id = ANY(%(ids)s))
             GROUP BY m.commercial_partner_id
            HAVING (%(amount)s > 0 AND sum(m.amount_residual_signed) >= %(amount)s)
                OR (%(days)s > 0 AND %(today)s - min(m.invoice_date_due) >= %(days)s)
            """,
            {
                "company": company.id,
                "today": today or fields.Date.context_today(self),
                "all": partner_ids is None,
                "ids": partner_ids or [],
                "amount": amount,
                "days": days,
            },
        )
        return {row[0] for row in self.env.cr.fetchall()}

    # === ACTIONS === #

    def action_crm_send_statement(self):
        """Email each customer (their commercial partner) their statement of account as a PDF:
        the period from the first day of the previous month to today, in the company currency.

        :return: a notification action naming who received it
        :raise UserError: without billing rights, or for a customer without email address
        """
        self.env["account.move"]._crm_check_accounting_rights()
        self.check_access("read")
        partners = self.commercial_partner_id
        sent = partners.sudo()._crm_send_statement()
        return utils.notification(
            _("Statement sent to %(recipients)s.", recipients=", ".join(sent.mapped("email"))),
            title=_("Statement sent"),
        )

    # === BUSINESS METHODS === #

    def _crm_collection_recipient(self):
        """Who receives the reminders and statements of this customer: the company itself, else
        its invoicing contact, else its first contact with an email address."""
        self.ensure_one()
        partner = self.commercial_partner_id
        if partner.email:
            return partner
        contacts = partner.child_ids.filtered("email")
        return contacts.filtered(lambda c: c.type == "invoice")[:1] or contacts[:1]

    def _crm_collection_may_auto_charge(self, company):
        """Whether the collections may charge this customer's saved payment method without
        them: they consented, have a default saved method in the company's Stripe account, and
        no open risk flag holds their automatic charges (the reminder then goes out with its
        link, as for a customer who did not consent). The one place where an automatic charge
        of overdue invoices is decided.

        :param company: the `res.company` whose invoices would be charged
        """
        self.ensure_one()
        partner = self.commercial_partner_id
        return bool(
            partner.crm_autopay_consent
            and partner._crm_default_token(company)
            and not partner._crm_automatic_charges_held(company)
        )

    def _crm_set_autopay_consent(self, consent, source):
        """Record the customer's consent (or its withdrawal), with its date and source."""
        self.ensure_one()
        partner = self.commercial_partner_id.sudo()
        partner.write(
            {
                "crm_autopay_consent": consent,
                "crm_autopay_consent_date": fields.Datetime.now(),
                "crm_autopay_consent_source": source,
            }
        )
        partner.message_post(
            body=_(
                "Automatic payment of overdue invoices %(what)s (%(origin)s).",
                what=_("accepted") if consent else _("withdrawn"),
                origin=dict(self._fields["crm_autopay_consent_source"].selection)[source],
            )
        )

    def _crm_pay_all_token(self, company, currency):
        return hmac_tool(self.env(su=True), "crm_collection_pay_all", (self.id, company.id, currency.id))

    def _crm_check_pay_all_token(self, company, currency, token):
        return bool(token) and consteq(str(token), self._crm_pay_all_token(company, currency))

    def _crm_pay_all_url(self, company, currency):
        """The customer's lasting link paying all their overdue invoices of a company in one
        currency: it opens a Stripe hosted page for the current total."""
        self.ensure_one()
        partner = self.commercial_partner_id
        token = partner._crm_pay_all_token(company, currency)
        return (
            f"{partner.get_base_url()}/crm_payment/stripe/pay_all/{partner.id}/{company.id}/{currency.id}"
            f"?access_token={token}"
        )

    def _crm_overdue_moves(self, company, currency=None, today=None):
        """The invoices a pay-all link pays: the customer's posted invoices (contacts' included)
        still due that reached the company's first reminder level (due today or before when it
        has none), not in dispute, not collected by Stripe Billing, oldest due first.
        """
        self.ensure_one()
        today = today or fields.Date.context_today(self)
        first = (
            self.env["crm.collection.level"]
            .sudo()
            .search([("company_id", "=", company.id)], order="days", limit=1)
        )
        limit = today - relativedelta(days=first.days if first else 0)
        excluded = self.env["account.move"]._crm_collection_excluded_move_ids()
        domain = [
            ("commercial_partner_id", "=", self.commercial_partner_id.id),
            ("company_id", "=", company.id),
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
            ("payment_state", "in", ("not_paid", "partial")),
            ("invoice_date_due", "<=", limit),
            ("crm_stripe_invoice_id", "=", False),
            ("id", "not in", list(excluded)),
        ]
        if currency:
            domain.append(("currency_id", "=", currency.id))
        return self.env["account.move"].sudo().search(domain, order="invoice_date_due, id")

    def _crm_pay_all_tx(self, company, currency):
        """Return the open hosted page paying every overdue invoice of the customer in
        ``currency``, for their current total: kept while the invoices and total are the same,
        else closed (applied if paid meanwhile) and replaced. The invoices' own open pages are
        closed first, so the customer cannot pay an invoice twice.

        :return: the transaction (sudo), or an empty one when nothing is overdue
        :raise UserError: when a charge of one of the invoices is still under way
        """
        self.ensure_one()
        partner = self.commercial_partner_id.sudo()
        Transaction = self.env["payment.transaction"].sudo()
        open_txs = Transaction.search(
            [
                ("crm_collection_pay_all", "=", True),
                ("partner_id", "=", partner.id),
                ("company_id", "=", company.id),
                ("currency_id", "=", currency.id),
                ("state", "in", ("draft", "pending")),
            ]
        )
        moves = partner._crm_overdue_moves(company, currency)
        self._crm_refuse_if_paying(moves)
        total = sum(moves.mapped("amount_residual"))
        for tx in open_txs:
            if (
                tx.invoice_ids == moves
                and currency.compare_amounts(tx.amount, total) == 0
                and tx._crm_checkout_is_open()
            ):
                return tx
        open_txs._crm_expire_checkout_session()
        moves.crm_payment_tx_id._crm_expire_checkout_session()
        moves = partner._crm_overdue_moves(company, currency)  # paid meanwhile: left out
        if not moves:
            return Transaction
        self._crm_refuse_if_paying(moves)
        tx = Transaction.with_company(company)._crm_create(
            partner, sum(moves.mapped("amount_residual")), currency, "checkout", invoices=moves
        )
        tx.crm_collection_pay_all = True
        names = ", ".join(moves.mapped("name"))
        tx._crm_create_checkout_session(description=_("Invoices %s", names)[:250])
        return tx

    @api.model
    def _crm_refuse_if_paying(self, moves):
        """Refuse while a payment of one of these invoices is under way: an off-session charge
        or a hosted-page payment settling later (pending, authorized). A second page would let
        the customer pay twice.

        :raise UserError: naming the invoice and the transaction
        """
        for move in moves:
            in_progress = move._crm_charge_in_progress() | (
                move.sudo().transaction_ids | move.sudo().crm_payment_tx_id
            ).filtered(lambda tx: tx.crm_flow == "checkout" and tx.state in ("pending", "authorized"))
            if in_progress:
                raise UserError(
                    _(
                        "A charge of %(invoice)s is in progress (%(reference)s): no payment page "
                        "is opened until it ends.",
                        invoice=move.name,
                        reference=in_progress[0].reference,
                    )
                )

    def _crm_allocate_payments(self, company):
        """Apply the customer's unallocated payments to their open invoices, oldest due date
        first (Odoo's reconciliation matches lines in due-date order): a partial payment
        settles the oldest invoice first. Per receivable account; payments only (credit notes
        stay for the accountant to apply). Invoices in open dispute and invoices Stripe Billing
        collects (``crm_stripe_invoice_id``) are never allocated to.

        :return: the invoices touched
        """
        self.ensure_one()
        partner = self.commercial_partner_id
        Line = self.env["account.move.line"].sudo()
        base = [
            ("partner_id", "child_of", partner.id),
            ("company_id", "=", company.id),
            ("account_id.account_type", "=", "asset_receivable"),
            ("parent_state", "=", "posted"),
            ("reconciled", "=", False),
        ]
        credits = Line.search(base + [("balance", "<", 0), ("move_id.origin_payment_id", "!=", False)])
        if not credits:
            return self.env["account.move"]
        # Invoices in open dispute and those Stripe Billing collects are left alone: a payment
        # applied there would be taken from an invoice the customer contests or pays by Stripe.
        debits = Line.search(
            base
            + [
                ("balance", ">", 0),
                ("move_id.move_type", "=", "out_invoice"),
                ("move_id.crm_stripe_invoice_id", "=", False),
                ("move_id", "not in", list(self.env["account.move"]._crm_collection_excluded_move_ids())),
            ],
            order="date_maturity, id",
        )
        touched = self.env["account.move"]
        for account, currency in {(line.account_id, line.currency_id) for line in credits}:
            lines = (credits + debits).filtered(
                lambda line, a=account, c=currency: line.account_id == a and line.currency_id == c
            )
            if lines.filtered(lambda line: line.balance > 0):
                touched |= lines.filtered(lambda line: line.balance > 0).move_id
                lines.reconcile()
        return touched

    def _crm_send_statement(self, date_from=None, date_to=None, company=None):
        """Email the statement PDF to each of these customers (sudo; rights checked by the
        caller).

        :return: the recipients
        :raise UserError: for a customer without email address
        """
        company = company or self.env.company
        template = self.env.ref("crm_payment_integration.mail_template_crm_collection_statement")
        report = self.env.ref("crm_payment_integration.action_report_crm_statement")
        recipients = self.browse()
        for partner in self:
            recipient = partner._crm_collection_recipient()
            if not recipient:
                raise UserError(
                    _(
                        "%(partner)s has no email address: add one to send the statement.",
                        partner=partner.display_name,
                    )
                )
            period = partner._crm_statement_period(date_from, date_to)
            pdf, __ = report.with_company(company)._render_qweb_pdf(
                report.report_name,
                partner.ids,
                data={"date_from": str(period[0]), "date_to": str(period[1]), "company_id": company.id},
            )
            attachment = self.env["ir.attachment"].create(
                {
                    "name": _("Statement %(customer)s %(date)s.pdf", customer=partner.name, date=period[1]),
                    "raw": pdf,
                    "mimetype": "application/pdf",
                    "res_model": "res.partner",
                    "res_id": partner.id,
                }
            )
            template.with_context(crm_statement_recipient=recipient.id).send_mail(
                partner.id,
                email_layout_xmlid="mail.mail_notification_light",
                email_values={
                    "attachment_ids": [(4, attachment.id)],
                    "recipient_ids": [(6, 0, recipient.ids)],
                },
            )
            partner.message_post(
                body=_(
                    "Statement of account (%(start)s to %(end)s) sent to %(email)s.",
                    start=period[0],
                    end=period[1],
                    email=recipient.email,
                ),
            )
            recipients |= recipient
        return recipients

    @api.model
    def _crm_statement_period(self, date_from=None, date_to=None):
        """The period of a statement: given, else the first day of the previous month to today."""
        date_to = fields.Date.to_date(date_to) or fields.Date.context_today(self)
        date_from = fields.Date.to_date(date_from) or (date_to - relativedelta(months=1)).replace(day=1)
        if date_from > date_to:
            raise UserError(_("The statement's start must be before its end."))
        return date_from, date_to

    def _crm_statement(self, date_from, date_to, company=None):
        """The statement of account of this customer (commercial partner, contacts included) in
        the company currency: its receivable entries, as booked (at their own dates' rates).

        :return: dict with ``currency``, ``date_from``, ``date_to``, ``opening``, ``lines`` (each
            ``date``, ``name``, ``kind`` in invoice / credit_note / payment / other, ``due``,
            ``debit``, ``credit``, ``balance`` running), ``invoices``, ``credit_notes``,
            ``payments``, ``other``, ``closing`` (= opening + invoices - payments - credit notes
            + other), ``ageing`` (current, 1-30, 31-60, 61-90, 90+: what is open today, by days
            past due at the end of the period) and ``pay_links`` (currency name, total, url)
        """
        self.ensure_one()
        company = company or self.env.company
        partner = self.commercial_partner_id
        self.env.flush_all()
        params = {
            "partner": partner.id,
            "company": company.id,
            "date_from": date_from,
            "date_to": date_to,
        }
        receivable = """
              FROM account_move_line l
              JOIN account_account a ON a.id = l.account_id AND a.account_type = 'asset_receivable'
              JOIN account_move m ON m.id = l.move_id
              JOIN res_partner p ON p.id = l.partner_id AND p.commercial_partner_id = %(partner)s
             WHERE l.company_id = %(company)s AND l.parent_state = 'posted'
        """
        cr = self.env.cr
        cr.execute(f"SELECT COALESCE(sum(l.balance), 0) {receivable} AND l.date < %(date_from)s", params)  # noqa: S608 # pylint: disable=sql-injection
        opening = cr.fetchone()[0]
        cr.execute(
            f"""
            SELECT l.date, COALESCE(NULLIF(m.name, '/'), m.ref, ''), l.date_maturity, l.balance,
                   CASE WHEN m.origin_payment_id IS NOT NULL THEN 'payment'
                        WHEN m.move_type = 'out_invoice' THEN 'invoice'
                        WHEN m.move_type = 'out_refund' THEN 'credit_note'
                        ELSE 'other' END
            {receivable} AND l.date BETWEEN %(date_from)s AND %(date_to)s
             ORDER BY l.date, l.id
            """,  # noqa: S608 # pylint: disable=sql-injection
            params,
        )
        rows = cr.fetchall()
        currency = company.currency_id
        lines, running = [], opening
        totals = {"invoice": 0.0, "credit_note": 0.0, "payment": 0.0, "other": 0.0}
        for date, name, due, balance, kind in rows:
            running += balance
            totals[kind] += balance
            lines.append(
                {
                    "date": date,
                    "name": name,
                    "kind": kind,
                    "due": due if kind == "invoice" else False,
                    "debit": balance if balance > 0 else 0.0,
                    "credit": -balance if balance < 0 else 0.0,
                    "balance": currency.round(running),
                }
            )
        cr.execute(
            f"""
            SELECT COALESCE(sum(residual) FILTER (WHERE days <= 0), 0),
                   COALESCE(sum(residual) FILTER (WHERE days BETWEEN 1 AND 30), 0),
                   COALESCE(sum(residual) FILTER (WHERE days BETWEEN 31 AND 60), 0),
                   COALESCE(sum(residual) FILTER (WHERE days BETWEEN 61 AND 90), 0),
                   COALESCE(sum(residual) FILTER (WHERE days > 90), 0)
              FROM (
                SELECT l.amount_residual AS residual,
                       %(date_to)s - COALESCE(l.date_maturity, l.date) AS days
                {receivable} AND NOT l.reconciled AND l.date <= %(date_to)s
              ) open_items
            """,  # noqa: S608 # pylint: disable=sql-injection
            params,
        )
        ageing = [currency.round(value) for value in cr.fetchone()]
        pay_links = []
        overdue = partner._crm_overdue_moves(company)
        for move_currency in overdue.currency_id:
            moves = overdue.filtered(lambda m, c=move_currency: m.currency_id == c)
            pay_links.append(
                {
                    "currency": move_currency,
                    "total": sum(moves.mapped("amount_residual")),
                    "url": partner._crm_pay_all_url(company, move_currency),
                }
            )
        return {
            "partner": partner,
            "company": company,
            "currency": currency,
            "date_from": date_from,
            "date_to": date_to,
            "opening": currency.round(opening),
            "lines": lines,
            "invoices": currency.round(totals["invoice"]),
            "credit_notes": currency.round(-totals["credit_note"]),
            "payments": currency.round(-totals["payment"]),
            "other": currency.round(totals["other"]),
            "closing": currency.round(running),
            "ageing": ageing,
            "pay_links": pay_links,
        }

    @api.model
    def _cron_crm_monthly_statements(self, budget=None):
        """Email their statement to the customers who opted in, once a month (the cron's
        interval), in batches within Odoo's limits."""
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_collection_statements")
        month = fields.Date.context_today(self).replace(day=1)
        partners = (
            self.sudo()
            .search([("crm_statement_monthly", "=", True), ("is_company", "=", True)])
            .filtered(lambda p: (p.crm_statement_sent_month or fields.Date.to_date("1900-01-01")) < month)
        )
        for partner in iter_batches(
            partners,
            budget or TimeBudget.for_run(self.env, config),
            cron,
            batch_size=20,
            commit=not getattr(threading.current_thread(), "testing", False),
        ):
            try:
                with self.env.cr.savepoint():
                    partner._crm_send_statement()
                    partner.crm_statement_sent_month = month
            except UserError as error:
                partner.message_post(body=_("Monthly statement not sent: %s", error))
                partner.crm_statement_sent_month = month
