"""What Stripe receives about a partner."""

import unittest

from ..services import params


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

    def test_tax_ids_normalised_or_refused(self):
        self.assertEqual(params.tax_id("BE 0477.472.701", "BE"), ("eu_vat", "BE0477472701"))
        self.assertEqual(params.tax_id("0477472701", "BE"), ("eu_vat", "BE0477472701"))
        self.assertEqual(params.tax_id("094259216", "GR"), ("eu_vat", "EL094259216"))
        self.assertEqual(params.tax_id("CHE123456789", "CH"), ("ch_vat", "CHE-123.456.789 MWST"))
        self.assertEqual(params.tax_id("BE12", "BE"), ("eu_vat", None))
        self.assertEqual(params.tax_id("12-3456789", "US"), (None, None))  # no type sent for the US
