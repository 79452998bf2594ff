# Insight demo: 36 months of payment history over two gateways (Stripe and Odoo's
# payment_demo), cards of several brands and countries and SEPA debits, successes, declines,
# retries and refunds, written in set-based SQL; invoices and credit notes over products,
# categories and UTM channels through the ORM; then the customers' value figures (CLTV, RFM).


def _insight_demo():  # noqa: C901 - one part of the demo, kept in one scope
    import time
    from datetime import date as _date

    from dateutil.relativedelta import relativedelta as _rd

    started = time.monotonic()
    cr = env.cr  # noqa: F821
    company = env.company  # noqa: F821
    usd_company = company.currency_id
    eur = env.ref("base.EUR")  # noqa: F821
    eur.active = True
    # Monthly EUR rates over the 3 years (1 USD = 0.88 .. 0.96 EUR).
    first_month = _date.today().replace(day=1) - _rd(months=36)
    env["res.currency.rate"].create(  # noqa: F821
        [
            {
                "currency_id": eur.id,
                "company_id": company.id,
                "name": first_month + _rd(months=i),
                "rate": 0.88 + (i % 9) / 100,
            }
            for i in range(37)
        ]
    )
    demo_provider = env.ref("payment.payment_provider_demo")  # noqa: F821
    demo_provider.write({"state": "test", "company_id": company.id})
    card = env.ref("payment.payment_method_card")  # noqa: F821
    demo_method = env.ref("payment_demo.payment_method_demo")  # noqa: F821
    countries = [env.ref(f"base.{code}") for code in ("us", "fr", "de", "be", "uk", "jp", "nl", "es")]  # noqa: F821
    sales = env["crm.team"].search([], limit=1)  # noqa: F821
    admin_user = env.ref("base.user_admin")  # noqa: F821
    customers = env["res.partner"].create(  # noqa: F821
        [
            {
                "name": f"Insight Customer {n:02d}",
                "is_company": True,
                "email": f"insight{n:02d}@example.com",
                "country_id": countries[n % len(countries)].id,
                "user_id": admin_user.id,
            }
            for n in range(1, 41)
        ]
    )
    env.flush_all()  # noqa: F821

    # === PAYMENTS (SQL) === #
    common = {
        "ids": customers.ids,
        "stripe": provider.id,  # noqa: F821
        "demo": demo_provider.id,
        "card": card.id,
        "demo_method": demo_method.id,
        "company": company.id,
        "usd": usd_company.id,
        "eur": eur.id,
        "eu": [c.id for c in countries if c.code in ("FR", "DE", "BE", "NL", "ES")],
        "us_country": env.ref("base.us").id,  # noqa: F821
        "uid": env.uid,  # noqa: F821
        "team": sales.id or None,
    }
    cr.execute(
        """
        WITH customers AS (
            SELECT p.id, p.country_id, p.user_id, row_number() OVER (ORDER BY p.id) AS n
              FROM res_partner p WHERE p.id = ANY(%(ids)s)
        ), attempts AS (
            SELECT c.*, mo.m,
                   date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => mo.m)
                       + make_interval(days => ((c.n * 7) %% 26)::int, hours => 10) AS ts,
                   abs(hashtext(c.id || '-' || mo.m)) %% 1000 AS h
              FROM customers c CROSS JOIN generate_series(0, 35) AS mo(m)
             WHERE mo.m < 36 - (c.n %% 12) * 2            -- customers start over the 3 years
               AND NOT (c.n %% 7 = 0 AND mo.m < 8)       -- some stopped paying months ago
               AND (c.n + mo.m) %% 6 <> 0                -- and skip a month now and then
        ), shaped AS (
            SELECT a.*,
                   CASE WHEN a.n %% 10 = 0 THEN 'demo' WHEN a.n %% 5 = 1 THEN 'sepa_debit' ELSE 'card' END
                       AS method,
                   (ARRAY['visa', 'mastercard', 'amex'])[1 + (a.n %% 3)] AS brand,
                   CASE WHEN a.h %% 10 = 0 THEN %(us_country)s ELSE a.country_id END AS card_country,
                   CASE WHEN a.country_id = ANY(%(eu)s) THEN %(eur)s ELSE %(usd)s END AS currency,
                   round((40 + (a.n * 37) %% 400) * (1 + (35 - a.m) / 70.0), 2) AS amount
              FROM attempts a
        )
        INSERT INTO payment_transaction (
            provider_id, payment_method_id, currency_id, partner_id, company_id, reference, state,
            amount, operation, create_date, write_date, last_state_change, create_uid, write_uid,
            is_post_processed, partner_name, partner_email, partner_country_id,
            crm_method_type, crm_card_brand, crm_card_country_id, crm_user_id, crm_team_id,
            crm_decline_code, crm_decline_reason, state_message)
        SELECT CASE WHEN s.method = 'demo' THEN %(demo)s ELSE %(stripe)s END,
               CASE WHEN s.method = 'demo' THEN %(demo_method)s ELSE %(card)s END,
               s.currency, s.id, %(company)s, 'INSIGHT-' || s.id || '-' || s.m,
               CASE WHEN s.h %% 100 < (CASE s.method WHEN 'sepa_debit' THEN 4 WHEN 'demo' THEN 15
                                        ELSE CASE s.brand WHEN 'amex' THEN 20 WHEN 'mastercard' THEN 12
                                        ELSE 8 END END)
                    THEN 'error' ELSE 'done' END,
               s.amount, 'offline', s.ts, s.ts, s.ts, %(uid)s, %(uid)s, true,
               'Insight', 'insight@example.com', s.country_id,
               CASE WHEN s.method = 'demo' THEN NULL ELSE s.method END,
               CASE WHEN s.method = 'card' THEN s.brand END,
               CASE WHEN s.method <> 'demo' THEN s.card_country END,
               s.user_id, %(team)s, NULL, NULL, NULL
          FROM shaped s
        """,
        common,
    )
    # Declines: Stripe's reason; each decline retried 3 days later, 3 in 4 retries succeed.
    cr.execute(
        """
        UPDATE payment_transaction t
           SET crm_decline_code = (ARRAY['insufficient_funds', 'expired_card', 'do_not_honor',
                                         'card_declined'])[1 + t.id %% 4],
               crm_decline_reason = (ARRAY['Insufficient funds', 'Expired card', 'Do not honor',
                                           'Card declined'])[1 + t.id %% 4]
         WHERE t.reference LIKE 'INSIGHT-%%' AND t.state = 'error' AND t.provider_id = %(stripe)s;
        UPDATE payment_transaction t
           SET state_message = 'You selected the following demo payment status: error'
         WHERE t.reference LIKE 'INSIGHT-%%' AND t.state = 'error' AND t.provider_id = %(demo)s;
        INSERT INTO payment_transaction (
            provider_id, payment_method_id, currency_id, partner_id, company_id, reference, state,
            amount, operation, create_date, write_date, last_state_change, create_uid, write_uid,
            is_post_processed, partner_name, crm_method_type, crm_card_brand, crm_card_country_id,
            crm_user_id, crm_team_id)
        SELECT provider_id, payment_method_id, currency_id, partner_id, company_id, reference || '-R',
               CASE WHEN id %% 4 = 0 THEN 'error' ELSE 'done' END, amount, operation,
               last_state_change + interval '3 days', last_state_change + interval '3 days',
               last_state_change + interval '3 days', create_uid, write_uid, true, partner_name,
               crm_method_type, crm_card_brand, crm_card_country_id, crm_user_id, crm_team_id
          FROM payment_transaction
         WHERE reference LIKE 'INSIGHT-%%' AND state = 'error'
           AND last_state_change < now() - interval '4 days';
        -- Refunds: about 3 %% of the payments, half refunded a week later.
        INSERT INTO payment_transaction (
            provider_id, payment_method_id, currency_id, partner_id, company_id, reference, state,
            amount, operation, source_transaction_id, create_date, write_date, last_state_change,
            create_uid, write_uid, is_post_processed, partner_name, crm_user_id, crm_team_id,
            crm_method_type, crm_card_brand, crm_card_country_id)
        SELECT provider_id, payment_method_id, currency_id, partner_id, company_id, 'R-' || reference,
               'done', -round(amount / 2, 2), 'refund', id, last_state_change + interval '7 days',
               last_state_change + interval '7 days', last_state_change + interval '7 days',
               create_uid, write_uid, true, partner_name, crm_user_id, crm_team_id,
               crm_method_type, crm_card_brand, crm_card_country_id
          FROM payment_transaction
         WHERE reference LIKE 'INSIGHT-%%' AND state = 'done' AND abs(hashtext(reference)) %% 100 < 3
           AND last_state_change < now() - interval '8 days';
        """,
        common,
    )
    cr.execute(
        "SELECT count(*), count(*) FILTER (WHERE state = 'error') FROM payment_transaction "
        "WHERE reference LIKE '%%INSIGHT-%%'"
    )
    tx_count, failed = cr.fetchone()
    env.invalidate_all()  # noqa: F821
    # Amounts in the company's currency at each transaction's date, as Odoo converts them.
    txs = env["payment.transaction"].search([("reference", "like", "INSIGHT-")])  # noqa: F821
    env.add_to_compute(txs._fields["crm_amount_company"], txs)  # noqa: F821
    env.flush_all()  # noqa: F821

    # === INVOICES (ORM) === #
    categories = {
        name: env["product.category"].create({"name": name})  # noqa: F821
        for name in ("Software", "Services", "Hardware")
    }
    products = env["product.product"].create(  # noqa: F821
        [
            {
                "name": "Cloud licence",
                "categ_id": categories["Software"].id,
                "type": "service",
                "list_price": 120,
            },
            {
                "name": "Onboarding",
                "categ_id": categories["Services"].id,
                "type": "service",
                "list_price": 450,
            },
            {
                "name": "Support hours",
                "categ_id": categories["Services"].id,
                "type": "service",
                "list_price": 90,
            },
            {"name": "Card reader", "categ_id": categories["Hardware"].id, "type": "consu", "list_price": 60},
        ]
    )
    Utm = env["utm.source"]  # noqa: F821
    sources = [Utm.create({"name": name}) for name in ("Newsletter", "Google Ads", "Referral")]
    mediums = [env.ref("utm.utm_medium_email"), env.ref("utm.utm_medium_website")]  # noqa: F821
    campaign = env["utm.campaign"].create({"name": "Spring launch"})  # noqa: F821
    leads = env["crm.lead"].create(  # noqa: F821
        [
            {
                "name": f"{customer.name} - subscription",
                "type": "opportunity",
                "partner_id": customer.id,
                "user_id": admin_user.id,
                "team_id": sales.id,
                "source_id": sources[i % 3].id,
                "medium_id": mediums[i % 2].id,
                "campaign_id": campaign.id if i % 4 == 0 else False,
            }
            for i, customer in enumerate(customers)
        ]
    )
    term = env.ref("account.account_payment_term_30days")  # noqa: F821
    moves = []
    for i, (customer, lead) in enumerate(zip(customers, leads, strict=True)):
        for k in range(6):
            day = _date.today() - _rd(months=(i % 6) + k * 6, days=i % 20)
            moves.append(
                {
                    "move_type": "out_invoice",
                    "partner_id": customer.id,
                    "invoice_date": day,
                    "crm_lead_id": lead.id if k % 2 == 0 else False,
                    "invoice_user_id": admin_user.id,
                    "invoice_payment_term_id": term.id,
                    "invoice_line_ids": [
                        (
                            0,
                            0,
                            {
                                "product_id": products[(i + k) % 4].id,
                                "quantity": 1 + (i + k) % 3,
                                "tax_ids": [],
                            },
                        ),
                        (0, 0, {"product_id": products[(i + k + 1) % 4].id, "quantity": 1, "tax_ids": []}),
                    ],
                }
            )
    invoices = env["account.move"].create(moves)  # noqa: F821
    invoices.action_post()
    credit_notes = invoices[::25]._reverse_moves(cancel=True)  # a credit note for every 25th invoice
    to_pay = (invoices - credit_notes.reversed_entry_id).filtered(
        lambda m: m.invoice_date < _date.today() - _rd(months=1) and m.id % 5 != 0
    )
    env["account.payment.register"].with_context(  # noqa: F821
        active_model="account.move", active_ids=to_pay.ids
    ).create({"group_payment": True})._create_payments()

    # === CUSTOMER VALUE === #
    env["res.partner"]._crm_recompute_customer_value()  # noqa: F821
    env.cr.commit()  # noqa: F821
    segments = {
        segment: count
        for segment, count in env["res.partner"]._read_group(  # noqa: F821
            [("id", "in", customers.ids)], ["crm_rfm_segment"], ["__count"]
        )
    }
    print(
        f"demo: insight - {tx_count} payment transactions over 36 months ({failed} declined, "
        f"Stripe + payment_demo), {len(invoices)} invoices, {len(credit_notes)} credit notes, "
        f"RFM segments {segments} ({time.monotonic() - started:.0f} s)"
    )


_insight_demo()
