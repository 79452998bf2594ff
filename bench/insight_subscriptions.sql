-- Bulk data of bench/insight_subscriptions.sh, in SQL: :customers customers, :subscriptions
-- subscriptions of company :company (currency :currency, product :product, Stripe provider
-- :provider with card method :method) and 3 years of their MRR movements, classified per
-- customer as the add-on does; 100,000 payment transactions (8 % failed) for the churn signals.
-- Seeded: the same data every run.
DO $$ BEGIN PERFORM setseed(0.2026); END $$;

INSERT INTO res_partner (name, complete_name, active, is_company, type, autopost_bills, create_date, write_date)
SELECT 'Bench Customer ' || g, 'Bench Customer ' || g, true, true, 'contact', 'ask', now(), now()
  FROM generate_series(1, :customers) g;
UPDATE res_partner SET commercial_partner_id = id WHERE name LIKE 'Bench Customer %';
CREATE TEMP TABLE bp AS
SELECT id, row_number() OVER (ORDER BY id) AS rn FROM res_partner WHERE name LIKE 'Bench Customer %';
CREATE INDEX ON bp (rn);

-- Each subscription: its start, seats and price, and what happens to it (r).
CREATE TEMP TABLE bs AS
SELECT g AS n, bp.id AS partner_id,
       CURRENT_DATE - (random() * 1095)::int AS start_date,
       CASE WHEN random() < 0.1 THEN 'year' ELSE 'month' END AS unit,
       (1 + floor(random() * 5))::int AS qty,
       (ARRAY[49, 99, 199])[1 + floor(random() * 3)::int]::numeric AS price,
       random() AS r, random() AS r2, random() AS r3
  FROM generate_series(1, :subscriptions) g JOIN bp ON bp.rn = 1 + (g % :customers);

-- Its monthly amounts over time: start; an upgrade or a downgrade (30 %); a second change
-- (15 %); a cancellation (18 %) or a pause (4 %); a reactivation of some cancelled ones.
CREATE TEMP TABLE ev (n int, date date, seq int, amount numeric, source text);
INSERT INTO ev
SELECT n, start_date, 0, round(qty * price * CASE unit WHEN 'year' THEN 10 / 12.0 ELSE 1 END, 2), 'start' FROM bs;
INSERT INTO ev
SELECT n, LEAST(start_date + 30 + (r2 * 300)::int, CURRENT_DATE), 1,
       round(qty * price * CASE unit WHEN 'year' THEN 10 / 12.0 ELSE 1 END * CASE WHEN r2 < 0.6 THEN 1.5 ELSE 0.5 END, 2),
       'line'
  FROM bs WHERE r < 0.30;
INSERT INTO ev
SELECT n, LEAST(start_date + 340 + (r3 * 300)::int, CURRENT_DATE), 2,
       round(qty * price * CASE unit WHEN 'year' THEN 10 / 12.0 ELSE 1 END * 2, 2), 'line'
  FROM bs WHERE r < 0.15;
INSERT INTO ev
SELECT n, LEAST(start_date + 60 + (r3 * 700)::int, CURRENT_DATE), 3, 0,
       CASE WHEN r > 0.96 THEN 'pause' ELSE 'cancel' END
  FROM bs WHERE r > 0.78;
INSERT INTO ev
SELECT n, LEAST(start_date + 800 + (r2 * 200)::int, CURRENT_DATE), 4,
       round(qty * price * CASE unit WHEN 'year' THEN 10 / 12.0 ELSE 1 END, 2), 'reactivation'
  FROM bs WHERE r > 0.78 AND r <= 0.80;

CREATE INDEX ON ev (n, date, seq);
ANALYZE ev;
ANALYZE bs;
INSERT INTO crm_subscription (name, partner_id, company_id, currency_id, interval_number, interval_unit, state,
                              managed_by, start_date, amount_untaxed, mrr, next_invoice_date, billing_anchor_date,
                              end_date, end_by_cancellation, dunning_attempts, create_date, write_date)
