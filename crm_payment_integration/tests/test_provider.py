from pathlib import Path
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from ..const import API_VERSION, EVENT_HANDLERS
from .common import CrmStripeCommon, StripeHttpMock, stripe_fixture


@tagged("post_install", "-at_install")
class TestProviderSettings(CrmStripeCommon):
    def _mock_stripe(self, routes):
        mock = StripeHttpMock(routes)
        Provider = type(self.env["payment.provider"])
        return mock, patch.object(Provider, "_crm_stripe_http_client", return_value=mock)

    def test_webhook_url(self):
        self.assertEqual(
            self.provider.crm_webhook_url,
            f"{self.provider.get_base_url()}/crm_payment/stripe/webhook/{self.provider.id}",
        )

    def test_register_webhook_with_localstripe_replaces_previous(self):
        self.provider.action_crm_register_webhook()
        first_secret = self.provider.crm_webhook_secret
        endpoint = self.provider.crm_webhook_endpoint_id
        self.assertTrue(first_secret.startswith("whsec_"))
        self.provider.action_crm_register_webhook()
        self.assertEqual(self.provider.crm_webhook_endpoint_id, endpoint, "same registration, replaced")
        self.assertNotEqual(self.provider.crm_webhook_secret, first_secret)

    def test_register_webhook_with_stripe(self):
        """Stripe itself: the endpoint listens to the handled events at the pinned version and
        registering again deletes the previous endpoint instead of piling up."""
        created = []

        def create(request):
            endpoint = stripe_fixture("webhook_endpoint")
            endpoint.update(id=f"we_{len(created) + 1}", secret=f"whsec_{len(created) + 1}")
            created.append(request["data"])
            return 200, endpoint

        mock, patcher = self._mock_stripe(
            {
                ("post", "/v1/webhook_endpoints"): create,
                ("delete", "/v1/webhook_endpoints/we_1"): (200, stripe_fixture("deleted_webhook_endpoint")),
            }
        )
        self.provider.crm_api_base = False
        with patcher:
            self.provider.action_crm_register_webhook()
            self.assertEqual(self.provider.crm_webhook_secret, "whsec_1")
            self.provider.action_crm_register_webhook()
        self.assertEqual(self.provider.crm_webhook_endpoint_id, "we_2")
        self.assertEqual(self.provider.crm_webhook_secret, "whsec_2")
        body = created[0]
        self.assertIn(f"api_version={API_VERSION}", body)
        for event_type in EVENT_HANDLERS:
            self.assertIn(event_type, body)
        methods = [(r["method"], r["path"]) for r in mock.requests]
        self.assertEqual(
            methods,
            [
                ("post", "/v1/webhook_endpoints"),
                ("post", "/v1/webhook_endpoints"),
                ("delete", "/v1/webhook_endpoints/we_1"),
            ],
        )
        keys = [r["headers"]["Idempotency-Key"] for r in mock.requests if r["method"] == "post"]
        self.assertNotEqual(keys[0], keys[1], "a new registration is not Stripe's cached answer")

    def test_register_webhook_bad_key_says_what_to_do(self):
        mock, patcher = self._mock_stripe(
            {
                ("post", "/v1/webhook_endpoints"): (
                    401,
                    {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
                )
            }
        )
        self.provider.crm_api_base = False
        with patcher, self.assertRaisesRegex(UserError, "secret key"):
            self.provider.action_crm_register_webhook()
        self.assertFalse(self.provider.crm_webhook_secret)

    def test_disabled_provider_refused(self):
        self.provider.state = "disabled"
        with self.assertRaisesRegex(UserError, "disabled"):
            self.provider.action_crm_register_webhook()

    def test_secret_readable_by_system_admins_only(self):
        self.provider.crm_webhook_secret = "whsec_private"
        for user in (self.salesman, self.accountant):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.provider.with_user(user).read(["crm_webhook_secret"])
        self.assertEqual(self.provider._fields["crm_webhook_secret"].groups, "base.group_system")

    def test_neutralize_clears_secrets(self):
        self.provider.write({"crm_webhook_secret": "whsec_prod", "crm_webhook_endpoint_id": "we_prod"})
        self.env.flush_all()
        sql = (Path(__file__).parents[1] / "data" / "neutralize.sql").read_text()
        self.env.cr.execute(sql)
        self.env.invalidate_all()
        self.assertFalse(self.provider.crm_webhook_secret)
        self.assertFalse(self.provider.crm_webhook_endpoint_id)

    def test_one_provider_per_company(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        other_provider = self._crm_make_provider(other_company)
        Provider = self.env["payment.provider"]
        self.assertEqual(Provider._crm_get_stripe_provider(self.company), self.provider)
        self.assertEqual(Provider._crm_get_stripe_provider(other_company), other_provider)
