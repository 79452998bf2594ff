import logging

from werkzeug.exceptions import NotFound

from odoo import _, http
from odoo.exceptions import UserError
from odoo.http import request

from .portal import CrmPortalAccount

_logger = logging.getLogger(__name__)


class CrmCollectionPortal(CrmPortalAccount):
    """The customer's side of collections: the lasting pay-all link, the statement page, and
    the consent to automatic payment of overdue invoices."""

    @http.route(
        "/crm_payment/stripe/pay_all/<int:partner_id>/<int:company_id>/<int:currency_id>",
        type="http",
        auth="public",
        methods=["GET"],
        website=True,
    )
    def crm_collection_pay_all(self, partner_id, company_id, currency_id, access_token=None, **kwargs):
        """Send the customer to a current hosted page for all their overdue invoices in one
        currency (the link of the reminders and the portal; its token is the customer's)."""
        partner_sudo = request.env["res.partner"].sudo().browse(partner_id).exists()
        company = request.env["res.company"].sudo().browse(company_id).exists()
        currency = request.env["res.currency"].sudo().browse(currency_id).exists()
        if not (partner_sudo and company and currency) or not partner_sudo._crm_check_pay_all_token(
            company, currency, access_token
        ):
            raise NotFound()
        back_url = "/" if request.env.user._is_public() else "/my/invoices"
        try:
            with request.env.cr.savepoint():
                tx_sudo = partner_sudo._crm_pay_all_tx(company, currency)
        except UserError as error:
            _logger.warning("no pay-all page for partner %s: %s", partner_id, error)
            return request.render(
                "crm_payment_integration.crm_payment_status_page",
                {"state": "unavailable", "message": str(error), "back_url": back_url, "tx": None},
            )
        if not tx_sudo:
            return request.render(
                "crm_payment_integration.crm_payment_status_page",
                {
                    "state": "done",
                    "message": _("Nothing is overdue any more. Thank you!"),
                    "back_url": back_url,
                    "tx": None,
                },
            )
        return request.redirect(tx_sudo.crm_checkout_url, local=False)

    # === STATEMENT === #

    def _crm_statement_values(self, partner, date_from=None, date_to=None):
        try:
            date_from, date_to = request.env["res.partner"]._crm_statement_period(date_from, date_to)
        except (UserError, ValueError):
            date_from, date_to = request.env["res.partner"]._crm_statement_period()
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "st": partner.sudo()._crm_statement(date_from, date_to, request.env.company),
                "partner": partner,
                "kinds": {
                    "invoice": _("Invoice"),
                    "credit_note": _("Credit note"),
                    "payment": _("Payment"),
                    "other": _("Other"),
                },
                "page_name": "crm_statement",
            }
        )
        return values

    def _crm_own_partner(self, partner_id=None):
        """The user's commercial partner; another partner's id is a 404."""
        partner = request.env.user.partner_id.commercial_partner_id
        if partner_id is not None and partner_id != partner.id:
            raise NotFound()
        return partner

    @http.route(["/my/statement", "/my/statement/<int:partner_id>"], type="http", auth="user", website=True)
    def crm_my_statement(self, partner_id=None, date_from=None, date_to=None, **kwargs):
        """The customer's statement of account: their own only (another customer's is a 404)."""
        partner = self._crm_own_partner(partner_id)
        return request.render(
            "crm_payment_integration.portal_my_statement",
            self._crm_statement_values(partner, date_from, date_to),
        )

    @http.route("/my/statement/pdf", type="http", auth="user", website=True)
    def crm_my_statement_pdf(self, date_from=None, date_to=None, **kwargs):
        partner = self._crm_own_partner()
        date_from, date_to = request.env["res.partner"]._crm_statement_period(date_from, date_to)
        pdf, __ = (
            request.env["ir.actions.report"]
            .sudo()
            ._render_qweb_pdf(
                "crm_payment_integration.report_crm_statement",
                partner.ids,
                data={
                    "date_from": str(date_from),
                    "date_to": str(date_to),
                    "company_id": request.env.company.id,
                },
            )
        )
        return request.make_response(
            pdf,
            headers=[
                ("Content-Type", "application/pdf"),
                ("Content-Disposition", f'attachment; filename="statement-{date_to}.pdf"'),
            ],
        )

    # === CONSENT === #

    @http.route("/my/collection/autopay", type="http", auth="user", methods=["POST"], website=True)
    def crm_my_autopay(self, consent=None, **kwargs):
        """Switch the automatic payment of overdue invoices on or off (a form with a CSRF
        token). Switched on without a saved payment method: sent to save one."""
        partner = self._crm_own_partner()
        on = consent in ("1", "on", "true")
        partner.sudo()._crm_set_autopay_consent(on, "portal")
        if on and not partner.sudo()._crm_default_token(request.env.company):
            return request.redirect("/my/payment_method")
        return request.redirect("/my/invoices")

    # === MY INVOICES === #

    def _prepare_my_invoices_values(self, *args, **kwargs):
        values = super()._prepare_my_invoices_values(*args, **kwargs)
        partner = request.env.user.partner_id.commercial_partner_id.sudo()
        company = request.env.company
        overdue = (
            partner._crm_overdue_moves(company) if not request.env.user._is_public() else partner.browse()
        )
        values["crm_pay_all_links"] = [
            {
                "currency": currency,
                "total": sum(
                    overdue.filtered(lambda m, c=currency: m.currency_id == c).mapped("amount_residual")
                ),
                "url": partner._crm_pay_all_url(company, currency),
            }
            for currency in overdue.currency_id
        ]
        values["crm_autopay_consent"] = partner.crm_autopay_consent
        return values
