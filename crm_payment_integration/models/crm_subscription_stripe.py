import logging

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config

from odoo.addons.payment import utils as payment_utils

from .. import utils
from ..services.budget import TimeBudget
from ..utils import Ignored

# Ids of the providers whose import the import cron goes on with.
IMPORT_PENDING_PARAM = "crm_payment_integration.stripe_import_pending"

_logger = logging.getLogger(__name__)

# Stripe subscription statuses and the state of their mirror.
# See https://docs.stripe.com/api/subscriptions/object#subscription_object-status.
STRIPE_STATES = {
    "incomplete": "draft",
    "incomplete_expired": "expired",
    "trialing": "trial",
    "active": "active",
    "past_due": "past_due",
    "unpaid": "paused",  # Stripe stopped retrying: nothing is collected
    "paused": "paused",
    "canceled": "cancelled",
}


# What users may still change on a mirror: who follows it up, and its chatter.
MIRROR_EDITABLE_FIELDS = {
    "user_id",
    "lead_id",
    "message_follower_ids",
    "message_main_attachment_id",
    "activity_ids",
}


class CrmSubscription(models.Model):
    """Subscriptions billed by Stripe Billing, mirrored read-only beside Odoo's own."""

    _inherit = "crm.subscription"

    managed_by = fields.Selection(
        [("odoo", "Odoo"), ("stripe", "Stripe Billing")],
        default="odoo",
        required=True,
        readonly=True,
        copy=False,
        index=True,
        help="Stripe Billing subscriptions are invoiced and charged by Stripe; Odoo mirrors them.",
    )
    stripe_subscription_id = fields.Char(readonly=True, copy=False, index="btree_not_null")
    stripe_provider_id = fields.Many2one(
        "payment.provider", string="Stripe Account", readonly=True, copy=False
    )
    stripe_synced_at = fields.Datetime(string="Last Read from Stripe", readonly=True, copy=False)

    _sql_constraints = [
        (
            "stripe_subscription_uniq",
            "unique(stripe_provider_id, stripe_subscription_id)",
            "A Stripe subscription is mirrored once.",
        ),
    ]

    def _crm_is_stripe_sync(self):
        """Whether this is the mirror writing what Stripe says (it runs as superuser; a
        context key alone, which any client can send, is not enough)."""
        return self.env.su and self.env.context.get("crm_stripe_sync")

    def _crm_check_managed_by_odoo(self):
        stripe_managed = self.filtered(lambda s: s.managed_by == "stripe")
        if stripe_managed and not self._crm_is_stripe_sync():
            raise UserError(
                _(
                    "%s is billed by Stripe Billing: change it in Stripe, Odoo follows.",
                    ", ".join(stripe_managed.mapped("name")),
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        if any(
            vals.get("managed_by") == "stripe" or vals.get("stripe_subscription_id") for vals in vals_list
        ):
            if not self._crm_is_stripe_sync():
                raise UserError(
                    _("Stripe Billing subscriptions come from Stripe: import them from the Stripe provider.")
                )
        return super().create(vals_list)

    def write(self, vals):
        """A mirror changes only as Stripe says; who follows it up (salesperson, opportunity)
        stays editable. Which side bills a subscription never changes."""
        if not self._crm_is_stripe_sync():
            if {"managed_by", "stripe_subscription_id", "stripe_provider_id"} & set(vals):
                raise UserError(_("Whether Stripe Billing or Odoo bills a subscription cannot be changed."))
            if set(vals) - MIRROR_EDITABLE_FIELDS:
                self._crm_check_managed_by_odoo()
        return super().write(vals)

    def action_start(self):
        self.check_access("write")
        self._crm_check_managed_by_odoo()
        return super().action_start()

    def action_pause(self):
        self.check_access("write")
        self._crm_check_managed_by_odoo()
        return super().action_pause()

    def action_resume(self):
        self.check_access("write")
        self._crm_check_managed_by_odoo()
        return super().action_resume()

    def action_cancel(self, reason=None):
        """A Stripe Billing subscription is cancelled in Stripe; its mirror follows the answer.

        Odoo's checks come first (a portal user may read, not write); when Stripe answered
        and Odoo then fails, the ``customer.subscription.*`` webhook re-reads it from Stripe."""
        self.check_access("write")  # rules and companies, before any Stripe call
        stripe_managed = self.filtered(lambda s: s.managed_by == "stripe")
        if stripe_managed and not self._crm_is_stripe_sync():
            for subscription in stripe_managed.filtered(lambda s: s.state not in ("cancelled", "expired")):
                remote = subscription.stripe_provider_id.sudo()._crm_stripe_call(
                    "cancel_subscription", subscription.stripe_subscription_id
                )
                subscription._crm_apply_stripe_subscription(remote)
                subscription.message_post(
                    body=_("Cancelled in Stripe: %s", reason) if reason else _("Cancelled in Stripe.")
                )
            self -= stripe_managed
        return super().action_cancel(reason=reason)

    def action_cancel_at_period_end(self, reason=None):
        self.check_access("write")  # rules and companies, before any Stripe call
        stripe_managed = self.filtered(lambda s: s.managed_by == "stripe")
        if stripe_managed and not self._crm_is_stripe_sync():
            for subscription in stripe_managed.filtered(
                lambda s: s.state in ("trial", "active", "past_due", "paused")
            ):
                remote = subscription.stripe_provider_id.sudo()._crm_stripe_call(
                    "update_subscription", subscription.stripe_subscription_id, {"cancel_at_period_end": True}
                )
                subscription._crm_apply_stripe_subscription(remote)
                subscription.message_post(
                    body=_("Ends at the end of the period in Stripe: %s", reason or _("no reason given"))
                )
            self -= stripe_managed
        return super().action_cancel_at_period_end(reason=reason)

    def action_reactivate(self):
        """A mirror ending at the end of its period goes on in Stripe; one Stripe cancelled
        cannot come back (Stripe starts a new subscription instead)."""
        self.check_access("write")  # rules and companies, before any Stripe call
        stripe_managed = self.filtered(lambda s: s.managed_by == "stripe")
        for subscription in stripe_managed:
            if subscription.state in ("cancelled", "expired", "draft"):
                raise UserError(
                    _(
                        "%s was cancelled in Stripe Billing, which cannot reactivate it: "
                        "create a new subscription in Stripe.",
                        subscription.name,
                    )
                )
            remote = subscription.stripe_provider_id.sudo()._crm_stripe_call(
                "update_subscription", subscription.stripe_subscription_id, {"cancel_at_period_end": False}
            )
            subscription._crm_apply_stripe_subscription(remote)
            if subscription.end_date:
                raise UserError(
                    _(
                        "Stripe still ends %(name)s on %(date)s (an end date set in Stripe): "
                        "change it there.",
                        name=subscription.name,
                        date=subscription.end_date,
                    )
                )
            subscription.message_post(body=_("Reactivated in Stripe: it goes on after the current period."))
        return super(CrmSubscription, self - stripe_managed).action_reactivate()

    def _prorate(self, line, old_amount, new_amount, today=None):
        if self.managed_by == "stripe":
            return  # Stripe prorates its own subscriptions
        return super()._prorate(line, old_amount, new_amount, today=today)

    # === IMPORT === #

    @api.model
    def _crm_import_stripe_subscriptions(self, provider_sudo, budget=None, only_new=False):
        """Mirror every subscription of the Stripe account with its finalised invoices, within
        ``budget`` (an import button runs in an HTTP worker, under Odoo's limits too).

        Safe to run again: subscriptions and invoices are found by their Stripe ids first. What
        the budget leaves is imported by the import cron (:meth:`_cron_import_stripe_subscriptions`).
        Importing is asking for the mirror: a provider that mirrored nothing then mirrors the
        imported subscriptions and those of linked customers (``linked``), so that the webhook
        keeps them current.


        :param TimeBudget budget: when to stop; unlimited by default
        :param bool only_new: skip the subscriptions already mirrored (the cron going on with
            an import: they are kept current by the webhooks)
        :return: the mirrored subscriptions
        """
        if provider_sudo.crm_billing_mirror == "none":
            provider_sudo.crm_billing_mirror = "linked"
        budget = budget or TimeBudget()
        cache = {}
        subscriptions = self.browse()
        remotes = provider_sudo._crm_stripe_call("list_subscriptions")
        if only_new:
            mirrored = set(
                self.sudo()
                .search(
                    [("stripe_provider_id", "=", provider_sudo.id), ("stripe_subscription_id", "!=", False)]
                )
                .mapped("stripe_subscription_id")
            )
            remotes = [remote for remote in remotes if remote["id"] not in mirrored]
        for index, remote in enumerate(remotes):
            if not budget.allows_batch():
                self._crm_import_later(provider_sudo, len(remotes) - index)
                break
            with budget.batch(1):
                try:
                    with self.env.cr.savepoint():
                        subscription = self._crm_sync_stripe_subscription(provider_sudo, remote, cache)
                        for invoice in (
                            provider_sudo._crm_stripe_call("list_invoices", remote["id"])
                            if subscription
                            else []
                        ):
                            self.env["account.move"]._crm_sync_stripe_invoice(provider_sudo, invoice, cache)
                except UserError as error:  # one subscription must not stop the import
                    cache.clear()
                    _logger.warning("stripe subscription %s not mirrored: %s", remote.get("id"), error)
                    continue
            subscriptions |= subscription
        return subscriptions

    @api.model
    def _crm_stripe_mirror_refusal(self, provider_sudo, subscription_id, customer_id):
        """Say why the webhook must not mirror a Stripe subscription, per the provider's Stripe
        Billing setting (``crm_billing_mirror``); decided from the event, without asking Stripe.

        - ``none``: nothing is mirrored;
        - ``linked``: a subscription already mirrored (imported, or mirrored earlier), or one
          whose Stripe customer is linked to an Odoo partner on this provider (synchronised
          from Odoo, or met in an import);
        - ``all``: every subscription.

        :param str subscription_id: the Stripe subscription's id
        :param customer_id: its Stripe customer (an id or the object)
        :return: the reason, or ``False`` when it is mirrored
        :rtype: Ignored | bool
        """
        mode = provider_sudo.crm_billing_mirror
        if mode == "all":
            return False
        if mode != "linked":
            return Ignored(
                _(
                    "%(provider)s does not mirror Stripe Billing (its Mirror Stripe Billing setting).",
                    provider=provider_sudo.display_name,
                )
            )
        if subscription_id and self.sudo().search_count(
            [("stripe_provider_id", "=", provider_sudo.id), ("stripe_subscription_id", "=", subscription_id)],
            limit=1,
        ):
            return False
        customer_id = utils.stripe_id(customer_id)
        if customer_id and self.env["crm.stripe.customer"].sudo().search_count(
            [("provider_id", "=", provider_sudo.id), ("stripe_customer_id", "=", customer_id)], limit=1
        ):
            return False
        return Ignored(
            _(
                "Subscription %(subscription)s was never imported and its Stripe customer "
                "%(customer)s is linked to no partner (another app's?): not mirrored (Mirror "
                "Stripe Billing: imported or linked customers).",
                subscription=subscription_id,
                customer=customer_id or "-",
            )
        )

    @api.model
    def _crm_import_later(self, provider_sudo, left):
        """Hand the rest of an import over to the import cron, at once."""
        param = self.env["ir.config_parameter"].sudo()
        pending = set(filter(None, (param.get_param(IMPORT_PENDING_PARAM) or "").split(",")))
        param.set_param(IMPORT_PENDING_PARAM, ",".join(sorted(pending | {str(provider_sudo.id)})))
        self.env.ref("crm_payment_integration.ir_cron_crm_import_stripe_subscriptions").sudo()._trigger()
        _logger.info("%s stripe subscriptions of provider %s left to the import cron", left, provider_sudo.id)

    @api.model
    def _cron_import_stripe_subscriptions(self):
        """Go on with the imports their button could not finish within its time limits, within
        the share of Odoo's worker limits a run may use; the next run (at once) goes on."""
        param = self.env["ir.config_parameter"].sudo()
        pending = [int(value) for value in (param.get_param(IMPORT_PENDING_PARAM) or "").split(",") if value]
        param.set_param(IMPORT_PENDING_PARAM, False)  # set again by a run that cannot finish
        budget = TimeBudget.for_run(self.env, config)
        for provider_sudo in self.env["payment.provider"].sudo().browse(pending).exists():
            self._crm_import_stripe_subscriptions(provider_sudo, budget=budget, only_new=True)
        self.env["ir.cron"]._notify_progress(done=len(pending), remaining=0)

    @api.model
    def _crm_sync_stripe_subscription(self, provider_sudo, remote, cache=None):
        """Create or update the mirror of a Stripe subscription as Stripe has it now.

        :param dict remote: the Stripe Subscription object
        :return: the mirror, or an empty recordset when its customer cannot be found
        """
        cache = {} if cache is None else cache
        Subscription = self.sudo().with_context(crm_stripe_sync=True)
        subscription = Subscription.search(
            [("stripe_provider_id", "=", provider_sudo.id), ("stripe_subscription_id", "=", remote["id"])],
            limit=1,
        )
        if not subscription:
            binding = self.env["crm.stripe.customer"]._crm_import_customer(
                provider_sudo, utils.stripe_id(remote.get("customer")), cache
            )
            if not binding:
                return self.browse()
            subscription = Subscription.create(
                {
                    "managed_by": "stripe",
                    "stripe_subscription_id": remote["id"],
                    "stripe_provider_id": provider_sudo.id,
                    "partner_id": binding.partner_id.id,
                    "company_id": provider_sudo.company_id.id,
                    "user_id": (binding.partner_id.user_id or provider_sudo._crm_alert_user()).id,
                    "currency_id": self._crm_stripe_currency(remote).id
                    or provider_sudo.company_id.currency_id.id,
                    "start_date": utils.stripe_date(remote.get("start_date") or remote.get("created")),
                }
            )
            subscription.message_post(body=_("Mirrored from Stripe Billing subscription %s.", remote["id"]))
        subscription._crm_apply_stripe_subscription(remote, cache)
        return subscription

    @api.model
    def _crm_stripe_currency(self, remote):
        items = (remote.get("items") or {}).get("data") or []
        code = remote.get("currency") or (items and self._crm_stripe_price(items[0]).get("currency")) or ""
        return (
            self.env["res.currency"]
            .with_context(active_test=False)
            .search([("name", "=", code.upper())], limit=1)
        )

    @api.model
    def _crm_stripe_price(self, item):
        """The price of a subscription item: ``price`` since 2018, ``plan`` before (localstripe).
        A price keeps its period in ``recurring`` and its amount in ``unit_amount``; a plan has
        both at its top level."""
        price = item.get("price") or {}
        source = price or item.get("plan") or {}
        recurring = price.get("recurring") or {} if price else source
        return {
            "unit_amount": (source.get("unit_amount") if price else source.get("amount")) or 0,
            "currency": source.get("currency"),
            "interval": recurring.get("interval") or "month",
            "interval_count": recurring.get("interval_count") or 1,
            "product": utils.stripe_id(source.get("product")),
            "nickname": source.get("nickname"),
        }

    def _crm_apply_stripe_subscription(self, remote, cache=None):
        """Set the mirror's state, dates and lines from the Stripe Subscription object."""
        self.ensure_one()
        cache = {} if cache is None else cache
        subscription = self.sudo().with_context(crm_stripe_sync=True)
        items = (remote.get("items") or {}).get("data") or []
        currency = self._crm_stripe_currency(remote) or subscription.currency_id
        first = self._crm_stripe_price(items[0]) if items else {}
        # Since API 2025-03-31 the current period lives on each item.
        period_end = (items and items[0].get("current_period_end")) or remote.get("current_period_end")
        state = STRIPE_STATES.get(remote.get("status"), subscription.state)
        if remote.get("pause_collection") and state in ("trial", "active", "past_due"):
            state = "paused"
        start = (
            utils.stripe_date(remote.get("start_date") or remote.get("created")) or subscription.start_date
        )
        end_date = False
        if remote.get("ended_at"):
            end_date = max(
                utils.stripe_date(remote["ended_at"]) - relativedelta(days=1), start - relativedelta(days=1)
            )
        elif remote.get("cancel_at"):
            end_date = max(
                utils.stripe_date(remote["cancel_at"]) - relativedelta(days=1), start - relativedelta(days=1)
            )
        elif remote.get("cancel_at_period_end") and period_end:
            end_date = utils.stripe_date(period_end) - relativedelta(days=1)
        values = {
            "state": state,
            "start_date": start,
            "trial_end_date": utils.stripe_date(remote.get("trial_end"))
            if remote.get("trial_end") and utils.stripe_date(remote["trial_end"]) >= start
            else False,
            "next_invoice_date": utils.stripe_date(period_end)
            if state in ("trial", "active", "past_due") and period_end
            else False,
            "end_date": end_date,
            "end_by_cancellation": bool(remote.get("cancel_at_period_end")),
            "interval_unit": first.get("interval") or subscription.interval_unit,
            "interval_number": first.get("interval_count") or subscription.interval_number,
            "currency_id": currency.id,
            "stripe_synced_at": fields.Datetime.now(),
        }
        subscription.write(values)
        subscription._crm_apply_stripe_items(items, currency, cache)

    def _crm_stripe_latest_invoice_needs_customer(self, remote, cache=None):
        """Tell the customer and the salesperson when the mirror's renewal waits for the
        customer: Stripe made it past due or incomplete, and its latest invoice is open.

        :param dict remote: the Stripe Subscription, as Stripe has it now
        :return: what was done, or an empty string
        """
        self.ensure_one()
        invoice_id = utils.stripe_id(remote.get("latest_invoice"))
        if remote.get("status") not in ("past_due", "incomplete") or not invoice_id:
            return ""
        provider_sudo = self.stripe_provider_id.sudo()
        invoice = provider_sudo._crm_stripe_call("retrieve_invoice", invoice_id)
        if not invoice or invoice.get("status") != "open":
            return ""
        Move = self.env["account.move"].sudo()
        Move._crm_sync_stripe_invoice(provider_sudo, invoice, cache)
        move = Move.search([("crm_stripe_invoice_id", "=", invoice_id)], limit=1)
        return move._crm_notify_stripe_payment_needed(invoice, "unpaid") if move else ""

    def _crm_apply_stripe_items(self, items, currency, cache):
        """Mirror the items as read-only lines; unchanged lines are left alone."""
        wanted = []
        for item in items:
            price = self._crm_stripe_price(item)
            product = self.env["product.product"]._crm_from_stripe(self.stripe_provider_id, price, cache)
            wanted.append(
                {
                    "product_id": product.id,
                    "name": price.get("nickname") or False,
                    "quantity": item.get("quantity") or 1,
                    "price_unit": payment_utils.to_major_currency_units(price["unit_amount"], currency),
                }
            )
        current = [
            {
                "product_id": line.product_id.id,
                "name": line.name,
                "quantity": line.quantity,
                "price_unit": line.price_unit,
            }
            for line in self.line_ids
        ]
        if current != wanted:
            self.line_ids = [(5, 0, 0)] + [(0, 0, values) for values in wanted]


class CrmSubscriptionLine(models.Model):
    _inherit = "crm.subscription.line"

    @api.model_create_multi
    def create(self, vals_list):
        lines = super().create(vals_list)
        lines.subscription_id._crm_check_managed_by_odoo()
        return lines

    def write(self, vals):
        self.subscription_id._crm_check_managed_by_odoo()
        return super().write(vals)

    def unlink(self):
        self.subscription_id._crm_check_managed_by_odoo()
        return super().unlink()


class ProductTemplate(models.Model):
    _inherit = "product.template"

    crm_stripe_product_id = fields.Char(string="Stripe Product", copy=False, index="btree_not_null")


class ProductProduct(models.Model):
    _inherit = "product.product"

    @api.model
    def _crm_from_stripe(self, provider_sudo, price, cache):
        """The Odoo product of a Stripe product, created (a service) the first time it is met."""
        stripe_product_id = price.get("product")
        key = ("product", stripe_product_id)
        if key in cache:
            return cache[key]
        Product = self.sudo()
        product = (
            Product.with_context(active_test=False).search(
                [("crm_stripe_product_id", "=", stripe_product_id)], limit=1
            )
            if stripe_product_id
            else Product
        )
        if not product:
            remote = (
                provider_sudo._crm_stripe_call("retrieve_product", stripe_product_id)
                if stripe_product_id
                else {}
            )
            product = Product.create(
                {
                    "name": (remote or {}).get("name") or price.get("nickname") or _("Stripe subscription"),
                    "type": "service",
                    "sale_ok": True,
                    "crm_stripe_product_id": stripe_product_id or False,
                    "company_id": False,
                }
            )
        cache[key] = product
        return product
