import logging

from werkzeug.exceptions import Forbidden, NotFound

from odoo import _, http
from odoo.exceptions import AccessError, MissingError, UserError
from odoo.http import request

from odoo.addons.account_payment.controllers.portal import PortalAccount
from odoo.addons.payment.controllers.portal import PaymentPortal
from odoo.addons.portal.controllers.portal import CustomerPortal

from ..services.gateway import StripeGatewayError

_logger = logging.getLogger(__name__)


class CrmStripePortal(CustomerPortal):
    """The customer's side: open the hosted page of an invoice, come back from it, and
    authenticate an off-session payment. Every route checks an access token first and trusts
    only what it reads again from Stripe."""

    @http.route(
        "/crm_payment/stripe/pay/<int:invoice_id>", type="http", auth="public", methods=["GET"], website=True
    )
    def crm_stripe_pay_invoice(self, invoice_id, access_token=None, **kwargs):
        """Send the customer to a current hosted page for what is still due on the invoice."""
        try:
            invoice_sudo = self._document_check_access("account.move", invoice_id, access_token=access_token)
        except (AccessError, MissingError):
            raise NotFound() from None
        if invoice_sudo.move_type != "out_invoice" or invoice_sudo.state != "posted":
            raise NotFound()
        portal_url = invoice_sudo.get_portal_url()
        if invoice_sudo.currency_id.is_zero(invoice_sudo.amount_residual):
            return request.redirect(portal_url)
        try:
            # A charge of the invoice (its answer from Stripe lost) may have paid it already.
            with request.env.cr.savepoint():
                in_progress = invoice_sudo._crm_charge_in_progress()
        except UserError as error:
            _logger.warning("charge of invoice %s not settled yet: %s", invoice_id, error)
            return request.render(
                "crm_payment_integration.crm_payment_status_page",
                {
                    "state": "pending",
                    "message": _("Your payment is being processed. Please check again in a few minutes."),
                    "back_url": portal_url,
                    "tx": None,
                },
            )
        if invoice_sudo.currency_id.is_zero(invoice_sudo.amount_residual):
            return request.redirect(portal_url)
        if in_progress:
            tx_sudo = in_progress[:1]
            if tx_sudo.state == "pending" and tx_sudo.provider_reference:
                # Perhaps waiting for the customer's authentication (3-D Secure): asked there.
                return request.redirect(tx_sudo._crm_authenticate_url())
            return self._crm_render_status(tx_sudo)
        try:
            with request.env.cr.savepoint():
                tx_sudo = invoice_sudo._crm_payment_link_tx(settled=True)
            if invoice_sudo.currency_id.is_zero(invoice_sudo.amount_residual):
                return request.redirect(portal_url)
        except UserError as error:
            _logger.warning("no hosted page for invoice %s: %s", invoice_id, error)
            return request.render(
                "crm_payment_integration.crm_payment_status_page",
                {"state": "unavailable", "message": str(error), "back_url": portal_url, "tx": None},
            )
        tx_sudo._crm_store_risk_data(client_ip=request.httprequest.remote_addr)
        return request.redirect(tx_sudo.crm_checkout_url, local=False)

    @http.route("/crm_payment/stripe/return", type="http", auth="public", methods=["GET"], website=True)
    def crm_stripe_return(self, tx=None, access_token=None, session_id=None, payment_intent=None, **kwargs):
        """Where Stripe sends the customer back. The query string only says which transaction
        to look at: its state comes from Stripe, read again here."""
        tx_sudo = self._crm_get_transaction(tx, access_token)
        if session_id and tx_sudo.crm_checkout_session_id and session_id != tx_sudo.crm_checkout_session_id:
            raise NotFound()
        try:
            with request.env.cr.savepoint():
                self._crm_refresh(tx_sudo)
        except (UserError, StripeGatewayError) as error:
            _logger.warning("could not read %s back from Stripe: %s", tx_sudo.reference, error)
        return self._crm_render_status(tx_sudo)

    @http.route("/crm_payment/stripe/authenticate", type="http", auth="public", methods=["GET"], website=True)
    def crm_stripe_authenticate(self, tx=None, access_token=None, **kwargs):
        """Let the customer authenticate (3-D Secure) a payment their bank held back."""
        tx_sudo = self._crm_get_transaction(tx, access_token)
        if tx_sudo.provider_reference and tx_sudo.state in ("draft", "pending"):
            provider_sudo = tx_sudo.provider_id
            intent = provider_sudo._crm_stripe_call("retrieve_payment_intent", tx_sudo.provider_reference)
            invoices = tx_sudo.invoice_ids
            if invoices and all(invoice.currency_id.is_zero(invoice.amount_residual) for invoice in invoices):
                # Paid by other means meanwhile: this payment must not go through too.
                if intent.get("status") not in ("succeeded", "canceled", "processing"):
                    try:
                        with request.env.cr.savepoint():
                            intent = provider_sudo._crm_stripe_call("cancel_payment_intent", intent["id"])
                            tx_sudo._crm_apply_payment_intent(intent)
                    except UserError as error:
                        _logger.warning("could not cancel %s: %s", tx_sudo.reference, error)
                    return self._crm_render_status(tx_sudo)
            if intent.get("status") in (
                "requires_action",
                "requires_confirmation",
            ) or tx_sudo._crm_needs_authentication(intent):
                return request.render(
                    "crm_payment_integration.crm_payment_authenticate_page",
                    {
                        "tx": tx_sudo,
                        "client_secret": intent["client_secret"],
                        "payment_method": intent.get("payment_method")
                        if intent.get("status") == "requires_payment_method"
                        else False,
                        "publishable_key": tx_sudo.provider_id.stripe_publishable_key,
                        "return_url": tx_sudo._crm_return_url(),
                    },
                )
            tx_sudo._crm_apply_payment_intent(intent)
        return self._crm_render_status(tx_sudo)

    def _crm_get_transaction(self, tx_id, access_token):
        """The transaction named in the URL, if the access token is its own; 404 otherwise."""
        try:
            tx_id = int(tx_id)
        except (TypeError, ValueError):
            raise NotFound() from None
        tx_sudo = request.env["payment.transaction"].sudo().browse(tx_id).exists()
        if not tx_sudo or not tx_sudo.crm_flow or not tx_sudo._crm_check_access_token(access_token):
            raise NotFound()
        tx_sudo._crm_store_risk_data(client_ip=request.httprequest.remote_addr)
        return tx_sudo

    def _crm_refresh(self, tx_sudo):
        if tx_sudo.state not in ("draft", "pending", "authorized") or tx_sudo.crm_needs_review:
            return
        provider_sudo = tx_sudo.provider_id
        if tx_sudo.crm_checkout_session_id:
            session = provider_sudo._crm_stripe_call(
                "retrieve_checkout_session", tx_sudo.crm_checkout_session_id
            )
            tx_sudo._crm_apply_checkout_session(session)
        elif tx_sudo.provider_reference:
            intent = provider_sudo._crm_stripe_call("retrieve_payment_intent", tx_sudo.provider_reference)
            tx_sudo._crm_apply_payment_intent(intent)

    def _crm_render_status(self, tx_sudo):
        invoice = tx_sudo.invoice_ids.filtered(lambda m: m.move_type == "out_invoice")[:1]
        if tx_sudo.crm_needs_review:
            state, message = (
                "review",
                _("We received your payment and are checking it. We will contact you if needed."),
            )
        elif tx_sudo.state == "done":
            state, message = (
                "done",
                (
                    _("Your payment method was saved. Thank you!")
                    if tx_sudo.operation == "validation"
                    else _("Your payment was received. Thank you!")
                ),
            )
        elif tx_sudo.state == "error":
            state, message = (
                "error",
                _(
                    "Your payment did not go through: %(reason)s. You can try again with another method.",
                    reason=tx_sudo.crm_decline_reason or tx_sudo.state_message or _("unknown reason"),
                ),
            )
        elif tx_sudo.state == "cancel":
            state, message = "cancel", _("No payment was made.")
        else:
            state, message = (
                "pending",
                _("Your payment is being processed. You will receive an email when it is confirmed."),
            )
        return request.render(
            "crm_payment_integration.crm_payment_status_page",
            {
                "state": state,
                "message": message,
                "tx": tx_sudo,
                "back_url": invoice.get_portal_url() if invoice else "/my",
                "retry_url": invoice._crm_portal_pay_url()
                if invoice
                and state in ("error", "cancel")
                and not invoice.currency_id.is_zero(invoice.amount_residual)
                else False,
            },
        )


