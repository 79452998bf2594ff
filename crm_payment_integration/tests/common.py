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
from unittest.mock import patch

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


def post_signed_event(case, provider, event, secret):
    """Post a Stripe event (a dict) to the provider's webhook route, signed with ``secret`` as
    Stripe signs it, from an ``HttpCase``; assert the route answered 200.

    :return: the HTTP response
    """
    body = json.dumps(event)
    response = case.url_open(
        f"/crm_payment/stripe/webhook/{provider.id}",
        data=body.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": sign_payload(body, secret)},
        timeout=20,
    )
    case.assertEqual(response.status_code, 200)
    return response


def sign_payload(payload, secret, timestamp=None):
    """Return the ``Stripe-Signature`` header Stripe would send for a payload."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
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

    def __init__(self, routes, passthrough=False):
        super().__init__()
        self.routes = routes
        self.requests = []
        # Requests without a route go to the real server (localstripe) when passthrough is set.
        self.passthrough = stripe.RequestsClient(timeout=30) if passthrough else None

    def request(self, method, url, headers, post_data=None):
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.requests.append(
            {"method": method, "url": url, "path": "/" + path, "headers": headers, "data": post_data}
        )
        answer = self.routes.get((method.lower(), "/" + path))
        if answer is None and self.passthrough:
            return self.passthrough.request(method, url, headers, post_data)
        if answer is None:
            return (
                json.dumps(
                    {"error": {"message": "Unrecognized request URL", "type": "invalid_request_error"}}
                ),
                404,
                {},
            )
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
        cls.salesman = new_test_user(cls.env, login="crm_salesman", groups="sales_team.group_sale_salesman")
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

    def _crm_http(self, client):
        """Return a patch making every Stripe call of the add-on go through ``client`` (the HTTP
        boundary: localstripe behind it, or Stripe-shaped answers for what it lacks)."""
        return patch.object(
            type(self.env["payment.provider"]), "_crm_stripe_http_client", return_value=client
        )

    def _crm_use_http(self, client):
        """Send every Stripe call of the add-on through ``client`` until the test ends."""
        self.startPatcher(self._crm_http(client))
        return client

    def _crm_listen_to_localstripe(self):
        """Make localstripe send its webhooks to this test's server (an HttpCase), and stop
        it at the end of the test: later tests get no stray deliveries on their cursor."""
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())
        self.provider.invalidate_recordset(["crm_webhook_url"])
        self.provider.action_crm_register_webhook()
        self.addCleanup(
            self.gateway.configure_localstripe_webhook,
            self.provider.crm_webhook_endpoint_id,
            "http://127.0.0.1:9/",
            "whsec_off",
            [],
        )

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
            self.gateway.update_customer(customer_id, {"invoice_settings": {"default_payment_method": pm.id}})
        return pm.id


def _flatten_form(post_data):
    """Decode the SDK's form encoding (``a[b][0][c]=v``) into a flat ``{key: value}`` dict."""
    from urllib.parse import parse_qsl

    return dict(parse_qsl(post_data or "", keep_blank_values=True))


