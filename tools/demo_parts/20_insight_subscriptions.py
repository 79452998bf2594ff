# Subscription insight: 36 months of subscription history (starts, upgrades, downgrades,
# pauses, cancellations, reactivations, a EUR subscription, the Stripe Billing mirror updated)
# made by the subscriptions' own actions, their movements back-dated through the log's API
# (the ``crm_movement_date`` context key), and 36 months of invoiced one-off revenue with a
# trend and a season, so that the metrics, the cohorts and the forecast show something.
# Deterministic (seeded); about a minute.
import random  # noqa: E402
import time  # noqa: E402

from dateutil.relativedelta import relativedelta  # noqa: E402

insight_started = time.monotonic()
insight_rng = random.Random(2026)
insight_env = env  # noqa: F821
insight_today = insight_env["crm.subscription"]._crm_company_today(insight_env.company)
insight_first = insight_today.replace(day=1) - relativedelta(months=36)
insight_context = {
    "tracking_disable": True,
    "mail_create_nolog": True,
    "mail_notrack": True,
    "crm_insight_no_refresh": True,
}
InsightSubscription = insight_env["crm.subscription"].with_context(**insight_context)
insight_products = insight_env["product.product"].create(
    [
        {"name": "Starter seat", "list_price": 49.0, "type": "service"},
        {"name": "Team seat", "list_price": 99.0, "type": "service"},
        {"name": "Business seat", "list_price": 199.0, "type": "service"},
    ]
)
insight_eur = insight_env["res.currency"].with_context(active_test=False).search([("name", "=", "EUR")])
insight_eur.active = True
for months_ago, rate in ((36, 0.90), (12, 0.92), (0, 0.95)):
    insight_env["res.currency.rate"].create(
        {
            "currency_id": insight_eur.id,
            "name": insight_today.replace(day=1) - relativedelta(months=months_ago),
            "rate": rate,
            "company_id": insight_env.company.id,
        }
    )
insight_countries = [insight_env.ref(x) for x in ("base.us", "base.be", "base.fr", "base.de", "base.uk")]


def insight_on(record, day):
    return record.with_context(crm_movement_date=day)


def insight_start(partner, day, currency=None, **values):
    product = insight_rng.choice(insight_products)
    yearly = insight_rng.random() < 0.15
    subscription = InsightSubscription.create(
        {
            "partner_id": partner.id,
            "start_date": day,
            "currency_id": (currency or insight_env.company.currency_id).id,
            "interval_unit": "year" if yearly else "month",
            "line_ids": [
                (
                    0,
                    0,
                    {
                        "product_id": product.id,
                        "quantity": insight_rng.randint(1, 5),
                        "price_unit": product.list_price * (10 if yearly else 1),
                    },
                )
            ],
            **values,
        }
    )
    insight_on(subscription, day).action_start()
    return subscription


