"""The one gateway to Stripe: every call of the add-on goes through :class:`StripeGateway`.

Pure Python on top of the official SDK (``stripe.StripeClient``), with no Odoo import, so that it
is unit-tested without a database. It pins the API version, takes the base URL of the provider
(empty means Stripe; localstripe in tests and the demo), sets a timeout and network retries,
requires an idempotency key on every create call, and turns the SDK's exceptions into
:class:`StripeGatewayError` whose ``kind`` the ORM layer translates into a message for the user.

Secrets and card data never reach a log line: only the operation, the object id, Stripe's request
id and the error kind are logged.
"""

import hashlib
import io
import json
import logging
import threading
import time

import stripe

from .. import const

_logger = logging.getLogger(__name__)

STRIPE_API_BASE = "https://api.stripe.com"
STRIPE_FILES_BASE = "https://files.stripe.com"


class StripeGatewayError(Exception):
    """A Stripe call that did not succeed, classified for the user and for retries.

    :param str kind: one of ``authentication``, ``permission``, ``not_found``,
        ``invalid_request``, ``card_declined``, ``rate_limited``, ``network``, ``idempotency``,
        ``api``
    :param str message: Stripe's own message (English, safe to show: never contains secrets)
    """

    RETRYABLE_KINDS = frozenset({"rate_limited", "network", "api"})

    def __init__(
        self,
        kind,
        message,
        *,
        code=None,
        decline_code=None,
        http_status=None,
        request_id=None,
        param=None,
        operation=None,
        payment_intent=None,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.decline_code = decline_code
        self.http_status = http_status
        self.request_id = request_id
        self.param = param
        self.operation = operation
        # The PaymentIntent a declined confirmation left behind (Stripe puts it in the error).
        self.payment_intent = payment_intent

    @property
    def retryable(self):
        """Whether the same call may succeed later without any change."""
        return self.kind in self.RETRYABLE_KINDS

    @property
    def answer_unknown(self):
        """Whether Stripe may have done what was asked although no answer came back: the
        connection dropped (on every retry) or Stripe failed with a 5xx. A create call that
        ends so must be checked against Stripe before it is made anew."""
        return self.kind == "network" or (self.kind == "api" and (self.http_status or 500) >= 500)

    def __repr__(self):
        return (
            f"StripeGatewayError(kind={self.kind!r}, code={self.code!r}, "
            f"decline_code={self.decline_code!r}, http_status={self.http_status!r})"
        )


def classify_stripe_error(error, operation=None):
    """Turn an exception of the ``stripe`` SDK into a :class:`StripeGatewayError`.

    :param stripe.StripeError error: the SDK's exception
    :param str operation: the gateway operation that failed, for the log and the message
    :return: the classified error
    :rtype: StripeGatewayError
    """
    status = getattr(error, "http_status", None)
    code = getattr(error, "code", None)
    param = getattr(error, "param", None)
    decline_code = None
    payment_intent = None
    error_obj = getattr(error, "error", None)
    if error_obj is not None:
        decline_code = getattr(error_obj, "decline_code", None)
        payment_intent = to_plain(getattr(error_obj, "payment_intent", None))
    if isinstance(error, stripe.CardError):
        kind = "card_declined"
        decline_code = decline_code or getattr(error, "decline_code", None) or code
    elif isinstance(error, stripe.AuthenticationError):
        kind = "authentication"
    elif isinstance(error, stripe.PermissionError):
        kind = "permission"
    elif isinstance(error, stripe.RateLimitError):
        kind = "rate_limited"
    elif isinstance(error, stripe.APIConnectionError):
        kind = "network"
    elif isinstance(error, stripe.IdempotencyError):
        kind = "idempotency"
    elif isinstance(error, stripe.InvalidRequestError):
        kind = "not_found" if status == 404 or code == "resource_missing" else "invalid_request"
    elif status == 402:
        kind = "card_declined"
    elif status == 429:
        kind = "rate_limited"
    else:
        kind = "api"
    message = error.user_message or str(error) or kind
    return StripeGatewayError(
        kind,
        message,
        code=code,
        decline_code=decline_code,
        http_status=status,
        request_id=getattr(error, "request_id", None),
        param=param,
        operation=operation,
        payment_intent=payment_intent,
    )


def make_idempotency_key(*parts):
    """Derive a stable idempotency key from the Odoo records a create call is made for.

    The same parts always give the same key, so a double click, a retried request or a crashed
    worker repeating the call gets Stripe's first answer instead of a second object.

    :param parts: values identifying the call (database uuid, model, ids, scope, ...)
    :return: a key of at most 64 characters
    :rtype: str
    """
    if not parts or any(part is None or part is False or part == "" for part in parts):
        raise ValueError("an idempotency key needs non-empty parts")
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    return "odoo-" + digest[:59]


def to_plain(obj):
    """Return a Stripe object as plain ``dict`` values (the SDK's own recursive dump)."""
    return obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj


class StripeGateway:
    """A Stripe account reached with one secret key at one base URL.

    Instances are cheap; the underlying ``StripeClient`` (and its HTTP connection pool) is shared
    per key, base URL and thread.

    :param str api_key: the secret key (``sk_...``)
    :param str api_base: the base URL, empty for Stripe itself
    :param stripe.HTTPClient http_client: an HTTP client to use instead of the default one (the
        only place where tests answer for what localstripe lacks)
    :param callable observer: called once after every call, succeeded or not, with keyword
        arguments ``operation``, ``object_id``, ``request_id``, ``idempotency_key``,
        ``http_status``, ``duration_ms`` and ``error_kind`` (the audit trail); never given the
        key, the parameters or the answer
    """

    _local = threading.local()
    # Whether the last create call was answered from Stripe's idempotency cache (Stripe's
    # ``Idempotent-Replayed`` response header).
    last_replayed = False

    def __init__(
        self,
        api_key,
        api_base=None,
        *,
        timeout=const.REQUEST_TIMEOUT,
        max_network_retries=const.MAX_NETWORK_RETRIES,
        http_client=None,
        observer=None,
    ):
        if not api_key:
            raise StripeGatewayError("authentication", "No Stripe secret key is configured.")
        self.api_key = api_key
        self.api_base = (api_base or STRIPE_API_BASE).rstrip("/")
        self.timeout = timeout
        self.max_network_retries = max_network_retries
        self.http_client = http_client
        self.observer = observer
        self._idempotency_key = None

    # --- client ---------------------------------------------------------------------------

    @property
    def is_stripe(self):
        """Whether this gateway talks to Stripe itself (not a stand-in such as localstripe)."""
        return self.api_base == STRIPE_API_BASE

    @property
    def client(self):
        if self.http_client is not None:
            return self._build_client(self.http_client)
        cache = getattr(self._local, "clients", None)
        if cache is None:
            cache = self._local.clients = {}
        cache_key = (
            hashlib.sha256(self.api_key.encode()).hexdigest(),
            self.api_base,
            self.timeout,
            self.max_network_retries,
        )
        client = cache.get(cache_key)
        if client is None:
            client = cache[cache_key] = self._build_client(stripe.RequestsClient(timeout=self.timeout))
        return client

    def _build_client(self, http_client):
        return stripe.StripeClient(
            self.api_key,
            stripe_version=const.API_VERSION,
            # Uploads go to Stripe's files host; a stand-in (localstripe, a test's HTTP client)
            # answers both at its own base.
            base_addresses={
                "api": self.api_base,
                "files": STRIPE_FILES_BASE if self.is_stripe else self.api_base,
            },
            max_network_retries=self.max_network_retries,
            http_client=http_client,
        )

    def _call(self, operation, func, *args, **kwargs):
        """Run one SDK call, classify its failure and report it to the observer.

        :param str operation: a short name of the call, for logs and messages
        :return: the SDK's answer as plain values
        :raise StripeGatewayError: when Stripe or the network refused the call
        """
        start = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except stripe.StripeError as error:
            gateway_error = classify_stripe_error(error, operation=operation)
            _logger.info(
                "stripe %s failed: kind=%s code=%s decline_code=%s status=%s request_id=%s",
                operation,
                gateway_error.kind,
                gateway_error.code,
                gateway_error.decline_code,
                gateway_error.http_status,
                gateway_error.request_id,
            )
            self._observe(
                operation,
                start,
                args,
                gateway_error.payment_intent,
                gateway_error.request_id,
                gateway_error.http_status,
                gateway_error.kind,
            )
            raise gateway_error from None
        response = getattr(result, "last_response", None)
        plain = to_plain(result)
        self._observe(
            operation,
            start,
            args,
            plain,
            getattr(response, "request_id", None),
            getattr(response, "code", None) or 200,
            None,
        )
        return plain

    def _observe(self, operation, start, args, answer, request_id, http_status, error_kind):
        """Tell the observer (the audit trail) about one call: names and figures only."""
        if self.observer is None:
            return
        object_id = args[0] if args and isinstance(args[0], str) else None
        if object_id is None and isinstance(answer, dict) and isinstance(answer.get("id"), str):
            object_id = answer["id"]
        self.observer(
            operation=operation,
            object_id=object_id,
            request_id=request_id,
            idempotency_key=self._idempotency_key,
            http_status=http_status,
            duration_ms=int((time.perf_counter() - start) * 1000),
            error_kind=error_kind,
        )

    def _call_or_none(self, operation, func, *args, **kwargs):
        """Like :meth:`_call`, but an object Stripe does not have is ``None``."""
        try:
            return self._call(operation, func, *args, **kwargs)
        except StripeGatewayError as error:
            if error.kind == "not_found":
                return None
            raise

    def _create(self, operation, func, *args, idempotency_key=None, **kwargs):
        """Run a create call with its idempotency key; :attr:`last_replayed` then says whether
        Stripe answered with the object an earlier request with the same key created (which
        may have been deleted since)."""
        if not idempotency_key:
            raise ValueError(f"stripe {operation} needs an idempotency key")
        answer = {}

        def create():
            answer["object"] = func(*args, options={"idempotency_key": idempotency_key}, **kwargs)
            return answer["object"]

        self.last_replayed = False
        self._idempotency_key = idempotency_key
        try:
            result = self._call(operation, create)
        finally:
            self._idempotency_key = None
        response = getattr(answer.get("object"), "last_response", None)
        headers = getattr(response, "headers", None) or {}
        self.last_replayed = any(
            name.lower() == "idempotent-replayed" and str(value).lower() == "true"
            for name, value in headers.items()
        )
        return result

    # --- customers ------------------------------------------------------------------------

    def create_customer(self, params, idempotency_key):
        return self._create(
            "customer.create",
            self.client.v1.customers.create,
            params=params,
            idempotency_key=idempotency_key,
        )

    def update_customer(self, customer_id, params):
        return self._call("customer.update", self.client.v1.customers.update, customer_id, params=params)

    def retrieve_customer(self, customer_id):
        """Return the customer, or ``None`` when it does not exist or was deleted."""
        customer = self._call_or_none("customer.retrieve", self.client.v1.customers.retrieve, customer_id)
        if customer and customer.get("deleted"):
            return None
        return customer

    def list_customer_tax_ids(self, customer_id):
        return self._list("tax_id.list", self.client.v1.customers.tax_ids.list, customer_id)

    def create_customer_tax_id(self, customer_id, tax_type, value, idempotency_key):
        return self._create(
            "tax_id.create",
            self.client.v1.customers.tax_ids.create,
            customer_id,
            params={"type": tax_type, "value": value},
            idempotency_key=idempotency_key,
        )

    def delete_customer_tax_id(self, customer_id, tax_id):
        return self._call("tax_id.delete", self.client.v1.customers.tax_ids.delete, customer_id, tax_id)

    # --- payment methods ------------------------------------------------------------------

    def list_payment_methods(self, customer_id, method_type="card"):
        return self._list(
            "payment_method.list",
            self.client.v1.payment_methods.list,
            params={"customer": customer_id, "type": method_type},
        )

    def retrieve_payment_method(self, payment_method_id):
        """Return the payment method, or ``None`` when it does not exist."""
        return self._call_or_none(
            "payment_method.retrieve", self.client.v1.payment_methods.retrieve, payment_method_id
        )

    # --- payments -------------------------------------------------------------------------

    def create_payment_intent(self, params, idempotency_key):
        """Create (and, with ``confirm``, charge) a PaymentIntent.

        A declined off-session confirmation raises :class:`StripeGatewayError` of kind
        ``card_declined`` carrying Stripe's decline code.
        """
        return self._create(
            "payment_intent.create",
            self.client.v1.payment_intents.create,
            params=params,
            idempotency_key=idempotency_key,
        )

    def retrieve_payment_intent(self, payment_intent_id):
        return self._call(
            "payment_intent.retrieve",
            self.client.v1.payment_intents.retrieve,
            payment_intent_id,
        )

    def list_payment_intents(self, customer_id, created_since=None):
        """The PaymentIntents of a customer, newest first (those created since a timestamp)."""
        params = {"customer": customer_id, "limit": 100}
        if created_since:
            params["created"] = {"gte": int(created_since)}
        return self._list("payment_intent.list", self.client.v1.payment_intents.list, params=params)

    def cancel_payment_intent(self, payment_intent_id):
        return self._call("payment_intent.cancel", self.client.v1.payment_intents.cancel, payment_intent_id)

    def create_checkout_session(self, params, idempotency_key):
        return self._create(
            "checkout.session.create",
            self.client.v1.checkout.sessions.create,
            params=params,
            idempotency_key=idempotency_key,
        )

    def retrieve_checkout_session(self, session_id):
        """Return the session with its PaymentIntent expanded."""
        return self._call(
            "checkout.session.retrieve",
            self.client.v1.checkout.sessions.retrieve,
            session_id,
            params={"expand": ["payment_intent"]},
        )

    def expire_checkout_session(self, session_id):
        """Expire an open session so that its page can no longer be paid.

        A session that is already complete or expired is left as it is (Stripe answers 400).
        """
        try:
            return self._call("checkout.session.expire", self.client.v1.checkout.sessions.expire, session_id)
        except StripeGatewayError as error:
            if error.kind in ("invalid_request", "not_found"):
                return None
            raise

    def create_refund(self, params, idempotency_key):
        return self._create(
            "refund.create",
            self.client.v1.refunds.create,
            params=params,
            idempotency_key=idempotency_key,
        )

    def retrieve_refund(self, refund_id):
        return self._call("refund.retrieve", self.client.v1.refunds.retrieve, refund_id)

    def list_refunds(self, payment_intent_id):
        return self._list(
            "refund.list", self.client.v1.refunds.list, params={"payment_intent": payment_intent_id}
        )

    def retrieve_charge(self, charge_id):
        return self._call("charge.retrieve", self.client.v1.charges.retrieve, charge_id)

    def detach_payment_method(self, payment_method_id):
        return self._call("payment_method.detach", self.client.v1.payment_methods.detach, payment_method_id)

    # --- disputes -------------------------------------------------------------------------

    def retrieve_dispute(self, dispute_id):
        """Return the dispute (with its balance transactions), or ``None`` when Stripe has none."""
        return self._call_or_none("dispute.retrieve", self.client.v1.disputes.retrieve, dispute_id)

    def update_dispute(self, dispute_id, evidence, submit=False):
        """Send evidence for a dispute (``submit``: final, Stripe forwards it to the bank).

        :param dict evidence: Stripe's ``evidence`` fields (strings; files as ``file_...`` ids)
        """
        params = {"evidence": evidence}
        if submit:
            params["submit"] = True
        return self._call("dispute.update", self.client.v1.disputes.update, dispute_id, params=params)

    def upload_file(self, content, filename, purpose, idempotency_key):
        """Upload a file (multipart, to Stripe's files host) and return the File object.

        :param bytes content: the file's bytes
        :param str filename: the name Stripe shows
        :param str purpose: e.g. ``dispute_evidence``
        """
        stream = io.BytesIO(content)
        stream.name = filename
        return self._create(
            "file.create",
            self.client.v1.files.create,
            params={"purpose": purpose, "file": stream},
            idempotency_key=idempotency_key,
        )

    # --- streamed listings (drift check) ---------------------------------------------------

    def iter_objects(self, kind, created_after, created_before=None, starting_after=None, page_size=100):
        """Yield the charges, refunds or disputes created in a window, page after page, as
        plain dicts (one page in memory at a time; :meth:`_list` keeps them all).

        :param str kind: ``charges``, ``refunds`` or ``disputes``
        :param int created_after: Unix time; objects created strictly after it
        :param int created_before: Unix time; objects created at or before it (optional)
        :param str starting_after: the id after which to resume a listing
        """
        service = {
            "charges": self.client.v1.charges,
            "refunds": self.client.v1.refunds,
            "disputes": self.client.v1.disputes,
        }[kind]
        created = {"gt": int(created_after)}
        params = {"limit": page_size, "created": created}
        if starting_after:
            params["starting_after"] = starting_after
        try:
            for item in service.list(params=params).auto_paging_iter():
                obj = item.to_dict()
                if created_before is not None and obj.get("created", 0) > created_before:
                    continue
                yield obj
        except stripe.StripeError as error:
            raise classify_stripe_error(error, operation=f"{kind}.list") from None

    # --- Stripe Billing (read, and cancel from Odoo) ----------------------------------------

    def list_subscriptions(self, customer_id=None):
        """Every subscription of the account (or of one customer), cancelled ones included."""
        params = {"status": "all"}
        if customer_id:
            params["customer"] = customer_id
        return self._list("subscription.list", self.client.v1.subscriptions.list, params=params)

    def retrieve_subscription(self, subscription_id):
        """Return the subscription, or ``None`` when it does not exist."""
        return self._call_or_none(
            "subscription.retrieve", self.client.v1.subscriptions.retrieve, subscription_id
        )

    def cancel_subscription(self, subscription_id):
        return self._call("subscription.cancel", self.client.v1.subscriptions.cancel, subscription_id)

    def update_subscription(self, subscription_id, params):
        return self._call(
            "subscription.update",
            self.client.v1.subscriptions.update,
            subscription_id,
            params=params,
        )

    def list_invoices(self, subscription_id):
        return self._list(
            "invoice.list", self.client.v1.invoices.list, params={"subscription": subscription_id}
        )

    def retrieve_invoice(self, invoice_id):
        """Return the invoice, or ``None`` when it does not exist (a deleted draft)."""
        return self._call_or_none("invoice.retrieve", self.client.v1.invoices.retrieve, invoice_id)

    def retrieve_tax_rate(self, tax_rate_id):
        return self._call("tax_rate.retrieve", self.client.v1.tax_rates.retrieve, tax_rate_id)

    def list_invoice_payments(self, invoice_id=None, payment_intent_id=None):
        """The payments of an invoice, or the invoice payment of a PaymentIntent (since API
        2025-03-31 neither names the other). An account without the endpoint (localstripe)
        has none."""
        params = (
            {"invoice": invoice_id}
            if invoice_id
            else {"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}}
        )
        try:
            return self._list("invoice_payment.list", self.client.v1.invoice_payments.list, params=params)
        except StripeGatewayError as error:
            if error.http_status == 404:  # a route missing answers 404 without a Stripe error body
                return []
            raise

    def list_invoice_lines(self, invoice_id):
        return self._list("invoice.lines", self.client.v1.invoices.line_items.list, invoice_id)

    def retrieve_product(self, product_id):
        return self._call("product.retrieve", self.client.v1.products.retrieve, product_id)

    # --- webhook endpoints ----------------------------------------------------------------

    def create_webhook_endpoint(self, url, events, idempotency_key, description=None):
        params = {"url": url, "enabled_events": list(events), "api_version": const.API_VERSION}
        if description:
            params["description"] = description
        return self._create(
            "webhook_endpoint.create",
            self.client.v1.webhook_endpoints.create,
            params=params,
            idempotency_key=idempotency_key,
        )

    def retrieve_webhook_endpoint(self, endpoint_id):
        """Return the endpoint (its ``status`` is ``enabled`` or ``disabled``), or ``None``
        when it does not exist."""
        return self._call_or_none(
            "webhook_endpoint.retrieve", self.client.v1.webhook_endpoints.retrieve, endpoint_id
        )

    def delete_webhook_endpoint(self, endpoint_id):
        """Delete an endpoint; one that no longer exists counts as deleted."""
        return self._call_or_none(
            "webhook_endpoint.delete", self.client.v1.webhook_endpoints.delete, endpoint_id
        )

    def configure_localstripe_webhook(self, webhook_id, url, secret, events):
        """Register a webhook with localstripe, which has no ``webhook_endpoints`` API.

        localstripe's own route ``POST /_config/webhooks/<id>`` takes the url, the signing
        secret and the event types; the same id replaces the previous registration.
        """
        if self.is_stripe:
            raise ValueError("localstripe configuration is never sent to Stripe")
        http_client = self.http_client or stripe.RequestsClient(timeout=self.timeout)
        body = json.dumps({"url": url, "secret": secret, "events": list(events)})
        start = time.perf_counter()
        try:
            content, status, __ = http_client.request(
                "post",
                f"{self.api_base}/_config/webhooks/{webhook_id}",
                {"Content-Type": "application/json"},
                body,
            )
        except stripe.StripeError as error:
            gateway_error = classify_stripe_error(error, "localstripe.webhook")
            self._observe("localstripe.webhook", start, (webhook_id,), None, None, None, gateway_error.kind)
            raise gateway_error from None
        self._observe(
            "localstripe.webhook",
            start,
            (webhook_id,),
            None,
            None,
            status,
            None if status < 300 else "invalid_request",
        )
        if status >= 300:
            raise StripeGatewayError(
                "invalid_request",
                f"localstripe refused the webhook ({status}): {content[:200]}",
                http_status=status,
                operation="localstripe.webhook",
            )

    # --- helpers --------------------------------------------------------------------------

    def _list(self, operation, func, *args, **kwargs):
        """Return every item of a Stripe list, pages followed by the SDK's auto-pagination."""

        def fetch_all():
            return [item.to_dict() for item in func(*args, **kwargs).auto_paging_iter()]

        return self._call(operation, fetch_all)
