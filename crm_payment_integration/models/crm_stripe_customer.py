import json
import logging
import threading

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError

from .. import const, utils
from ..services import params as stripe_params
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
    sync_warning = fields.Text(
        string="Not Sent to Stripe",
        readonly=True,
        help="The partner's values Stripe would refuse, left out of the last synchronisation, "
        "and what to fix.",
    )

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
    def _crm_customer_params(self, partner, update=False):
        """Return the Stripe Customer parameters describing a commercial partner, within what
        Stripe accepts, and the values left out (see :mod:`..services.params`).

        :param recordset partner: `res.partner`, commercial
        :param bool update: parameters of an update (empty values clear Stripe's)
        :return: ``(params, left_out)``
        :rtype: tuple
        """
        return stripe_params.customer_params(
            {
                "name": partner.name,
                "email": partner.email,
                "phone": partner.phone,
                "mobile": partner.mobile,
                "street": partner.street,
                "street2": partner.street2,
                "city": partner.city,
                "zip": partner.zip,
                "state": partner.state_id.code,
                "country": partner.country_id.code,
                "metadata": {"odoo_partner_id": partner.id},
            },
            update=update,
        )

    @api.model
    def _crm_left_out_message(self, left_out):
        """Return what a person must fix for values left out of Stripe, in words."""
        reasons = {
            "invalid_email": _(
                "the email %(value)s holds no address Stripe accepts: write one plain address "
                "(name@example.com) first"
            ),
            "invalid_phone": _(
                "the phone number %(value)s is not one number of at most 20 characters: keep one "
                "number per field"
            ),
            "invalid_country": _("the country code %(value)s is not an ISO 3166 code"),
            "invalid_tax_id": _("the VAT number %(value)s is not valid for its country: correct it"),
            "refused_tax_id": _("Stripe refused the VAT number %(value)s: correct it"),
        }
        return "; ".join(reasons[item.reason] % {"value": item.value} for item in left_out)

    def _crm_report_left_out(self, left_out):
        """Keep on the binding what was not sent to Stripe, and tell it once on the partner."""
        self.ensure_one()
        warning = (
            _(
                "Not sent to Stripe for %(partner)s: %(reasons)s.",
                partner=self.partner_id.display_name,
                reasons=self._crm_left_out_message(left_out),
            )
            if left_out
            else False
        )
        if warning == (self.sync_warning or False):
            return
        self.sync_warning = warning
        if warning:
            self.partner_id.message_post(body=warning, subtype_xmlid="mail.mt_note")

    @api.model
    def _crm_ensure_customer(self, partner, provider_sudo, replacing=None):
        """Return the binding of a partner's commercial entity, creating the Stripe Customer.

        The partner's row is locked while the customer is created. The idempotency key names the
        intention, not the record: this partner, with these parameters, as its first customer
        or as the replacement of a customer deleted in Stripe. Two clicks, two workers or a
        crash followed by a retry send the same key and end with one customer; after a deletion
        the key is new, so Stripe creates a customer instead of replaying the deleted one (it
        replays a key's first answer for 24 hours).

        :param recordset partner: `res.partner`
        :param recordset provider_sudo: the Stripe `payment.provider`, sudo
        :param str replacing: the id of the partner's customer just found deleted in Stripe
        :return: the binding, sudo
        :raise UserError: when Stripe refuses
        """
        partner = partner.commercial_partner_id
        binding_sudo = self._crm_find(partner, provider_sudo)
        if binding_sudo:
            return binding_sudo
        # Serialise concurrent creations for this partner in this database.
        self.env.cr.execute("SELECT id FROM res_partner WHERE id = %s FOR UPDATE", [partner.id])
        binding_sudo = self._crm_find(partner, provider_sudo)
        if binding_sudo:
            return binding_sudo
        params, left_out = self._crm_customer_params(partner)
        gateway = provider_sudo._crm_stripe_gateway()
        previous = replacing
        for __ in range(5):
            idempotency_key = make_idempotency_key(
                provider_sudo._crm_database_uuid(),
                "customer",
                provider_sudo.id,
                partner.id,
                previous or "first",
                json.dumps(params, sort_keys=True),
            )
            try:
                customer = gateway.create_customer(params, idempotency_key)
                if not gateway.last_replayed or gateway.retrieve_customer(customer["id"]):
                    break
            except StripeGatewayError as error:
                utils.raise_user_error(error, provider_sudo)
            # Stripe replayed a customer this key created earlier and that was deleted since:
            # a new customer is a new intention, named after the one it replaces.
            _logger.info("stripe replayed deleted customer %s for partner %s", customer["id"], partner.id)
            previous = customer["id"]
        else:
            raise UserError(
                _(
                    "Stripe keeps answering with deleted customers for %(partner)s. Try again "
                    "tomorrow, when Stripe has forgotten the earlier requests.",
                    partner=partner.display_name,
                )
            )
        binding_sudo = self.sudo().create(
            {
                "partner_id": partner.id,
                "provider_id": provider_sudo.id,
                "stripe_customer_id": customer["id"],
                "last_sync_at": fields.Datetime.now(),
            }
        )
        left_out += binding_sudo._crm_push_tax_ids()
        binding_sudo._crm_report_left_out(left_out)
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
            params, left_out = self._crm_customer_params(binding_sudo.partner_id, update=True)
            customer = provider_sudo._crm_stripe_call(
                "update_customer", binding_sudo.stripe_customer_id, params
            )
            left_out += binding_sudo._crm_push_tax_ids()
            binding_sudo._crm_report_left_out(left_out)
            binding_sudo.write({"needs_push": False, "last_sync_at": fields.Datetime.now()})
            _logger.info(
                "pushed partner %s to stripe customer %s", binding_sudo.partner_id.id, customer["id"]
            )

    def _crm_push_tax_ids(self):
        """Make the customer's tax id in Stripe match the partner's VAT number.

        A VAT number Stripe would refuse (malformed) or refuses is left out: it never blocks the
        rest of the synchronisation.

        :return: the values left out, a list of :class:`..services.params.LeftOut`
        :rtype: list
        """
        self.ensure_one()
        partner = self.partner_id
        tax_type, value = stripe_params.tax_id(partner.vat, partner.country_id.code)
        if not tax_type:
            return []
        if not value:
            return [stripe_params.LeftOut("vat", partner.vat, "invalid_tax_id")]
        provider_sudo = self.provider_id
        existing = provider_sudo._crm_stripe_call("list_customer_tax_ids", self.stripe_customer_id)
        if any(t["type"] == tax_type and t["value"] == value for t in existing):
            return []
        try:
            provider_sudo._crm_stripe_gateway().create_customer_tax_id(
                self.stripe_customer_id,
                tax_type,
                value,
                # The intention is "add this number to a customer holding these tax ids": the
                # same number added again after it was replaced is a new one (Stripe would
                # replay the deleted tax id for 24 hours).
                make_idempotency_key(
                    provider_sudo._crm_database_uuid(),
                    "tax_id",
                    self.stripe_customer_id,
                    tax_type,
                    value,
                    ",".join(sorted(t["id"] for t in existing)) or "none",
                ),
            )
        except StripeGatewayError as error:
            if error.kind != "invalid_request":
                utils.raise_user_error(error, provider_sudo)
            # Stripe validates tax ids by country; an invalid VAT must not block the sync.
            return [stripe_params.LeftOut("vat", f"{partner.vat} ({error.message})", "refused_tax_id")]
        for tax_id in existing:
            if tax_id["type"] == tax_type and tax_id["value"] != value:
                provider_sudo._crm_stripe_call(
                    "delete_customer_tax_id", self.stripe_customer_id, tax_id["id"]
                )
        return []

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

        A value equal to what Odoo sends for the partner (its first valid email, its name cut
        to Stripe's length, ...) is no change; a value Odoo left out is Odoo's to fix.

        :param dict customer: a Stripe Customer object
        :rtype: dict
        """
        self.ensure_one()
        partner = self.partner_id
        sent, left_out = self._crm_customer_params(partner, update=True)
        skipped = {item.field for item in left_out}
        values = {}
        if customer.get("name") and customer["name"] != sent.get("name"):
            values["name"] = customer["name"]
        if "email" not in skipped and (customer.get("email") or "") != sent.get("email", ""):
            values["email"] = customer.get("email") or False
        if customer.get("phone") and "phone" not in skipped and "mobile" not in skipped:
            if customer["phone"] != sent.get("phone"):
                values["phone"] = customer["phone"]
        address = customer.get("address") or {}
        sent_address = sent.get("address") or {}
        if address:
            country = partner.country_id
            if (
                address.get("country")
                and "country_id" not in skipped
                and address["country"] != sent_address.get("country")
            ):
                country = self.env["res.country"].search([("code", "=", address["country"].upper())], limit=1)
                if country:
                    values["country_id"] = country.id
            if address.get("state") and address["state"] != sent_address.get("state"):
                state = self.env["res.country.state"].search(
                    [
                        ("country_id", "=", country.id),
                        "|",
                        ("code", "=", address["state"]),
                        ("name", "=ilike", address["state"]),
                    ],
                    limit=1,
                )
                if state and state != partner.state_id:
                    values["state_id"] = state.id
            for stripe_key, field in (
                ("line1", "street"),
                ("line2", "street2"),
                ("city", "city"),
                ("postal_code", "zip"),
            ):
                if (address.get(stripe_key) or "") != (sent_address.get(stripe_key) or ""):
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
        if not default_pm and not customer.get("default_source") and payment_methods:
            default_pm = self._crm_set_stripe_default(payment_methods)
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

    def _crm_set_stripe_default(self, payment_methods):
        """Make the newest saved method the customer's default in Stripe when it has none (a
        card saved on a hosted page is not made default by Stripe): Stripe Billing then charges
        the card Odoo charges, and "Default in Stripe" tells the truth.

        :param list payment_methods: the customer's Stripe PaymentMethod objects
        :return: the id of the new default
        """
        self.ensure_one()
        newest = max(payment_methods, key=lambda pm: pm.get("created") or 0)
        self.provider_id._crm_stripe_call(
            "update_customer",
            self.stripe_customer_id,
            {"invoice_settings": {"default_payment_method": newest["id"]}},
        )
        return newest["id"]

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
