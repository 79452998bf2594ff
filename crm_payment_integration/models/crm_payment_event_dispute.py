from odoo import _, api, models

from ..utils import Ignored

# Stripe's dispute events (https://docs.stripe.com/api/events/types#event_types-charge.dispute.closed).
DISPUTE_EVENT_TYPES = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)


class CrmPaymentEvent(models.Model):
    _inherit = "crm.payment.event"

    @api.model
    def _crm_get_event_handlers(self):
        """Override: disputes are applied by :meth:`_crm_handle_dispute`."""
        handlers = super()._crm_get_event_handlers()
        handlers.update(dict.fromkeys(DISPUTE_EVENT_TYPES, "_crm_handle_dispute"))
        return handlers

    def _crm_handle_dispute(self):
        """Apply a dispute as Stripe has it now (re-read: its events may come in any order, a
        ``closed`` one before ``created``), with the funds it holds back.

        A dispute of a charge this add-on did not make is stored ignored and creates nothing.
        """
        provider_sudo = self.provider_id
        cache = self._crm_batch_cache()
        key = ("dispute_applied", provider_sudo.id, self.object_id)
        if key in cache:
            return _("Applied with an earlier event of this batch.")
        remote = provider_sudo._crm_stripe_call("retrieve_dispute", self.object_id)
        if remote is None:
            return Ignored(_("The dispute no longer exists in Stripe."))
        dispute, created = self.env["crm.payment.dispute"]._crm_apply_stripe_dispute(provider_sudo, remote)
        if not dispute:
            return Ignored(_("The disputed charge is not a payment of CRM Payments."))
        cache[key] = dispute.id
        return _(
            "Dispute %(dispute)s %(how)s: %(state)s.",
            dispute=dispute.stripe_dispute_id,
            how=_("recorded") if created else _("updated"),
            state=dispute.state,
        )
