import functools
import logging
import secrets

from werkzeug.urls import url_join

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import config
from odoo.tools.sql import column_exists

from .. import utils
from ..services.budget import TimeBudget
from ..services.gateway import StripeGateway, StripeGatewayError, make_idempotency_key

_logger = logging.getLogger(__name__)

WEBHOOK_ROUTE = "/crm_payment/stripe/webhook/%s"


class PaymentProvider(models.Model):
    _inherit = "payment.provider"

    crm_api_base = fields.Char(
        string="Stripe API Base URL",
        help="Leave empty to reach Stripe. Set to a Stripe stand-in such as localstripe "
        "(e.g. http://127.0.0.1:8420) for tests and demos.",
        groups="base.group_system",
    )
    crm_webhook_secret = fields.Char(
        string="CRM Webhook Signing Secret",
        help="The signing secret (whsec_...) of the webhook endpoint receiving Stripe events "
        "for CRM Payments. Events are refused while it is empty.",
        groups="base.group_system",
        copy=False,
    )
    crm_webhook_endpoint_id = fields.Char(
        string="Webhook Endpoint ID",
        readonly=True,
        copy=False,
        groups="base.group_system",
    )
    crm_webhook_url = fields.Char(
        string="CRM Webhook URL",
        compute="_compute_crm_webhook_url",
        help="The URL Stripe sends events to.",
    )
    crm_alert_user_id = fields.Many2one(
        string="Payments Responsible",
        comodel_name="res.users",
        help="Receives an activity when a Stripe event cannot be applied. Defaults to the administrator.",
        domain=[("share", "=", False)],
    )
    crm_billing_mirror = fields.Selection(
        string="Mirror Stripe Billing",
        selection=[
            ("none", "No"),
            ("linked", "Imported or linked customers"),
            ("all", "All subscriptions"),
        ],
        default="none",
        required=True,
        help="Which Stripe Billing subscriptions the webhook mirrors in Odoo, with their invoices "
        "and payments.\n"
        "- No: none; Stripe Billing events are stored as ignored.\n"
        "- Imported or linked customers: the subscriptions already mirrored (the Import button) "
        "and those of a Stripe customer linked to an Odoo partner on this provider; the others "
        "(another app sharing the Stripe account) are ignored and create nothing.\n"
        "- All subscriptions: every subscription of the Stripe account; its customer becomes a "
        "partner (or is linked to the partner with the same email).",
    )

    def _auto_init(self):
        new_column = not column_exists(self.env.cr, self._table, "crm_billing_mirror")
        result = super()._auto_init()
        if new_column and column_exists(self.env.cr, "crm_subscription", "stripe_provider_id"):
            self._crm_init_billing_mirror()
        return result

    @api.model
    def _crm_init_billing_mirror(self):
        """Set the Stripe Billing setting of an installation upgrading to it: a provider with
        mirrored subscriptions keeps following them and their linked customers (``linked``, not
        ``all``: a shared Stripe account's other subscriptions are not Odoo's); the others, like
        new installations, mirror nothing (``none``) until their subscriptions are imported."""
        self.env.flush_all()
        self.env.cr.execute(
            """
            UPDATE payment_provider provider SET crm_billing_mirror = 'linked'
             WHERE crm_billing_mirror = 'none'
               AND EXISTS (SELECT 1 FROM crm_subscription subscription
                            WHERE subscription.stripe_provider_id = provider.id)
            """
        )
        self.invalidate_model(["crm_billing_mirror"])

    @api.constrains("crm_api_base")
    def _check_crm_api_base(self):
        for provider in self.sudo():
            base = provider.crm_api_base
            if base and not base.startswith(("http://", "https://")):
                raise ValidationError(_("The Stripe API base URL must start with http:// or https://."))

    @api.depends("code")
    def _compute_crm_webhook_url(self):
        for provider in self:
            if provider.code == "stripe" and provider.id:
                provider.crm_webhook_url = url_join(provider.get_base_url(), WEBHOOK_ROUTE % provider.id)
            else:
                provider.crm_webhook_url = False

    # === ACTIONS === #

    def action_crm_register_webhook(self):
        """Create the Stripe webhook endpoint of CRM Payments and store its signing secret.

        The endpoint listens to the event types the add-on handles, at the pinned API version.
        Registering again replaces the previous endpoint instead of adding one more. Against
        localstripe, which has no webhook endpoints API, its configuration route is used with a
        secret generated here.

        :return: a notification action
        :rtype: dict
        :raise UserError: when the provider is not a configured Stripe provider
        """
        self.ensure_one()
        self.check_access("write")
        provider_sudo = self.sudo()
        gateway = provider_sudo._crm_stripe_gateway()
        url = self.crm_webhook_url
        events = sorted(self.env["crm.payment.event"]._crm_get_event_handlers())
        previous_endpoint = provider_sudo.crm_webhook_endpoint_id
        try:
            if gateway.is_stripe:
                endpoint = gateway.create_webhook_endpoint(
                    url,
                    events,
                    idempotency_key=make_idempotency_key(
                        self._crm_database_uuid(),
                        "webhook_endpoint",
                        provider_sudo.id,
                        url,
                        previous_endpoint or "first",
                    ),
                    description=_("Odoo CRM Payments (%(db)s)", db=self.env.cr.dbname),
                )
                if previous_endpoint and previous_endpoint != endpoint["id"]:
                    gateway.delete_webhook_endpoint(previous_endpoint)
                endpoint_id, secret = endpoint["id"], endpoint["secret"]
            else:
                endpoint_id = f"odoo-{self._crm_database_uuid()[:8]}-{provider_sudo.id}"
                secret = "whsec_" + secrets.token_urlsafe(32)
                gateway.configure_localstripe_webhook(endpoint_id, url, secret, events)
        except StripeGatewayError as error:
            utils.raise_user_error(error, provider_sudo)
        provider_sudo.write({"crm_webhook_endpoint_id": endpoint_id, "crm_webhook_secret": secret})
        _logger.info("registered stripe webhook endpoint %s for provider %s", endpoint_id, self.id)
        return utils.notification(
            _("Stripe now sends %(count)s event types to %(url)s.", count=len(events), url=url), reload=False
        )

    def action_crm_import_stripe_subscriptions(self):
        """Mirror the account's Stripe Billing subscriptions, their invoices and payments.

        Importing is asking for the mirror: a provider that mirrored nothing (setting ``none``)
        then mirrors the imported subscriptions and those of linked customers (``linked``).
        """
        self.ensure_one()
        self.check_access("write")
        provider_sudo = self.sudo()
        provider_sudo._crm_check_stripe()
        mirror_was_off = provider_sudo.crm_billing_mirror == "none"
        # A request has Odoo's worker limits too: what does not fit goes on in the background.
        budget = TimeBudget.for_run(self.env, config)
        subscriptions = self.env["crm.subscription"]._crm_import_stripe_subscriptions(
            provider_sudo, budget=budget
        )
        message = _("%(count)s Stripe Billing subscriptions are mirrored in Odoo.", count=len(subscriptions))
        if budget.exhausted:
            message = _(
                "%(count)s Stripe Billing subscriptions are mirrored in Odoo; the others are being "
                "imported in the background and appear in the Subscriptions list within minutes.",
                count=len(subscriptions),
            )
        if mirror_was_off:
            message = _(
                "%(message)s Mirror Stripe Billing is now on for imported or linked customers: the "
                "webhook keeps these subscriptions current, and mirrors the new ones of customers "
                "linked to a partner.",
                message=message,
            )
        return utils.notification(message, reload=True)

    # === BUSINESS METHODS === #

    def _crm_check_stripe(self):
        """Make sure the provider can reach Stripe.

        :raise UserError: when it is not a Stripe provider, is disabled or has no secret key
        """
        self.ensure_one()
        if self.code != "stripe":
            raise UserError(_("%(provider)s is not a Stripe provider.", provider=self.name))
        if self.state == "disabled":
            raise UserError(
                _(
                    "The Stripe provider %(provider)s is disabled. Set it to Test Mode or Enabled first.",
                    provider=self.name,
                )
            )
        if not self.sudo().stripe_secret_key:
            raise UserError(
                _(
                    "The Stripe provider %(provider)s has no secret key. Paste it on the "
                    "provider's Credentials tab.",
                    provider=self.name,
                )
            )

    def _crm_stripe_http_client(self):
        """Return the HTTP client the gateway must use; ``None`` means the SDK's own.

        The only hook through which tests answer, with Stripe-shaped responses, for the
        objects localstripe lacks.
        """
        return None

    def _crm_stripe_gateway(self):
        """Return the gateway for this provider's Stripe account.

        :rtype: StripeGateway
        """
        self.ensure_one()
        provider_sudo = self.sudo()
        provider_sudo._crm_check_stripe()
        return StripeGateway(
            provider_sudo.stripe_secret_key,
            provider_sudo.crm_api_base or None,
            http_client=self._crm_stripe_http_client(),
            # Every call goes to the audit trail (names and figures only, never the key).
            observer=functools.partial(self.env["crm.payment.audit"]._crm_log_call, provider_sudo),
        )

    def _crm_stripe_call(self, method_name, *args, **kwargs):
        """Call a gateway method and raise a :class:`UserError` saying what to do on failure."""
        self.ensure_one()
        gateway = self._crm_stripe_gateway()
        try:
            return getattr(gateway, method_name)(*args, **kwargs)
        except StripeGatewayError as error:
            utils.raise_user_error(error, self)

    @api.model
    def _crm_get_stripe_provider(self, company=None):
        """Return the Stripe provider of a company that CRM Payments works with, in sudo mode.

        Only system administrators read providers; callers act on their behalf.

        :param recordset company: `res.company`, the current company by default
        :return: the provider (sudo), or an empty recordset
        """
        company = company or self.env.company
        providers = self.sudo().search(
            [
                ("code", "=", "stripe"),
                ("state", "!=", "disabled"),
                ("company_id", "=", company.id),
            ],
            order="sequence, id",
        )
        # An enabled (live) provider wins over one in test mode.
        return providers.filtered(lambda p: p.state == "enabled")[:1] or providers[:1]

    @api.model
    def _crm_webhook_credentials(self, provider_id):
        """Return the Stripe provider of a webhook URL and its signing secret, in one query.

        The webhook route is the hot path of the add-on: it must not load the whole provider.

        :param int provider_id: the id in the webhook URL
        :return: (provider in sudo mode or an empty recordset, secret or None)
        """
        self.env.cr.execute(
            "SELECT crm_webhook_secret FROM payment_provider WHERE id = %s AND code = 'stripe'",
            [provider_id],
        )
        row = self.env.cr.fetchone()
        if not row:
            return self.sudo().browse(), None
        return self.sudo().browse(provider_id), row[0]

    def _crm_alert_user(self):
        self.ensure_one()
        return self.sudo().crm_alert_user_id or self.env.ref("base.user_admin")

    def _crm_database_uuid(self):
        return self.env["ir.config_parameter"].sudo().get_param("database.uuid")
