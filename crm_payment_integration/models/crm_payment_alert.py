import logging

from markupsafe import Markup, escape

from odoo import api, fields, models

_logger = logging.getLogger(__name__)

ALERT_KINDS = [
    ("payment_failed", "Failed payment"),
    ("dispute", "Dispute"),
    ("early_fraud_warning", "Early fraud warning"),
    ("risk_flag", "Risk flag"),
    ("event_failed", "Stripe event failed"),
    ("webhook_silent", "Webhook silent or disabled"),
]


class CrmPaymentAlert(models.Model):
    """One alert per cause: a failed payment, a dispute, an early fraud warning, a risk flag, a
    Stripe event that could not be applied, a webhook endpoint gone silent.

    ``(company, kind, cause_key)`` is unique in the database: raising the same cause again (an
    event delivered or reprocessed twice, a cron run again) does nothing. A new alert schedules
    an activity for the company's alert user (or each user of its alert group) on the record it
    is about (on the alert itself when that record has no activities), and, when the company
    asks for it for this kind, an email to them.
    """

    _name = "crm.payment.alert"
    _description = "CRM Payments Alert"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _rec_name = "summary"

    kind = fields.Selection(ALERT_KINDS, required=True, readonly=True, index=True)
    cause_key = fields.Char(
        required=True, readonly=True, help="What the alert is about, e.g. tx:42: the same cause alerts once."
    )
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    res_model = fields.Char(string="Record Model", readonly=True)
    res_id = fields.Integer(string="Record ID", readonly=True)
    summary = fields.Char(required=True, readonly=True)
    user_ids = fields.Many2many("res.users", string="Alerted", readonly=True)
    emailed = fields.Boolean(readonly=True)

    _sql_constraints = [
        ("cause_uniq", "unique(company_id, kind, cause_key)", "An alert is raised once per cause."),
    ]

    # === BUSINESS METHODS === #

    @api.model
    def _crm_recipients(self, company, fallback_user=None):
        """The users an alert of ``company`` goes to: its alert user, else the users of its
        alert group, else ``fallback_user``, else the administrator."""
        company = company.sudo()
        if company.crm_alert_user_id:
            return company.crm_alert_user_id
        users = company.crm_alert_group_id.users.filtered(
            lambda u: u.active and not u.share and company in u.company_ids
        )
        return users or fallback_user or self.env.ref("base.user_admin")

    @api.model
    def _crm_raise(self, kind, cause_key, record, summary, company=None, note=None, fallback_user=None):
        """Raise an alert once per cause.

        :param str kind: one of ``ALERT_KINDS``
        :param str cause_key: what the alert is about (``tx:42``, ``dispute:dp_...``): a cause
            already alerted of, in this company and kind, raises nothing
        :param record: the record the alert is about (one; gets the activity when it has
            activities)
        :param str summary: one line, shown as the activity's summary and the email's subject
        :param company: defaults to the record's company, else the current one
        :param str note: the activity's and email's body (plain text); defaults to ``summary``
        :param fallback_user: who is alerted when the company names no alert user nor group
            (default: the administrator)
        :return: the new alert, or an empty recordset when the cause was alerted of already
        """
        if company is None:
            company = (record._fields.get("company_id") and record.company_id) or self.env.company
        self.env.cr.execute(
            """
            INSERT INTO crm_payment_alert
                   (kind, cause_key, company_id, res_model, res_id, summary,
                    create_uid, write_uid, create_date, write_date)
            VALUES (%(kind)s, %(cause)s, %(company)s, %(model)s, %(res_id)s, %(summary)s,
                    %(uid)s, %(uid)s, %(now)s, %(now)s)
            ON CONFLICT (company_id, kind, cause_key) DO NOTHING
            RETURNING id
            """,
            {
                "kind": kind,
                "cause": cause_key,
                "company": company.id,
                "model": record._name,
                "res_id": record.id,
                "summary": summary[:255],
                "uid": self.env.uid,
                "now": fields.Datetime.now(),
            },
        )
        row = self.env.cr.fetchone()
        if not row:
            return self.browse()
        alert = self.sudo().browse(row[0])
        users = self._crm_recipients(company, fallback_user)
        target = record.sudo() if hasattr(record, "activity_schedule") else alert
        body = note or summary
        for user in users:
            target.activity_schedule(
                "mail.mail_activity_data_todo", user_id=user.id, summary=summary[:255], note=body
            )
        email = company.sudo()[f"crm_alert_email_{kind}"]
        recipients = [user.email_formatted for user in users if user.email]
        if email and recipients:
            self.env["mail.mail"].sudo().create(
                {
                    "subject": summary,
                    "body_html": Markup("<p>%s</p>") % escape(body),
                    "email_to": ",".join(recipients),
                    "email_from": company.email_formatted or self.env.user.email_formatted,
                    "auto_delete": False,
                }
            )
        alert.write({"user_ids": [(6, 0, users.ids)], "emailed": bool(email and recipients)})
        _logger.info("alert %s raised for %s", kind, cause_key)
        return alert
