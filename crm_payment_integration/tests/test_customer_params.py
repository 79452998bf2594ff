"""What Stripe receives about a partner, and the keys naming each creation.

localstripe accepts what Stripe refuses (several email addresses, any length) and ignores
idempotency keys, so the requests are captured at the HTTP-client boundary, and Stripe's replay
of a key's first answer is played there (:class:`StripeReplay`), in front of localstripe.
"""

import unittest

from odoo.tests import tagged

from ..services import params
from ..services.gateway import StripeGateway
from .common import CrmStripeCommon, StripeHttpMock, _flatten_form


class StripeReplay(StripeHttpMock):
    """Stripe's idempotency in front of localstripe: a POST whose ``Idempotency-Key`` was seen
    gets the first answer again, with ``Idempotent-Replayed: true``, as Stripe does for 24 hours
    (https://docs.stripe.com/api/idempotent_requests). Every request is recorded."""

    def __init__(self):
        super().__init__({}, passthrough=True)
        self.answers = {}

    def request(self, method, url, headers, post_data=None):
        key = headers.get("Idempotency-Key") if method.lower() == "post" else None
        if key in self.answers:
            path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
            self.requests.append(
                {"method": method, "url": url, "path": path, "headers": headers, "data": post_data}
            )
            content, status, response_headers = self.answers[key]
            return content, status, {**dict(response_headers), "Idempotent-Replayed": "true"}
        answer = super().request(method, url, headers, post_data)
        if key:
            self.answers[key] = answer
        return answer


