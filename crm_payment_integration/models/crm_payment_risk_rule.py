import psycopg2.errors

from odoo import api, fields, models
from odoo.tools import mute_logger

RISK_RULES = [
    ("failed_customer", "Failed attempts of one customer"),
    ("failed_card", "Failed attempts of one card"),
    ("failed_ip", "Failed attempts from one IP address"),
    ("amount_median", "Amount far above the customer's median"),
    ("first_payment", "Large first payment"),
    ("card_country", "Card country unlike the customer's"),
    ("many_cards", "Many cards for one customer"),
    ("radar", "Stripe Radar risk"),
    ("early_fraud_warning", "Early fraud warning"),
]

# code -> (threshold, window in minutes, hold automatic charges); see the field helps.
RULE_DEFAULTS = {
    "failed_customer": (5, 60, True),
    "failed_card": (5, 60, True),
    "failed_ip": (10, 60, True),
    "amount_median": (5.0, 365 * 24 * 60, False),
    "first_payment": (5000.0, 0, False),
    "card_country": (0, 0, False),
    "many_cards": (4, 30 * 24 * 60, False),
    "radar": (75, 0, True),
    "early_fraud_warning": (0, 0, True),
}


class CrmPaymentRiskRule(models.Model):
    """A risk rule of a company: switched on or off, its threshold and window, and whether a
    hit holds the customer's automatic charges until a person clears the flag.

    The threshold means, per rule: failed attempts (``failed_*``, counted within the window, a
    hit at the threshold itself), distinct cards (``many_cards``, within the window), a factor
    of the customer's median payment in the same currency over the window (``amount_median``),
    an amount in the company's currency (``first_payment``), a Radar risk score from 0 to 99
    (``radar``: a score at the threshold, or a risk level ``elevated`` or ``highest``, hits).
    Card country and early fraud warnings have no threshold.
    """

    _name = "crm.payment.risk.rule"
    _description = "CRM Payments Risk Rule"
    _order = "company_id, sequence, id"
    _rec_name = "code"

    sequence = fields.Integer(default=10)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, ondelete="cascade"
    )
    code = fields.Selection(RISK_RULES, string="Rule", required=True)
    enabled = fields.Boolean(default=True)
    threshold = fields.Float(
        help="Failed attempts, cards, a factor of the median, an amount in the company's currency "
        "or a Radar score, depending on the rule (reached = hit)."
    )
    window_minutes = fields.Integer(
        string="Window (minutes)", help="How far back attempts, cards or payments are counted."
    )
    hold_charges = fields.Boolean(
        string="Hold Automatic Charges",
        help="A hit stops the customer's billing-run charges, dunning retries and saved-card "
        "charges until a person clears the flag.",
    )

    _sql_constraints = [
        ("company_code_uniq", "unique(company_id, code)", "A rule is set once per company."),
    ]

    @api.model
    def _crm_rules(self, company):
        """Return ``{code: rule}`` of the company's enabled rules, creating the defaults of a
        company that has none yet."""
        rules = self.sudo().search([("company_id", "=", company.id)])
        missing = [code for code, __ in RISK_RULES if code not in rules.mapped("code")]
        if missing:
            try:
                with self.env.cr.savepoint(), mute_logger("odoo.sql_db"):
                    rules |= self.sudo().create([self._crm_default_values(company, code) for code in missing])
            except psycopg2.errors.UniqueViolation:
                # Another worker created them at the same time (two first payments at once).
                rules = self.sudo().search([("company_id", "=", company.id)])
        return {rule.code: rule for rule in rules if rule.enabled}

    @api.model
    def _crm_default_values(self, company, code):
        threshold, window, hold = RULE_DEFAULTS[code]
        return {
            "company_id": company.id,
            "code": code,
            "sequence": [c for c, __ in RISK_RULES].index(code),
            "threshold": threshold,
            "window_minutes": window,
            "hold_charges": hold,
        }