insight_partners = insight_env["res.partner"]
insight_live = InsightSubscription.browse()
insight_actions = 0
for month in range(36):
    first_day = insight_first + relativedelta(months=month)
    # More customers arrive as the business grows.
    for __ in range(2 + month // 5 + insight_rng.randint(0, 1)):
        day = first_day + relativedelta(days=insight_rng.randint(0, 26))
        partner = insight_env["res.partner"].create(
            {
                "name": f"Subscriber {len(insight_partners) + 1:03d}",
                "is_company": True,
                "country_id": insight_rng.choice(insight_countries).id,
                "email": f"subscriber{len(insight_partners) + 1:03d}@example.com",
            }
        )
        insight_partners |= partner
        insight_live |= insight_start(
            partner, day, currency=insight_eur if len(insight_partners) % 25 == 0 else None
        )
        insight_actions += 1
    for subscription in insight_live.sorted("id"):
        day = first_day + relativedelta(days=insight_rng.randint(0, 26))
        roll = insight_rng.random()
        on = insight_on(subscription, day)
        if subscription.state == "paused":
            if roll < 0.5:
                on.action_resume()
                insight_actions += 1
        elif subscription.state == "cancelled":
            if roll < 0.06:
                on.action_reactivate()
                insight_actions += 1
        elif roll < 0.06:  # an upgrade
            line = on.line_ids[:1]
            line.write({"quantity": line.quantity + insight_rng.randint(1, 2)})
            insight_actions += 1
        elif roll < 0.09 and subscription.line_ids[:1].quantity > 1:  # a downgrade
            line = on.line_ids[:1]
            line.write({"quantity": line.quantity - 1})
            insight_actions += 1
        elif roll < 0.115:
            on.action_cancel("Demo: moved to a competitor")
            insight_actions += 1
        elif roll < 0.125:
            on.action_pause()
            insight_actions += 1
        elif roll < 0.14:  # the customer takes a second subscription
            insight_live |= insight_start(subscription.partner_id, day)
            insight_actions += 1

# Billing goes on from today: each running subscription's next period starts this month or the next.
for subscription in insight_live.filtered(lambda s: s.state in ("active", "past_due")):
    restart = insight_today + relativedelta(days=insight_rng.randint(1, 28))
    subscription.write({"next_invoice_date": restart, "billing_anchor_date": restart})

# The Stripe Billing mirror of the demo set-up: one more seat in Stripe, followed by Odoo.
insight_mirror = insight_env["crm.subscription"].search([("managed_by", "=", "stripe")], limit=1)
if insight_mirror:
    insight_provider = insight_mirror.stripe_provider_id.sudo()
    insight_remote = insight_provider._crm_stripe_call(
        "retrieve_subscription", insight_mirror.stripe_subscription_id
    )
    insight_item = insight_remote["items"]["data"][0]
    client.v1.subscriptions.update(  # noqa: F821
        insight_remote["id"],
        params={"items": [{"id": insight_item["id"], "quantity": (insight_item.get("quantity") or 1) + 1}]},
    )
    insight_env["crm.subscription"]._crm_sync_stripe_subscription(
        insight_provider, insight_provider._crm_stripe_call("retrieve_subscription", insight_remote["id"])
    )

# Invoiced one-off revenue: a trend and a season (low in summer, high before year end).
insight_season = [0.85, 0.9, 1.0, 1.0, 1.05, 0.9, 0.75, 0.8, 1.05, 1.1, 1.2, 1.4]
insight_service = insight_env["product.product"].create(
    {"name": "Implementation services", "type": "service", "list_price": 1000.0}
)
insight_moves = []
for month in range(36):
    first_day = insight_first + relativedelta(months=month)
    total = (
        (6000 + 150 * month) * insight_season[first_day.month - 1] * (1 + insight_rng.uniform(-0.04, 0.04))
    )
    for share in (0.5, 0.3, 0.2):
        day = first_day + relativedelta(days=insight_rng.randint(0, 26))
        insight_moves.append(
            {
                "move_type": "out_invoice",
                "partner_id": insight_rng.choice(insight_partners).id,
                "invoice_date": day,
                "date": day,
                "invoice_line_ids": [
                    (
                        0,
                        0,
                        {
                            "product_id": insight_service.id,
                            "quantity": 1,
                            "price_unit": round(total * share, 2),
                            "tax_ids": [(6, 0, [])],
                        },
                    )
                ],
            }
        )
insight_env["account.move"].with_context(**insight_context).create(insight_moves).action_post()

insight_env["res.partner"]._crm_refresh_subscription_insight(insight_env.company)
insight_env["crm.revenue.forecast"]._crm_refresh(insight_env.company)
insight_env.cr.commit()

insight_env.flush_all()
insight_metric = insight_env["crm.subscription.metric"].search(
    [("company_id", "=", insight_env.company.id), ("month", "=", insight_today.replace(day=1))]
)
insight_counts = dict(
    insight_env["crm.subscription.movement"]._read_group(
        [("company_id", "=", insight_env.company.id)], ["kind"], ["__count"]
    )
)
print(
    f"demo: subscription insight: {len(insight_partners)} subscribers, {insight_actions} subscription "
    f"actions over 36 months, movements {insight_counts}; MRR {insight_metric.mrr:.2f}, "
    f"{insight_metric.customers} paying customers; {len(insight_moves)} invoices of one-off revenue; "
    f"{time.monotonic() - insight_started:.0f} s"
)
