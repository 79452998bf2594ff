from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from .. import utils
from .crm_stripe_customer import SYNCED_PARTNER_FIELDS

# The consent of the collections' automatic charge: written by `_crm_set_autopay_consent` only.
AUTOPAY_CONSENT_FIELDS = {"crm_autopay_consent", "crm_autopay_consent_date", "crm_autopay_consent_source"}


class ResPartner(models.Model):
    _inherit = "res.partner"

    crm_stripe_customer_ids = fields.One2many(
        comodel_name="crm.stripe.customer",
        inverse_name="partner_id",
        string="Stripe Customers",
        groups="base.group_user",
    )
    stripe_customer_id = fields.Char(
        string="Stripe Customer ID",
        compute="_compute_stripe_customer_id",
        search="_search_stripe_customer_id",
        help="The Stripe Customer of this partner's company in the Stripe account of the current company.",
    )

    crm_payment_transaction_ids = fields.Many2many(
        "payment.transaction",
        compute="_compute_crm_payment_stats",
        string="Stripe Transactions",
        groups="base.group_user",
    )
    crm_payment_count = fields.Integer(
        compute="_compute_crm_payment_stats",
        string="Payments",
        help="Payment attempts among the transactions listed, whatever their result; refunds are "
        "counted apart.",
    )
    crm_refund_count = fields.Integer(
        compute="_compute_crm_payment_stats",
        string="Refunds",
        help="Refunds among the transactions listed.",
    )
    crm_subscription_count = fields.Integer(
        compute="_compute_crm_subscription_count", string="Subscription Count"
    )
    crm_payment_failed_count = fields.Integer(compute="_compute_crm_payment_stats", string="Failed Attempts")
    crm_payment_total = fields.Monetary(
        compute="_compute_crm_payment_stats",
        string="Total Paid",
        currency_field="crm_payment_currency_id",
        help="What the customer paid through Stripe, refunds deducted (net), in the company currency.",
    )
    crm_payment_average = fields.Monetary(
        compute="_compute_crm_payment_stats",
        string="Average Payment",
        currency_field="crm_payment_currency_id",
        help="Total Paid (net of refunds) divided by the number of successful payments.",
    )
    crm_payment_last_date = fields.Datetime(compute="_compute_crm_payment_stats", string="Last Payment")
    crm_payment_currency_id = fields.Many2one("res.currency", compute="_compute_crm_payment_stats")
    crm_saved_method_count = fields.Integer(compute="_compute_crm_payment_stats", string="Saved Methods")

    @api.depends_context("company")
    def _compute_crm_payment_stats(self):
        """The partner's payment profile: attempts, what they paid (in the company currency,
        refunds deducted), average, last payment, failures and saved methods."""
        company = self.env.company
        Transaction = self.env["payment.transaction"].sudo()
        # Others see the transactions their record rules let them read (own documents).
        own_only = []
        if not self.env.user.has_group("account.group_account_invoice"):
            readable = self.env["payment.transaction"]
            own_only = [("id", "in", readable._search([]) if readable.has_access("read") else [])]
        for partner in self:
            commercial = partner.commercial_partner_id
            if not commercial.id:
                partner.update(
                    {
                        "crm_payment_transaction_ids": False,
                        "crm_payment_count": 0,
                        "crm_refund_count": 0,
                        "crm_payment_failed_count": 0,
                        "crm_payment_total": 0.0,
                        "crm_payment_average": 0.0,
                        "crm_payment_last_date": False,
                        "crm_payment_currency_id": company.currency_id,
                        "crm_saved_method_count": 0,
                    }
                )
                continue
            txs = Transaction.search(
                [
                    ("partner_id", "child_of", commercial.id),
                    ("provider_code", "=", "stripe"),
                    ("company_id", "=", company.id),
                    ("operation", "!=", "validation"),
                    *own_only,
                ],
                order="id desc",
            )
            payments = txs.filtered(lambda tx: tx.operation != "refund")
            done = txs.filtered(lambda tx: tx.state == "done")
            paid = done.filtered(lambda tx: tx.operation != "refund")

            def to_company(tx):
                return tx.currency_id._convert(
                    tx.amount, company.currency_id, company, tx.last_state_change or fields.Date.today()
                )

            # Net: refunds are negative amounts. The average divides the same net total.
            total = sum(to_company(tx) for tx in done)
            partner.update(
                {
                    "crm_payment_transaction_ids": [(6, 0, txs.ids)],
                    "crm_payment_count": len(payments),
                    "crm_refund_count": len(txs) - len(payments),
                    "crm_payment_failed_count": len(payments.filtered(lambda tx: tx.state == "error")),
                    "crm_payment_total": total,
                    "crm_payment_average": company.currency_id.round(total / len(paid)) if paid else 0.0,
                    "crm_payment_last_date": max(paid.mapped("last_state_change")) if paid else False,
                    "crm_payment_currency_id": company.currency_id,
                    "crm_saved_method_count": len(commercial._crm_tokens(company)),
                }
            )

    def _crm_tokens(self, company=None):
        """The partner's active Stripe payment methods (its company's), default first."""
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider(company)
        if not provider_sudo:
            return self.env["payment.token"].sudo()
        return (
            self.env["payment.token"]
            .sudo()
            .search(
                [
                    ("provider_id", "=", provider_sudo.id),
                    ("partner_id", "child_of", self.commercial_partner_id.ids),
                    ("stripe_payment_method", "!=", False),
                ],
                order="crm_is_default desc, id desc",
            )
        )

    def _crm_default_token(self, company=None):
        """The method to charge off-session: the customer's default one, else the newest."""
        self.ensure_one()
        return self._crm_tokens(company)[:1]

    def _compute_crm_subscription_count(self):
        counts = dict(
            self.env["crm.subscription"]._read_group(
                [("partner_id", "in", self.commercial_partner_id.ids)], ["partner_id"], ["__count"]
            )
        )
        for partner in self:
            partner.crm_subscription_count = counts.get(partner.commercial_partner_id, 0)

    def action_crm_view_subscriptions(self):
        self.ensure_one()
        self.check_access("read")
        partner = self.commercial_partner_id
        return {
            "type": "ir.actions.act_window",
            "name": _("Subscriptions of %s", partner.display_name),
            "res_model": "crm.subscription",
            "view_mode": "list,form",
            "domain": [("partner_id", "=", partner.id)],
            "context": {"default_partner_id": partner.id},
        }

    def action_crm_view_transactions(self):
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "name": _("Stripe Payments"),
            "res_model": "payment.transaction",
            "view_mode": "list,form",
            "domain": [("id", "in", self.crm_payment_transaction_ids.ids)],
            "context": {"create": False},
        }

    def action_crm_view_tokens(self):
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "name": _("Saved Payment Methods"),
            "res_model": "payment.token",
            "view_mode": "list,form",
            "domain": [("id", "in", self.commercial_partner_id._crm_tokens().ids)],
            "context": {"create": False},
        }

    def action_crm_send_setup_link(self):
        """Email the customer a link to Stripe's hosted page for saving a payment method.

        The page (a Checkout Session in setup mode) is valid for a day; the card saved there
        appears among the customer's saved methods, ready for **Charge Saved Card**.

        :return: a notification action
        """
        self.ensure_one()
        self.commercial_partner_id.check_access("read")
        if not (
            self.env.user.has_group("sales_team.group_sale_salesman")
            or self.env.user.has_group("account.group_account_invoice")
        ):
            raise UserError(_("Only salespeople and billing users can ask customers for a payment method."))
        partner = self.commercial_partner_id
        if not partner.email:
            raise UserError(
                _("%(partner)s has no email address: add one first.", partner=partner.display_name)
            )
        partner._crm_send_setup_link()
        partner.sudo().message_post(
            body=_("Link to save a payment method sent to %(email)s.", email=partner.email),
            author_id=self.env.user.partner_id.id,
        )
        return utils.notification(
            _(
                "%(partner)s received a link to save a payment method at %(email)s.",
                partner=partner.display_name,
                email=partner.email,
            ),
            title=_("Link sent"),
        )

    def _crm_send_setup_link(
        self, template_xmlid="crm_payment_integration.mail_template_crm_payment_setup", company=None
    ):
        """Open a setup page (Checkout in setup mode) and email it with the given template."""
        self.ensure_one()
        company = company or self.env.company
        tx = (
            self.env["payment.transaction"]
            .with_company(company)
            ._crm_create(
                self.commercial_partner_id, 0.0, company.currency_id, "checkout", operation="validation"
            )
        )
        tx._crm_create_checkout_session()
        tx._crm_send_mail(template_xmlid)
        return tx

    def _crm_set_default_token(self, token):
        """Make a saved method the customer's default in Stripe, and the one their running
        subscriptions are charged to."""
        self.ensure_one()
        partner = self.commercial_partner_id
        provider_sudo = token.provider_id.sudo()
        # Odoo first (a refused write leaves Stripe untouched), then Stripe: the subscriptions
        # of the card's company only, a card of one Stripe account paying nothing elsewhere.
        self.env["crm.subscription"].sudo().search(
            [
                ("partner_id", "=", partner.id),
                ("company_id", "=", provider_sudo.company_id.id),
                ("state", "in", ("trial", "active", "past_due", "paused")),
                ("managed_by", "=", "odoo"),  # Stripe Billing charges the customer's default itself
            ]
        ).payment_token_id = token
        provider_sudo._crm_stripe_call(
            "update_customer",
            token.provider_ref,
            {"invoice_settings": {"default_payment_method": token.stripe_payment_method}},
        )
        binding = self.env["crm.stripe.customer"].sudo()._crm_find(partner, provider_sudo)
        if binding:
            binding._crm_pull()

    def _crm_remove_token(self, token):
        """Detach a saved method in Stripe and archive its token; subscriptions charged to it
        move to the customer's remaining default."""
        self.ensure_one()
        token.provider_id.sudo()._crm_stripe_call("detach_payment_method", token.stripe_payment_method)
        token.sudo()._crm_archive()
        replacement = self._crm_default_token(token.company_id)
        self.env["crm.subscription"].sudo().search(
            [("payment_token_id", "=", token.id), ("managed_by", "=", "odoo")]
        ).payment_token_id = replacement

    def action_crm_charge(self):
        """Open the wizard charging a free amount, with a reason, to a saved method."""
        self.ensure_one()
        self.env["account.move"]._crm_check_accounting_rights()
        self.commercial_partner_id.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "name": _("Charge %s", self.commercial_partner_id.display_name),
            "res_model": "crm.payment.charge.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_partner_id": self.commercial_partner_id.id},
        }

    @api.depends_context("company")
    @api.depends("commercial_partner_id.crm_stripe_customer_ids.stripe_customer_id")
    def _compute_stripe_customer_id(self):
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider()
        bindings = (
            self.env["crm.stripe.customer"]
            .sudo()
            .search(
                [
                    ("partner_id", "in", self.commercial_partner_id.ids),
                    ("provider_id", "=", provider_sudo.id),
                ]
            )
        )
        by_partner = {binding.partner_id.id: binding.stripe_customer_id for binding in bindings}
        for partner in self:
            partner.stripe_customer_id = by_partner.get(partner.commercial_partner_id.id, False)

    def _search_stripe_customer_id(self, operator, value):
        bindings = self.env["crm.stripe.customer"].sudo().search([("stripe_customer_id", operator, value)])
        return [("commercial_partner_id", "in", bindings.partner_id.ids)]

    def write(self, vals):
        """Override: also queue changed details for Stripe; the customer's consent to the
        automatic payment of overdue invoices is recorded only by its own path
        (`_crm_set_autopay_consent`: the customer's portal switch), never by a plain write.

        :raise AccessError: writing the consent fields outside that path
        """
        if not self.env.su and AUTOPAY_CONSENT_FIELDS.intersection(vals):
            raise AccessError(
                _(
                    "Only the customer gives or withdraws consent to the automatic payment of "
                    "their overdue invoices, with the switch on their portal's invoices page."
                )
            )
        res = super().write(vals)
        if not self.env.context.get("crm_stripe_no_push") and any(
            field in vals for field in SYNCED_PARTNER_FIELDS
        ):
            self._crm_mark_stripe_changed()
        return res

    def _crm_mark_stripe_changed(self):
        """Queue the partners' new details for their Stripe customers."""
        bindings = (
            self.env["crm.stripe.customer"]
            .sudo()
            .search(
                [
                    ("partner_id", "in", self.filtered(lambda p: p == p.commercial_partner_id).ids),
                    ("needs_push", "=", False),
                ]
            )
        )
        if bindings:
            bindings.needs_push = True
            self.env.ref("crm_payment_integration.ir_cron_crm_stripe_push")._trigger()

    def action_crm_stripe_sync(self):
        """Create or update the Stripe customer of each partner's company, both ways.

        Odoo's pending changes are sent, then the customer and its saved payment methods are
        read back from Stripe.

        :return: a notification action
        :raise UserError: when the company has no Stripe provider or Stripe refuses
        """
        self.commercial_partner_id.check_access("write")  # before any sudo or Stripe call
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider()
        if not provider_sudo:
            raise UserError(
                _(
                    "No Stripe payment provider is set up for %(company)s. Configure it in "
                    "Invoicing > Configuration > Payment Providers.",
                    company=self.env.company.name,
                )
            )
        Binding = self.env["crm.stripe.customer"]
        partners = self.commercial_partner_id
        partners.check_access("write")
        warnings = []
        for partner in partners:
            binding_sudo = Binding._crm_ensure_customer(partner, provider_sudo)
            deleted_id = binding_sudo.stripe_customer_id
            if not binding_sudo._crm_pull():
                # Deleted in Stripe meanwhile: start over with a new customer (a new intention).
                binding_sudo = Binding._crm_ensure_customer(partner, provider_sudo, replacing=deleted_id)
                binding_sudo._crm_pull()
            if binding_sudo.sync_warning:
                warnings.append(binding_sudo.sync_warning)
        if warnings:
            # Never "done" when Stripe did not get everything: say what to fix.
            return utils.notification(
                "\n".join(warnings),
                title=_("Synchronised, with values left out"),
                kind="warning",
                sticky=True,
            )
        return utils.notification(_("%(count)s partner(s) synchronised with Stripe.", count=len(partners)))

    # === DISPUTES === #

    crm_dispute_count = fields.Integer(
        string="Disputes",
        compute="_compute_crm_dispute_count",
        groups="sales_team.group_sale_salesman,account.group_account_invoice",
    )

    def _compute_crm_dispute_count(self):
        counts = dict(
            self.env["crm.payment.dispute"]._read_group(
                [("partner_id", "in", self.commercial_partner_id.ids)], ["partner_id"], ["__count"]
            )
        )
        for partner in self:
            partner.crm_dispute_count = counts.get(partner.commercial_partner_id, 0)

    crm_risk_flag_ids = fields.One2many("crm.payment.risk.flag", "partner_id", string="Risk Flags")
    crm_risk_open_count = fields.Integer(
        string="Open Risk Flags", compute="_compute_crm_risk_open_count", compute_sudo=True
    )
    crm_risk_hold = fields.Boolean(
        string="Automatic Charges Held", compute="_compute_crm_risk_open_count", compute_sudo=True
    )

    @api.depends("crm_risk_flag_ids.state", "commercial_partner_id")
    def _compute_crm_risk_open_count(self):
        groups = self.env["crm.payment.risk.flag"]._read_group(
            [("partner_id", "in", self.commercial_partner_id.ids), ("state", "=", "open")],
            ["partner_id", "hold_charges"],
            ["__count"],
        )
        counts, holds = {}, set()
        for partner, hold, count in groups:
            counts[partner.id] = counts.get(partner.id, 0) + count
            if hold:
                holds.add(partner.id)
        for partner in self:
            commercial = partner.commercial_partner_id.id
            partner.crm_risk_open_count = counts.get(commercial, 0)
            partner.crm_risk_hold = commercial in holds

    def _crm_automatic_charges_held(self, company=None):
        """The open risk flags holding this customer's automatic charges (billing runs, dunning
        retries, saved-card charges): every path charging a saved method without the customer
        asks this first and charges nothing while it returns flags.

        :param company: only the flags of this company (default: all of the customer's)
        :return: the open holding `crm.payment.risk.flag` records of the commercial partner,
            empty when nothing holds the charges
        """
        domain = [
            ("partner_id", "in", self.commercial_partner_id.ids),
            ("state", "=", "open"),
            ("hold_charges", "=", True),
        ]
        if company:
            domain.append(("company_id", "=", company.id))
        return self.env["crm.payment.risk.flag"].sudo().search(domain)

    def _crm_check_charges_not_held(self, company=None):
        """Refuse a saved-card charge of a customer whose charges a risk flag holds.

        :raise UserError: naming the flags, saying to clear them first
        """
        held = self._crm_automatic_charges_held(company)
        if held:
            raise UserError(
                _(
                    "Charges of %(partner)s are held by a risk flag (%(flags)s): review it and clear "
                    "it (Invoicing › Customers › Risk Flags) before charging the saved method.",
                    partner=self.commercial_partner_id.display_name,
                    flags="; ".join(held.mapped("summary")),
                )
            )
