"""What a user of the back office sees and is told: buttons offered only when they can work,
confirmations naming the amount, the card and the recipient, and a payment profile whose
figures agree with the rows shown."""

from datetime import date

from odoo.tests import Form, HttpCase, tagged
from odoo.tools import format_amount
from odoo.tools.safe_eval import safe_eval

from .common import CrmPaymentCommon, CrmStripeCommon, FakeCheckout


def combined_arch(env, xmlid):
    """The view as the web client receives it, inherited views applied."""
    return env.ref(xmlid).sudo()._get_combined_arch()


def visible_buttons(record, xmlid):
    """The labels of the add-on's header buttons a form shows on ``record``, their
    ``invisible`` expressions evaluated on its values as the web client does."""
    arch = combined_arch(record.env, xmlid)
    values = {"id": record.id}
    for name, field in record._fields.items():
        value = record.sudo()[name] if field.type not in ("one2many", "many2many") else False
        values[name] = value.id if field.type == "many2one" else value
    labels = []
    for button in arch.xpath("/form/header/button"):
        invisible = button.get("invisible")
        if button.get("string") and not (invisible and safe_eval(invisible, dict(values))):
            labels.append(button.get("string"))
    return labels


@tagged("post_install", "-at_install")
class TestBackofficeUx(CrmPaymentCommon, HttpCase):
    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(FakeCheckout())
        self.usd = self.company.currency_id

    def _money(self, amount, currency=None):
        return format_amount(self.env, amount, currency or self.usd)

    # --- Charge Saved Card -------------------------------------------------------------------

    def test_charge_saved_card_is_offered_only_with_a_card_and_names_amount_and_card(self):
        invoice = self._crm_invoice(120.0).with_user(self.accountant)
        self.assertFalse(invoice.crm_charge_available)
        self.assertNotIn("Charge Saved Card", visible_buttons(invoice, "account.view_move_form"))

        token = self._crm_save_card()
        invoice.invalidate_recordset(["crm_charge_available"])
        self.assertTrue(invoice.crm_charge_available)
        self.assertIn("Charge Saved Card", visible_buttons(invoice, "account.view_move_form"))

        # The button opens the dialog that says what will happen; part of the amount may be charged.
        Wizard = self.env["crm.payment.charge.wizard"].with_user(self.accountant)
        with Form(Wizard.with_context(default_invoice_id=invoice.id)) as dialog:
            self.assertEqual(dialog.token_id, token)
            self.assertEqual(dialog.amount, 120.0)
            self.assertEqual(
                dialog.summary,
                f"Charge {self._money(120.0)} to VISA •••• 4242 (08/2034) of Azure Interior?",
            )
            dialog.amount = 50.0
            self.assertEqual(
                dialog.summary,
                f"Charge {self._money(50.0)} to VISA •••• 4242 (08/2034) of Azure Interior?",
            )
        result = dialog.record.action_charge()
        self.assertEqual(result["params"]["type"], "success")
        self.assertIn(self._money(50.0), result["params"]["message"])
        self.assertEqual(invoice.amount_residual, 70.0)
        self.assertEqual(invoice.transaction_ids.token_id, token)
        self.assertEqual(invoice.transaction_ids.crm_reason, f"Invoice {invoice.name}")

        # From the partner (no invoice): a free amount, the same summary.
        action = self.partner.with_user(self.accountant).action_crm_charge()
        with Form(Wizard.with_context(**action["context"])) as dialog:
            self.assertEqual(dialog.partner_id, self.partner)
            dialog.amount = 15.0
            dialog.reason = "Setup fee"
            self.assertEqual(
                dialog.summary,
                f"Charge {self._money(15.0)} to VISA •••• 4242 (08/2034) of Azure Interior?",
            )

        # Paid in full: nothing left to charge, the button goes.
        invoice.action_crm_charge_saved_method()
        invoice.invalidate_recordset()
        self.assertTrue(self._crm_reconciled(invoice))
        self.assertNotIn("Charge Saved Card", visible_buttons(invoice, "account.view_move_form"))

    # --- Send Payment Link -------------------------------------------------------------------

    def test_send_payment_link_names_recipient_and_amount_and_asks_before_resending(self):
        invoice = self._crm_invoice(75.0).with_user(self.accountant)
        self.assertIn("Send Payment Link", visible_buttons(invoice, "account.view_move_form"))
        self.assertNotIn("Resend Payment Link", visible_buttons(invoice, "account.view_move_form"))

        result = invoice.action_crm_send_payment_link()
        self.assertEqual(result["params"]["title"], "Payment link sent")
        self.assertEqual(
            result["params"]["message"],
            f'{invoice.name}: link to pay {self._money(75.0)} sent to "Azure Interior" <azure@example.com>.',
        )
        self.assertTrue(invoice.crm_payment_link_sent_at)
        self.assertEqual(invoice.crm_payment_link_sent_to, '"Azure Interior" <azure@example.com>')

        # Sent once: the button becomes "Resend", which asks first.
        labels = visible_buttons(invoice, "account.view_move_form")
        self.assertNotIn("Send Payment Link", labels)
        self.assertIn("Resend Payment Link", labels)
        arch = combined_arch(self.env, "account.view_move_form")
        resend = arch.xpath("//button[@string='Resend Payment Link']")[0]
        self.assertIn("already received a payment link", resend.get("confirm"))

    # --- Cancel at Period End ------------------------------------------------------------------

    def _subscription(self):
        product = self.env["product.product"].create({"name": "Support plan", "list_price": 30.0})
        subscription = self.env["crm.subscription"].create(
            {
                "partner_id": self.partner.id,
                "user_id": self.salesman.id,  # theirs: salespeople see their own documents
                "line_ids": [(0, 0, {"product_id": product.id, "name": "Support", "price_unit": 30.0})],
            }
        )
        subscription.action_start()
        subscription.next_invoice_date = date(2030, 1, 15)
        return subscription

    def test_cancel_at_period_end_asks_a_reason_shows_the_end_and_is_undone_by_keep(self):
        subscription = self._subscription().with_user(self.salesman)
        xmlid = "crm_payment_integration.crm_subscription_view_form"
        labels = visible_buttons(subscription, xmlid)
        self.assertIn("Cancel at Period End", labels)
        self.assertNotIn("Reactivate", labels)
        self.assertNotIn("Keep Subscription", labels)

        Wizard = self.env["crm.subscription.cancel.wizard"].with_user(self.salesman)
        dialog = Form(Wizard.with_context(default_subscription_id=subscription.id))
        self.assertEqual(dialog.end_date, date(2030, 1, 14))
        with self.assertRaises(AssertionError):  # the reason is required
            dialog.save()
        dialog.reason = "Moving to another tool"
        result = dialog.save().action_confirm()
        self.assertEqual(
            result["params"]["message"], f"{subscription.name} ends on 01/14/2030; it is not renewed after."
        )
        self.assertEqual(subscription.end_date, date(2030, 1, 14))
        self.assertIn("Moving to another tool", subscription.message_ids[0].body)

        # An active subscription ending: a banner, and "Keep Subscription", not "Reactivate".
        labels = visible_buttons(subscription, xmlid)
        self.assertIn("Keep Subscription", labels)
        self.assertNotIn("Reactivate", labels)
        self.assertNotIn("Cancel at Period End", labels)
        arch = combined_arch(self.env, xmlid)
        banner = arch.xpath("//div[@name='crm_ends_banner']")[0]
        self.assertFalse(safe_eval(banner.get("invisible"), {"state": "active", "end_date": "2030-01-14"}))
        self.assertIn("ends on", "".join(banner.itertext()))

        self.assertIs(subscription.action_reactivate(), True)
        self.assertFalse(subscription.end_date)
        subscription.action_cancel()
        self.assertEqual(visible_buttons(subscription, xmlid), ["Reactivate"])

    def test_tour_charge_saved_card_and_cancel_at_period_end(self):
        """In the browser: the dialogs say what they will do, the form what was done."""
        self._crm_save_card()
        invoice = self._crm_invoice(120.0)
        self.start_tour(
            f"/odoo/account.move/{invoice.id}", "crm_payment_charge_saved_card_tour", login="crm_accountant"
        )
        self.assertTrue(self._crm_reconciled(invoice))
        subscription = self._subscription()
        self.start_tour(
            f"/odoo/crm.subscription/{subscription.id}",
            "crm_subscription_cancel_at_period_end_tour",
            login="crm_salesman",
        )
        self.assertEqual(subscription.end_date, date(2030, 1, 14))

    # --- the partner's Stripe tab --------------------------------------------------------------

    def test_payment_profile_counts_match_rows_and_average_divides_the_net_total(self):
        self._crm_save_card()
        first, second = self._crm_invoice(100.0), self._crm_invoice(50.0)
        first.with_user(self.accountant).action_crm_charge_saved_method()
        second.with_user(self.accountant).action_crm_charge_saved_method()
        refund = self.env["crm.payment.refund.wizard"].create(
            {"invoice_id": first.id, "transaction_id": first.transaction_ids.id, "amount": 30.0}
        )
        self.assertEqual(
            refund.summary,
            f"Refund {self._money(30.0)} of {first.transaction_ids.reference} to Azure Interior "
            "(VISA •••• 4242 (08/2034))?",
        )
        result = refund.with_user(self.accountant).action_refund()
        self.assertIn(self._money(30.0), result["params"]["message"])
        partner = self.partner.with_user(self.accountant)
        partner.invalidate_recordset()
        rows = partner.crm_payment_transaction_ids
        self.assertEqual(len(rows), 3)
        self.assertEqual((partner.crm_payment_count, partner.crm_refund_count), (2, 1))
        self.assertEqual(partner.crm_payment_total, 120.0)  # 100 + 50 - 30
        self.assertEqual(partner.crm_payment_average, 60.0)  # the same net total, per payment

    def test_the_only_card_is_the_default_in_stripe(self):
        partner = self.env["res.partner"].create({"name": "Deco Addict", "email": "deco@example.com"})
        partner.action_crm_stripe_sync()
        pm_id = self._crm_attach_card(partner.stripe_customer_id, exp_year=2030, default=False)
        partner.action_crm_stripe_sync()
        token = partner._crm_tokens()
        self.assertEqual(token.stripe_payment_method, pm_id)
        self.assertTrue(token.crm_is_default)
        customer = self._crm_customer(partner.stripe_customer_id)
        self.assertEqual(customer["invoice_settings"]["default_payment_method"], pm_id)
        # The year reads 2030, not "2,030": the list turns off the thousands separator.
        arch = combined_arch(self.env, "base.view_partner_form")
        year = arch.xpath("//field[@name='payment_token_ids']//field[@name='crm_exp_year']")[0]
        self.assertEqual(safe_eval(year.get("options"), {"false": False}), {"enable_formatting": False})


@tagged("post_install", "-at_install")
class TestRequestPaymentDialog(CrmStripeCommon):
    def test_amounts_show_their_currency_without_multi_currency(self):
        """The monetary widget takes its symbol from the currency field, which must be in the
        dialog for users who do not see the currency selector."""
        for model, user in (
            ("crm.payment.request.wizard", self.salesman),
            ("crm.payment.charge.wizard", self.accountant),
        ):
            self.assertFalse(user.has_group("base.group_multi_currency"))
            views = self.env[model].with_user(user).get_views([(False, "form")])
            fields = views["models"][model]["fields"]
            Model = self.env[model]
            for name in fields:
                if Model._fields[name].type == "monetary":
                    with self.subTest(model=model, field=name):
                        self.assertIn(Model._fields[name].get_currency_field(Model), fields)
