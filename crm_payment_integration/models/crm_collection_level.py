from odoo import _, api, fields, models
from odoo.exceptions import ValidationError


class CrmCollectionLevel(models.Model):
    """A reminder level of a company's collections: how many days after an invoice's due date
    it is reached (negative: before the due date), the email sent then, and what else is done.

    A customer's level is that of their oldest overdue invoice: the highest level whose days
    it has reached.
    """

    _name = "crm.collection.level"
    _description = "Collections: reminder level"
    _order = "company_id, level"

    name = fields.Char(required=True, translate=True)
    level = fields.Integer(
        required=True,
        default=1,
        help="The level's number (1 = first reminder); a customer's level is the highest one reached.",
    )
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, ondelete="cascade"
    )
    days = fields.Integer(
        string="Days After Due Date",
        required=True,
        help="Days after the due date of the customer's oldest unpaid invoice on which this level "
        "is reached; negative: days before the due date (a courtesy reminder).",
    )
    mail_template_id = fields.Many2one(
        "mail.template",
        string="Email",
        required=True,
        domain=[("model", "=", "crm.collection.reminder")],
        help="The email listing the customer's overdue invoices, with the link paying them all.",
    )
    letter = fields.Boolean(
        string="Attach a PDF Letter",
        help="Attach the reminder as a PDF letter (to print and post, or for the customer's files).",
    )
    auto_charge = fields.Boolean(
        string="Charge the Saved Payment Method",
        help="At this level, customers who consented to automatic payment are charged the total "
        "due on their default saved payment method, once; a declined charge sends the reminder "
        "with the link and the reason instead.",
    )

    _sql_constraints = [
        ("level_company_uniq", "UNIQUE(company_id, level)", "Each level number is used once per company."),
    ]

    @api.constrains("level", "days", "company_id")
    def _check_days_increase(self):
        for company in self.company_id:
            levels = self.search([("company_id", "=", company.id)], order="level")
            days = levels.mapped("days")
            if days != sorted(days) or len(set(days)) != len(days):
                raise ValidationError(
                    _("A higher level must be reached later: its days after the due date must be more.")
                )
            if any(level.level < 1 for level in levels):
                raise ValidationError(_("Level numbers start at 1."))
