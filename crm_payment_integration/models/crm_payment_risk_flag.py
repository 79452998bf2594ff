import json
import logging

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from .crm_payment_risk_rule import RISK_RULES

_logger = logging.getLogger(__name__)


class CrmPaymentRiskFlag(models.Model):
    """A hit of a risk rule: on a customer (and the transaction that caused it), open until a
    person clears it, with who and why.

    ``(company, rule, cause_key)`` is unique in the database: the same cause (the same
    transaction, card or early fraud warning) flags once, however often its events come. A
    flag whose rule holds charges stops the customer's automatic charges while it is open
    (see ``res.partner._crm_automatic_charges_held``).
    """

    _name = "crm.payment.risk.flag"
    _description = "CRM Payments Risk Flag"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _rec_name = "summary"

    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, readonly=True, index=True, ondelete="cascade"
    )
    transaction_id = fields.Many2one(
        "payment.transaction", readonly=True, index="btree_not_null", ondelete="set null"
    )
    lead_id = fields.Many2one("crm.lead", string="Opportunity", readonly=True, ondelete="set null")
    rule = fields.Selection(RISK_RULES, required=True, readonly=True, index=True)
    subject = fields.Char(
        readonly=True, help="What the rule counted on: the customer, a card fingerprint, an IP address."
    )
    cause_key = fields.Char(required=True, readonly=True)
    values = fields.Json(string="Triggering Values", readonly=True)
    values_text = fields.Text(string="Values", compute="_compute_values_text")
    summary = fields.Char(required=True, readonly=True)
    state = fields.Selection(
        [("open", "Open"), ("cleared", "Cleared")],
        required=True,
        default="open",
        readonly=True,
        index=True,
        tracking=True,
    )
    hold_charges = fields.Boolean(string="Holds Automatic Charges", readonly=True)
    cleared_by_id = fields.Many2one("res.users", string="Cleared by", readonly=True)
    cleared_at = fields.Datetime(string="Cleared On", readonly=True)
    clear_reason = fields.Text(string="Why Cleared", readonly=True)

    _sql_constraints = [
        ("cause_uniq", "unique(company_id, rule, cause_key)", "A risk rule flags a cause once."),
    ]

    # What a flag says and how it was cleared: written by the rules and the clearing wizard
    # (both as superuser), never by a client's own write.
    _CRM_PROTECTED_FIELDS = frozenset(
        {
            "company_id",
            "partner_id",
            "transaction_id",
            "lead_id",
            "rule",
            "subject",
            "cause_key",
            "values",
            "summary",
            "state",
            "hold_charges",
            "cleared_by_id",
            "cleared_at",
            "clear_reason",
        }
    )

    def write(self, vals):
        """Refuse a client's direct change of a flag's facts or state: clearing goes through
        the clearing dialog (`action_crm_clear`), which keeps who and why.

        :raise AccessError: when a field of ``_CRM_PROTECTED_FIELDS`` is written outside a
            superuser environment
        """
        if not self.env.su and self._CRM_PROTECTED_FIELDS & set(vals):
            raise AccessError(_("Risk flags are cleared with the Clear button, which keeps who and why."))
        return super().write(vals)

    @api.depends("values")
    def _compute_values_text(self):
        for flag in self:
            flag.values_text = (
                json.dumps(flag.values, indent=1, sort_keys=True, default=str) if flag.values else ""
            )

    # === ACTIONS === #

    def action_crm_clear(self):
        """Open the dialog clearing these open flags (a reason is asked).

        :return: the window action of the clearing wizard
        :raise UserError: without accounting rights
        """
        self.env["account.move"]._crm_check_accounting_rights()
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "name": _("Clear Risk Flag"),
            "res_model": "crm.payment.risk.clear.wizard",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {"default_flag_ids": [(6, 0, self.filtered(lambda f: f.state == "open").ids)]},
        }

    # === BUSINESS METHODS === #

    def _crm_clear(self, reason):
        """Clear open flags: who and why are kept; the customer's held charges resume (their
        past-due subscriptions are charged at the next billing run).

        :param str reason: why the person cleared them
        :raise UserError: without a reason
        """
        if not (reason or "").strip():
            raise UserError(_("Say why the flag is cleared: it is kept with the flag for audits."))
        flags = self.sudo().filtered(lambda f: f.state == "open")
        if not flags:
            return
        flags.write(
            {
                "state": "cleared",
                "cleared_by_id": self.env.uid,
                "cleared_at": fields.Datetime.now(),
                "clear_reason": reason.strip(),
            }
        )
        for flag in flags:
            flag.message_post(
                body=_("Cleared by %(user)s: %(reason)s", user=self.env.user.name, reason=reason)
            )
            flag.activity_ids.action_feedback(feedback=_("Flag cleared."))
        partners = flags.filtered("hold_charges").partner_id
        released = partners.filtered(lambda p: not p._crm_automatic_charges_held())
        if released:
            self.env["crm.subscription"].sudo()._crm_resume_held_charges(released)

    @api.model
    def _crm_flag(self, rule, tx, partner, cause_key, values, summary, subject=None):
        """Create the flag of a rule hit, once per cause; a new flag raises a risk alert.

        :param rule: the `crm.payment.risk.rule` hit
        :param tx: the `payment.transaction` that caused it (may be empty)
        :param partner: the customer (its commercial partner is flagged)
        :param str cause_key: unique per rule and company
        :param dict values: the triggering values (JSON)
        :return: the new flag, or an empty recordset when the cause was flagged already
        """
        partner = partner.commercial_partner_id
        company = rule.company_id
        self.env.cr.execute(
            """
            INSERT INTO crm_payment_risk_flag
                   (company_id, partner_id, transaction_id, lead_id, rule, subject, cause_key,
                    "values", summary, state, hold_charges,
                    create_uid, write_uid, create_date, write_date)
            VALUES (%(company)s, %(partner)s, %(tx)s, %(lead)s, %(rule)s, %(subject)s, %(cause)s,
                    %(values)s, %(summary)s, 'open', %(hold)s, %(uid)s, %(uid)s, %(now)s, %(now)s)
            ON CONFLICT (company_id, rule, cause_key) DO NOTHING
            RETURNING id
            """,
            {
                "company": company.id,
                "partner": partner.id,
                "tx": tx.id or None,
                "lead": (tx.crm_lead_id or tx.invoice_ids.crm_lead_id[:1]).id or None,
                "rule": rule.code,
                "subject": subject,
                "cause": cause_key,
                "values": json.dumps(values, default=str),
                "summary": summary[:255],
                "hold": rule.hold_charges,
                "uid": self.env.uid,
                "now": fields.Datetime.now(),
            },
        )
        row = self.env.cr.fetchone()
        if not row:
            return self.browse()
        flag = self.sudo().browse(row[0])
        event_id = self.env["crm.payment.audit"]._crm_applying_event()
        if event_id:
            self.env["crm.payment.audit"]._crm_log_change(event_id, flag, {"state": [None, "open"]})
        if rule.code != "early_fraud_warning":  # the warning raises its own alert
            note = summary
            if rule.hold_charges:
                note = _(
                    "%(summary)s Automatic charges of %(partner)s are held until the flag is cleared.",
                    summary=summary,
                    partner=partner.display_name,
                )
            self.env["crm.payment.alert"]._crm_raise(
                "risk_flag", f"flag:{flag.id}", flag, summary, company=company, note=note
            )
        _logger.info("risk flag %s on partner %s (%s)", rule.code, partner.id, cause_key)
        return flag
