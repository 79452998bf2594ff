from odoo import fields, models, tools
from odoo.tools import SQL

# What a transaction is about: a charge attempt, or not (a refund, a card saved for later).
NOT_ATTEMPTS = ("refund", "validation")


class CrmPaymentAnalysis(models.Model):
    """Payment analysis: one row per `payment.transaction` of every provider (Stripe and any
    other gateway installed), read live from the transactions (a SQL view, no copy).

    Amounts are in the company's currency, converted at the rate of the transaction's date
    (stored on the transaction when its amount or state changes: ``crm_amount_company``).
    Measures add up over any grouping; the success rate is an average over attempt rows only
    (the other rows hold NULL), so a group's rate is its successes over its attempts whatever
    the group's size.
    """

    _name = "crm.payment.analysis"
    _description = "Payment Analysis"
    _auto = False
    _rec_name = "reference"
    _order = "date desc, id desc"
    # What the view reads, flushed before each query on it.
    _depends = {
        "payment.transaction": [
            "reference",
            "last_state_change",
            "create_date",
            "company_id",
            "provider_id",
            "partner_id",
            "crm_user_id",
            "crm_team_id",
            "crm_opportunity_id",
            "crm_method_type",
            "crm_card_brand",
            "crm_card_country_id",
            "payment_method_id",
            "token_id",
            "currency_id",
            "state",
            "operation",
            "crm_decline_reason",
            "state_message",
            "amount",
            "crm_amount_company",
        ],
        "payment.token": ["payment_method_id", "crm_card_country_id"],
        "payment.method": ["code", "primary_payment_method_id"],
        "payment.provider": ["code"],
        "res.partner": ["commercial_partner_id", "country_id"],
        "res.company": ["currency_id"],
    }

    transaction_id = fields.Many2one("payment.transaction", readonly=True)
    reference = fields.Char(readonly=True)
    date = fields.Date(
        readonly=True,
        help="Day of the transaction's last state change (its creation while it never changed).",
    )
    company_id = fields.Many2one("res.company", readonly=True)
    provider_id = fields.Many2one("payment.provider", string="Gateway", readonly=True)
    provider_code = fields.Char(string="Gateway Code", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    country_id = fields.Many2one("res.country", string="Customer Country", readonly=True)
    user_id = fields.Many2one("res.users", string="Salesperson", readonly=True)
    team_id = fields.Many2one("crm.team", string="Sales Team", readonly=True)
    lead_id = fields.Many2one("crm.lead", string="Opportunity", readonly=True)
    method_type = fields.Char(string="Payment Method Type", readonly=True)
    card_brand = fields.Char(readonly=True)
    card_country_id = fields.Many2one("res.country", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    company_currency_id = fields.Many2one("res.currency", readonly=True)
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("pending", "Pending"),
            ("authorized", "Authorized"),
            ("done", "Confirmed"),
            ("cancel", "Canceled"),
            ("error", "Error"),
        ],
        readonly=True,
    )
    operation = fields.Selection(
        [
            ("online_redirect", "Online payment with redirection"),
            ("online_direct", "Online direct payment"),
            ("online_token", "Online payment by token"),
            ("validation", "Validation of the payment method"),
            ("offline", "Offline payment by token"),
            ("refund", "Refund"),
        ],
        readonly=True,
    )
    decline_reason = fields.Char(readonly=True)
    amount = fields.Monetary(
        string="Amount (Transaction Currency)", currency_field="currency_id", readonly=True
    )
    amount_company = fields.Monetary(
        string="Amount",
        currency_field="company_currency_id",
        readonly=True,
        help="Signed: refunds are negative.",
    )
    attempt_count = fields.Integer(
        string="Attempts",
        readonly=True,
        help="Charges that got an answer: confirmed, authorized or declined.",
    )
    success_count = fields.Integer(string="Successes", readonly=True, help="Charges confirmed or authorized.")
    failure_count = fields.Integer(string="Failures", readonly=True, help="Charges declined (state Error).")
    success_rate = fields.Float(
        string="Success Rate (%)",
        readonly=True,
        aggregator="avg",
        help="Successes / attempts × 100 of the rows grouped: 100 on a success, 0 on a failure, "
        "empty on rows that are no attempt (ignored by the average).",
    )
    amount_paid = fields.Monetary(
        string="Paid", currency_field="company_currency_id", readonly=True, help="Confirmed charges."
    )
    amount_refunded = fields.Monetary(
        string="Refunded", currency_field="company_currency_id", readonly=True, help="Confirmed refunds."
    )
    amount_net = fields.Monetary(
        string="Net", currency_field="company_currency_id", readonly=True, help="Paid minus refunded."
    )

    def _query(self):
        attempt = SQL("tx.operation NOT IN %s AND tx.state IN ('done', 'authorized', 'error')", NOT_ATTEMPTS)
        success = SQL("tx.operation NOT IN %s AND tx.state IN ('done', 'authorized')", NOT_ATTEMPTS)
        amount_company = SQL("tx.crm_amount_company")
        return SQL(
            """
            SELECT
                tx.id,
                tx.id AS transaction_id,
                tx.reference,
                COALESCE(tx.last_state_change, tx.create_date)::date AS date,
                tx.company_id,
                tx.provider_id,
                prov.code AS provider_code,
                cp.id AS partner_id,
                cp.country_id,
                tx.crm_user_id AS user_id,
                tx.crm_team_id AS team_id,
                tx.crm_opportunity_id AS lead_id,
                COALESCE(tx.crm_method_type, ppm.code, pm.code) AS method_type,
                COALESCE(
                    tx.crm_card_brand,
                    CASE WHEN pm.primary_payment_method_id IS NOT NULL THEN pm.code END,
                    CASE WHEN tpm.primary_payment_method_id IS NOT NULL THEN tpm.code END
                ) AS card_brand,
                COALESCE(tx.crm_card_country_id, tok.crm_card_country_id)
                    AS card_country_id,
                tx.currency_id,
                c.currency_id AS company_currency_id,
                tx.state,
                tx.operation,
                COALESCE(
                    tx.crm_decline_reason, CASE WHEN tx.state = 'error' THEN left(tx.state_message, 120) END
                ) AS decline_reason,
                tx.amount,
                %(amount_company)s AS amount_company,
                CASE WHEN %(attempt)s THEN 1 ELSE 0 END AS attempt_count,
                CASE WHEN %(success)s THEN 1 ELSE 0 END AS success_count,
                CASE WHEN %(attempt)s AND tx.state = 'error' THEN 1 ELSE 0 END AS failure_count,
                CASE WHEN %(attempt)s THEN CASE WHEN tx.state = 'error' THEN 0.0 ELSE 100.0 END END
                    AS success_rate,
                CASE WHEN %(success)s AND tx.state = 'done' THEN %(amount_company)s ELSE 0 END AS amount_paid,
                CASE WHEN tx.operation = 'refund' AND tx.state = 'done' THEN -(%(amount_company)s) ELSE 0 END
                    AS amount_refunded,
                CASE
                    WHEN tx.state <> 'done' THEN 0
                    WHEN tx.operation = 'refund' THEN %(amount_company)s
                    WHEN tx.operation = 'validation' THEN 0
                    ELSE %(amount_company)s
                END AS amount_net
            FROM payment_transaction tx
            LEFT JOIN res_company c ON c.id = tx.company_id
            LEFT JOIN payment_provider prov ON prov.id = tx.provider_id
            LEFT JOIN res_partner p ON p.id = tx.partner_id
            LEFT JOIN res_partner cp ON cp.id = p.commercial_partner_id
            LEFT JOIN payment_method pm ON pm.id = tx.payment_method_id
            LEFT JOIN payment_method ppm ON ppm.id = pm.primary_payment_method_id
            LEFT JOIN payment_token tok ON tok.id = tx.token_id
            LEFT JOIN payment_method tpm ON tpm.id = tok.payment_method_id
            """,
            amount_company=amount_company,
            attempt=attempt,
            success=success,
        )

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        # What the report reads by: a company's transactions by day, a customer's transactions.
        self.env.cr.execute(
            """
            CREATE INDEX IF NOT EXISTS payment_transaction_crm_analysis_date_idx
                ON payment_transaction (company_id, (COALESCE(last_state_change, create_date)::date));
            CREATE INDEX IF NOT EXISTS payment_transaction_crm_partner_idx
                ON payment_transaction (partner_id, company_id) INCLUDE (state, operation);
            """
        )
        self.env.cr.execute(
            SQL("CREATE OR REPLACE VIEW %s AS (%s)", SQL.identifier(self._table), self._query())
        )
