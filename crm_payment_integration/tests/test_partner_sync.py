from unittest.mock import patch

import stripe

from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import CrmStripeCommon, StripeHttpMock, stripe_fixture


@tagged("post_install", "-at_install")
class TestPartnerSync(CrmStripeCommon):
    """Partner <-> Stripe Customer, against localstripe."""

    def test_sync_creates_one_customer_with_partner_details(self):
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        self.assertTrue(customer_id.startswith("cus_"))
        customer = self._crm_customer(customer_id)
        self.assertEqual(customer["name"], "Azure Interior")
        self.assertEqual(customer["email"], "azure@example.com")
        self.assertEqual(customer["address"]["city"], "Fremont")
        self.assertEqual(customer["address"]["country"], "US")
        self.assertEqual(customer["address"]["state"], "CA")
        self.assertEqual(customer["metadata"]["odoo_partner_id"], str(self.partner.id))
        # Syncing again, or from a contact of the company, reuses the same customer.
        self.partner.action_crm_stripe_sync()
        self.contact.action_crm_stripe_sync()
        self.assertEqual(self.contact.stripe_customer_id, customer_id)
        self.assertEqual(len(self.partner.crm_stripe_customer_ids), 1)
        self.assertEqual(
            self.env["res.partner"].search([("stripe_customer_id", "=", customer_id)]),
            self.partner | self.contact,
        )

    def test_contact_sync_creates_the_company_customer(self):
        self.contact.action_crm_stripe_sync()
        self.assertFalse(self.contact.crm_stripe_customer_ids)
        self.assertEqual(len(self.partner.crm_stripe_customer_ids), 1)
        self.assertEqual(self._crm_customer(self.partner.stripe_customer_id)["name"], "Azure Interior")

    def test_retried_creation_returns_the_same_customer(self):
        """A worker that crashed after Stripe created the customer, before Odoo committed the
        link, retries with the same idempotency key, and Stripe answers with the first customer
        (localstripe ignores idempotency keys: Stripe's behaviour is mocked at the HTTP client)."""
        answers, created = {}, []

        def create_customer(request):
            key = request["headers"]["Idempotency-Key"]
            if key not in answers:
                customer = stripe_fixture("customer")
                customer["id"] = f"cus_mock{len(created) + 1}"
                created.append(customer)
                answers[key] = customer
            return 200, answers[key]

        mock = StripeHttpMock({("post", "/v1/customers"): create_customer})
        Provider = type(self.env["payment.provider"])
        Binding = self.env["crm.stripe.customer"]
        with patch.object(Provider, "_crm_stripe_http_client", return_value=mock):
            first = Binding._crm_ensure_customer(self.contact, self.provider)
            customer_id = first.stripe_customer_id
            first.unlink()  # the link is lost as with a rollback; Stripe kept the customer
            second = Binding._crm_ensure_customer(self.partner, self.provider)
        self.assertEqual(second.stripe_customer_id, customer_id)
        self.assertEqual(len(created), 1)
        self.assertEqual(second.partner_id, self.partner)

    def test_partner_change_is_pushed(self):
        self.partner.action_crm_stripe_sync()
        binding = self.partner.crm_stripe_customer_ids
        self.partner.write({"email": "billing@azure.example.com", "city": "Oakland"})
        self.assertTrue(binding.needs_push)
        self.env["crm.stripe.customer"]._cron_push_pending()
        self.assertFalse(binding.needs_push)
        customer = self._crm_customer(binding.stripe_customer_id)
        self.assertEqual(customer["email"], "billing@azure.example.com")
        self.assertEqual(customer["address"]["city"], "Oakland")

    def test_unrelated_change_is_not_pushed(self):
        self.partner.action_crm_stripe_sync()
        self.partner.comment = "Prefers calls in the morning"
        self.assertFalse(self.partner.crm_stripe_customer_ids.needs_push)

    def test_change_in_stripe_comes_back(self):
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        self.gateway.update_customer(
            customer_id,
            {
                "email": "ap@azure.example.com",
                "phone": "+1 555 0100",
                "address": {
                    "line1": "1 Market St",
                    "city": "San Francisco",
                    "postal_code": "94105",
                    "country": "US",
                    "state": "CA",
                },
            },
        )
        self.partner.action_crm_stripe_sync()
        self.assertEqual(self.partner.email, "ap@azure.example.com")
        self.assertEqual(self.partner.phone, "+1 555 0100")
        self.assertEqual(self.partner.street, "1 Market St")
        self.assertEqual(self.partner.city, "San Francisco")
        self.assertFalse(self.partner.crm_stripe_customer_ids.needs_push, "no echo back to Stripe")

    def test_saved_cards_become_tokens(self):
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        pm_id = self._crm_attach_card(customer_id)
        self.partner.action_crm_stripe_sync()
        token = self.partner.payment_token_ids
        self.assertEqual(len(token), 1)
        self.assertEqual(token.stripe_payment_method, pm_id)
        self.assertEqual(token.provider_ref, customer_id)
        self.assertEqual(token.payment_details, "4242")
        self.assertEqual((token.crm_exp_month, token.crm_exp_year), (8, 2034))
        self.assertEqual(token.payment_method_id.code, "visa")
        self.assertTrue(token.crm_is_default)
        self.assertIn("4242", token.display_name)
        # Detached in Stripe: archived in Odoo, never deleted (transactions may use it).
        self.gateway.client.v1.payment_methods.detach(pm_id)
        self.partner.action_crm_stripe_sync()
        self.assertFalse(self.partner.payment_token_ids)
        self.assertFalse(token.active)

    def test_card_attached_again_reactivates_its_token(self):
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        pm_id = self._crm_attach_card(customer_id)
        self.partner.action_crm_stripe_sync()
        token = self.partner.payment_token_ids
        self.gateway.client.v1.payment_methods.detach(pm_id)
        self.partner.action_crm_stripe_sync()
        self.assertFalse(token.active)
        self.gateway.client.v1.payment_methods.attach(pm_id, params={"customer": customer_id})
        self.partner.action_crm_stripe_sync()
        self.assertTrue(token.active)
        self.assertEqual(self.partner.payment_token_ids, token, "the same token, not a second one")

    def test_sync_several_partners_from_the_list(self):
        other = self.env["res.partner"].create({"name": "Deco Addict", "is_company": True})
        action = self.env.ref("crm_payment_integration.res_partner_action_crm_stripe_sync")
        action.with_context(active_model="res.partner", active_ids=(self.partner | other).ids).run()
        self.assertTrue(self.partner.stripe_customer_id)
        self.assertTrue(other.stripe_customer_id)
        self.assertNotEqual(self.partner.stripe_customer_id, other.stripe_customer_id)

    def test_declined_card_is_refused_by_stripe(self):
        """Stripe's 4000000000000002 is refused when attached: no token appears."""
        self.partner.action_crm_stripe_sync()
        with self.assertRaises(stripe.CardError):
            self._crm_attach_card(self.partner.stripe_customer_id, number="4000000000000002")
        self.partner.action_crm_stripe_sync()
        self.assertFalse(self.partner.payment_token_ids)

    def test_vat_number_becomes_tax_id(self):
        self.partner.write(
            {"country_id": self.env.ref("base.be").id, "state_id": False, "vat": "BE0477472701"}
        )
        self.partner.action_crm_stripe_sync()
        tax_ids = self.gateway.list_customer_tax_ids(self.partner.stripe_customer_id)
        self.assertEqual([(t["type"], t["value"]) for t in tax_ids], [("eu_vat", "BE0477472701")])

    def test_customer_deleted_in_stripe_is_unlinked_then_recreated(self):
        self.partner.action_crm_stripe_sync()
        old_id = self.partner.stripe_customer_id
        self.gateway.client.v1.customers.delete(old_id)
        self.partner.action_crm_stripe_sync()
        self.assertTrue(self.partner.stripe_customer_id)
        self.assertNotEqual(self.partner.stripe_customer_id, old_id)
        self.assertEqual(len(self.partner.crm_stripe_customer_ids), 1)
        self.assertTrue(any(old_id in body for body in self.partner.message_ids.mapped("body")))

    def test_merge_keeps_one_customer(self):
        other = self.env["res.partner"].create(
            {"name": "Azure Interior (dup)", "is_company": True, "email": "azure@example.com"}
        )
        self.partner.action_crm_stripe_sync()
        other.action_crm_stripe_sync()
        kept_id = self.partner.stripe_customer_id
        wizard = self.env["base.partner.merge.automatic.wizard"].create({})
        wizard._merge((self.partner | other).ids, self.partner)
        self.assertEqual(len(self.partner.crm_stripe_customer_ids), 1)
        self.assertEqual(self.partner.stripe_customer_id, kept_id)

    def test_no_provider_says_what_to_do(self):
        self.provider.state = "disabled"
        with self.assertRaisesRegex(UserError, "No Stripe payment provider"):
            self.partner.action_crm_stripe_sync()

    def test_bad_key_says_what_to_do(self):
        self.provider.stripe_secret_key = "not_a_key"
        with self.assertRaisesRegex(UserError, "refused the secret key"):
            self.partner.action_crm_stripe_sync()
        self.assertFalse(self.partner.crm_stripe_customer_ids)

    def test_stripe_unreachable_says_what_to_do(self):
        self.provider.crm_api_base = "http://127.0.0.1:9"
        with self.assertRaisesRegex(UserError, "could not be reached"):
            self.partner.action_crm_stripe_sync()

    def test_multi_company_customers(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        self._crm_make_provider(other_company)
        self.partner.action_crm_stripe_sync()
        first = self.partner.stripe_customer_id
        self.partner.with_company(other_company).action_crm_stripe_sync()
        second = self.partner.with_company(other_company).stripe_customer_id
        self.assertTrue(second)
        self.assertNotEqual(first, second)
        self.assertEqual(len(self.partner.crm_stripe_customer_ids), 2)
