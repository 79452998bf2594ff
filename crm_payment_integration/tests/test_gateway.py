"""Unit tests of the gateway's pure parts: no database, no network."""

import logging
import unittest

import stripe

from ..const import API_VERSION
from ..services.gateway import (
    StripeGateway,
    StripeGatewayError,
    classify_stripe_error,
    make_idempotency_key,
)
from .common import StripeHttpMock, stripe_fixture


class TestIdempotencyKey(unittest.TestCase):
    def test_same_parts_same_key(self):
        self.assertEqual(
            make_idempotency_key("db", "customer", 1, 7), make_idempotency_key("db", "customer", 1, 7)
        )

    def test_other_parts_other_key(self):
        keys = {
            make_idempotency_key("db", "customer", 1, 7),
            make_idempotency_key("db", "customer", 1, 8),
            make_idempotency_key("db2", "customer", 1, 7),
            make_idempotency_key("db", "tax_id", 1, 7),
            # Parts are separated: ("1", "17") is not ("11", "7").
            make_idempotency_key("db", "customer", 11, 7),
        }
        self.assertEqual(len(keys), 5)
        self.assertTrue(all(len(key) <= 64 for key in keys))

    def test_empty_part_refused(self):
        with self.assertRaises(ValueError):
            make_idempotency_key("db", None, 1)
        with self.assertRaises(ValueError):
            make_idempotency_key()


class TestErrorClassification(unittest.TestCase):
    def test_card_declined_keeps_decline_code(self):
        error = stripe.CardError(
            "Your card has insufficient funds.",
            "payment_method",
            "card_declined",
            http_status=402,
            json_body={"error": {"code": "card_declined", "decline_code": "insufficient_funds"}},
        )
        classified = classify_stripe_error(error, "payment_intent.create")
        self.assertEqual(classified.kind, "card_declined")
        self.assertEqual(classified.decline_code, "insufficient_funds")
        self.assertFalse(classified.retryable)

    def test_kinds(self):
        cases = [
            (stripe.AuthenticationError("Invalid API Key provided", http_status=401), "authentication"),
            (stripe.PermissionError("no", http_status=403), "permission"),
            (
                stripe.InvalidRequestError(
                    "No such customer: 'cus_x'", "id", code="resource_missing", http_status=404
                ),
                "not_found",
            ),
            (stripe.InvalidRequestError("Invalid email", "email", http_status=400), "invalid_request"),
            (stripe.RateLimitError("Too many requests", http_status=429), "rate_limited"),
            (stripe.APIConnectionError("Connection refused"), "network"),
            (
                stripe.IdempotencyError(
                    "Keys for idempotent requests can only be used with the same parameters"
                ),
                "idempotency",
            ),
            (stripe.APIError("Server error", http_status=500), "api"),
        ]
        for error, kind in cases:
            with self.subTest(kind=kind):
                self.assertEqual(classify_stripe_error(error).kind, kind)
        self.assertTrue(StripeGatewayError("network", "x").retryable)
        self.assertTrue(StripeGatewayError("rate_limited", "x").retryable)
        self.assertFalse(StripeGatewayError("invalid_request", "x").retryable)


class RequestIdMock(StripeHttpMock):
    """Stripe's Request-Id header, as a real HTTP client hands it (case-insensitive)."""

    def request(self, method, url, headers, post_data=None):
        content, status, __ = super().request(method, url, headers, post_data)
        return content, status, {"request-id": f"req_{len(self.requests)}"}


