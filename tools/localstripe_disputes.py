"""Stripe Disputes and Files for the demo's localstripe, which has neither.

Adds the calls the add-on makes (retrieve, list and update a dispute with its evidence; upload
a file, multipart) in Stripe's shapes, and ``POST /_demo/disputes`` to open one on a charge (what
a card holder's bank does in real life). For the demo only: the tests answer these calls at the
HTTP-client boundary instead.
"""

import os
import time

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

DISPUTES = {}
FILES = {}


def _dispute_or_404(dispute_id):
    dispute = DISPUTES.get(dispute_id)
    if dispute is None:
        raise UserError(404, "No such dispute: " + dispute_id)
    return dispute


def _balance_transaction(dispute, amount, fee):
    return {
        "id": "txn_" + os.urandom(10).hex(),
        "object": "balance_transaction",
        "amount": amount,
        "currency": dispute["currency"],
        "fee": fee,
        "net": amount - fee,
        "created": int(time.time()),
        "source": dispute["id"],
        "type": "adjustment",
        "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
        "status": "available",
    }


async def open_dispute(request):
    """The bank opens a dispute: ``charge``, ``amount`` (minor units), ``reason``, and with
    ``withdraw`` the funds and a fee (``fee``, minor units) taken at once."""
    data = await server.get_post_data(request)
    charge = resources.Charge._api_retrieve(data["charge"])
    amount = int(data.get("amount") or charge.amount)
    dispute = {
        "id": "dp_" + os.urandom(10).hex(),
        "object": "dispute",
        "amount": amount,
        "currency": charge.currency,
        "charge": charge.id,
        "payment_intent": charge.payment_intent,
        "created": int(time.time()),
        "reason": data.get("reason") or "product_not_received",
        "status": data.get("status") or "needs_response",
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "evidence": {},
        "evidence_details": {
            "due_by": int(time.time()) + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "balance_transactions": [],
    }
    if data.get("withdraw") in ("true", True):
        dispute["balance_transactions"].append(
            _balance_transaction(dispute, -amount, int(data.get("fee") or 1500))
        )
    DISPUTES[dispute["id"]] = dispute
    return web.json_response(dispute)


async def retrieve_dispute(request):
    return web.json_response(_dispute_or_404(request.match_info["id"]))


async def update_dispute(request):
    dispute = _dispute_or_404(request.match_info["id"])
    data = await server.get_post_data(request)
    dispute["evidence"].update(data.get("evidence") or {})
    if data.get("submit") in ("true", True):
        dispute["status"] = (
            "warning_under_review" if dispute["status"].startswith("warning") else "under_review"
        )
        dispute["evidence_details"].update(has_evidence=True)
        dispute["evidence_details"]["submission_count"] += 1
    return web.json_response(dispute)


async def list_disputes(request):
    since = int(request.query.get("created[gt]") or 0)
    data = sorted(
        (d for d in DISPUTES.values() if d["created"] > since), key=lambda d: d["created"], reverse=True
    )
    return web.json_response({"object": "list", "data": data, "has_more": False, "url": "/v1/disputes"})


async def upload_file(request):
    form = await request.post()
    upload = form.get("file")
    content = upload.file.read() if upload is not None else b""
    file_id = "file_" + os.urandom(10).hex()
    FILES[file_id] = content
    return web.json_response(
        {
            "id": file_id,
            "object": "file",
            "created": int(time.time()),
            "filename": getattr(upload, "filename", None),
            "purpose": form.get("purpose"),
            "size": len(content),
            "type": "pdf",
            "url": None,
        }
    )


def install(app):
    """Add the routes; a file upload (multipart, which localstripe's authentication cannot
    read) is checked for a secret key here."""
    index = next(
        i for i, middleware in enumerate(app.middlewares) if "auth" in getattr(middleware, "__name__", "")
    )
    authenticate = app.middlewares[index]

    @web.middleware
    async def auth(request, handler):
        if request.path == "/v1/files":
            if not request.headers.get("Authorization", "").startswith("Bearer sk_"):
                raise UserError(401, "Unauthorized")
            return await handler(request)
        return await authenticate(request, handler)

    app.middlewares[index] = auth
    app.router.add_post("/_demo/disputes", open_dispute)
    app.router.add_get("/v1/disputes", list_disputes)
    app.router.add_get("/v1/disputes/{id}", retrieve_dispute)
    app.router.add_post("/v1/disputes/{id}", update_dispute)
    app.router.add_post("/v1/files", upload_file)