class FakeCheckout(StripeHttpMock):
    """Stripe Checkout Sessions, which localstripe lacks, answered in Stripe's shape.

    Every other request goes on to localstripe. A test plays the customer with :meth:`pay`,
    :meth:`expire` or :meth:`fail_async`.
    """

    def __init__(self, pay_on_visit=False):
        super().__init__({}, passthrough=True)
        self.sessions = {}
        # For browser tours: the hosted page is "paid" at once and its URL is the return URL,
        # as if the customer had paid on Stripe and been sent back.
        self.pay_on_visit = pay_on_visit

    def request(self, method, url, headers, post_data=None):
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        intent_id = path.rsplit("/", 1)[-1]
        if method == "get" and path.startswith("/v1/payment_intents/") and intent_id in self.intents:
            return json.dumps(self.intents[intent_id]), 200, {"Request-Id": "req_test"}
        if not path.startswith("/v1/checkout/sessions"):
            return super().request(method, url, headers, post_data)
        self.requests.append(
            {"method": method, "url": url, "path": path, "headers": headers, "data": post_data}
        )
        parts = path.split("/")[4:]  # after /v1/checkout/sessions
        if method == "post" and not parts:
            body = self._create(_flatten_form(post_data), headers.get("Idempotency-Key"))
        elif parts and parts[0] in self.sessions:
            session = self.sessions[parts[0]]
            if method == "post" and parts[1:] == ["expire"]:
                if session["status"] != "open":
                    return self._error(400, "Only Checkout Sessions with a status of open can be expired.")
                self.expire(session["id"])
            body = self._expanded(session) if "expand" in url else session
        else:
            return self._error(404, "No such checkout.session")
        return json.dumps(body), 200, {"Request-Id": "req_test"}

    @staticmethod
    def _error(status, message):
        error = {"error": {"message": message, "type": "invalid_request_error"}}
        return json.dumps(error), status, {"Request-Id": "req_test"}

    def _create(self, form, idempotency_key):
        for session in self.sessions.values():
            if session["_key"] == idempotency_key:
                return session
        session = stripe_fixture("checkout_session")
        session_id = "cs_test_" + os.urandom(12).hex()
        mode = form.get("mode")
        session.update(
            {
                "id": session_id,
                "_key": idempotency_key,
                "mode": mode,
                "customer": form.get("customer"),
                "client_reference_id": form.get("client_reference_id"),
                "metadata": {
                    key[len("metadata[") : -1]: value
                    for key, value in form.items()
                    if key.startswith("metadata[")
                },
                "success_url": form.get("success_url"),
                "cancel_url": form.get("cancel_url"),
                "expires_at": int(form.get("expires_at") or time.time() + 86400),
                "status": "open",
                "payment_status": "unpaid",
                "payment_intent": None,
                "setup_intent": None,
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            }
        )
        if mode == "payment":
            session["currency"] = form["line_items[0][price_data][currency]"]
            session["amount_total"] = int(form["line_items[0][price_data][unit_amount]"])
            session["amount_subtotal"] = session["amount_total"]
        else:
            session["currency"] = form.get("currency")
            session["amount_total"] = session["amount_subtotal"] = None
        self.sessions[session_id] = session
        if self.pay_on_visit:
            session["url"] = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
            self.pay(session_id)
        return session

    def _expanded(self, session):
        session = dict(session)
        if session["payment_intent"]:
            session["payment_intent"] = self.intents[session["payment_intent"]]
        return session

    @property
    def intents(self):
        return self.__dict__.setdefault("_intents", {})

    def _intent(self, session, status, amount=None, currency=None, error=None):
        intent = stripe_fixture("payment_intent")
        intent_id = "pi_" + os.urandom(12).hex()
        amount = session["amount_total"] if amount is None else amount
        intent.update(
            {
                "id": intent_id,
                "amount": amount,
                "amount_received": amount if status == "succeeded" else 0,
                "currency": currency or session["currency"],
                "customer": session["customer"],
                "metadata": dict(session["metadata"]),
                "status": status,
                "last_payment_error": error,
                "payment_method": "pm_" + os.urandom(8).hex(),
                "setup_future_usage": None,
            }
        )
        self.intents[intent_id] = intent
        return intent

    def pay(self, session_id, amount=None, currency=None, delayed=False):
        """The customer pays on the hosted page (``delayed``: a method that settles later)."""
        session = self.sessions[session_id]
        intent = self._intent(session, "processing" if delayed else "succeeded", amount, currency)
        session.update(
            status="complete",
            payment_status="unpaid" if delayed else "paid",
            payment_intent=intent["id"],
            amount_total=amount if amount is not None else session["amount_total"],
            currency=currency or session["currency"],
        )
        return session

    def settle(self, session_id, succeeded=True):
        """A delayed payment settles: ``async_payment_succeeded`` or ``_failed``."""
        session = self.sessions[session_id]
        intent = self.intents[session["payment_intent"]]
        if succeeded:
            intent.update(status="succeeded", amount_received=intent["amount"])
            session["payment_status"] = "paid"
        else:
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "code": "payment_intent_payment_attempt_failed",
                    "decline_code": "insufficient_funds",
                    "message": "The bank debit failed.",
                },
            )
        return session

    def save_method(self, session_id):
        session = self.sessions[session_id]
        session.update(
            status="complete",
            payment_status="no_payment_required",
            setup_intent="seti_" + os.urandom(8).hex(),
        )
        return session

    def expire(self, session_id):
        session = self.sessions[session_id]
        session.update(status="expired", url=None)
        return session

    def public(self, session_id):
        """The session as Stripe sends it in an event (PaymentIntent as an id)."""
        return {k: v for k, v in self.sessions[session_id].items() if not k.startswith("_")}


class CrmPaymentCommon(CrmStripeCommon):
    """A customer with a card in localstripe, invoices in several currencies."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.currency"].with_context(active_test=False).search(
            [("name", "in", ("EUR", "JPY", "KWD"))]
        ).active = True
        if not cls.provider.journal_id:
            cls.provider.journal_id = cls.env["account.journal"].search(
                [("type", "=", "bank"), ("company_id", "=", cls.company.id)], limit=1
            )
        cls.partner.action_crm_stripe_sync()
        cls.customer_id = cls.partner.stripe_customer_id

    def _crm_invoice(self, amount, currency=None, partner=None, post=True, **values):
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": (partner or self.partner).id,
                "currency_id": (currency or self.company.currency_id).id,
                "invoice_line_ids": [
                    (
                        0,
                        0,
                        {"name": "Consulting", "quantity": 1, "price_unit": amount, "tax_ids": [(6, 0, [])]},
                    )
                ],
                **values,
            }
        )
        if post:
            invoice.action_post()
        return invoice

    def _crm_save_card(self, number="4242424242424242"):
        """Save a card on the partner's customer in localstripe and mirror it as a token."""
        self._crm_attach_card(self.customer_id, number=number)
        self.partner.action_crm_stripe_sync()
        return self.partner._crm_default_token()

    def _crm_currency(self, name):
        return self.env["res.currency"].with_context(active_test=False).search([("name", "=", name)])

    @staticmethod
    def _crm_reconciled(invoice):
        return invoice.payment_state in ("paid", "in_payment") and invoice.currency_id.is_zero(
            invoice.amount_residual
        )
