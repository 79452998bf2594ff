"""What the payment analysis needs on a transaction, for every provider: the payment method
type, card brand and card country Stripe reports on the charge, and the opportunity,
salesperson and sales team the payment belongs to."""

from odoo import api, fields, models


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"  # pylint: disable=consider-merging-classes-inherited

    crm_method_type = fields.Char(
        string="Method Type",
        readonly=True,
        copy=False,
        help="The payment method's type as the gateway reports it (card, sepa_debit, ...); empty "
        "when the gateway says nothing (the analysis then uses Odoo's payment method).",
    )
    crm_card_brand = fields.Char(
        string="Card Brand", readonly=True, copy=False, help="visa, mastercard, amex... as Stripe names it."
    )
    crm_card_country_id = fields.Many2one(
        "res.country",
        string="Card Country",
        readonly=True,
        copy=False,
        help="The country of the card's (or the bank account's) issuer, from Stripe.",
    )
    crm_company_currency_id = fields.Many2one(related="company_id.currency_id", string="Company Currency")
    crm_amount_company = fields.Monetary(
        string="Amount in Company Currency",
        currency_field="crm_company_currency_id",
        compute="_compute_crm_amount_company",
        store=True,
        help="The amount converted to the company's currency at the rate of the transaction's "
        "date (its last state change): what the payment analysis and the customers' figures add up.",
    )
    crm_opportunity_id = fields.Many2one(
        "crm.lead",
        string="Analysis Opportunity",
        compute="_compute_crm_analysis_owner",
        store=True,
        recursive=True,
        help="The opportunity the payment belongs to: its own, its source payment's (a refund) or "
        "its invoice's.",
    )
    crm_user_id = fields.Many2one(
        "res.users",
        string="Analysis Salesperson",
        compute="_compute_crm_analysis_owner",
        store=True,
        recursive=True,
        help="The opportunity's salesperson, else the invoice's, else the customer's.",
    )
    crm_team_id = fields.Many2one(
        "crm.team",
        string="Analysis Sales Team",
        compute="_compute_crm_analysis_owner",
        store=True,
        recursive=True,
        help="The opportunity's sales team, else the invoice's, else the customer's.",
    )

    @api.depends("amount", "currency_id", "company_id", "last_state_change")
    def _compute_crm_amount_company(self):
        for tx in self:
            company = tx.company_id
            if not company or not tx.currency_id:
                tx.crm_amount_company = tx.amount
                continue
            day = (tx.last_state_change or tx.create_date or fields.Datetime.now()).date()
            tx.crm_amount_company = tx.currency_id._convert(tx.amount, company.currency_id, company, day)

    @api.depends(
        "crm_lead_id",
        "invoice_ids",
        "partner_id",
        "source_transaction_id.crm_opportunity_id",
        "source_transaction_id.crm_user_id",
        "source_transaction_id.crm_team_id",
    )
    def _compute_crm_analysis_owner(self):
        for tx in self:
            source = tx.source_transaction_id
            if source:
                tx.crm_opportunity_id = tx.crm_lead_id or source.crm_opportunity_id
                tx.crm_user_id = source.crm_user_id
                tx.crm_team_id = source.crm_team_id
                continue
            invoice = tx.invoice_ids.filtered(lambda m: m.move_type == "out_invoice")[:1]
            lead = tx.crm_lead_id or invoice.crm_lead_id
            customer = tx.partner_id.commercial_partner_id
            tx.crm_opportunity_id = lead
            tx.crm_user_id = lead.user_id or invoice.invoice_user_id or customer.user_id
            no_team = self.env["crm.team"]
            invoice_team = invoice.team_id if "team_id" in invoice._fields else no_team
            customer_team = customer.team_id if "team_id" in customer._fields else no_team
            tx.crm_team_id = lead.team_id or invoice_team or customer_team

    # === STRIPE'S METHOD DETAILS === #

    def _create_child_transaction(self, amount, is_refund=False, **custom_create_values):
        """Override of `payment` to give a refund (or a partial capture) the method type, card
        brand and card country of its payment: the analysis reads them on each row."""
        for name in ("crm_method_type", "crm_card_brand", "crm_card_country_id"):
            if self[name] and name not in custom_create_values:
                custom_create_values[name] = self[name].id if name == "crm_card_country_id" else self[name]
        return super()._create_child_transaction(amount, is_refund=is_refund, **custom_create_values)

    def _crm_apply_payment_intent(self, intent):
        """Override to keep the method type, card brand and card country Stripe reports."""
        result = super()._crm_apply_payment_intent(intent)
        self._crm_store_method_details(intent)
        return result

    def _crm_create_from_intent(self, provider_sudo, intent):
        """Override to keep the method details of a payment made in Stripe."""
        tx = super()._crm_create_from_intent(provider_sudo, intent)
        if tx:
            tx._crm_store_method_details(intent)
        return tx

    @api.model
    def _crm_method_details_of(self, intent):
        """Return ``(type, brand, country code)`` of what paid a PaymentIntent, from the richest
        source Stripe sent: the charge's ``payment_method_details`` (``latest_charge`` expanded,
        or the older ``charges`` list), else the PaymentMethod (expanded ``payment_method``, or
        the one of ``last_payment_error``). Each is ``None`` when Stripe said nothing.

        :param dict intent: a Stripe PaymentIntent
        :rtype: tuple
        """
        charge = intent.get("latest_charge")
        if not isinstance(charge, dict):
            charges = (
                (intent.get("charges") or {}).get("data") if isinstance(intent.get("charges"), dict) else None
            )
            charge = charges[0] if charges else None
        details = (charge or {}).get("payment_method_details")
        if not isinstance(details, dict) or not details.get("type"):
            payment_method = intent.get("payment_method")
            if not isinstance(payment_method, dict):
                payment_method = (intent.get("last_payment_error") or {}).get("payment_method")
            details = payment_method if isinstance(payment_method, dict) else {}
        method_type = details.get("type")
        specific = details.get(method_type) if method_type else None
        specific = specific if isinstance(specific, dict) else {}
        return method_type, specific.get("brand"), specific.get("country")

    def _crm_store_method_details(self, intent):
        """Store what paid the transaction (see :meth:`_crm_method_details_of`); a saved card
        fills what Stripe left out."""
        for tx in self:
            method_type, brand, country_code = self._crm_method_details_of(intent)
            token = tx.token_id
            if not brand and token and token.payment_method_id.primary_payment_method_id:
                brand = token.payment_method_id.code
            country = (
                self.env["res.country"].search([("code", "=", country_code.upper())], limit=1)
                if country_code
                else token.crm_card_country_id
            )
            values = {
                "crm_method_type": method_type or tx.crm_method_type,
                "crm_card_brand": brand or tx.crm_card_brand,
                "crm_card_country_id": country.id or tx.crm_card_country_id.id,
            }
            changed = {
                key: value
                for key, value in values.items()
                if (tx[key].id if key == "crm_card_country_id" else tx[key] or False) != (value or False)
            }
            if changed:
                tx.write(changed)

    # === CUSTOMER VALUE === #

    def _update_state(self, allowed_states, target_state, state_message):
        """Override of `payment` to keep the customers' figures current: each payment confirmed
        or refunded (of any provider) recomputes its customer's value, and a payment that fails
        or goes through changes its subscriber's churn risk; both set-based, for those
        customers only."""
        txs = super()._update_state(allowed_states, target_state, state_message)
        if target_state == "done" and txs:
            self.env["res.partner"].sudo()._crm_recompute_customer_value(
                partners=txs.partner_id.commercial_partner_id, companies=txs.company_id
            )
        if txs and target_state in ("error", "done"):
            txs._crm_refresh_subscriber_insight()
        return txs

    def _crm_refresh_subscriber_insight(self):
        """Recompute the subscriber figures (MRR, churn risk...) of these transactions'
        customers in the companies where they have subscription movements."""
        partners = self.sudo().partner_id.commercial_partner_id
        if not partners:
            return
        self.env.cr.execute(
            """SELECT DISTINCT company_id FROM crm_subscription_movement WHERE partner_id = ANY(%s)""",
            [partners.ids],
        )
        company_ids = [row[0] for row in self.env.cr.fetchall()]
        if company_ids:
            self.env["res.partner"]._crm_refresh_subscription_insight(
                self.env["res.company"].browse(company_ids), partner_ids=partners.ids
            )
