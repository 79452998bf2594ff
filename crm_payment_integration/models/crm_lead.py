from odoo import _, api, fields, models
from odoo.tools import format_amount


class CrmLead(models.Model):
    _inherit = "crm.lead"

    crm_transaction_ids = fields.One2many(
        "payment.transaction", "crm_lead_id", string="Stripe Payments", groups="base.group_user"
    )
    crm_payment_count = fields.Integer(compute="_compute_crm_payments", string="Payments")
    crm_paid_amount = fields.Monetary(
        compute="_compute_crm_payments", string="Paid", currency_field="company_currency"
    )

    @api.depends("crm_transaction_ids.state", "crm_transaction_ids.amount")
    def _compute_crm_payments(self):
        for lead in self:
            txs = lead.sudo().crm_transaction_ids.filtered(lambda tx: tx.operation != "refund")
            done = txs.filtered(lambda tx: tx.state == "done")
            lead.crm_payment_count = len(txs)
            lead.crm_paid_amount = sum(
                tx.currency_id._convert(
                    tx.amount,
                    lead.company_currency or lead.env.company.currency_id,
                    lead.company_id or lead.env.company,
                    tx.last_state_change or fields.Date.today(),
                )
                for tx in done
            )

    crm_subscription_ids = fields.One2many("crm.subscription", "lead_id", string="Subscriptions")
    crm_subscription_count = fields.Integer(
        compute="_compute_crm_subscription_count", string="Subscription Count"
    )

    @api.depends("crm_subscription_ids")
    def _compute_crm_subscription_count(self):
        for lead in self:
            lead.crm_subscription_count = len(lead.crm_subscription_ids)

    def action_crm_create_subscription(self):
        """Open a new subscription for the opportunity's customer, linked to it."""
        self.ensure_one()
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "name": _("New Subscription"),
            "res_model": "crm.subscription",
            "view_mode": "form",
            "views": [(False, "form")],
            "context": {
                "default_partner_id": self.partner_id.commercial_partner_id.id,
                "default_lead_id": self.id,
                "default_user_id": (self.user_id or self.env.user).id,
                "default_company_id": (self.company_id or self.env.company).id,
            },
        }

    def action_crm_view_subscriptions(self):
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "name": _("Subscriptions"),
            "res_model": "crm.subscription",
            "view_mode": "list,form",
            "domain": [("lead_id", "=", self.id)],
            "context": {
                "default_lead_id": self.id,
                "default_partner_id": self.partner_id.commercial_partner_id.id,
            },
        }

    def action_crm_request_payment(self):
        """Open the wizard asking the customer for a deposit or the full amount."""
        self.ensure_one()
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "name": _("Request Payment"),
            "res_model": "crm.payment.request.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_lead_id": self.id},
        }

    def action_crm_view_payments(self):
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "name": _("Payments of %s", self.name),
            "res_model": "payment.transaction",
            "view_mode": "list,form",
            "domain": [("crm_lead_id", "=", self.id)],
            "context": {"create": False},
        }

    def _crm_payment_received(self, tx):
        """A payment of this opportunity succeeded: win it (a setting) and tell its salesperson."""
        self.ensure_one()
        amount = format_amount(self.env, tx.amount, tx.currency_id)
        won = False
        if self.company_id.crm_payment_lead_won and self.active and not self.stage_id.is_won:
            self.action_set_won()
            won = True
        body = (
            _(
                "%(customer)s paid %(amount)s (%(reference)s); the opportunity is won.",
                customer=tx.partner_id.display_name,
                amount=amount,
                reference=tx.reference,
            )
            if won
            else _(
                "%(customer)s paid %(amount)s (%(reference)s).",
                customer=tx.partner_id.display_name,
                amount=amount,
                reference=tx.reference,
            )
        )
        self.message_post(
            body=body,
            partner_ids=self.user_id.partner_id.ids,
            subtype_xmlid="mail.mt_comment",
            message_type="notification",
        )

    crm_risk_open_count = fields.Integer(
        string="Open Risk Flags", compute="_compute_crm_risk_open_count", compute_sudo=True
    )

    @api.depends("partner_id.commercial_partner_id")
    def _compute_crm_risk_open_count(self):
        for lead in self:
            lead.crm_risk_open_count = lead.partner_id.crm_risk_open_count if lead.partner_id else 0