class CrmSubscriptionPortal(CustomerPortal):
    """`/my/subscriptions`: a customer's subscriptions, their invoices, and cancelling one."""

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "crm_subscription_count" in counters:
            Subscription = request.env["crm.subscription"]
            values["crm_subscription_count"] = (
                Subscription.search_count(self._crm_subscriptions_domain())
                if Subscription.has_access("read")
                else 0
            )
        return values

    def _crm_subscriptions_domain(self):
        partner = request.env.user.partner_id.commercial_partner_id
        return [("partner_id", "child_of", partner.id), ("state", "!=", "draft")]

    @http.route("/my/subscriptions", type="http", auth="user", website=True)
    def crm_my_subscriptions(self, **kwargs):
        subscriptions = request.env["crm.subscription"].search(self._crm_subscriptions_domain()).sudo()
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "subscriptions": subscriptions,
                "next_charges": {s.id: s._crm_next_charge_date() for s in subscriptions},
                "page_name": "crm_subscriptions",
            }
        )
        return request.render("crm_payment_integration.portal_my_subscriptions", values)

    @http.route("/my/subscriptions/<int:subscription_id>", type="http", auth="user", website=True)
    def crm_my_subscription(self, subscription_id, **kwargs):
        subscription = self._crm_subscription_or_404(subscription_id)
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "subscription": subscription,
                "next_charge": subscription._crm_next_charge_date(),
                "page_name": "crm_subscription",
                "message": kwargs.get("message"),
            }
        )
        return request.render("crm_payment_integration.portal_my_subscription", values)

    @http.route(
        "/my/subscriptions/<int:subscription_id>/cancel",
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def crm_my_subscription_cancel(self, subscription_id, reason=None, **kwargs):
        """Cancel at the end of the period already paid for (the form carries a CSRF token)."""
        subscription = self._crm_subscription_or_404(subscription_id)
        reason = (reason or "").strip()[:500]
        if not reason:
            return request.redirect(f"/my/subscriptions/{subscription.id}?message=reason")
        subscription.action_cancel_at_period_end(_("cancelled by the customer: %s", reason))
        return request.redirect(f"/my/subscriptions/{subscription.id}?message=cancelled")

    @http.route(
        "/my/subscriptions/<int:subscription_id>/keep",
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def crm_my_subscription_keep(self, subscription_id, **kwargs):
        """Change one's mind: a cancellation planned for the end of the period is dropped."""
        subscription = self._crm_subscription_or_404(subscription_id)
        if (
            subscription.state in ("trial", "active", "past_due", "paused")
            and subscription.end_by_cancellation
        ):
            subscription.action_reactivate()
            return request.redirect(f"/my/subscriptions/{subscription.id}?message=kept")
        return request.redirect(f"/my/subscriptions/{subscription.id}")

    @http.route(
        "/my/subscriptions/<int:subscription_id>/<any(pause,resume):action>",
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def crm_my_subscription_pause(self, subscription_id, action, **kwargs):
        """Pause or resume, where the subscription's plan lets the customer do it. A
        subscription paused for want of payment is resumed by paying, not here."""
        subscription = self._crm_subscription_or_404(subscription_id)
        if not subscription.portal_pause or subscription.managed_by != "odoo":
            raise Forbidden()
        if action == "pause" and subscription.state == "active":
            subscription.action_pause()
            subscription.message_post(body=_("Paused by the customer."))
        elif action == "resume" and subscription.state == "paused" and not subscription.dunning_attempts:
            subscription.action_resume()
            subscription.message_post(body=_("Resumed by the customer."))
        else:
            return request.redirect(f"/my/subscriptions/{subscription.id}")
        return request.redirect(f"/my/subscriptions/{subscription.id}?message={action}d")

    def _crm_subscription_or_404(self, subscription_id):
        """The subscription if the user may read it (record rules), then in sudo, as Odoo's
        portal does with its documents; 404 otherwise."""
        subscription = request.env["crm.subscription"].browse(subscription_id).exists()
        if not subscription or not subscription.has_access("read") or subscription.sudo().state == "draft":
            raise NotFound()
        return subscription.sudo()


class CrmPaymentMethodPortal(PaymentPortal):
    """`/my/payment_method` (Odoo's own route, taken over): the customer's saved methods: add one
    on Stripe's page, remove one, choose the default (the one subscriptions are charged to).
    Every change is a POST form with a CSRF token, on the customer's own methods only."""

    @http.route()
    def payment_method(self, **kwargs):
        """Replaces Odoo's page on the same URL (one route, one page) for Stripe's methods;
        Odoo's page stays for a company without a Stripe provider."""
        if not request.env["payment.provider"]._crm_get_stripe_provider(request.env.company):
            return super().payment_method(**kwargs)
        partner = request.env.user.partner_id.commercial_partner_id
        values = self._prepare_portal_layout_values()
        values.update({"tokens": partner.sudo()._crm_tokens(), "page_name": "crm_payment_method"})
        return request.render("crm_payment_integration.portal_my_payment_methods", values)

    @http.route("/my/payment_method/add", type="http", auth="user", methods=["POST"], website=True)
    def crm_my_payment_method_add(self, **kwargs):
        partner = request.env.user.partner_id.commercial_partner_id
        tx = (
            request.env["payment.transaction"]
            .sudo()
            ._crm_create(
                partner.sudo(), 0.0, request.env.company.currency_id, "checkout", operation="validation"
            )
        )
        return request.redirect(tx._crm_create_checkout_session(), local=False)

    @http.route(
        "/my/payment_method/<int:token_id>/default", type="http", auth="user", methods=["POST"], website=True
    )
    def crm_my_payment_method_default(self, token_id, **kwargs):
        partner, token = self._crm_own_token(token_id)
        partner.sudo()._crm_set_default_token(token)
        return request.redirect("/my/payment_method")

    @http.route(
        "/my/payment_method/<int:token_id>/remove", type="http", auth="user", methods=["POST"], website=True
    )
    def crm_my_payment_method_remove(self, token_id, **kwargs):
        partner, token = self._crm_own_token(token_id)
        partner.sudo()._crm_remove_token(token)
        return request.redirect("/my/payment_method")

    def _crm_own_token(self, token_id):
        partner = request.env.user.partner_id.commercial_partner_id
        token = partner.sudo()._crm_tokens().filtered(lambda t: t.id == token_id)
        if not token:
            raise NotFound()
        return partner, token


class CrmPortalAccount(PortalAccount):
    """Extends account_payment's class, which defines the overdue invoices route: extending
    account's instead would leave that route to account_payment's code."""

    @http.route()
    def portal_my_overdue_invoices(self, access_token=None, **kw):
        """Odoo's page paying every overdue invoice at once is its payment form; where invoices
        are paid on Stripe's hosted page, the list of overdue invoices, each with its button,
        takes its place (one way to pay)."""
        if request.env["payment.provider"]._crm_get_stripe_provider(request.env.company):
            return request.redirect("/my/invoices?filterby=overdue_invoices")
        return super().portal_my_overdue_invoices(access_token=access_token, **kw)

    def _get_overdue_invoices_domain(self, partner_id=None):
        """Stripe Billing collects the invoices it mirrors: not among those paid from Odoo."""
        return super()._get_overdue_invoices_domain(partner_id) + [("crm_stripe_invoice_id", "=", False)]
