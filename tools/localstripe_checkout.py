"""Stripe Checkout Sessions for the demo's localstripe, which has none.

Adds to localstripe's app the three Checkout calls the add-on makes (create, retrieve with the
PaymentIntent expanded, expire) and a stand-in for Stripe's hosted page at ``/checkout/<id>``: a
form that charges a test card through localstripe's own PaymentIntents (so the payment, the
saved card and any decline are real localstripe objects) and sends the customer back to the
session's ``success_url``. For the demo only: the tests answer Checkout at the HTTP-client
boundary instead.
"""

import html
import os
import time

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

SESSIONS = {}
CARDS = {
    "4242424242424242": "Visa, succeeds",
    "4000000000000341": "Visa, declined",
}


def _session_or_404(session_id):
    session = SESSIONS.get(session_id)
    if session is None:
        raise UserError(404, "No such checkout.session: " + session_id)
    return session


def _intent(session, expand):
    intent_id = session["payment_intent"]
    if not intent_id or not expand:
        return intent_id
    return resources.PaymentIntent._api_retrieve(intent_id)._export()


async def create_session(request):
    data = await server.get_post_data(request)
    session_id = "cs_test_" + os.urandom(12).hex()
    line = (data.get("line_items") or [{}])[0]
    price = line.get("price_data") or {}
    base = f"{request.scheme}://{request.host}"
    session = {
        "id": session_id,
        "object": "checkout.session",
        "mode": data.get("mode"),
        "customer": data.get("customer"),
        "client_reference_id": data.get("client_reference_id"),
        "metadata": data.get("metadata") or {},
        "payment_intent_data": data.get("payment_intent_data") or {},
        "success_url": data.get("success_url"),
        "cancel_url": data.get("cancel_url"),
        "expires_at": int(data.get("expires_at") or time.time() + 86400),
        "currency": price.get("currency") or data.get("currency"),
        "amount_total": int(price["unit_amount"]) if "unit_amount" in price else None,
        "product": (price.get("product_data") or {}).get("name"),
        "status": "open",
        "payment_status": "unpaid",
        "payment_intent": None,
        "livemode": False,
        "url": f"{base}/checkout/{session_id}",
    }
    SESSIONS[session_id] = session
    return web.json_response(_public(session))


def _public(session, expand=False):
    public = {k: v for k, v in session.items() if k not in ("payment_intent_data", "product")}
    public["payment_intent"] = _intent(session, expand)
    return public


async def retrieve_session(request):
    session = _session_or_404(request.match_info["id"])
    return web.json_response(
        _public(session, expand="expand[]" in request.query_string or "expand" in request.query_string)
    )


async def expire_session(request):
    session = _session_or_404(request.match_info["id"])
    if session["status"] != "open":
        raise UserError(400, "Only Checkout Sessions with a status of open can be expired.")
    session.update(status="expired", url=None)
    return web.json_response(_public(session))


def _page(session, error=None):
    amount = session["amount_total"] or 0
    currency = (session["currency"] or "").upper()
    options = "".join(
        f'<option value="{number}">{number} ({label})</option>' for number, label in CARDS.items()
    )
    error_html = f'<p style="color:#b00">{html.escape(error)}</p>' if error else ""
    return web.Response(
        content_type="text/html",
        text=f"""<!doctype html><html><head><title>Pay - localstripe Checkout</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">
<h2>localstripe Checkout (demo)</h2>
<p>{html.escape(session.get("product") or "Save a payment method")}:
<strong>{amount} {currency}</strong> (minor units)</p>
{error_html}
<form method="post" action="/checkout/{session["id"]}/pay">
<label>Test card <select name="number">{options}</select></label><br><br>
<label><input type="checkbox" name="save" checked> Save this card for future payments</label><br><br>
<button type="submit">Pay</button>
<a href="{html.escape(session["cancel_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))}">Cancel</a>
</form></body></html>""",
    )


async def hosted_page(request):
    session = _session_or_404(request.match_info["id"])
    if session["status"] != "open":
        raise web.HTTPFound(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))
    return _page(session)


async def pay(request):
    session = _session_or_404(request.match_info["id"])
    form = await request.post()
    if session["status"] == "open" and session["mode"] == "setup":
        pm = resources.PaymentMethod._api_create(
            type="card",
            card={
                "number": form.get("number", "4242424242424242"),
                "exp_month": "12",
                "exp_year": "2034",
                "cvc": "123",
            },
        )
        resources.PaymentMethod._api_attach(pm.id, customer=session["customer"])
        session.update(
            status="complete",
            payment_status="no_payment_required",
            setup_intent="seti_" + os.urandom(8).hex(),
        )
    elif session["status"] == "open":
        pm = resources.PaymentMethod._api_create(
            type="card",
            card={
                "number": form.get("number", "4242424242424242"),
                "exp_month": "12",
                "exp_year": "2034",
                "cvc": "123",
            },
        )
        if session["customer"]:
            resources.PaymentMethod._api_attach(pm.id, customer=session["customer"])
        try:
            intent = resources.PaymentIntent._api_create(
                amount=session["amount_total"],
                currency=session["currency"],
                customer=session["customer"],
                payment_method=pm.id,
                metadata=(session["payment_intent_data"].get("metadata") or session["metadata"]),
                confirm=True,
            )
        except UserError as error:
            return _page(session, error=str(getattr(error, "body", "") or "Your card was declined."))
        session.update(status="complete", payment_status="paid", payment_intent=intent.id)
    raise web.HTTPFound(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))


def install(app):
    """Add the Checkout routes to localstripe's app, the hosted page without API key."""

    @web.middleware
    async def auth(request, handler):
        if request.path.startswith("/checkout/"):
            return await handler(request)
        return await server.auth_middleware(request, handler)

    middlewares = list(app.middlewares)
    app.middlewares[middlewares.index(server.auth_middleware)] = auth
    app.router.add_post("/v1/checkout/sessions", create_session)
    app.router.add_get("/v1/checkout/sessions/{id}", retrieve_session)
    app.router.add_post("/v1/checkout/sessions/{id}/expire", expire_session)
    app.router.add_get("/checkout/{id}", hosted_page)
    app.router.add_post("/checkout/{id}/pay", pay)
