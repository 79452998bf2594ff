import logging

from odoo import _, api, fields, models

_logger = logging.getLogger(__name__)


class CrmSubscription(models.Model):
    """Automatic charges held by risk flags: the billing run and dunning skip the charge of a
    customer an open holding flag names, and resume once the flags are cleared."""

    _inherit = "crm.subscription"

    def _charge_invoice(self, invoice, today=None):
        """Override: a customer whose charges a risk flag holds is not charged; the invoice
        stays due, the subscription past due without retry date until the flag is cleared."""
        self.ensure_one()
        if self.payment_token_id.active and not invoice.currency_id.is_zero(invoice.amount_residual):
            held = self.partner_id._crm_automatic_charges_held(self.company_id)
            if held:
                self._crm_hold_charge(invoice, held)
                return False
        return super()._charge_invoice(invoice, today=today)

    def _crm_hold_charge(self, invoice, flags):
        self.ensure_one()
        values = {"dunning_next_date": False}
        if self.state in ("trial", "active"):
            values["state"] = "past_due"
        self.write(values)
        self.message_post(
            body=_(
                "%(invoice)s not charged: the customer's automatic charges are held by a risk flag "
                "(%(flags)s). They resume once a person clears it.",
                invoice=invoice.name,
                flags="; ".join(flags.mapped("summary")),
            )
        )
        _logger.info("%s: charge of %s held by risk flags %s", self.name, invoice.name, flags.ids)

    @api.model
    def _crm_resume_held_charges(self, partners):
        """The risk flags holding these customers' charges are cleared: their subscriptions
        with invoices left unpaid are retried at the next billing run (triggered now)."""
        subscriptions = self.search(
            [
                ("partner_id", "in", partners.commercial_partner_id.ids),
                ("managed_by", "=", "odoo"),
                ("state", "in", ("active", "past_due")),
            ]
        ).filtered(lambda s: s._crm_unpaid_invoices())
        for subscription in subscriptions:
            subscription.write({"state": "past_due", "dunning_next_date": subscription._crm_today()})
            subscription.message_post(body=_("Risk flag cleared: the unpaid invoices are charged at the next billing run."))
        if subscriptions:
            self.env.ref("crm_payment_integration.ir_cron_crm_subscription_bill")._trigger(fields.Datetime.now())
        return subscriptions
