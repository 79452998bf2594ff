"""Stripe-shaped answers for what localstripe lacks in the protection features: disputes
(retrieve, update with evidence, list) and the Files API (multipart uploads)."""

import copy
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl

from .common import FakeCheckout, sign_payload, stripe_event

FIXTURES = Path(__file__).parent / "data" / "stripe_protection_objects.json"


def protection_fixture(name):
    """A copy of one of Stripe's own example objects (dispute, file, balance_transaction)."""
    with FIXTURES.open() as file:
        return copy.deepcopy(json.load(file)[name])


def dispute_object(charge_id, intent_id, amount, currency="usd", status="needs_response", **values):
    """A Dispute in Stripe's shape (its API reference example), about one charge."""
    dispute = protection_fixture("dispute")
    dispute.update(
        {
            "id": "dp_" + os.urandom(10).hex(),
            "charge": charge_id,
            "payment_intent": intent_id,
            "amount": amount,
            "currency": currency,
            "status": status,
            "reason": "product_not_received",
            "created": int(time.time()),
            "is_charge_refundable": False,
        }
    )
    dispute["evidence_details"]["due_by"] = int(time.time()) + 7 * 86400
    dispute.update(values)
    return dispute


def balance_transaction(dispute, amount, fee=0):
    """A balance transaction of a dispute: negative when Stripe withdraws the funds."""
    bt = protection_fixture("balance_transaction")
    bt.update(
        {
            "id": "txn_" + os.urandom(10).hex(),
            "amount": amount,
            "net": amount - fee,
            "fee": fee,
            "fee_details": [{"amount": fee, "currency": dispute["currency"], "type": "stripe_fee"}]
            if fee
            else [],
            "currency": dispute["currency"],
            "source": dispute["id"],
            "type": "adjustment",
            "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
        }
    )
    return bt


class FakeDisputes(FakeCheckout):
    """Stripe's Disputes and Files APIs answered in Stripe's shape (a test plays Stripe by
    changing :attr:`disputes`); everything else goes on (Checkout answered, then localstripe).

    Submitting evidence moves a dispute to ``under_review`` as Stripe does.
    """

    def __init__(self):
        super().__init__()
        self.disputes = {}
        self.files = {}

    def request(self, method, url, headers, post_data=None):
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        if not (path.startswith("/v1/disputes") or path == "/v1/files"):
            return super().request(method, url, headers, post_data)
        self.requests.append(
            {"method": method, "url": url, "path": path, "headers": headers, "data": post_data}
        )
        if path == "/v1/files" and method == "post":
            return self._answer(self._upload(post_data))
        if path == "/v1/disputes" and method == "get":
            data = sorted(self.disputes.values(), key=lambda d: d["created"], reverse=True)
            return self._answer({"object": "list", "data": data, "has_more": False, "url": "/v1/disputes"})
        dispute = self.disputes.get(path.rsplit("/", 1)[-1])
        if dispute is None:
            return (
                json.dumps(
                    {
                        "error": {
                            "message": "No such dispute",
                            "type": "invalid_request_error",
                            "code": "resource_missing",
                        }
                    }
                ),
                404,
                {},
            )
        if method == "post":
            form = dict(parse_qsl(post_data or "", keep_blank_values=True))
            for key, value in form.items():
                match = re.fullmatch(r"evidence\[(\w+)\]", key)
                if match:
                    dispute["evidence"][match.group(1)] = value
            if form.get("submit") == "true":
                dispute["status"] = (
                    "under_review" if dispute["status"] == "needs_response" else "warning_under_review"
                )
                dispute["evidence_details"]["submission_count"] += 1
                dispute["evidence_details"]["has_evidence"] = True
        return self._answer(dispute)

    @staticmethod
    def _answer(body):
        return json.dumps(body), 200, {"Request-Id": "req_test"}

    def _upload(self, post_data):
        body = post_data if isinstance(post_data, bytes) else (post_data or "").encode()
        file = protection_fixture("file")
        file_id = "file_" + os.urandom(10).hex()
        purpose = re.search(rb'name="purpose"\r\n\r\n([^\r]+)', body)
        name = re.search(rb'name="file"; filename="([^"]+)"', body)
        file.update(
            {
                "id": file_id,
                "purpose": purpose.group(1).decode() if purpose else None,
                "filename": name.group(1).decode() if name else None,
                "size": len(body),
                "type": "pdf",
                "links": {
                    "object": "list",
                    "data": [],
                    "has_more": False,
                    "url": f"/v1/file_links?file={file_id}",
                },
            }
        )
        self.files[file_id] = {"object": file, "body": body}
        return file

    def posts_to(self, path):
        return [
            request for request in self.requests if request["method"] == "post" and request["path"] == path
        ]


class SignedEvents:
    """Mixin of an HttpCase: Stripe sends signed events to the webhook route."""

    webhook_secret = "whsec_protection"

    def _send_event(self, event_type, obj, event=None):
        event = event or stripe_event(event_type, copy.deepcopy(obj))
        body = json.dumps(event)
        response = self.url_open(
            f"/crm_payment/stripe/webhook/{self.provider.id}",
            data=body.encode(),
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign_payload(body, self.webhook_secret),
            },
            timeout=20,
        )
        self.assertEqual(response.status_code, 200)
        return event