class TestCustomerParamsUnit(unittest.TestCase):
    """The parameter builder alone: no database, no network."""

    def test_first_valid_address_of_an_email_field(self):
        self.assertEqual(params.first_email("billing@acme.example, ceo@acme.example"), "billing@acme.example")
        self.assertEqual(params.first_email("billing@acme.example; ceo@acme.example"), "billing@acme.example")
        self.assertEqual(params.first_email("Acme Billing <Billing@Acme.example>"), "Billing@Acme.example")
        # Stripe refuses these (WooCommerce's and others' bug reports): the next one is taken.
        self.assertEqual(params.first_email("otameshi@com, ap@acme.example"), "ap@acme.example")
        self.assertEqual(params.first_email("  ap@acme.example "), "ap@acme.example")
        self.assertEqual(params.first_email("odatakeryu"), "")
        self.assertEqual(params.first_email(False), "")

    def test_text_is_cut_on_character_boundaries(self):
        # Two-byte letters: 256 characters, not 256 bytes.
        self.assertEqual(params.cut("é" * 300, 256), "é" * 256)
        # Four-byte (two UTF-16 units) emoji count one character each and stay whole.
        cut = params.cut("a" * 250 + "😀" * 10, 256)
        self.assertEqual(cut, "a" * 250 + "😀" * 6)
        cut.encode("utf-8")  # no half character
        # An accent written as a combining mark stays with its letter, or both go.
        self.assertEqual(params.cut("a" * 255 + "e\u0301tc", 256), "a" * 255)
        self.assertEqual(params.cut("a" * 254 + "e\u0301tc", 256), "a" * 254 + "e\u0301")
        # A lone surrogate (cannot be sent as UTF-8) and spaces at the cut are dropped.
        self.assertEqual(params.cut("ab\udc80c", 10), "abc")
        self.assertEqual(params.cut("abc   def", 5), "abc")

    def test_phone_fits_or_is_left_out(self):
        self.assertEqual(params.phone("+32 2 290 34 90"), "+32 2 290 34 90")
        self.assertEqual(params.phone("+32 (0)2 290 34 90 ext 12"), "+3222903490ext12")
        self.assertEqual(params.phone("+32 2 290 34 90 / +32 475 12 34 56"), "")

    def test_empty_values_left_out_on_create_cleared_on_update(self):
        values = {
            "name": "Acme",
            "email": "",
            "phone": False,
            "country": "BE",
            "metadata": {"odoo_partner_id": 7},
        }
        created, left_out = params.customer_params(values)
        self.assertEqual(
            created, {"name": "Acme", "address": {"country": "BE"}, "metadata": {"odoo_partner_id": "7"}}
        )
        self.assertEqual(left_out, [])
        updated, __ = params.customer_params(values, update=True)
        self.assertEqual(updated["email"], "")
        self.assertEqual(updated["phone"], "")
        self.assertEqual(
            updated["address"],
            {"line1": "", "line2": "", "city": "", "postal_code": "", "state": "", "country": "BE"},
        )
        updated, __ = params.customer_params({"name": "Acme"}, update=True)
        self.assertEqual(updated["address"], "")  # Stripe clears the whole address with ""

    def test_values_stripe_refuses_are_left_out_and_named(self):
        sent, left_out = params.customer_params(
            {
                "name": "Acme",
                "email": "odatakeryu",
                "phone": "+32 2 290 34 90 / +32 475 12 34 56",
                "country": "B",
            },
            update=True,
        )
        self.assertNotIn("email", sent, "Stripe keeps the email it has")
        self.assertNotIn("phone", sent)
        self.assertEqual(
            [(item.field, item.reason) for item in left_out],
            [("email", "invalid_email"), ("phone", "invalid_phone"), ("country_id", "invalid_country")],
        )

    def test_metadata_within_limits(self):
        meta = params.metadata({f"key{i}": f"v{i}" for i in range(60)})
        self.assertEqual(len(meta), 50)
        meta = params.metadata({"k" * 45: "v" * 600, "a[b]": 1, "empty": "", "none": None})
        self.assertEqual(meta, {"k" * 40: "v" * 500, "a(b)": "1"})
        self.assertEqual(params.metadata({"odoo_lead_id": ""}, update=True), {"odoo_lead_id": ""})

    def test_invoice_ids_kept_whole(self):
        ids = list(range(1000, 1200))
        joined = params.join_ids(ids)
        self.assertLessEqual(len(joined), 500)
        self.assertEqual([int(i) for i in joined.split(",")], ids[: len(joined.split(","))])

    def test_gateway_tells_a_replayed_creation(self):
        """Stripe marks an answer replayed for a key it saw (``Idempotent-Replayed``)."""
        stripe_mock = StripeReplay()
        stripe_mock.passthrough = None
        stripe_mock.routes[("post", "/v1/customers")] = (200, {"id": "cus_1", "object": "customer"})
        gateway = StripeGateway("sk_test_unit", "http://stripe.invalid", http_client=stripe_mock)
        gateway.create_customer({"name": "Acme"}, "key-1")
        self.assertFalse(gateway.last_replayed)
        gateway.create_customer({"name": "Acme"}, "key-1")
        self.assertTrue(gateway.last_replayed)
        gateway.create_customer({"name": "Acme"}, "key-2")
        self.assertFalse(gateway.last_replayed)

    def test_tax_ids_normalised_or_refused(self):
        self.assertEqual(params.tax_id("BE 0477.472.701", "BE"), ("eu_vat", "BE0477472701"))
        self.assertEqual(params.tax_id("0477472701", "BE"), ("eu_vat", "BE0477472701"))
        self.assertEqual(params.tax_id("094259216", "GR"), ("eu_vat", "EL094259216"))
        self.assertEqual(params.tax_id("CHE123456789", "CH"), ("ch_vat", "CHE-123.456.789 MWST"))
        self.assertEqual(params.tax_id("BE12", "BE"), ("eu_vat", None))
        self.assertEqual(params.tax_id("12-3456789", "US"), (None, None))  # no type sent for the US


