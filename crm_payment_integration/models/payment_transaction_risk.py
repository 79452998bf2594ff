import logging
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.tools import format_amount

_logger = logging.getLogger(__name__)

RADAR_LEVELS = ("elevated", "highest")


class PaymentTransaction(models.Model):
    """Risk data of a payment and the risk rules run on it (see `crm.payment.risk.rule`)."""

    _inherit = "payment.transaction"

    crm_charge_id = fields.Char(string="Stripe Charge", readonly=True, copy=False, index="btree_not_null")
    crm_card_fingerprint = fields.Char(
        string="Card Fingerprint",
        readonly=True,
        copy=False,
        help="Stripe's fingerprint of the card number (the same card gives the same value): "
        "not the number, nor anything it can be read back from.",
    )
    crm_card_country = fields.Char(string="Card Country", readonly=True, copy=False, size=2)
    crm_client_ip = fields.Char(string="Customer IP Address", readonly=True, copy=False)
    crm_risk_level = fields.Char(string="Radar Risk Level", readonly=True, copy=False)
    crm_risk_score = fields.Integer(string="Radar Risk Score", readonly=True, copy=False)
    crm_risk_flag_ids = fields.One2many("crm.payment.risk.flag", "transaction_id", string="Risk Flags")

    def init(self):
        # The risk rules count within a window: indexes of exactly those questions, so no rule
        # scans the transactions of other customers, cards or addresses.
        for name, definition in (
            ("crm_risk_failed_partner_idx", "(partner_id, last_state_change) WHERE state = 'error'"),
            (
                "crm_risk_failed_card_idx",
                "(crm_card_fingerprint, last_state_change) WHERE state = 'error' "
                "AND crm_card_fingerprint IS NOT NULL",
            ),
            (
                "crm_risk_failed_ip_idx",
                "(crm_client_ip, last_state_change) WHERE state = 'error' AND crm_client_ip IS NOT NULL",
            ),
            ("crm_risk_done_partner_idx", "(partner_id, currency_id, last_state_change) WHERE state = 'done'"),
            (
                "crm_risk_card_partner_idx",
                "(partner_id, last_state_change) WHERE crm_card_fingerprint IS NOT NULL",
            ),
        ):
            self.env.cr.execute(f"CREATE INDEX IF NOT EXISTS {name} ON payment_transaction {definition}")

    # === STATE CHANGES (audit) === #

    def _update_state(self, allowed_states, target_state, state_message):
        """Override of `payment` to write the state a Stripe event changed to the audit trail."""
        if not self.env.context.get("crm_audit_event"):
            return super()._update_state(allowed_states, target_state, state_message)
        before = {tx.id: {"state": tx.state} for tx in self}
        changed = super()._update_state(allowed_states, target_state, state_message)
        self.env["crm.payment.audit"]._crm_log_state_changes(changed, before)
        return changed

    # === RISK DATA === #

    def _crm_store_risk_data(self, charge=None, payment_method=None, token=None, client_ip=None):
        """Keep what the risk rules need from a Stripe Charge, a PaymentMethod, a saved method
        or the customer's request: card fingerprint and country, Radar's risk level and score,
        the IP address. Nothing else of the card is kept.

        :param dict charge: a Stripe Charge (``payment_method_details.card``, ``outcome``)
        :param dict payment_method: a Stripe PaymentMethod (``card``)
        """
        self.ensure_one()
        values = {}
        card = {}
        if isinstance(charge, dict):
            values["crm_charge_id"] = charge.get("id")
            card = (charge.get("payment_method_details") or {}).get("card") or {}
            outcome = charge.get("outcome") or {}
            if outcome.get("risk_level"):
                values["crm_risk_level"] = outcome["risk_level"]
            if isinstance(outcome.get("risk_score"), int):
                values["crm_risk_score"] = outcome["risk_score"]
        elif isinstance(payment_method, dict):
            card = payment_method.get("card") or {}
        if card.get("fingerprint"):
            values["crm_card_fingerprint"] = card["fingerprint"]
        if card.get("country"):
            values["crm_card_country"] = card["country"].upper()[:2]
        if token:
            token_sudo = token.sudo()
            values.setdefault("crm_card_fingerprint", token_sudo.crm_card_fingerprint or False)
            values.setdefault("crm_card_country", token_sudo.crm_card_country or False)
        if client_ip and not self.crm_client_ip:
            values["crm_client_ip"] = client_ip[:64]
        values = {name: value for name, value in values.items() if value and self[name] != value}
        if values:
            self.sudo().write(values)

    def _crm_store_intent_risk_data(self, intent):
        """Keep the risk data an answer or event about a PaymentIntent carries (its latest
        charge, or its payment method, when expanded), without asking Stripe anything more."""
        charge = intent.get("latest_charge")
        if not isinstance(charge, dict):
            charges = (intent.get("charges") or {}).get("data") if isinstance(intent.get("charges"), dict) else None
            charge = charges[-1] if charges else None
        error = intent.get("last_payment_error") or {}
        method = intent.get("payment_method") if isinstance(intent.get("payment_method"), dict) else None
        method = method or (error.get("payment_method") if isinstance(error.get("payment_method"), dict) else None)
        if isinstance(charge, dict) or method:
            self._crm_store_risk_data(charge=charge if isinstance(charge, dict) else None, payment_method=method)

    # === RISK RULES === #

    def _crm_check_risk(self):
        """Run the company's enabled risk rules on these transactions; each hit flags its
        customer once per cause (see `crm.payment.risk.flag`).

        Failed-attempt rules run on declined payments, amount rules on confirmed ones, the card,
        Radar and card-count rules whenever their data is known. Each rule is one SQL query
        over an index of its own (see :meth:`init`).

        :return: the new flags
        """
        flags = self.env["crm.payment.risk.flag"]
        # The rules read the transactions in SQL: what the ORM holds is written first.
        self.env["payment.transaction"].flush_model(
            [
                "state",
                "last_state_change",
                "partner_id",
                "amount",
                "currency_id",
                "operation",
                "crm_card_fingerprint",
                "crm_client_ip",
            ]
        )
        for tx in self:
            if not tx.crm_flow or tx.operation in ("refund", "validation") or not tx.partner_id:
                continue
            rules = self.env["crm.payment.risk.rule"]._crm_rules(tx.company_id)
            if not rules:
                continue
            flags |= tx._crm_run_rules(rules)
        return flags

    def _crm_run_rules(self, rules):
        self.ensure_one()
        Flag = self.env["crm.payment.risk.flag"]
        partner = self.partner_id.commercial_partner_id
        flags = Flag
        hits = []
        if self.state == "error":
            for code, column, value in (
                ("failed_customer", None, partner.id),
                ("failed_card", "crm_card_fingerprint", self.crm_card_fingerprint),
                ("failed_ip", "crm_client_ip", self.crm_client_ip),
            ):
                if code in rules and value:
                    hits.append(self._crm_rule_failed_attempts(rules[code], partner, column, value))
        if self.state == "done" and ("amount_median" in rules or "first_payment" in rules):
            hits += self._crm_rule_amount(rules, partner)
        if "card_country" in rules:
            hits.append(self._crm_rule_card_country(rules["card_country"], partner))
        if "many_cards" in rules and self.crm_card_fingerprint:
            hits.append(self._crm_rule_many_cards(rules["many_cards"], partner))
        if "radar" in rules:
            hits.append(self._crm_rule_radar(rules["radar"]))
        for hit in filter(None, hits):
            rule, cause_key, values, summary, subject = hit
            flags |= Flag._crm_flag(rule, self, partner, cause_key, values, summary, subject=subject)
        return flags

    def _crm_partner_ids_sql(self):
        return "SELECT id FROM res_partner WHERE commercial_partner_id = %(partner)s"

    def _crm_window_start(self, rule):
        return fields.Datetime.now() - timedelta(minutes=rule.window_minutes or 0)

    def _crm_rule_failed_attempts(self, rule, partner, column, value):
        """Failed attempts of one customer, card or IP address within the window, counted
        since the last flag of the same rule and subject (a burst flags once), reaching the
        threshold."""
        subject = f"{rule.code}:{value}"
        where = f"t.partner_id IN ({self._crm_partner_ids_sql()})" if column is None else f"t.{column} = %(value)s"
        self.env.cr.execute(
            f"""
            SELECT count(*), max(t.id) FROM payment_transaction t
             WHERE {where}
               AND t.state = 'error' AND t.operation NOT IN ('refund', 'validation')
               AND t.last_state_change >= %(since)s
               AND t.id > COALESCE((SELECT max(transaction_id) FROM crm_payment_risk_flag
                                     WHERE company_id = %(company)s AND rule = %(rule)s
                                       AND subject = %(subject)s), 0)
            """,  # noqa: S608 - the column names are constants of this method
            {
                "partner": partner.id,
                "value": value,
                "since": self._crm_window_start(rule),
                "company": rule.company_id.id,
                "rule": rule.code,
                "subject": subject,
            },
        )
        count, newest = self.env.cr.fetchone()
        if count < rule.threshold:
            return None
        what = {
            "failed_customer": _("customer %(name)s", name=partner.display_name),
            "failed_card": _("one card"),
            "failed_ip": _("IP address %(ip)s", ip=value),
        }[rule.code]
        summary = _(
            "%(count)s failed payment attempts of %(what)s within %(minutes)s minutes (threshold %(threshold)s)",
            count=count,
            what=what,
            minutes=rule.window_minutes,
            threshold=int(rule.threshold),
        )
        values = {"failed_attempts": count, "threshold": rule.threshold, "window_minutes": rule.window_minutes}
        if column:
            values[column] = value
        return rule, f"{subject}:{newest}", values, summary, subject

    def _crm_rule_amount(self, rules, partner):
        """A payment at or above N times the customer's median payment in the same currency
        over the window, or a first payment at or above an amount (company currency)."""
        median_rule = rules.get("amount_median")
        since = self._crm_window_start(median_rule) if median_rule else fields.Datetime.now()
        self.env.cr.execute(
            f"""
            SELECT count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY t.amount)
                       FILTER (WHERE t.currency_id = %(currency)s AND t.last_state_change >= %(since)s),
                   count(*) FILTER (WHERE t.currency_id = %(currency)s AND t.last_state_change >= %(since)s)
              FROM payment_transaction t
             WHERE t.partner_id IN ({self._crm_partner_ids_sql()})
               AND t.state = 'done' AND t.operation NOT IN ('refund', 'validation') AND t.id != %(tx)s
            """,  # noqa: S608 - a constant subquery
            {"partner": partner.id, "currency": self.currency_id.id, "since": since, "tx": self.id},
        )
        earlier, median, in_window = self.env.cr.fetchone()
        hits = []
        amount = format_amount(self.env, self.amount, self.currency_id)
        if median_rule and in_window and median:
            limit = self.currency_id.round(median * median_rule.threshold)
            if self.currency_id.compare_amounts(self.amount, limit) >= 0:
                hits.append(
                    (
                        median_rule,
                        f"tx:{self.id}",
                        {
                            "amount": self.amount,
                            "currency": self.currency_id.name,
                            "median": median,
                            "factor": median_rule.threshold,
                            "payments": in_window,
                        },
                        _(
                            "%(amount)s is %(factor)s times or more the customer's median payment (%(median)s)",
                            amount=amount,
                            factor=median_rule.threshold,
                            median=format_amount(self.env, median, self.currency_id),
                        ),
                        f"partner:{partner.id}",
                    )
                )
        first_rule = rules.get("first_payment")
        if first_rule and not earlier:
            company = self.company_id
            company_amount = self.currency_id._convert(
                self.amount, company.currency_id, company, fields.Date.context_today(self)
            )
            if company.currency_id.compare_amounts(company_amount, first_rule.threshold) >= 0:
                hits.append(
                    (
                        first_rule,
                        f"tx:{self.id}",
                        {
                            "amount": self.amount,
                            "currency": self.currency_id.name,
                            "amount_company": company_amount,
                            "threshold": first_rule.threshold,
                        },
                        _(
                            "First payment of the customer: %(amount)s, at or above %(threshold)s",
                            amount=amount,
                            threshold=format_amount(self.env, first_rule.threshold, company.currency_id),
                        ),
                        f"partner:{partner.id}",
                    )
                )
        return hits

    def _crm_rule_card_country(self, rule, partner):
        country = partner.country_id.code
        card_country = self.crm_card_country
        if not country or not card_country or country.upper() == card_country.upper():
            return None
        # One flag per customer and card: the same foreign card paying again is the same cause.
        return (
            rule,
            f"partner:{partner.id}:card:{self.crm_card_fingerprint or self.id}",
            {"card_country": card_country, "customer_country": country},
            _(
                "Card issued in %(card)s for a customer in %(customer)s",
                card=card_country,
                customer=country,
            ),
            f"partner:{partner.id}",
        )

    def _crm_rule_many_cards(self, rule, partner):
        """Distinct cards tried by one customer within the window, counted since the last flag
        of the rule, reaching the threshold."""
        subject = f"many_cards:{partner.id}"
        self.env.cr.execute(
            f"""
            SELECT count(DISTINCT t.crm_card_fingerprint), max(t.id) FROM payment_transaction t
             WHERE t.partner_id IN ({self._crm_partner_ids_sql()})
               AND t.crm_card_fingerprint IS NOT NULL AND t.last_state_change >= %(since)s
               AND t.operation NOT IN ('refund', 'validation')
               AND t.id > COALESCE((SELECT max(transaction_id) FROM crm_payment_risk_flag
                                     WHERE company_id = %(company)s AND rule = 'many_cards'
                                       AND subject = %(subject)s), 0)
            """,  # noqa: S608 - a constant subquery
            {
                "partner": partner.id,
                "since": self._crm_window_start(rule),
                "company": rule.company_id.id,
                "subject": subject,
            },
        )
        count, newest = self.env.cr.fetchone()
        if count < rule.threshold:
            return None
        return (
            rule,
            f"{subject}:{newest}",
            {"cards": count, "threshold": rule.threshold, "window_minutes": rule.window_minutes},
            _("%(count)s different cards tried by %(name)s", count=count, name=partner.display_name),
            subject,
        )

    def _crm_rule_radar(self, rule):
        level, score = self.crm_risk_level, self.crm_risk_score
        by_level = level in RADAR_LEVELS
        by_score = bool(self.crm_charge_id) and rule.threshold > 0 and score >= rule.threshold
        if not (by_level or by_score):
            return None
        return (
            rule,
            f"charge:{self.crm_charge_id or self.id}",
            {"risk_level": level, "risk_score": score, "threshold": rule.threshold},
            _("Stripe Radar rates the payment %(level)s (score %(score)s)", level=level or "-", score=score),
            f"charge:{self.crm_charge_id}",
        )

    # === HOOKS IN THE PAYMENT PATHS === #

    def _crm_mark_declined(self, error):
        """Override to run the failed-attempt rules on a declined payment."""
        result = super()._crm_mark_declined(error)
        if self.state == "error":
            payment_method = error.get("payment_method") if isinstance(error, dict) else None
            if isinstance(payment_method, dict):
                self._crm_store_risk_data(payment_method=payment_method)
            self._crm_check_risk()
            self.env["crm.payment.alert"]._crm_raise(
                "payment_failed",
                f"tx:{self.id}",
                self,
                _(
                    "Payment %(reference)s of %(amount)s failed: %(reason)s",
                    reference=self.reference,
                    amount=format_amount(self.env, self.amount, self.currency_id),
                    reason=self.crm_decline_reason or self.state_message or "-",
                ),
            )
        return result

    def _crm_mark_done(self):
        """Override to run the amount, card and Radar rules on a confirmed payment."""
        result = super()._crm_mark_done()
        if self.state == "done":
            self._crm_check_risk()
        return result

    def _crm_apply_payment_intent(self, intent):
        """Override to keep the risk data the PaymentIntent carries (no extra request)."""
        if isinstance(intent, dict):
            self._crm_store_intent_risk_data(intent)
        return super()._crm_apply_payment_intent(intent)

    @api.model
    def _crm_create(self, partner, amount, currency, flow, invoices=None, token=None, **kwargs):
        """Override to copy the card data of the saved method charged onto the transaction."""
        tx = super()._crm_create(partner, amount, currency, flow, invoices=invoices, token=token, **kwargs)
        if token:
            tx._crm_store_risk_data(token=token)
        return tx
