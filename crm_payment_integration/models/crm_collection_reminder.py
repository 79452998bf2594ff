import logging
import threading

import psycopg2.errors
from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config, format_amount, format_date, mute_logger
from odoo.tools.sql import create_index

from ..services.budget import TimeBudget, report_cron_progress

_logger = logging.getLogger(__name__)

# The expressions of the reminder templates Odoo renders without compiling each email's body
# (`mail.render.mixin`: a body reading only allowed fields is filled in, not compiled).
REMINDER_EXPRESSIONS = frozenset(
    ("object.email_details", "object.recipient_id.name", "object.company_id.name")
)

# Groups handled between two commits when time allows it (emails are rendered a batch at a
# time: the fewer the batches, the fewer times each template is compiled).
BATCH_SIZE = 1000


class CrmCollectionReminder(models.Model):
    """One reminder of a customer's overdue invoices in one currency, at one level: the
    reminders history. Its ``key`` (company, customer, currency, level and the set of invoices)
    is unique in the database: a run that crashed, or runs side by side, never send a second
    reminder for the same level and invoices."""

    _name = "crm.collection.reminder"
    _description = "Collections: reminder"
    _order = "id desc"
    _rec_name = "partner_id"

    key = fields.Char(required=True, readonly=True, index=True, copy=False)
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, readonly=True, index=True, ondelete="cascade"
    )
    recipient_id = fields.Many2one("res.partner", string="Sent To", readonly=True)
    currency_id = fields.Many2one("res.currency", required=True, readonly=True)
    level_id = fields.Many2one(
        "crm.collection.level", string="Level Setting", readonly=True, ondelete="set null"
    )
    level = fields.Integer(readonly=True, help="The level reached when the reminder was made.")
    invoice_ids = fields.Many2many("account.move", string="Invoices", readonly=True)
    amount = fields.Monetary(
        string="Total Due",
        readonly=True,
        help="What the invoices still owed when it was made, in its currency.",
    )
    state = fields.Selection(
        [
            ("sent", "Email sent"),
            ("charged", "Charged"),
            ("pending", "Charge waiting for the customer"),
            ("declined", "Charge declined, email sent"),
            ("skipped", "Skipped"),
            ("no_email", "No email address"),
        ],
        required=True,
        readonly=True,
        default="sent",
    )
    manual = fields.Boolean(readonly=True, help="Sent from the collections list (Send reminder now).")
    transaction_id = fields.Many2one("payment.transaction", string="Charge", readonly=True)
    decline_reason = fields.Char(readonly=True)
    user_id = fields.Many2one("res.users", string="By", readonly=True, default=lambda self: self.env.user)
    email_details = fields.Html(
        compute="_compute_email_details",
        sanitize=False,
        help="The invoices, total, decline reason and pay-all button of the reminder's email.",
    )

    _sql_constraints = [
        ("key_uniq", "UNIQUE(key)", "This reminder was already made (same level and invoices)."),
    ]

    def init(self):
        """The reminders of a customer, company, currency and level: what the run checks for
        each group due (one index lookup, not a scan of the company's reminders)."""
        create_index(
            self.env.cr,
            "crm_collection_reminder_group_idx",
            self._table,
            ["partner_id", "company_id", "currency_id", "level"],
        )

    # === WHAT THE EMAIL SHOWS === #

    def _crm_pay_url(self):
        """The lasting link paying every invoice of the reminder still due (a current hosted
        page for the current total)."""
        self.ensure_one()
        return self.partner_id._crm_pay_all_url(self.company_id, self.currency_id)

    def _crm_open_invoices(self):
        """The reminder's invoices still due, oldest due date first."""
        return self.invoice_ids.filtered(lambda m: not m.currency_id.is_zero(m.amount_residual)).sorted(
            lambda m: (m.invoice_date_due, m.id)
        )

    def _crm_format(self, amount):
        return format_amount(self.env, amount, self.currency_id)

    @api.depends("invoice_ids.amount_residual", "decline_reason", "amount")
    def _compute_email_details(self):
        """The invoices, total, decline reason and pay-all button of the reminder's email: a
        QWeb view compiled once for every email of a run. A field, so that the reminder
        templates read only fields of the reminder and Odoo renders them without compiling
        each email's body (`mail.render.mixin`'s rendering of allowed expressions)."""
        QWeb = self.env["ir.qweb"]
        for reminder in self:
            reminder.email_details = QWeb._render(
                "crm_payment_integration.crm_collection_reminder_details",
                {
                    "reminder": reminder,
                    "invoices": reminder._crm_open_invoices(),
                    "pay_url": reminder._crm_pay_url(),
                    "format_amount": reminder._crm_format,
                    "format_date": lambda value: format_date(self.env, value),
                },
            )

    # === THE RUN === #

    @api.model
    def _cron_run(self, today=None, budget=None):
        """Send the reminders due: promises settled first, then every customer whose oldest
        overdue invoice reached a level not yet reminded for the same invoices gets one email per
        currency (or, at an auto-charge level and with their consent, one charge of the total).

        Committed in batches within the run's share of Odoo's limits; what is left is done by the
        next run, triggered at once.

        :param date today: the day of the run (a parameter for tests and the benchmark)
        :param TimeBudget budget: when to stop; by default the share of Odoo's limits
        :return: how many reminders were made
        """
        today = today or fields.Date.context_today(self)
        testing = getattr(threading.current_thread(), "testing", False)
        self._crm_allocate_open_payments()
        self.env["crm.collection.promise"]._crm_settle(today)
        budget = budget or TimeBudget.for_run(self.env, config)
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_collection_run")
        groups = self._crm_due_groups(today)
        done = 0
        while done < len(groups) and budget.allows_batch():
            batch = groups[done : done + budget.batch_size(BATCH_SIZE)]
            with budget.batch(len(batch)):
                self._crm_remind_groups(batch)
                if not testing:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
            done += len(batch)
        report_cron_progress(cron, done, len(groups) - done)
        return done

    @api.model
    def _crm_allocate_open_payments(self):
        """Apply the payments not yet matched with invoices (a transfer of part of what is
        due) to the open invoices of their customers, oldest due first, before finding what to
        remind: the customers are found in SQL, the few with such payments then allocated."""
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT DISTINCT p.commercial_partner_id, l.company_id
              FROM account_move_line l
              JOIN account_account a ON a.id = l.account_id AND a.account_type = 'asset_receivable'
              JOIN account_move pm ON pm.id = l.move_id AND pm.origin_payment_id IS NOT NULL
              JOIN res_partner p ON p.id = l.partner_id
             WHERE NOT l.reconciled AND l.parent_state = 'posted' AND l.balance < 0
               AND EXISTS (
                   SELECT 1 FROM account_move m
                    WHERE m.commercial_partner_id = p.commercial_partner_id AND m.company_id = l.company_id
                      AND m.move_type = 'out_invoice' AND m.state = 'posted'
                      AND m.payment_state IN ('not_paid', 'partial'))
            """
        )
        Partner = self.env["res.partner"].sudo()
        for partner_id, company_id in self.env.cr.fetchall():
            Partner.browse(partner_id)._crm_allocate_payments(self.env["res.company"].browse(company_id))

    @api.model
    def _crm_due_groups_now(self, partner, company, today):
        """The groups of one customer to remind now (Send reminder now): their invoices overdue
        (or reaching the first level), at the level reached (the first one when none), whatever
        was sent before and whatever they promised."""
        return self._crm_due_groups(today, partner=partner, company=company, force=True)

    @api.model
    def _crm_due_groups(self, today, partner=None, company=None, force=False):
        """The reminders due, found in SQL from the invoices' due dates and residuals.

        A group is a customer (commercial partner), company and currency; its invoices are the
        posted customer invoices still due that reached the company's first level (not Stripe
        Billing's, not in dispute, not under an open promise); its level is the highest one its
        oldest invoice reached. Due when no reminder at that level covered all of them.

        :return: dicts with ``company_id``, ``partner_id``, ``currency_id``, ``level_id``,
            ``level``, ``move_ids`` (oldest due first), ``total``, ``key``
        """
        excluded = self.env["account.move"]._crm_collection_excluded_move_ids()
        self.env.flush_all()
        # The latest due date any company's first level reaches today: a bound on the invoices
        # read (the index of the open invoices by due date), whatever the levels of each company.
        self.env.cr.execute(
            "SELECT min(days) FROM crm_collection_level WHERE active AND (%s IS NULL OR company_id = %s)",
            (company.id if company else None, company.id if company else None),
        )
        first_days = self.env.cr.fetchone()[0]
        if first_days is None:
            return []
        latest_due = today - relativedelta(days=first_days)
        if force:
            latest_due = max(latest_due, today - relativedelta(days=1))
        self.env.cr.execute(
            """
            WITH lv AS (
                SELECT id, company_id, level, days FROM crm_collection_level
                 WHERE active AND (%(company)s IS NULL OR company_id = %(company)s)
            ), first_level AS (
                SELECT company_id, min(days) AS days FROM lv GROUP BY company_id
            ), inv AS (
                SELECT m.id, m.company_id, m.commercial_partner_id AS partner_id, m.currency_id,
                       m.invoice_date_due AS due, m.amount_residual
                  FROM account_move m
                  JOIN first_level f ON f.company_id = m.company_id
                 WHERE m.move_type = 'out_invoice' AND m.state = 'posted'
                   AND m.payment_state IN ('not_paid', 'partial') AND m.amount_residual > 0
                   AND m.invoice_date_due <= CASE
                       WHEN %(force)s THEN GREATEST(%(today)s::date - f.days, %(today)s::date - 1)
                       ELSE %(today)s::date - f.days END
                   AND m.invoice_date_due <= %(latest_due)s
                   AND m.crm_stripe_invoice_id IS NULL
                   AND (%(partner)s IS NULL OR m.commercial_partner_id = %(partner)s)
                   AND m.id != ALL(%(excluded)s::int[])
                   AND (%(force)s OR NOT EXISTS (
                       SELECT 1 FROM crm_collection_promise p
                        WHERE p.partner_id = m.commercial_partner_id AND p.company_id = m.company_id
                          AND p.state = 'open' AND p.date >= %(today)s))
            ), grp AS (
                SELECT company_id, partner_id, currency_id, min(due) AS oldest,
                       sum(amount_residual) AS total,
                       array_agg(id ORDER BY due, id) AS move_ids,
                       md5(string_agg(id::text, ',' ORDER BY id)) AS set_hash
                  FROM inv GROUP BY company_id, partner_id, currency_id
            )
            SELECT g.company_id, g.partner_id, g.currency_id, l.id, l.level, g.move_ids, g.total,
                   concat_ws(':', g.company_id, g.partner_id, g.currency_id, l.level, g.set_hash)
              FROM grp g
              JOIN LATERAL (
                  SELECT lv.id, lv.level FROM lv
                   WHERE lv.company_id = g.company_id
                     AND (%(force)s OR g.oldest + lv.days <= %(today)s)
                   ORDER BY CASE WHEN g.oldest + lv.days <= %(today)s THEN lv.level ELSE -lv.level END DESC
                   LIMIT 1
              ) l ON TRUE
             WHERE %(force)s OR NOT EXISTS (
                 SELECT 1 FROM crm_collection_reminder r
                  WHERE r.company_id = g.company_id AND r.partner_id = g.partner_id
                    AND r.currency_id = g.currency_id AND r.level = l.level
                    AND (SELECT array_agg(rel.account_move_id)
                           FROM account_move_crm_collection_reminder_rel rel
                          WHERE rel.crm_collection_reminder_id = r.id) @> g.move_ids)
             ORDER BY g.company_id, g.partner_id, g.currency_id
            """,
            {
                "today": today,
                "excluded": list(excluded),
                "partner": partner.id if partner else None,
                "company": company.id if company else None,
                "force": force,
                "latest_due": latest_due,
            },
        )
        keys = ("company_id", "partner_id", "currency_id", "level_id", "level", "move_ids", "total", "key")
        return [dict(zip(keys, row, strict=True)) for row in self.env.cr.fetchall()]

    @api.model
    def _crm_remind_groups(self, groups, manual=False):
        """Make the reminders of these groups: charge where consented, email the others, log
        them on the customers' chatter (rights not checked: the run and checked actions).

        :return: the reminders made
        """
        reminders = self._crm_create_all(groups, manual=manual)
        # one read of the reminders' invoices for the emails and the notes
        reminders.invoice_ids.mapped("amount_residual")
        to_email = self.browse()
        for reminder in reminders:
            if reminder.level_id.auto_charge and not manual:
                reminder._crm_auto_charge()
            if reminder.state in ("sent", "declined"):
                to_email |= reminder
        to_email._crm_send_emails()
        reminders._crm_log_on_partner()
        return reminders

    @api.model
    def _crm_values(self, group, manual=False, partners=None):
        partners = partners or self.env["res.partner"].sudo()
        partner = partners.browse(group["partner_id"]).with_prefetch(partners._prefetch_ids)
        recipient = partner._crm_collection_recipient()
        key = group["key"] + (f":manual:{fields.Datetime.now().isoformat()}:{self.env.uid}" if manual else "")
        return {
            "key": key,
            "company_id": group["company_id"],
            "partner_id": partner.id,
            "recipient_id": recipient.id,
            "currency_id": group["currency_id"],
            "level_id": group["level_id"],
            "level": group["level"],
            "invoice_ids": [(6, 0, group["move_ids"])],
            "amount": group["total"],
            "manual": manual,
            "state": "sent" if recipient else "no_email",
        }

    @api.model
    def _crm_create_all(self, groups, manual=False):
        """Create the reminders of these groups at once; when one of their keys exists already
        (made by another run meanwhile), one by one, leaving out those made."""
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                partners = self.env["res.partner"].sudo().browse({g["partner_id"] for g in groups})
                # the customers' contacts read at once (the recipient of each reminder)
                partners.commercial_partner_id.child_ids.mapped("email")
                return self.sudo().create([self._crm_values(group, manual, partners) for group in groups])
        except psycopg2.errors.UniqueViolation:
            reminders = self.sudo().browse()
            for group in groups:
                reminders |= self._crm_create_once(group, manual=manual)
            return reminders

    @api.model
    def _crm_create_once(self, group, manual=False):
        """Create the reminder of a group, unless its key exists (another run made it)."""
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                return self.sudo().create(self._crm_values(group, manual))
        except psycopg2.errors.UniqueViolation:
            return self.browse()

    def _crm_auto_charge(self):
        """Charge the customer's default saved method for the reminder's total, once: the
        transaction's reference names the invoices, so a run that crashed after Stripe answered
        finds its request (`crm.stripe.request`) and Stripe's PaymentIntent instead of charging
        again. Declined: the reminder is emailed with the link and the reason."""
        self.ensure_one()
        partner = self.partner_id
        if not partner._crm_collection_may_auto_charge(self.company_id):
            return
        token = partner._crm_default_token(self.company_id)
        moves = self._crm_open_invoices()
        if not moves:
            return
        try:
            with self.env.cr.savepoint():
                moves._crm_lock_for_charge()
                if moves._crm_settle_earlier_charges() or self._crm_payment_under_way(moves):
                    self.write({"state": "pending"})
                    return
                # The customer's hosted pages still open (the pay-all page of a reminder, the
                # invoice's own payment link) are closed first: a page paid meanwhile is
                # applied instead, and only what is still due is charged, never twice.
                self._crm_hosted_txs(moves)._crm_expire_checkout_session()
                if self._crm_payment_under_way(moves):
                    self.write({"state": "pending"})
                    return
                moves = self._crm_open_invoices()
                if not moves:
                    self.write({"state": "skipped"})
                    return
                total = sum(moves.mapped("amount_residual"))
                tx = (
                    self.env["payment.transaction"]
                    .with_context(crm_collection_reminder=True)
                    ._crm_create(
                        partner,
                        total,
                        self.currency_id,
                        "off_session",
                        invoices=moves,
                        token=token,
                        reason=_("Overdue invoices, level %(level)s", level=self.level),
                    )
                )
                tx.with_context(crm_collection_reminder=True)._crm_charge_off_session()
        except UserError as error:
            _logger.warning("auto-charge of reminder %s not made: %s", self.id, error)
            self.write({"state": "declined", "decline_reason": str(error)})
            return
        if tx.state == "done":
            self.write({"state": "charged", "transaction_id": tx.id})
        elif tx.state == "error":
            self.write(
                {
                    "state": "declined",
                    "transaction_id": tx.id,
                    "decline_reason": tx.crm_decline_reason or tx.state_message or _("declined"),
                }
            )
        else:
            self.write({"state": "pending", "transaction_id": tx.id})

    @api.model
    def _crm_hosted_txs(self, moves):
        """The hosted-page (Checkout) transactions of these invoices, sudo: the pay-all pages
        naming them and each invoice's own payment link."""
        moves = moves.sudo()
        return (moves.transaction_ids | moves.crm_payment_tx_id).filtered(
            lambda tx: tx.crm_flow == "checkout"
        )

    @api.model
    def _crm_payment_under_way(self, moves):
        """Whether a payment of these invoices is under way: an off-session charge not ended,
        or a hosted-page payment pending or authorized (a method that settles later)."""
        return any(move._crm_charge_in_progress(settle=False) for move in moves) or any(
            tx.state in ("pending", "authorized") for tx in self._crm_hosted_txs(moves)
        )

    def _crm_send_emails(self):
        """Queue the reminders' emails, one batch per template (with the PDF letter where the
        level asks for it)."""
        for template in self.level_id.mail_template_id:
            reminders = self.filtered(lambda r, t=template: r.level_id.mail_template_id == t)
            with_letter = reminders.filtered(lambda r: r.level_id.letter)
            plain = reminders - with_letter
            if plain:
                # The template is the whole email (no notification layout around it): a reminder
                # run queues thousands of them.
                template.sudo().send_mail_batch(plain.ids)
            for reminder in with_letter:
                pdf, __ = (
                    self.env["ir.actions.report"]
                    .sudo()
                    ._render_qweb_pdf("crm_payment_integration.report_crm_collection_letter", reminder.ids)
                )
                attachment = (
                    self.env["ir.attachment"]
                    .sudo()
                    .create(
                        {
                            "name": _("Reminder %(customer)s.pdf", customer=reminder.partner_id.name),
                            "raw": pdf,
                            "mimetype": "application/pdf",
                            "res_model": reminder._name,
                            "res_id": reminder.id,
                        }
                    )
                )
                template.sudo().send_mail(reminder.id, email_values={"attachment_ids": [(4, attachment.id)]})

    def _crm_log_on_partner(self):
        """One note per reminder on its customer's chatter."""
        bodies = {}
        partners = self.env["res.partner"].sudo()
        states = dict(self._fields["state"]._description_selection(self.env))
        for reminder in self:
            what = states[reminder.state]
            body = _(
                "Collections, level %(level)s (%(state)s): %(invoices)s, %(amount)s due%(to)s.",
                level=reminder.level,
                state=what,
                invoices=", ".join(reminder.invoice_ids.mapped("name")),
                amount=reminder._crm_format(reminder.amount),
                to=_(" – sent to %s", reminder.recipient_id.email)
                if reminder.state in ("sent", "declined")
                else "",
            )
            if reminder.decline_reason:
                body += " " + _("Charge declined: %s.", reminder.decline_reason)
            partners |= reminder.partner_id
            bodies.setdefault(reminder.partner_id.id, []).append(body)
        if partners:
            partners._message_log_batch(bodies={pid: " ".join(texts) for pid, texts in bodies.items()})


class IrQweb(models.AbstractModel):
    _inherit = "ir.qweb"

    @api.model
    def _is_expression_allowed(self, expression, model):
        """The reminder templates' fields are allowed: a reminder run renders thousands of
        emails (their body filled in, not compiled for each)."""
        return super()._is_expression_allowed(expression, model) or (
            model == "crm.collection.reminder" and expression.strip() in REMINDER_EXPRESSIONS
        )