@tagged("post_install", "-at_install")
class TestCustomerParams(CrmStripeCommon):
    """Partner <-> Stripe Customer, the parameters as Stripe receives them."""

    def setUp(self):
        super().setUp()
        self.stripe = self._crm_use_http(StripeReplay())

    def _posts(self, path):
        return [r for r in self.stripe.requests if r["method"] == "post" and r["path"] == path]

    def _sent(self, path):
        """The form of the last POST to a path, decoded."""
        return _flatten_form(self._posts(path)[-1]["data"])

    # --- item 2: what Stripe accepts ----------------------------------------------------------

    def test_email_with_several_addresses_sends_the_first(self):
        self.partner.email = "billing@acme.example, ceo@acme.example"
        self.partner.action_crm_stripe_sync()
        self.assertEqual(self._sent("/v1/customers")["email"], "billing@acme.example")
        self.assertEqual(self._crm_customer(self.partner.stripe_customer_id)["email"], "billing@acme.example")
        # Reading the customer back does not overwrite Odoo's list with Stripe's one address.
        self.partner.action_crm_stripe_sync()
        self.assertEqual(self.partner.email, "billing@acme.example, ceo@acme.example")

    def test_long_name_and_address_cut_on_characters(self):
        name = "Société " + "é" * 240 + "😀" * 20
        street = "Straße " + "ß" * 5000
        self.partner.write({"name": name, "street": street, "street2": "a" * 4999 + "e\u0301x"})
        self.partner.action_crm_stripe_sync()
        sent = self._sent("/v1/customers")
        self.assertEqual(sent["name"], name[:256])
        self.assertEqual(len(sent["name"]), 256)
        self.assertEqual(sent["address[line1]"], street[:5000])
        self.assertEqual(sent["address[line2]"], "a" * 4999, "the accent is not cut from its letter")
        # Odoo keeps its full values; the cut ones are not taken as changes made in Stripe.
        self.partner.action_crm_stripe_sync()
        self.assertEqual(self.partner.name, name)
        self.assertEqual(self.partner.street, street)

    def test_empty_values_left_out_on_create_cleared_on_update(self):
        partner = self.env["res.partner"].create({"name": "Deco Addict", "is_company": True})
        partner.action_crm_stripe_sync()
        sent = self._sent("/v1/customers")
        self.assertEqual(sent, {"name": "Deco Addict", "metadata[odoo_partner_id]": str(partner.id)})
        # Emptied in Odoo: cleared in Stripe, explicitly.
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        self.partner.write(
            {
                "email": False,
                "phone": False,
                "street": False,
                "city": False,
                "zip": False,
                "state_id": False,
                "country_id": False,
            }
        )
        self.env["crm.stripe.customer"]._cron_push_pending()
        sent = self._sent(f"/v1/customers/{customer_id}")
        self.assertEqual((sent["email"], sent["phone"], sent["address"]), ("", "", ""))
        customer = self._crm_customer(customer_id)
        self.assertFalse(customer["email"])
        self.assertFalse(customer["address"])

    def test_values_stripe_refuses_are_left_out_and_said(self):
        self.partner.write(
            {
                "email": "odatakeryu",
                "country_id": self.env.ref("base.be").id,
                "state_id": False,
                "vat": "BE12",
            }
        )
        action = self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        self.assertTrue(customer_id, "the rest is synchronised")
        self.assertNotIn("email", self._sent("/v1/customers"))
        self.assertFalse(self._posts(f"/v1/customers/{customer_id}/tax_ids"))
        # Not reported as done: the user reads what to fix.
        self.assertEqual(action["params"]["type"], "warning")
        message = action["params"]["message"]
        for expected in ("Azure Interior", "odatakeryu", "BE12"):
            self.assertIn(expected, message)
        binding = self.partner.crm_stripe_customer_ids
        self.assertIn("odatakeryu", binding.sync_warning)
        notes = self.partner.message_ids.filtered(lambda m: "odatakeryu" in (m.body or ""))
        self.assertEqual(len(notes), 1)
        self.assertEqual(self.partner.email, "odatakeryu", "Odoo's value stays for the user to fix")
        # Fixed in Odoo: sent, and the sync is done.
        self.partner.write({"email": "ap@azure.example.com", "vat": "BE0477472701"})
        action = self.partner.action_crm_stripe_sync()
        self.assertEqual(action["params"]["type"], "success")
        self.assertFalse(binding.sync_warning)
        self.assertEqual(self._crm_customer(customer_id)["email"], "ap@azure.example.com")
        tax_ids = self.gateway.list_customer_tax_ids(customer_id)
        self.assertEqual([t["value"] for t in tax_ids], ["BE0477472701"])

    # --- item 7: keys naming an intention -----------------------------------------------------

    def test_customer_deleted_without_event_is_recreated_with_a_new_key(self):
        """Stripe replays a key's first answer for 24 hours: the deleted customer, on every
        click, when the key names the partner instead of the creation."""
        self.partner.action_crm_stripe_sync()
        first_id = self.partner.stripe_customer_id
        self.gateway.client.v1.customers.delete(first_id)  # in Stripe's dashboard: no event here
        self.partner.action_crm_stripe_sync()
        second_id = self.partner.stripe_customer_id
        self.assertTrue(second_id)
        self.assertNotEqual(second_id, first_id)
        self.assertTrue(self._crm_customer(second_id), "a live customer is linked")
        posts = self._posts("/v1/customers")
        self.assertEqual(len(posts), 2)
        self.assertNotEqual(posts[0]["headers"]["Idempotency-Key"], posts[1]["headers"]["Idempotency-Key"])
        # A second click finds the new customer: no third one.
        self.partner.action_crm_stripe_sync()
        self.assertEqual(self.partner.stripe_customer_id, second_id)
        self.assertEqual(len(self._posts("/v1/customers")), 2)
        self.assertEqual(len(self.partner.crm_stripe_customer_ids), 1)

    def test_replayed_deleted_customer_is_not_linked(self):
        """The deletion's event unlinked the partner; the next creation's key (the first one's,
        within 24 hours) is answered with the deleted customer: it is recognised and replaced."""
        self.partner.action_crm_stripe_sync()
        first_id = self.partner.stripe_customer_id
        self.gateway.client.v1.customers.delete(first_id)
        self.partner.crm_stripe_customer_ids._crm_unlink_deleted_customer()
        self.partner.action_crm_stripe_sync()
        self.assertNotEqual(self.partner.stripe_customer_id, first_id)
        self.assertTrue(self._crm_customer(self.partner.stripe_customer_id))

    def test_same_creation_retried_reuses_its_key(self):
        """A creation whose link was lost (a rollback) is the same intention: Stripe's first
        customer comes back, not a second one."""
        Binding = self.env["crm.stripe.customer"]
        first = Binding._crm_ensure_customer(self.partner, self.provider)
        customer_id = first.stripe_customer_id
        first.unlink()
        second = Binding._crm_ensure_customer(self.partner, self.provider)
        self.assertEqual(second.stripe_customer_id, customer_id)
        posts = self._posts("/v1/customers")
        self.assertEqual(posts[0]["headers"]["Idempotency-Key"], posts[1]["headers"]["Idempotency-Key"])

    def test_vat_number_set_again_gets_a_new_tax_id(self):
        """A → B → A: adding A again is a new intention, not a replay of the deleted tax id."""
        self.partner.write(
            {"country_id": self.env.ref("base.be").id, "state_id": False, "vat": "BE0477472701"}
        )
        self.partner.action_crm_stripe_sync()
        customer_id = self.partner.stripe_customer_id
        for vat in ("BE0403170701", "BE0477472701"):
            self.partner.vat = vat
            self.env["crm.stripe.customer"]._cron_push_pending()
        tax_ids = self.gateway.list_customer_tax_ids(customer_id)
        self.assertEqual([t["value"] for t in tax_ids], ["BE0477472701"])
        keys = [r["headers"]["Idempotency-Key"] for r in self._posts(f"/v1/customers/{customer_id}/tax_ids")]
        self.assertEqual(len(set(keys)), 3)
