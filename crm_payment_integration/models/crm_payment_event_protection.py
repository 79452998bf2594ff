import logging
from datetime import timedelta

from odoo import _, api, fields, models

from ..utils import Ignored

_logger = logging.getLogger(__name__)

# Event types applied for risk (the charge's card, Radar outcome; fraud warnings).
PROTECTION_EVENT_HANDLERS = {
    "charge.succeeded": "_crm_handle_charge_risk",
    "charge.failed": "_crm_handle_charge_risk",
    "radar.early_fraud_warning.created": "_crm_handle_early_fraud_warning",
}


# Stripe's dispute events (https://docs.stripe.com/api/events/types#event_types-charge.dispute.closed).
DISPUTE_EVENT_TYPES = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)


class CrmPaymentEvent(models.Model):
    _inherit = "crm.payment.event"  # pylint: disable=consider-merging-classes-inherited

    @api.model
    def _crm_get_event_handlers(self):
        """Override to apply the charge events (risk data), early fraud warnings and disputes
        (:meth:`_crm_handle_dispute`)."""
        handlers = super()._crm_get_event_handlers()
        handlers.update(PROTECTION_EVENT_HANDLERS)
        handlers.update(dict.fromkeys(DISPUTE_EVENT_TYPES, "_crm_handle_dispute"))
        return handlers

    # === HANDLERS === #

    def _crm_risk_transaction(self, intent_id=None, charge_id=None):
        Transaction = self.env["payment.transaction"].sudo()
        domain = [("provider_id", "=", self.provider_id.id), ("operation", "!=", "refund")]
        if charge_id:
            tx = Transaction.search(domain + [("crm_charge_id", "=", charge_id)], limit=1)
            if tx:
                return tx
        if intent_id:
            return Transaction.search(domain + [("provider_reference", "=", intent_id)], limit=1)
        return Transaction

    def _crm_handle_charge_risk(self):
        """Keep the card and Radar data of a charge on its transaction, then run the risk
        rules (the charge's own event is final: its outcome does not change)."""
        charge = self._crm_event_object()
        intent_id = charge.get("payment_intent")
        if isinstance(intent_id, dict):
            intent_id = intent_id.get("id")
        tx = self._crm_risk_transaction(intent_id, charge.get("id"))
        if not tx:
            return Ignored(_("No transaction for this charge."))
        if not tx.crm_flow:
            return Ignored(_("A payment of Odoo's own Stripe flow: left to it."))
        tx._crm_store_risk_data(charge=charge)
        flags = tx._crm_check_risk()
        if flags:
            return _("Risk data kept; flagged: %(flags)s.", flags=", ".join(flags.mapped("rule")))
        return _("Risk data kept on %(reference)s.", reference=tx.reference)

    def _crm_handle_early_fraud_warning(self):
        """An early fraud warning (the card issuer reports the charge as fraud): a risk flag on
        the customer (holding their automatic charges when the rule says so) and an alert."""
        warning = self._crm_event_object()
        charge_id = warning.get("charge")
        if isinstance(charge_id, dict):
            charge_id = charge_id.get("id")
        intent_id = warning.get("payment_intent")
        if isinstance(intent_id, dict):
            intent_id = intent_id.get("id")
        tx = self._crm_risk_transaction(intent_id, charge_id)
        partner = tx.partner_id
        charge = None
        if not tx and charge_id:
            charge = self.provider_id._crm_stripe_call("retrieve_charge", charge_id)
            intent_id = charge.get("payment_intent")
            if isinstance(intent_id, dict):
                intent_id = intent_id.get("id")
            tx = self._crm_risk_transaction(intent_id)
            partner = tx.partner_id
            customer_id = charge.get("customer")
            if not partner and customer_id:
                partner = self._crm_binding(customer_id).partner_id
        if not partner:
            return Ignored(_("No customer of this add-on for the charge of this warning."))
        if tx and charge:
            tx._crm_store_risk_data(charge=charge)
        company = self.company_id
        rules = self.env["crm.payment.risk.rule"]._crm_rules(company)
        summary = _(
            "Early fraud warning on charge %(charge)s (%(type)s)",
            charge=charge_id,
            type=warning.get("fraud_type") or "-",
        )
        flag = self.env["crm.payment.risk.flag"]
        if "early_fraud_warning" in rules:
            flag = flag._crm_flag(
                rules["early_fraud_warning"],
                tx,
                partner,
                f"efw:{self.object_id}",
                {
                    "early_fraud_warning": self.object_id,
                    "charge": charge_id,
                    "fraud_type": warning.get("fraud_type"),
                    "actionable": warning.get("actionable"),
                },
                summary,
                subject=f"charge:{charge_id}",
            )
        note = summary
        if flag.hold_charges:
            note = _(
                "%(summary)s. Automatic charges of %(partner)s are held until the flag is cleared. "
                "Consider refunding the charge before a dispute is opened.",
                summary=summary,
                partner=partner.commercial_partner_id.display_name,
            )
        self.env["crm.payment.alert"]._crm_raise(
            "early_fraud_warning",
            f"efw:{self.object_id}",
            flag or self,
            summary,
            company=company,
            note=note,
            fallback_user=self.provider_id._crm_alert_user(),
        )
        return summary

    # === WEBHOOK HEALTH === #

    @api.model
    def _cron_check_webhooks(self, now=None):
        """Alert when a Stripe provider's webhook went silent (no event for the company's
        silence hours while payments were being made) or Stripe disabled its endpoint; one
        alert per silence (a new event ends it) and per disabled endpoint.

        :return: the alerts raised
        """
        now = now or fields.Datetime.now()
        Alert = self.env["crm.payment.alert"]
        alerts = Alert
        providers = (
            self.env["payment.provider"]
            .sudo()
            .search(
                [
                    ("code", "=", "stripe"),
                    ("state", "in", ("enabled", "test")),
                    ("crm_webhook_secret", "!=", False),
                ]
            )
        )
        for provider in providers:
            hours = provider.company_id.crm_webhook_silence_hours
            self.env.cr.execute(
                "SELECT id, received_at FROM crm_payment_event "
                "WHERE provider_id = %s ORDER BY id DESC LIMIT 1",
                [provider.id],
            )
            last_id, last_at = self.env.cr.fetchone() or (0, None)
            if hours > 0:
                since = now - timedelta(hours=hours)
                # Payments made in the window, and the first payment ever: a provider taking its
                # first payments is not expected to have had events for the whole window.
                self.env.cr.execute(
                    """
                    SELECT count(*) FILTER (WHERE create_date >= %s), min(create_date)
                      FROM payment_transaction
                     WHERE provider_id = %s AND crm_flow IS NOT NULL
                    """,
                    [since, provider.id],
                )
                payments, first_payment = self.env.cr.fetchone()
                if payments and first_payment < since and (last_at is None or last_at < since):
                    alerts |= Alert._crm_raise(
                        "webhook_silent",
                        f"silent:{provider.id}:{last_id}",
                        provider,
                        _(
                            "No Stripe event for %(hours)s hours on %(provider)s while "
                            "%(count)s payments were made",
                            hours=hours,
                            provider=provider.name,
                            count=payments,
                        ),
                        company=provider.company_id,
                        note=_(
                            "Stripe sent no event to %(url)s since %(last)s. Check the endpoint in "
                            "Stripe's dashboard (Developers › Webhooks) and register it again from "
                            "the provider if needed.",
                            url=provider.crm_webhook_url,
                            last=last_at or _("never"),
                        ),
                        fallback_user=provider._crm_alert_user(),
                    )
            alerts |= self._crm_check_endpoint_enabled(provider, last_id)
        return alerts

    @api.model
    def _crm_check_endpoint_enabled(self, provider, last_id):
        endpoint_id = provider.crm_webhook_endpoint_id
        if not endpoint_id:
            return self.env["crm.payment.alert"]
        try:
            gateway = provider._crm_stripe_gateway()
            if not gateway.is_stripe:  # localstripe has no webhook endpoints API
                return self.env["crm.payment.alert"]
            endpoint = gateway.retrieve_webhook_endpoint(endpoint_id)
        except Exception as error:  # noqa: BLE001 - Stripe unreachable: checked at the next run
            _logger.warning("could not read webhook endpoint %s: %s", endpoint_id, error)
            return self.env["crm.payment.alert"]
        status = endpoint.get("status") if endpoint else "deleted"
        if status == "enabled":
            return self.env["crm.payment.alert"]
        return self.env["crm.payment.alert"]._crm_raise(
            "webhook_silent",
            f"endpoint:{endpoint_id}:{status}:{last_id}",
            provider,
            _(
                "Stripe's webhook endpoint of %(provider)s is %(status)s",
                provider=provider.name,
                status=status,
            ),
            company=provider.company_id,
            note=_(
                "Stripe %(status)s the endpoint %(endpoint)s: no event reaches Odoo. Register the "
                "webhook again from the provider (Register Webhook).",
                status=status,
                endpoint=endpoint_id,
            ),
            fallback_user=provider._crm_alert_user(),
        )

    # === DISPUTES === #

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
