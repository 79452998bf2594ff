from odoo import _, fields, models, tools
from odoo.exceptions import UserError

from .. import utils


class CrmCollectionOverview(models.Model):
    """The collections list: one row per customer (commercial partner) and company with
    overdue invoices, amounts in the company currency (each invoice at its own rate)."""

    _name = "crm.collection.overview"
    _description = "Collections: customers with overdue invoices"
    _auto = False
    _order = "overdue_amount desc"
    _rec_name = "partner_id"

    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    user_id = fields.Many2one("res.users", string="Salesperson", readonly=True)
    total_due = fields.Monetary(readonly=True, help="Every invoice still due, overdue or not.")
    overdue_amount = fields.Monetary(string="Overdue", readonly=True)
    amount_current = fields.Monetary(string="Not Yet Due", readonly=True)
    amount_1_30 = fields.Monetary(string="1-30 Days", readonly=True)
    amount_31_60 = fields.Monetary(string="31-60 Days", readonly=True)
    amount_61_90 = fields.Monetary(string="61-90 Days", readonly=True)
    amount_90_plus = fields.Monetary(string="90+ Days", readonly=True)
    oldest_due_date = fields.Date(readonly=True)
    days_overdue = fields.Integer(readonly=True, help="Days past the due date of the oldest unpaid invoice.")
    level = fields.Integer(readonly=True, help="The highest reminder level reached (0: none).")
    last_reminder_date = fields.Datetime(string="Last Reminder", readonly=True)
    next_action_date = fields.Date(
        readonly=True,
        help="The promised date under an open promise, else the day the next level is reached.",
    )
    promise_date = fields.Date(readonly=True)
    promise_amount = fields.Monetary(readonly=True)

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            """
            CREATE OR REPLACE VIEW crm_collection_overview AS (
                WITH open_moves AS (
                    SELECT m.id, m.company_id, m.commercial_partner_id AS partner_id,
                           m.invoice_date_due AS due, m.amount_residual_signed AS residual,
                           CURRENT_DATE - m.invoice_date_due AS days
                      FROM account_move m
                     WHERE m.move_type = 'out_invoice' AND m.state = 'posted'
                       AND m.payment_state IN ('not_paid', 'partial')
                ), per_partner AS (
                    SELECT min(o.id) AS id, o.company_id, o.partner_id,
                           sum(o.residual) AS total_due,
                           COALESCE(sum(o.residual) FILTER (WHERE o.days > 0), 0) AS overdue_amount,
                           COALESCE(sum(o.residual) FILTER (WHERE o.days <= 0), 0) AS amount_current,
                           COALESCE(sum(o.residual) FILTER (WHERE o.days BETWEEN 1 AND 30), 0) AS amount_1_30,
                           COALESCE(sum(o.residual) FILTER (WHERE o.days BETWEEN 31 AND 60), 0)
                               AS amount_31_60,
                           COALESCE(sum(o.residual) FILTER (WHERE o.days BETWEEN 61 AND 90), 0)
                               AS amount_61_90,
                           COALESCE(sum(o.residual) FILTER (WHERE o.days > 90), 0) AS amount_90_plus,
                           min(o.due) FILTER (WHERE o.days > 0) AS oldest_due_date,
                           max(o.days) AS days_overdue
                      FROM open_moves o
                     GROUP BY o.company_id, o.partner_id
                    HAVING max(o.days) > 0
                ), reminded AS (
                    SELECT r.company_id, r.partner_id,
                           max(r.level) FILTER (WHERE r.state != 'skipped' AND EXISTS (
                               SELECT 1 FROM account_move_crm_collection_reminder_rel rel
                                 JOIN account_move m ON m.id = rel.account_move_id
                                WHERE rel.crm_collection_reminder_id = r.id AND m.state = 'posted'
                                  AND m.payment_state IN ('not_paid', 'partial'))) AS level,
                           max(r.create_date) FILTER (WHERE r.state != 'skipped') AS last_reminder_date
                      FROM crm_collection_reminder r
                     GROUP BY r.company_id, r.partner_id
                )
                SELECT pp.*, c.currency_id, p.user_id,
                       COALESCE(rm.level, 0) AS level, rm.last_reminder_date,
                       pr.date AS promise_date, pr.amount AS promise_amount,
                       COALESCE(pr.date, (
                           SELECT pp.oldest_due_date + l.days FROM crm_collection_level l
                            WHERE l.company_id = pp.company_id AND l.active
                              AND l.level > COALESCE(rm.level, 0)
                            ORDER BY l.level LIMIT 1)) AS next_action_date
                  FROM per_partner pp
                  JOIN res_company c ON c.id = pp.company_id
                  JOIN res_partner p ON p.id = pp.partner_id
                  LEFT JOIN reminded rm ON rm.company_id = pp.company_id AND rm.partner_id = pp.partner_id
                  LEFT JOIN LATERAL (
                      SELECT date, amount FROM crm_collection_promise
                       WHERE partner_id = pp.partner_id AND company_id = pp.company_id AND state = 'open'
                       ORDER BY date DESC LIMIT 1) pr ON TRUE
            )
            """
        )

    # === ACTIONS === #

    def _crm_check_rights(self):
        self.env["account.move"]._crm_check_accounting_rights()
        self.check_access("read")

    def action_send_reminder(self):
        """Send each customer's reminder now, at the level they reached (the first one when
        none): one email per currency, whatever was sent before.

        :return: a notification action
        :raise UserError: without billing rights
        """
        self._crm_check_rights()
        Reminder = self.env["crm.collection.reminder"].sudo()
        today = fields.Date.context_today(self)
        made = Reminder.browse()
        for row in self.sudo():
            groups = Reminder._crm_due_groups_now(row.partner_id, row.company_id, today)
            made |= Reminder._crm_remind_groups(groups, manual=True)
        return utils.notification(
            _("%(count)s reminder(s) sent.", count=len(made.filtered(lambda r: r.state == "sent"))),
            title=_("Reminders"),
        )

    def action_skip(self):
        """Skip the reminder each customer is due for: the run will not send it (the next
        level, or new overdue invoices, are reminded as usual).

        :return: a notification action
        :raise UserError: without billing rights
        """
        self._crm_check_rights()
        Reminder = self.env["crm.collection.reminder"].sudo()
        today = fields.Date.context_today(self)
        skipped = Reminder.browse()
        for row in self.sudo():
            for group in Reminder._crm_due_groups(today, partner=row.partner_id, company=row.company_id):
                reminder = Reminder._crm_create_once(group)
                reminder.state = "skipped"
                skipped |= reminder
        skipped._crm_log_on_partner()
        return utils.notification(
            _("%(count)s reminder(s) skipped.", count=len(skipped)), title=_("Reminders")
        )

    def action_call(self):
        """Plan a call to each customer for the current user (an activity on the customer).

        :return: a notification action
        :raise UserError: without billing rights
        """
        self._crm_check_rights()
        for row in self.sudo():
            row.partner_id.activity_schedule(
                "mail.mail_activity_data_call",
                user_id=self.env.user.id,
                summary=_("Call about overdue invoices"),
                note=_(
                    "%(amount)s overdue, oldest due on %(date)s (level %(level)s).",
                    amount=tools.format_amount(self.env, row.overdue_amount, row.currency_id),
                    date=row.oldest_due_date,
                    level=row.level,
                ),
            )
        return utils.notification(_("Call planned."), title=_("Collections"))

    def action_send_statement(self):
        """Email each customer their statement of account (see ``res.partner``'s
        ``action_crm_send_statement``).

        :return: a notification action
        :raise UserError: without billing rights, or for a customer without email address
        """
        if not self:
            raise UserError(_("Select the customers to send their statement to."))
        return self.partner_id.action_crm_send_statement()