SELECT 'BENCH/' || bs.n, bs.partner_id, :company, :currency, 1, bs.unit,
       CASE WHEN last.amount = 0 AND last.source = 'pause' THEN 'paused'
            WHEN last.amount = 0 THEN 'cancelled'
            WHEN bs.r2 < 0.04 THEN 'past_due' ELSE 'active' END,
       'odoo', bs.start_date,
       round(last_nonzero.amount * CASE bs.unit WHEN 'year' THEN 12 ELSE 1 END, 2),
       last.amount,
       CASE WHEN last.amount > 0 THEN CURRENT_DATE + 1 + (bs.r3 * 27)::int END,
       CASE WHEN last.amount > 0 THEN CURRENT_DATE + 1 + (bs.r3 * 27)::int END,
       CASE WHEN last.amount > 0 AND bs.r3 < 0.03 THEN CURRENT_DATE + 27 END,
       last.amount > 0 AND bs.r3 < 0.03, 0, now(), now()
  FROM bs
  JOIN LATERAL (SELECT amount, source FROM ev WHERE ev.n = bs.n ORDER BY date DESC, seq DESC LIMIT 1) last ON true
  JOIN LATERAL (SELECT amount FROM ev WHERE ev.n = bs.n AND amount > 0 ORDER BY date DESC, seq DESC LIMIT 1)
       last_nonzero ON true;
CREATE TEMP TABLE bsmap AS
SELECT id, substr(name, 7)::int AS n FROM crm_subscription WHERE name LIKE 'BENCH/%';
CREATE INDEX ON bsmap (n);
INSERT INTO crm_subscription_line (product_id, subscription_id, company_id, quantity, price_unit, discount,
                                   price_subtotal, create_date, write_date)
SELECT :product, s.id, :company, 1, s.amount_untaxed, 0, s.amount_untaxed, now(), now()
  FROM crm_subscription s WHERE s.name LIKE 'BENCH/%';

-- The movements: each subscription's change, then classified on its customer's running MRR.
CREATE TEMP TABLE sd AS
SELECT m.id AS subscription_id, bs.partner_id, ev.date, ev.seq, ev.source, ev.amount AS mrr_after,
       COALESCE(LAG(ev.amount) OVER w, 0) AS mrr_before, ev.amount - COALESCE(LAG(ev.amount) OVER w, 0) AS change
  FROM ev JOIN bs ON bs.n = ev.n JOIN bsmap m ON m.n = ev.n
WINDOW w AS (PARTITION BY ev.n ORDER BY ev.date, ev.seq);
DELETE FROM sd WHERE change = 0;
INSERT INTO crm_subscription_movement (date, partner_id, subscription_id, company_id, currency_id,
                                       subscription_currency_id, kind, source, mrr_before, mrr_after, mrr_change,
                                       customer_mrr_before, customer_mrr_after, amount_currency_after,
                                       cohort_month, cohort_age, create_date, write_date)
SELECT date, partner_id, subscription_id, :company, :currency, :currency,
       CASE WHEN cust_after - change <= 0 AND cust_after > 0 THEN CASE WHEN k = 1 THEN 'new' ELSE 'reactivation' END
            WHEN cust_after <= 0 THEN 'churn'
            WHEN change > 0 THEN 'expansion' ELSE 'contraction' END,
       source, mrr_before, mrr_after, change, cust_after - change, cust_after, mrr_after,
       date_trunc('month', first_day)::date,
       ((date_part('year', date) - date_part('year', first_day)) * 12
        + date_part('month', date) - date_part('month', first_day))::int, now(), now()
  FROM (SELECT sd.*, SUM(change) OVER c AS cust_after, row_number() OVER c AS k,
               MIN(date) OVER (PARTITION BY partner_id) AS first_day
          FROM sd WINDOW c AS (PARTITION BY partner_id ORDER BY date, subscription_id, seq
                               ROWS UNBOUNDED PRECEDING)) x
 ORDER BY date, subscription_id, seq;

-- Payments for the churn signals: 100,000 over the last year, 8 % failed.
INSERT INTO payment_transaction (provider_id, payment_method_id, currency_id, partner_id, company_id, reference,
                                 state, amount, operation, create_date, write_date)
SELECT :provider, :method, :currency, bp.id, :company, 'BENCH-TX-' || g,
       CASE WHEN random() < 0.08 THEN 'error' ELSE 'done' END, 99, 'offline',
       now() - (random() * 365 || ' days')::interval, now()
  FROM generate_series(1, 100000) g JOIN bp ON bp.rn = 1 + (g * 7 % :customers);
ANALYZE res_partner;
ANALYZE crm_subscription;
ANALYZE crm_subscription_movement;
ANALYZE payment_transaction;
