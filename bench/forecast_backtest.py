# Backtest of the revenue forecast on a database's history (the demo's: tools/demo.sh), run by
# `odoo shell`:
#
#   python3 tools/odoo_bin.py shell -c CONFIG -d DATABASE --no-http < bench/forecast_backtest.py
#
# For each company: the invoiced revenue of the last 36 complete months (the forecast's own
# source, crm.revenue.forecast._crm_monthly_revenue); the last 6 months are held out, forecast
# from the months before them by the method (trend x seasonal index, services/forecast.py) and by
# the seasonal-naive baseline (the same month a year before); prints both MAPEs and whether the
# method beats the baseline (the target).
from dateutil.relativedelta import relativedelta  # noqa: E402

from odoo.addons.crm_payment_integration.services import forecast as backtest_method  # noqa: E402

HOLDOUT = 6
backtest_env = env  # noqa: F821
backtest_ok = True
for backtest_company in backtest_env["res.company"].search([]):
    backtest_today = backtest_env["crm.subscription"]._crm_company_today(backtest_company)
    backtest_month = backtest_today.replace(day=1)
    backtest_history = backtest_env["crm.revenue.forecast"]._crm_monthly_revenue(
        backtest_company, backtest_month - relativedelta(months=36), backtest_month - relativedelta(months=1)
    )
    while backtest_history and not backtest_history[0][1]:
        backtest_history.pop(0)
    backtest_values = [amount for __, amount in backtest_history]
    if len(backtest_values) < 12 + HOLDOUT:
        print(
            f"result {backtest_company.name}: {len(backtest_values)} months of history, too few to backtest"
        )
        continue
    ours, naive = backtest_method.backtest(backtest_values, HOLDOUT)
    held = backtest_values[-HOLDOUT:]
    train = backtest_values[:-HOLDOUT]
    print(f"result {backtest_company.name}: {len(backtest_values)} months; held out the last {HOLDOUT}")
    for (first_day, actual), predicted, baseline in zip(
        backtest_history[-HOLDOUT:],
        backtest_method.forecast(train, HOLDOUT),
        backtest_method.seasonal_naive(train, HOLDOUT),
        strict=True,
    ):
        print(
            f"  {first_day:%Y-%m}: actual {actual:12.2f}  forecast {predicted:12.2f}  "
            f"seasonal-naive {baseline:12.2f}"
        )
    verdict = "ok" if ours < naive else "FAIL"
    backtest_ok &= ours < naive
    print(
        f"result {backtest_company.name}: MAPE trend x season {ours:.2f} % vs seasonal-naive {naive:.2f} % "
        f"(target: below the baseline) {verdict}"
    )
print("result verdict:", "ok" if backtest_ok else "FAIL")
