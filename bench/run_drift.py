"""Drift check over SIZE Stripe charges (run by bench/drift.sh through `odoo shell`).

Odoo gets SIZE confirmed transactions (SQL, generate_series); Stripe's charges are answered by
an in-process fake HTTP client generating Stripe-shaped list pages on the fly (100 per page,
``starting_after`` honoured), with 1 % of the charges unknown to Odoo, 0.5 % whose amount
differs and 0.5 % of Odoo's transactions absent from Stripe. The check runs as the cron does:
slices within Odoo's limits (TimeBudget.for_worker), each committed, until done.
Prints one ``result`` line: size, seconds (total and inside the fake), CPU seconds, slices,
differences found, and the process's peak memory growth (ru_maxrss) in MB.
"""

import json
import os
import resource
import time

import stripe

from odoo.tools import config

from odoo.addons.crm_payment_integration.services.budget import TimeBudget

env = globals()["env"]  # given by `odoo shell`
SIZE = int(os.environ["SIZE"])
CREATED = int(time.time()) - 3600  # every object an hour old: inside the window


class FakeStripeLists(stripe.HTTPClient):
    """Stripe's list endpoints for charges, refunds and disputes, generated on the fly."""

    name = "bench-fake"

    def __init__(self, size):
        super().__init__()
        self.size = size
        self.seconds = 0.0

    def request(self, method, url, headers, post_data=None):
        started = time.perf_counter()
        path, __, query = url.partition("?")
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        data, has_more = [], False
        if path.endswith("/v1/charges"):
            start = int(params.get("starting_after", "ch_bench_-1").rsplit("_", 1)[-1]) + 1
            limit = int(params.get("limit", 10))
            end = min(start + limit, self.size)
            data = [self._charge(i) for i in range(start, end)]
            has_more = end < self.size
        api_path = "/" + path.split("://", 1)[-1].split("/", 1)[-1]
        body = json.dumps({"object": "list", "data": data, "has_more": has_more, "url": api_path})
        self.seconds += time.perf_counter() - started
        return body, 200, {"Request-Id": "req_bench"}

    def _charge(self, i):
        amount = 1000 + i % 5000
        if i % 200 == 1:
            amount += 1  # 0.5 %: the amount differs
        return {
            "id": f"ch_bench_{i}",
            "object": "charge",
            "amount": amount,
            "currency": "usd",
            "created": CREATED,
            "customer": f"cus_bench_{self.size}",
            "payment_intent": f"pi_bench_{i}",
            "status": "succeeded",
            "paid": True,
            "refunded": False,
            "metadata": {},
        }

    def request_stream(self, method, url, headers, post_data=None):
        raise NotImplementedError

    def close(self):
        pass


# A provider of its own per size: the transactions of an earlier size are another account's.
provider = env.ref("payment.payment_provider_stripe").copy({"name": f"Stripe bench {SIZE}"})
provider.write(
    {
        "state": "test",
        "stripe_secret_key": "sk_test_bench_drift",
        "stripe_publishable_key": "pk_test_bench_drift",
        "crm_api_base": "http://bench.invalid",
    }
)
partner = env["res.partner"].create({"name": "Bench Drift Customer"})
env["crm.stripe.customer"].create(
    {"partner_id": partner.id, "provider_id": provider.id, "stripe_customer_id": f"cus_bench_{SIZE}"}
)
usd = env.ref("base.USD")
card = env.ref("payment.payment_method_card")
# Odoo's transactions: every charge but 1 % (missing in Odoo), plus 0.5 % Stripe does not have.
env.cr.execute(
    """
    INSERT INTO payment_transaction (
        reference, provider_id, payment_method_id, partner_id, amount, currency_id,
        company_id, state, operation, crm_flow, provider_reference, create_date, write_date,
        create_uid, write_uid, last_state_change)
    SELECT %(tag)s || i, %(provider)s, %(card)s, %(partner)s, (1000 + i %% 5000) / 100.0,
           %(usd)s, %(company)s, 'done', 'offline', 'off_session',
           CASE WHEN i < %(size)s THEN 'pi_bench_' || i ELSE 'pi_ghost_' || i END,
           now() at time zone 'utc' - interval '2 hours', now() at time zone 'utc', 1, 1,
           now() at time zone 'utc'
      FROM generate_series(0, %(size)s + %(size)s / 200 - 1) AS i
     WHERE i >= %(size)s OR i %% 100 != 7
    """,
    {
        "provider": provider.id,
        "card": card.id,
        "partner": partner.id,
        "usd": usd.id,
        "company": provider.company_id.id,
        "size": SIZE,
        "tag": f"BENCH-{SIZE}-{os.getpid()}-",
    },
)
env.cr.execute("ANALYZE payment_transaction")
env.cr.commit()

fake = FakeStripeLists(SIZE)
type(env["payment.provider"])._crm_stripe_http_client = lambda self: fake
# The set-based comparison's share of the time, measured apart.
compare_seconds = [0.0]
compare_of = type(env["crm.payment.drift.run"])._crm_compare


def timed_compare(self):
    begun = time.perf_counter()
    compare_of(self)
    compare_seconds[0] += time.perf_counter() - begun


type(env["crm.payment.drift.run"])._crm_compare = timed_compare
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu_before = time.process_time()
started = time.perf_counter()
Run = env["crm.payment.drift.run"]
run = Run._crm_start(provider)
env.cr.commit()
slices = 0
while run.state == "running":
    slices += 1
    run._crm_continue(TimeBudget.for_worker(config), commit=True)
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu_before
rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
kinds = {}
for line in run.line_ids:
    kinds[line.kind] = kinds.get(line.kind, 0) + 1
print(
    f"result size={SIZE} charges={run.charge_count} seconds={seconds:.2f} fake_seconds={fake.seconds:.2f} "
    f"compare_seconds={compare_seconds[0]:.2f} "
    f"cpu_seconds={cpu:.2f} slices={slices} missing_in_odoo={kinds.get('missing_in_odoo', 0)} "
    f"amount_differs={kinds.get('amount_differs', 0)} missing_in_stripe={kinds.get('missing_in_stripe', 0)} "
    f"rss_growth_mb={rss_growth:.1f} state={run.state}"
)
