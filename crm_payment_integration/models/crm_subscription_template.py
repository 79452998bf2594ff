from dateutil.relativedelta import relativedelta

from odoo import api, fields, models


class CrmSubscriptionTemplate(models.Model):
    """A plan: what is sold, how often it is billed, the trial, and what the customer may do
    in the portal. A subscription created from it copies it and can then be changed."""

    _name = "crm.subscription.template"
    _description = "Subscription Plan"
    _order = "sequence, id"
    _check_company_auto = True

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, index=True)
    interval_number = fields.Integer(string="Every", required=True, default=1)
    interval_unit = fields.Selection(
        [("day", "Days"), ("week", "Weeks"), ("month", "Months"), ("year", "Years")],
        required=True,
        default="month",
    )
    trial_days = fields.Integer()
    portal_pause = fields.Boolean(
        string="Customers Can Pause",
        help="Customers pause and resume their subscription themselves in the portal.",
    )
    line_ids = fields.One2many("crm.subscription.template.line", "template_id", string="Lines", copy=True)
    subscription_count = fields.Integer(compute="_compute_subscription_count")

    _sql_constraints = [
        ("interval_positive", "CHECK(interval_number > 0)", "The billing interval must be positive."),
        ("trial_positive", "CHECK(trial_days >= 0)", "The trial cannot be negative."),
    ]

    def _compute_subscription_count(self):
        counts = dict(
            self.env["crm.subscription"]._read_group(
                [("template_id", "in", self.ids)], ["template_id"], ["__count"]
            )
        )
        for template in self:
            template.subscription_count = counts.get(template, 0)

    def _crm_subscription_values(self, start_date, currency=None):
        """What a subscription starting on ``start_date`` takes from the plan, its prices
        (in the company's currency) converted to the subscription's ``currency``."""
        self.ensure_one()
        company = self.company_id or self.env.company
        currency = currency or company.currency_id

        def price(amount):
            return company.currency_id._convert(amount, currency, company, start_date)

        return {
            "interval_number": self.interval_number,
            "interval_unit": self.interval_unit,
            "trial_end_date": start_date + relativedelta(days=self.trial_days) if self.trial_days else False,
            "line_ids": [(5, 0, 0)]
            + [
                (
                    0,
                    0,
                    {
                        "product_id": line.product_id.id,
                        "name": line.name,
                        "quantity": line.quantity,
                        "price_unit": price(line.price_unit),
                        "discount": line.discount,
                        "tax_ids": [(6, 0, line.tax_ids.ids)],
                    },
                )
                for line in self.line_ids
            ],
        }

    def action_view_subscriptions(self):
        self.ensure_one()
        self.check_access("read")
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "crm_payment_integration.crm_subscription_action"
        )
        action.update(
            {"domain": [("template_id", "=", self.id)], "context": {"default_template_id": self.id}}
        )
        return action


class CrmSubscriptionTemplateLine(models.Model):
    _name = "crm.subscription.template.line"
    _inherit = "crm.subscription.line.mixin"
    _description = "Subscription Plan Line"

    template_id = fields.Many2one("crm.subscription.template", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="template_id.company_id", store=True)

    @api.onchange("product_id")
    def _onchange_product_id(self):
        for line in self.filtered("product_id"):
            line.price_unit = line.product_id.lst_price
            line.tax_ids = line.product_id.taxes_id.filtered(
                lambda t, company=line.template_id.company_id: t.company_id == company
            )