class TestGatewayRequests(unittest.TestCase):
    """The gateway's requests as Stripe receives them, answered by a Stripe-shaped mock."""

    def _gateway(self, routes, api_base=None, **kwargs):
        mock = StripeHttpMock(routes)
        gateway = StripeGateway(
            "sk_test_secret123", api_base, http_client=mock, max_network_retries=0, **kwargs
        )
        return gateway, mock

    def test_create_sends_version_and_idempotency_key(self):
        customer = stripe_fixture("customer")
        gateway, mock = self._gateway({("post", "/v1/customers"): (200, customer)})
        result = gateway.create_customer({"name": "Azure"}, idempotency_key="odoo-abc")
        self.assertEqual(result["id"], customer["id"])
        self.assertIsInstance(result, dict)
        request = mock.requests[0]
        self.assertTrue(request["url"].startswith("https://api.stripe.com/v1/customers"))
        self.assertEqual(request["headers"]["Stripe-Version"], API_VERSION)
        self.assertEqual(request["headers"]["Idempotency-Key"], "odoo-abc")

    def test_observer_gets_each_call_without_secret(self):
        customer = stripe_fixture("customer")
        declined = {"error": {"type": "card_error", "code": "card_declined", "message": "Declined."}}
        calls = []

        routes = {
            ("post", "/v1/customers"): (200, customer),
            ("post", "/v1/payment_intents"): (402, declined),
        }
        gateway = StripeGateway(
            "sk_test_secret123",
            http_client=RequestIdMock(routes),
            max_network_retries=0,
            observer=lambda **call: calls.append(call),
        )
        gateway.create_customer({"name": "Azure"}, idempotency_key="odoo-abc")
        with self.assertRaises(StripeGatewayError):
            gateway.create_payment_intent({"amount": 100, "currency": "usd"}, idempotency_key="odoo-def")
        self.assertIsNone(gateway.retrieve_customer(customer["id"]))  # no route: Stripe's 404
        self.assertEqual(
            [
                (c["operation"], c["object_id"], c["idempotency_key"], c["http_status"], c["error_kind"])
                for c in calls
            ],
            [
                ("customer.create", customer["id"], "odoo-abc", 200, None),
                ("payment_intent.create", None, "odoo-def", 402, "card_declined"),
                ("customer.retrieve", customer["id"], None, 404, "not_found"),
            ],
        )
        self.assertEqual([c["request_id"] for c in calls], ["req_1", "req_2", "req_3"])
        self.assertTrue(all(c["duration_ms"] >= 0 for c in calls))
        self.assertNotIn("sk_test_secret123", repr(calls))

    def test_create_without_idempotency_key_refused(self):
        gateway, mock = self._gateway({})
        with self.assertRaises(ValueError):
            gateway.create_customer({"name": "Azure"}, idempotency_key=None)
        self.assertFalse(mock.requests)

    def test_base_url_from_provider(self):
        gateway, mock = self._gateway(
            {("get", "/v1/customers/cus_1"): (200, stripe_fixture("customer"))},
            api_base="http://127.0.0.1:9/",
        )
        gateway.retrieve_customer("cus_1")
        self.assertTrue(mock.requests[0]["url"].startswith("http://127.0.0.1:9/v1/customers/cus_1"))
        self.assertFalse(gateway.is_stripe)

    def test_deleted_or_missing_customer_is_none(self):
        gateway, __ = self._gateway(
            {
                ("get", "/v1/customers/cus_deleted"): (200, stripe_fixture("deleted_customer")),
                ("get", "/v1/customers/cus_missing"): (
                    404,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "code": "resource_missing",
                            "message": "No such customer: 'cus_missing'",
                        }
                    },
                ),
            }
        )
        self.assertIsNone(gateway.retrieve_customer("cus_deleted"))
        self.assertIsNone(gateway.retrieve_customer("cus_missing"))

    def test_list_follows_pagination(self):
        first = stripe_fixture("payment_method")
        second = dict(first, id="pm_second")

        def answer(request):
            if "starting_after" in request["url"]:
                return 200, {
                    "object": "list",
                    "data": [second],
                    "has_more": False,
                    "url": "/v1/payment_methods",
                }
            return 200, {"object": "list", "data": [first], "has_more": True, "url": "/v1/payment_methods"}

        gateway, mock = self._gateway({("get", "/v1/payment_methods"): answer})
        methods = gateway.list_payment_methods("cus_1")
        self.assertEqual([m["id"] for m in methods], [first["id"], "pm_second"])
        self.assertEqual(len(mock.requests), 2)

    def test_errors_never_log_the_secret(self):
        gateway, __ = self._gateway(
            {
                ("get", "/v1/customers/cus_1"): (
                    401,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": "Invalid API Key provided: sk_test_***123",
                        }
                    },
                )
            }
        )
        with self.assertLogs("odoo.addons.crm_payment_integration", level=logging.DEBUG) as logs:
            with self.assertRaises(StripeGatewayError) as caught:
                gateway.retrieve_customer("cus_1")
        self.assertEqual(caught.exception.kind, "authentication")
        self.assertTrue(logs.output)
        self.assertFalse(any("sk_test_secret123" in line for line in logs.output))

    def test_no_key_refused(self):
        with self.assertRaises(StripeGatewayError) as caught:
            StripeGateway("", None)
        self.assertEqual(caught.exception.kind, "authentication")

    def test_localstripe_configuration_never_sent_to_stripe(self):
        gateway, mock = self._gateway({})
        with self.assertRaises(ValueError):
            gateway.configure_localstripe_webhook("x", "https://example.com", "whsec_x", ["customer.updated"])
        self.assertFalse(mock.requests)
