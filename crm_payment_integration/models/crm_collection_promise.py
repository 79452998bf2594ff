from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import format_amount


class CrmCollectionPromise(models.Model):
    """A customer's promise to pay an amount by a date: their reminders pause until then. Kept
    (paid by the date) it closes; broken, its salesperson gets an activity and the levels
    resume."""

    _name = "crm.collection.promise"
    _description = "Collections: promise to pay"
    _inherit = ["mail.thread"]
    _order = "date desc, id desc"
    _rec_name = "partner_id"

    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        required=True,
        index=True,
        domain="[('is_company', '=', True)]",
        tracking=True,
    )
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    date = fields.Date(string="Promised Date", required=True, tracking=True)
    amount = fields.Monetary(
        string="Promised Amount",
        required=True,
        tracking=True,
        help="In the company currency: what the customer's payments from the day of the promise "
        "to the promised date must reach for it to be kept.",
    )
    start_date = fields.Date(
        string="Promised On", required=True, default=fields.Date.context_today, readonly=True
    )
    paid_amount = fields.Monetary(
        string="Paid Since",
        readonly=True,
        help="The customer's payments since the promise (company currency).",
    )
    state = fields.Selection(
        [("open", "Open"), ("kept", "Kept"), ("broken", "Broken")],
        default="open",
        required=True,
        readonly=True,
        tracking=True,
    )
    user_id = fields.Many2one("res.users", string="Recorded By", default=lambda self: self.env.user)
    note = fields.Text()

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("partner_id"):
                vals["partner_id"] = (
                    self.env["res.partner"].browse(vals["partner_id"]).commercial_partner_id.id
                )
        promises = super().create(vals_list)
        for promise in promises:
            promise.partner_id.sudo().message_post(
                body=_(
                    "Promise to pay %(amount)s by %(date)s recorded: reminders pause until then.",
                    amount=format_amount(self.env, promise.amount, promise.currency_id),
                    date=promise.date,
                )
            )
        return promises

    # How far a promise may pause the reminders: its date at most this many days after the
    # day it was made.
    _crm_max_days = 90

    @api.constrains("date", "start_date")
    def _check_crm_promise_date(self):
        for promise in self:
            if (
                not promise.start_date
                <= promise.date
                <= promise.start_date + timedelta(days=self._crm_max_days)
            ):
                raise ValidationError(
                    _(
                        "The promised date must be between the day of the promise (%(start)s) and "
                        "%(days)s days after it.",
                        start=promise.start_date,
                        days=self._crm_max_days,
                    )
                )

    def write(self, vals):
        """:raise UserError: when a user (not the collections run) writes the state, the day of
        the promise or the amount paid since: a broken promise is not reopened nor stretched
        by hand; record a new one."""
        if not self.env.su and {"state", "start_date", "paid_amount"} & set(vals):
            raise UserError(_("A promise's state, day and amount paid are set by the collections alone."))
        return super().write(vals)

    @api.model
    def _crm_settle(self, today):
        """Close the open promises paid in full (kept) and those whose date passed unpaid
        (broken: an activity for the one who recorded it; the levels resume)."""
        promises = self.sudo().search([("state", "=", "open")])
        if not promises:
            return
        paid = promises._crm_paid_amounts(today)
        for promise in promises:
            amount = paid.get(promise.id, 0.0)
            currency = promise.currency_id
            if currency.compare_amounts(amount, promise.amount) >= 0:
                promise.write({"state": "kept", "paid_amount": amount})
                promise.partner_id.message_post(body=_("Promise to pay of %(date)s kept.", date=promise.date))
            elif promise.date < today:
                promise.write({"state": "broken", "paid_amount": amount})
                note = _(
                    "%(customer)s promised %(amount)s by %(date)s and paid %(paid)s: call them. "
                    "Reminders resume.",
                    customer=promise.partner_id.display_name,
                    amount=format_amount(self.env, promise.amount, currency),
                    date=promise.date,
                    paid=format_amount(self.env, amount, currency),
                )
                promise.partner_id.activity_schedule(
                    "mail.mail_activity_data_call",
                    user_id=(promise.user_id or promise.partner_id.user_id or self.env.user).id,
                    summary=_("Promise to pay broken"),
                    note=note,
                )
                promise.partner_id.message_post(body=note)
            elif currency.compare_amounts(amount, promise.paid_amount) != 0:
                promise.paid_amount = amount

    def _crm_paid_amounts(self, today):
        """What each promise's customer paid from its start to its date (or today), in the
        company currency: the receivable credits of their payments.

        :return: ``{promise id: amount}``
        """
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT p.id, COALESCE(-sum(l.balance), 0)
              FROM crm_collection_promise p
              JOIN res_partner cp ON cp.id = p.partner_id
              JOIN res_partner c ON c.commercial_partner_id = cp.id
              JOIN account_move_line l ON l.partner_id = c.id AND l.company_id = p.company_id
              JOIN account_account a ON a.id = l.account_id AND a.account_type = 'asset_receivable'
              JOIN account_move m ON m.id = l.move_id AND m.origin_payment_id IS NOT NULL
             WHERE p.id = ANY(%s) AND l.parent_state = 'posted'
               AND l.date >= p.start_date AND l.date <= LEAST(p.date, %s)
             GROUP BY p.id
            """,
            [self.ids, today],
        )
        return dict(self.env.cr.fetchall())
