import logging
import threading

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError

from .. import const, utils
from ..services.budget import TimeBudget, iter_batches
from ..services.gateway import StripeGatewayError, make_idempotency_key

_logger = logging.getLogger(__name__)

# Partner fields whose change is pushed to the Stripe customer.
SYNCED_PARTNER_FIELDS = (
    "name",
    "email",
    "phone",
    "mobile",
    "street",
    "street2",
    "city",
    "zip",
    "state_id",
    "country_id",
    "vat",
)


class CrmStripeCustomer(models.Model):
    """The link between a commercial partner and its Stripe Customer in one Stripe account.

    One per partner and provider (so one per company), never two: the unique constraints are
    what a double click, a partner merge or a concurrent webhook run into.
    """

    _name = "crm.stripe.customer"
    _description = "Stripe Customer of a Partner"
    _order = "id desc"
    _rec_name = "stripe_customer_id"

    partner_id = fields.Many2one(
        comodel_name="res.partner",
        string="Customer",
        required=True,
        index=True,
        ondelete="cascade",
        domain=[("is_company", "=", True)],
    )
    provider_id = fields.Many2one(
        comodel_name="payment.provider",
        string="Stripe Provider",
        required=True,
        ondelete="cascade",
        domain=[("code", "=", "stripe")],
    )
    company_id = fields.Many2one(related="provider_id.company_id", store=True, index=True, string="Company")
    stripe_customer_id = fields.Char(required=True, index=True)
    needs_push = fields.Boolean(
        string="Changes to Send",
        help="The partner changed in Odoo since the customer was last updated in Stripe.",
        index=True,
    )
    last_sync_at = fields.Datetime(string="Last Synchronisation", readonly=True)

    _sql_constraints = [
        (
            "provider_partner_uniq",
            "unique(provider_id, partner_id)",
            "A partner has one Stripe customer per Stripe account.",
        ),
        (
            "provider_customer_uniq",
            "unique(provider_id, stripe_customer_id)",
            "A Stripe customer is linked to one partner only.",
        ),
    ]

    @api.depends("partner_id", "stripe_customer_id")
    def _compute_display_name(self):
        for binding in self:
            binding.display_name = f"{binding.stripe_customer_id} ({binding.partner_id.name})"

    # === BUSINESS METHODS - ODOO TO STRIPE === #

    @api.model
    def _crm_customer_values(self, partner):
        """Return the Stripe Customer parameters describing a commercial partner.

        :param recordset partner: `res.partner`, commercial
        :rtype: dict
        """
        values = {
            "name": partner.name or "",
            "email": partner.email or "",
            "phone": partner.phone or partner.mobile or "",
            "metadata": {"odoo_partner_id": str(partner.id)},
        }
        address = {
            "line1": partner.street,
            "line2": partner.street2,
            "city": partner.city,
            "postal_code": partner.zip,
            "state": partner.state_id.code,
            "country": partner.country_id.code,
        }
        address = {key: value for key, value in address.items() if value}
        if address:
            values["address"] = address
        return values

    @api.model
    def _crm_ensure_customer(self, partner, provider_sudo):
        """Return the binding of a partner's commercial entity, creating the Stripe Customer.

        The partner's row is locked while the customer is created, and the idempotency key is
        derived from the partner, so two clicks, two workers or a crash followed by a retry end
        with one customer.

        :param recordset partner: `res.partner`
        :param recordset provider_sudo: the Stripe `payment.provider`, sudo
        :return: the binding, sudo
        :raise UserError: when Stripe refuses
        """
        partner = partner.commercial_partner_id
        binding_sudo = self._crm_find(partner, provider_sudo)
        if binding_sudo:
            return binding_sudo
        # Serialise concurrent creations for this partner in this database.
        self.env.cr.execute("SELECT id, write_date FROM res_partner WHERE id = %s FOR UPDATE", [partner.id])
        __, write_date = self.env.cr.fetchone()
        binding_sudo = self._crm_find(partner, provider_sudo)
        if binding_sudo:
            return binding_sudo
        idempotency_key = make_idempotency_key(
            provider_sudo._crm_database_uuid(),
            "customer",
            provider_sudo.id,
            partner.id,
            write_date,
        )
        customer = provider_sudo._crm_stripe_call(
            "create_customer", self._crm_customer_values(partner), idempotency_key
        )
        binding_sudo = self.sudo().create(
            {
                "partner_id": partner.id,
                "provider_id": provider_sudo.id,
                "stripe_customer_id": customer["id"],
                "last_sync_at": fields.Datetime.now(),
            }
        )
        binding_sudo._crm_push_tax_ids()
        partner.message_post(
            body=_("Stripe customer %(customer)s created.", customer=customer["id"]),
            subtype_xmlid="mail.mt_note",
        )
        return binding_sudo

    @api.model
    def _crm_find(self, partner, provider_sudo):
        return self.sudo().search(
            [("partner_id", "=", partner.id), ("provider_id", "=", provider_sudo.id)], limit=1
        )

    def _crm_push(self):
        """Send the partner's current details to its Stripe customer."""
        for binding_sudo in self.sudo():
            provider_sudo = binding_sudo.provider_id
            customer = provider_sudo._crm_stripe_call(
                "update_customer",
                binding_sudo.stripe_customer_id,
                self._crm_customer_values(binding_sudo.partner_id),
            )
            binding_sudo._crm_push_tax_ids()
            binding_sudo.write({"needs_push": False, "last_sync_at": fields.Datetime.now()})
            _logger.info(
                "pushed partner %s to stripe customer %s", binding_sudo.partner_id.id, customer["id"]
            )

    def _crm_push_tax_ids(self):
        """Make the customer's tax id in Stripe match the partner's VAT number."""
        self.ensure_one()
        partner = self.partner_id
        tax_type = const.TAX_ID_TYPES.get(partner.country_id.code or "")
        if not (partner.vat and tax_type):
            return
        provider_sudo = self.provider_id
        existing = provider_sudo._crm_stripe_call("list_customer_tax_ids", self.stripe_customer_id)
        if any(t["type"] == tax_type and t["value"] == partner.vat for t in existing):
            return
        try:
            provider_sudo._crm_stripe_gateway().create_customer_tax_id(
                self.stripe_customer_id,
                tax_type,
                partner.vat,
                make_idempotency_key(
                    provider_sudo._crm_database_uuid(),
                    "tax_id",
                    self.stripe_customer_id,
                    tax_type,
                    partner.vat,
                ),
            )
        except StripeGatewayError as error:
            if error.kind != "invalid_request":
                utils.raise_user_error(error, provider_sudo)
            # Stripe validates tax ids by country; an invalid VAT must not block the sync.
            partner.message_post(
                body=_(
                    "Stripe refused the VAT number %(vat)s: %(reason)s",
                    vat=partner.vat,
                    reason=error.message,
                ),
                subtype_xmlid="mail.mt_note",
            )
            return
        for tax_id in existing:
            if tax_id["type"] == tax_type and tax_id["value"] != partner.vat:
                provider_sudo._crm_stripe_call(
                    "delete_customer_tax_id", self.stripe_customer_id, tax_id["id"]
                )

    @api.model
    def _cron_push_pending(self, limit=None, budget=None):
        """Send the partners changed in Odoo to Stripe, committed in batches within the run's
        share of Odoo's worker limits; the next run (at once) goes on with the rest.

        A failure stays queued for the next run.

        :param int limit: at most this many partners (all by default)
        :param TimeBudget budget: when to stop; by default the share of Odoo's limits
        :return: how many partners were sent
        """
        bindings = self.sudo().search([("needs_push", "=", True)], limit=limit)
        pushed = 0
        for binding_sudo in iter_batches(
            bindings,
            budget or TimeBudget.for_run(self.env, tools.config),
            self.env.ref("crm_payment_integration.ir_cron_crm_stripe_push"),
            batch_size=50,
            commit=not getattr(threading.current_thread(), "testing", False),
        ):
            try:
                with self.env.cr.savepoint():
                    binding_sudo._crm_push()
                pushed += 1
            except UserError as error:
                _logger.warning("could not push partner %s to stripe: %s", binding_sudo.partner_id.id, error)
        return pushed

    # === BUSINESS METHODS - STRIPE TO ODOO === #

    def _crm_pull(self, customer=None):
        """Apply the Stripe customer to the partner and its saved payment methods to tokens.

        Odoo changes not yet sent win over Stripe's (they are newer): they are sent first.

        :param dict customer: the customer as just read from Stripe; read when omitted
        :return: whether the customer still exists in Stripe
        :rtype: bool
        """
        self.ensure_one()
        binding_sudo = self.sudo()
        provider_sudo = binding_sudo.provider_id
        if customer is None:
            customer = provider_sudo._crm_stripe_call("retrieve_customer", binding_sudo.stripe_customer_id)
        if customer is None:
            binding_sudo._crm_unlink_deleted_customer()
            return False
        if binding_sudo.needs_push:
            binding_sudo._crm_push()
        else:
            values = binding_sudo._crm_partner_values_from_customer(customer)
            if values:
                binding_sudo.partner_id.with_context(crm_stripe_no_push=True).write(values)
        binding_sudo._crm_sync_payment_methods(customer)
        binding_sudo.last_sync_at = fields.Datetime.now()
        return True

    def _crm_partner_values_from_customer(self, customer):
        """Return the partner fields that differ from the Stripe customer.

        :param dict customer: a Stripe Customer object
        :rtype: dict
        """
        self.ensure_one()
        partner = self.partner_id
        values = {}
        if customer.get("name") and customer["name"] != partner.name:
            values["name"] = customer["name"]
        if (customer.get("email") or False) != (partner.email or False):
            values["email"] = customer.get("email") or False
        if customer.get("phone") and customer["phone"] not in (partner.phone, partner.mobile):
            values["phone"] = customer["phone"]
        address = customer.get("address") or {}
        if address:
            country = partner.country_id
            if address.get("country") and address["country"] != country.code:
                country = self.env["res.country"].search([("code", "=", address["country"].upper())], limit=1)
                if country:
                    values["country_id"] = country.id
            state = partner.state_id
            if address.get("state") and address["state"] not in (state.code, state.name):
                state = self.env["res.country.state"].search(
                    [
                        ("country_id", "=", country.id),
                        "|",
                        ("code", "=", address["state"]),
                        ("name", "=ilike", address["state"]),
                    ],
                    limit=1,
                )
                if state:
                    values["state_id"] = state.id
            for stripe_key, field in (
                ("line1", "street"),
                ("line2", "street2"),
                ("city", "city"),
                ("postal_code", "zip"),
            ):
                if (address.get(stripe_key) or False) != (partner[field] or False):
                    values[field] = address.get(stripe_key) or False
        return values

    def _crm_sync_payment_methods(self, customer):
        """Mirror the customer's saved payment methods as the partner's payment tokens.

        New methods become tokens, changed ones (expiry) are updated, detached ones archived.
        Only brand, last 4 digits and expiry are kept.

        :param dict customer: the Stripe Customer object
        """
        self.ensure_one()
        provider_sudo = self.provider_id
        payment_methods = []
        for method_type in const.TOKENIZED_PAYMENT_METHOD_TYPES:
            payment_methods += provider_sudo._crm_stripe_call(
                "list_payment_methods", self.stripe_customer_id, method_type
            )
        default_pm = (customer.get("invoice_settings") or {}).get("default_payment_method")
        if isinstance(default_pm, dict):
            default_pm = default_pm.get("id")
        Token = self.env["payment.token"].sudo().with_context(active_test=False)
        tokens = Token.search(
            [
                ("provider_id", "=", provider_sudo.id),
                ("provider_ref", "=", self.stripe_customer_id),
            ]
        )
        seen = set()
        for pm in payment_methods:
            seen.add(pm["id"])
            token = tokens.filtered(lambda t, pm_id=pm["id"]: t.stripe_payment_method == pm_id)
            Token._crm_upsert_from_stripe(
                token[:1],
                pm,
                self.partner_id,
                provider_sudo,
                self.stripe_customer_id,
                is_default=pm["id"] == default_pm,
            )
        detached = tokens.filtered(lambda t: t.active and t.stripe_payment_method not in seen)
        if detached:
            detached._crm_archive()

    def _crm_unlink_deleted_customer(self):
        """Unlink the customers deleted in Stripe: archive their tokens, drop the link."""
        for binding_sudo in self.sudo():
            tokens = (
                self.env["payment.token"]
                .sudo()
                .search(
                    [
                        ("provider_id", "=", binding_sudo.provider_id.id),
                        ("provider_ref", "=", binding_sudo.stripe_customer_id),
                    ]
                )
            )
            tokens._crm_archive()
            binding_sudo.partner_id.message_post(
                body=_(
                    "The Stripe customer %(customer)s was deleted in Stripe: it is no longer "
                    "linked to this partner. Synchronise again to create a new one.",
                    customer=binding_sudo.stripe_customer_id,
                ),
                subtype_xmlid="mail.mt_note",
            )
            _logger.info(
                "unlinked deleted stripe customer %s from partner %s",
                binding_sudo.stripe_customer_id,
                binding_sudo.partner_id.id,
            )
        self.sudo().unlink()

    @api.model
    def _crm_import_customer(self, provider_sudo, customer_id, cache=None):
        """Return the binding of a Stripe customer met in Stripe Billing, linking it to the
        partner with the same email that has no Stripe customer yet, or to a new partner.

        :return: the binding, sudo; empty when the customer does not exist in Stripe
        """
        cache = {} if cache is None else cache
        if not customer_id:
            return self.sudo().browse()
        key = ("binding", provider_sudo.id, customer_id)
        if key in cache:
            return cache[key]
        binding_sudo = self.sudo().search(
            [("provider_id", "=", provider_sudo.id), ("stripe_customer_id", "=", customer_id)], limit=1
        )
        if not binding_sudo:
            customer = provider_sudo._crm_stripe_call("retrieve_customer", customer_id)
            if not customer:
                return self.sudo().browse()
            Partner = self.env["res.partner"].sudo()
            partner = Partner.browse()
            email = tools.email_normalize(customer.get("email") or "")
            if email:
                # Only a customer (a company, or a person on their own) whose own address it is:
                # not the company of a contact who happens to have it.
                same_email = Partner.search(
                    [
                        ("email_normalized", "=", email),
                        ("parent_id", "=", False),
                        ("company_id", "in", (False, provider_sudo.company_id.id)),
                    ],
                    limit=10,
                )
                partner = same_email.filtered(lambda p: not self._crm_find(p, provider_sudo))[:1]
            known = bool(partner)
            partner = partner or Partner.with_context(crm_stripe_no_push=True).create(
                {
                    "name": customer.get("name") or customer.get("email") or customer_id,
                    "email": customer.get("email") or False,
                    "is_company": not customer.get("email") or bool(customer.get("name")),
                }
            )
            binding_sudo = self.sudo().create(
                {
                    "partner_id": partner.id,
                    "provider_id": provider_sudo.id,
                    "stripe_customer_id": customer_id,
                    # A partner Odoo already knows keeps its details (Odoo's win, as for any
                    # linked partner); a new one takes Stripe's.
                    "needs_push": known,
                }
            )
            if known:
                binding_sudo._crm_sync_payment_methods(customer)
            else:
                binding_sudo._crm_pull(customer)
            partner.message_post(
                body=_("Linked to Stripe customer %(customer)s from Stripe Billing.", customer=customer_id),
                subtype_xmlid="mail.mt_note",
            )
        cache[key] = binding_sudo
        return binding_sudo
