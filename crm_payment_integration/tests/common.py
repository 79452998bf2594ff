"""Test harness: a localstripe server started by the tests themselves, signed Stripe events, and
an HTTP client answering with Stripe-shaped responses for what localstripe lacks."""

import atexit
import copy
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import stripe

from odoo.tests import TransactionCase, new_test_user

from ..services.gateway import StripeGateway

ROOT = Path(__file__).resolve().parents[2]
# Stripe's own example objects (from its API reference), for Stripe-shaped answers.
FIXTURES = Path(__file__).parent / "data" / "stripe_objects.json"
_localstripe = {}


def localstripe_url():
    """Return the base URL of the localstripe of this test run, starting it on first use."""
    if "url" in _localstripe:
        return _localstripe["url"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "run_localstripe.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(process.terminate)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("localstripe exited at start") from None
            time.sleep(0.1)
    else:
        raise RuntimeError("localstripe did not start")
    _localstripe["url"] = f"http://127.0.0.1:{port}"
    return _localstripe["url"]


def sign_payload(payload, secret, timestamp=None):
    """Return the ``Stripe-Signature`` header Stripe would send for a payload."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={signature}"


def stripe_event(event_type, obj, event_id=None, created=None):
    """Return a Stripe Event of the given type around an object, in Stripe's shape."""
    event = {
        "id": event_id or "evt_" + os.urandom(12).hex(),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return event


def stripe_fixture(name):
    """Return a copy of one of Stripe's own example objects."""
    with FIXTURES.open() as file:
        return copy.deepcopy(json.load(file)[name])


class StripeHttpMock(stripe.HTTPClient):
    """An HTTP client of the ``stripe`` SDK answering from a table, recording each request.

    Used only for the Stripe endpoints localstripe does not have.

    :param dict routes: ``(method, path) -> (status, body)`` or a callable taking the request
    """

    name = "crm-test-mock"

    def __init__(self, routes):
        super().__init__()
        self.routes = routes
        self.requests = []

    def request(self, method, url, headers, post_data=None):
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.requests.append(
            {"method": method, "url": url, "path": "/" + path, "headers": headers, "data": post_data}
        )
        answer = self.routes.get((method.lower(), "/" + path))
        if answer is None:
            return json.dumps({"error": {"message": "Unrecognized request URL", "type": "invalid_request_error"}}), 404, {}
        if callable(answer):
            answer = answer(self.requests[-1])
        status, body = answer
        return json.dumps(body), status, {"Request-Id": "req_test"}

    def request_stream(self, method, url, headers, post_data=None):
        raise NotImplementedError

    def close(self):
        pass


class CrmStripeCommon(TransactionCase):
    """A Stripe provider of the main company pointed at localstripe, and a few users."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.localstripe_url = localstripe_url()
        cls.company = cls.env.company
        cls.provider = cls._crm_make_provider(cls.company)
        cls.gateway = StripeGateway(cls.provider.stripe_secret_key, cls.localstripe_url)
        cls.partner = cls.env["res.partner"].create(
            {
                "name": "Azure Interior",
                "is_company": True,
                "email": "azure@example.com",
                "phone": "+32 2 290 34 90",
                "street": "4557 De Silva St",
                "city": "Fremont",
                "zip": "94538",
                "country_id": cls.env.ref("base.us").id,
                "state_id": cls.env.ref("base.state_us_5").id,
            }
        )
        cls.contact = cls.env["res.partner"].create(
            {"name": "Brandon Freeman", "parent_id": cls.partner.id, "email": "brandon@example.com"}
        )
        cls.salesman = new_test_user(
            cls.env, login="crm_salesman", groups="sales_team.group_sale_salesman"
        )
        cls.accountant = new_test_user(
            cls.env,
            login="crm_accountant",
            groups="account.group_account_invoice,sales_team.group_sale_salesman",
        )
        cls.portal_user = new_test_user(cls.env, login="crm_portal", groups="base.group_portal")

    @classmethod
    def _crm_make_provider(cls, company, api_base=None):
        provider = cls.env["payment.provider"].search(
            [("code", "=", "stripe"), ("company_id", "=", company.id)], limit=1
        )
        if not provider:
            provider = cls.env.ref("payment.payment_provider_stripe").copy(
                {"company_id": company.id, "name": f"Stripe {company.name}"}
            )
        provider.write(
            {
                "state": "test",
                "stripe_secret_key": "sk_test_" + os.urandom(8).hex(),
                "stripe_publishable_key": "pk_test_crm",
                "crm_api_base": cls.localstripe_url if api_base is None else api_base,
            }
        )
        return provider

    def _crm_customer(self, customer_id):
        return self.gateway.retrieve_customer(customer_id)

    def _crm_attach_card(self, customer_id, number="4242424242424242", exp_year=2034, default=True):
        """Save a card on a customer in localstripe, as the customer would on a hosted page."""
        pm = self.gateway.client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 8, "exp_year": exp_year, "cvc": "123"},
            }
        )
        self.gateway.client.v1.payment_methods.attach(pm.id, params={"customer": customer_id})
        if default:
            self.gateway.update_customer(
                customer_id, {"invoice_settings": {"default_payment_method": pm.id}}
            )
        return pm.id
