from odoo import fields, models, tools
from odoo.tools import SQL

from ..models.res_partner_insight import RFM_SEGMENTS


class CrmRevenueAnalysis(models.Model):
    """Revenue analysis: one row per product line of a posted customer invoice or credit note,
    read live from the journal items (a SQL view, no nightly copy).

    Amounts are in the company's currency, without taxes (the journal item's balance, which
    Odoo converted at the invoice's rate): invoices count positive, credit notes negative, so
    any sum is net of credit notes. Collected revenue is the invoiced revenue times the share of
    its invoice (or credit note) already settled: 1 − residual / total, in company currency.
    """

    _name = "crm.revenue.analysis"
    _description = "Revenue Analysis"
    _auto = False
    _order = "date desc, id desc"
    # What the view reads, flushed before each query on it.
    _depends = {
        "account.move": [
            "state",
            "move_type",
            "commercial_partner_id",
            "invoice_user_id",
            "crm_lead_id",
            "amount_total_signed",
            "amount_residual_signed",
            "invoice_date_due",
        ],
        "account.move.line": [
            "move_id",
            "date",
            "company_id",
            "company_currency_id",
            "product_id",
            "quantity",
            "balance",
            "display_type",
        ],
        "res.partner": ["country_id", "state_id", "crm_rfm_segment"],
        "product.product": ["product_tmpl_id"],
        "product.template": ["categ_id"],
        "crm.lead": ["user_id", "team_id", "source_id", "medium_id", "campaign_id"],
    }

    date = fields.Date(string="Invoice Date", readonly=True)
    move_id = fields.Many2one("account.move", string="Invoice", readonly=True)
    move_type = fields.Selection(
        [("out_invoice", "Customer Invoice"), ("out_refund", "Customer Credit Note")], readonly=True
    )
    company_id = fields.Many2one("res.company", readonly=True)
    company_currency_id = fields.Many2one("res.currency", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    country_id = fields.Many2one("res.country", string="Customer Country", readonly=True)
    state_id = fields.Many2one("res.country.state", string="Customer State", readonly=True)
    product_id = fields.Many2one("product.product", readonly=True)
    product_categ_id = fields.Many2one("product.category", string="Product Category", readonly=True)
    user_id = fields.Many2one("res.users", string="Salesperson", readonly=True)
    team_id = fields.Many2one("crm.team", string="Sales Team", readonly=True)
    lead_id = fields.Many2one("crm.lead", string="Opportunity", readonly=True)
    source_id = fields.Many2one("utm.source", readonly=True)
    medium_id = fields.Many2one("utm.medium", readonly=True)
    campaign_id = fields.Many2one("utm.campaign", readonly=True)
    customer_segment = fields.Selection(RFM_SEGMENTS, readonly=True, help="The customer's RFM segment today.")
    quantity = fields.Float(readonly=True)
    revenue = fields.Monetary(
        string="Invoiced Revenue",
        currency_field="company_currency_id",
        readonly=True,
        help="Untaxed, company currency; credit notes negative.",
    )
    revenue_collected = fields.Monetary(
        string="Collected Revenue",
        currency_field="company_currency_id",
        readonly=True,
        help="Invoiced revenue × (1 − residual / total) of its invoice or credit note.",
    )
    revenue_open = fields.Monetary(
        string="Open Revenue",
        currency_field="company_currency_id",
        readonly=True,
        help="Invoiced minus collected.",
    )
    revenue_overdue = fields.Monetary(
        string="Overdue Revenue",
        currency_field="company_currency_id",
        readonly=True,
        help="Open revenue of invoices whose due date is before today.",
    )

    def _query(self):
        move_column = self.env["account.move"]._fields
        utm = {}
        for name in ("source_id", "medium_id", "campaign_id"):
            # account.move has UTM fields when `sale` is installed; the opportunity's otherwise.
            utm[name] = (
                SQL("COALESCE(m.%s, l.%s)", SQL.identifier(name), SQL.identifier(name))
                if name in move_column and tools.column_exists(self.env.cr, "account_move", name)
                else SQL("l.%s", SQL.identifier(name))
            )
        teams = [SQL("l.team_id")]
        if "team_id" in move_column and tools.column_exists(self.env.cr, "account_move", "team_id"):
            teams.insert(0, SQL("m.team_id"))
        if "team_id" in self.env["res.partner"]._fields and tools.column_exists(
            self.env.cr, "res_partner", "team_id"
        ):
            teams.append(SQL("cp.team_id"))
        team = SQL("COALESCE(%s)", SQL(", ").join(teams))
        paid_share = SQL(
            "CASE WHEN m.amount_total_signed = 0 THEN 0 "
            "ELSE 1 - m.amount_residual_signed / m.amount_total_signed END"
        )
        return SQL(
            """
            SELECT
                aml.id,
                aml.date,
                m.id AS move_id,
                m.move_type,
                aml.company_id,
                aml.company_currency_id,
                cp.id AS partner_id,
                cp.country_id,
                cp.state_id,
                aml.product_id,
                pt.categ_id AS product_categ_id,
                COALESCE(m.invoice_user_id, l.user_id) AS user_id,
                %(team)s AS team_id,
                l.id AS lead_id,
                %(source)s AS source_id,
                %(medium)s AS medium_id,
                %(campaign)s AS campaign_id,
                cp.crm_rfm_segment ->> aml.company_id::text AS customer_segment,
                CASE WHEN m.move_type = 'out_refund' THEN -aml.quantity ELSE aml.quantity END AS quantity,
                -aml.balance AS revenue,
                %(collected)s AS revenue_collected,
                -aml.balance - %(collected)s AS revenue_open,
                CASE WHEN m.invoice_date_due < CURRENT_DATE THEN -aml.balance - %(collected)s ELSE 0 END
                    AS revenue_overdue
            FROM account_move_line aml
            JOIN account_move m ON m.id = aml.move_id
            LEFT JOIN res_currency cur ON cur.id = aml.company_currency_id
            LEFT JOIN res_partner cp ON cp.id = m.commercial_partner_id
            LEFT JOIN product_product pp ON pp.id = aml.product_id
            LEFT JOIN product_template pt ON pt.id = pp.product_tmpl_id
            LEFT JOIN crm_lead l ON l.id = m.crm_lead_id
            WHERE m.state = 'posted'
              AND m.move_type IN ('out_invoice', 'out_refund')
              AND aml.display_type = 'product'
            """,
            team=team,
            source=utm["source_id"],
            medium=utm["medium_id"],
            campaign=utm["campaign_id"],
            collected=SQL("ROUND(-aml.balance * %s / cur.rounding) * cur.rounding", paid_share),
        )

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            SQL("CREATE OR REPLACE VIEW %s AS (%s)", SQL.identifier(self._table), self._query())
        )
