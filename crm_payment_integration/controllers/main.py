import json
import logging

import stripe

from odoo import http
from odoo.http import request

from .. import const

_logger = logging.getLogger(__name__)


class CrmStripeController(http.Controller):
    _webhook_url = "/crm_payment/stripe/webhook/<int:provider_id>"

    @http.route(
        _webhook_url,
        type="http",
        auth="public",
        methods=["POST"],
        csrf=False,
        save_session=False,
    )
    def crm_stripe_webhook(self, provider_id, **kwargs):
        """Verify a Stripe event, store it once and acknowledge it at once.

        The signature is checked with the provider's signing secret before anything is parsed
        or stored; processing happens in the background (see `crm.payment.event`).

        :param int provider_id: the `payment.provider` the endpoint was registered for
        :return: 200 when stored (or already stored); 400 for a bad signature, a stale
            timestamp or a malformed body; 403 when no secret is set; 404 for an unknown
            provider; 413 for a body over 1 MiB
        """
        httprequest = request.httprequest
        if (httprequest.content_length or 0) > const.WEBHOOK_MAX_BODY:
            return self._crm_answer(413, "payload too large")
        body = httprequest.get_data(cache=False)
        if len(body) > const.WEBHOOK_MAX_BODY:
            return self._crm_answer(413, "payload too large")

        provider_sudo, secret = request.env["payment.provider"].sudo()._crm_webhook_credentials(provider_id)
        if not provider_sudo:
            return self._crm_answer(404, "unknown provider")
        if not secret:
            _logger.warning("refused stripe event for provider %s: no signing secret", provider_id)
            return self._crm_answer(403, "no webhook signing secret is configured")
        try:
            payload = body.decode("utf-8")
            stripe.WebhookSignature.verify_header(
                payload,
                httprequest.headers.get("Stripe-Signature", ""),
                secret,
                tolerance=const.WEBHOOK_TOLERANCE,
            )
        except (UnicodeDecodeError, stripe.SignatureVerificationError) as error:
            _logger.warning("refused stripe event for provider %s: %s", provider_id, error)
            return self._crm_answer(400, "invalid signature")
        try:
            event = json.loads(payload)
            valid = (
                isinstance(event, dict)
                and isinstance(event.get("id"), str)
                and event["id"]
                and isinstance(event.get("type"), str)
                and isinstance(event.get("data"), dict)
                and isinstance(event["data"].get("object"), dict)
            )
        except ValueError:
            valid = False
        if not valid:
            _logger.warning("refused malformed stripe event for provider %s", provider_id)
            return self._crm_answer(400, "malformed event")

        event_id = request.env["crm.payment.event"].sudo()._crm_ingest(provider_sudo, event, payload)
        return self._crm_answer(200, "stored" if event_id else "duplicate")

    @staticmethod
    def _crm_answer(status, message):
        return request.make_json_response({"status": message}, status=status)
