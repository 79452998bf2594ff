"""Revenue forecast: trend × seasonal index (classical multiplicative decomposition).

Pure Python, checkable by hand with a spreadsheet:

1. ``y[0..n-1]``: revenue of the last ``n`` complete months (oldest first).
2. Seasonal index, when there are at least two years (``n >= 2 × 12``): the 2×12 centred moving
   average ``CMA[t] = (y[t-6]/2 + y[t-5] + … + y[t+5] + y[t+6]/2) / 12`` for ``6 <= t < n-6``;
   the ratio ``y[t] / CMA[t]``; the index of a calendar position (``t mod 12``) is the mean of
   its ratios, scaled so that the 12 indexes average 1. With less history every index is 1.
3. Deseasonalised series ``d[t] = y[t] / S[t mod 12]``; a straight line ``d = a + b·t`` fitted
   by least squares on the last ``min(n, 24)`` months.
4. Forecast of month ``n+h-1`` (``h = 1..12``): ``(a + b·(n+h-1)) × S[(n+h-1) mod 12]``, never
   below 0.

The baseline it is compared with is the seasonal-naive forecast: the same month a year before.
"""

PERIOD = 12
TREND_MONTHS = 24


def seasonal_indexes(series, period=PERIOD):
    """Return the ``period`` seasonal indexes of ``series`` (position ``t mod period``)."""
    n = len(series)
    if n < 2 * period:
        return [1.0] * period
    half = period // 2
    ratios = [[] for __ in range(period)]
    for t in range(half, n - half):
        window = series[t - half : t + half + 1]
        cma = (window[0] / 2 + sum(window[1:-1]) + window[-1] / 2) / period
        if cma:
            ratios[t % period].append(series[t] / cma)
    raw = [sum(r) / len(r) if r else 1.0 for r in ratios]
    mean = sum(raw) / period
    return [value / mean for value in raw] if mean else [1.0] * period


def linear_trend(values, offset=0):
    """Return ``(a, b)`` of the least-squares line ``a + b·t`` through ``values`` taken at
    ``t = offset, offset + 1, …``."""
    n = len(values)
    if n == 1:
        return values[0], 0.0
    ts = range(offset, offset + n)
    t_mean = sum(ts) / n
    v_mean = sum(values) / n
    var = sum((t - t_mean) ** 2 for t in ts)
    b = sum((t - t_mean) * (v - v_mean) for t, v in zip(ts, values, strict=True)) / var if var else 0.0
    return v_mean - b * t_mean, b


def forecast(series, horizon=12, period=PERIOD):
    """Return the ``horizon`` next months of ``series`` (see the module's docstring)."""
    n = len(series)
    if not n:
        return [0.0] * horizon
    indexes = seasonal_indexes(series, period)
    deseasonalised = [value / (indexes[t % period] or 1.0) for t, value in enumerate(series)]
    start = max(0, n - TREND_MONTHS)
    a, b = linear_trend(deseasonalised[start:], offset=start)
    return [max(0.0, (a + b * t) * indexes[t % period]) for t in range(n, n + horizon)]


def seasonal_naive(series, horizon=12, period=PERIOD):
    """Return the seasonal-naive forecast: each month as the same month a year before."""
    n = len(series)
    if n < period:
        return [series[-1] if series else 0.0] * horizon
    return [series[n - period + (h % period)] for h in range(horizon)]


def mape(actual, predicted):
    """Mean absolute percentage error (%) over the months whose actual value is not 0."""
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if a]
    if not pairs:
        return 0.0
    return 100.0 * sum(abs(a - p) / abs(a) for a, p in pairs) / len(pairs)


def backtest(series, holdout=6, period=PERIOD):
    """Hold out the last ``holdout`` months, forecast them from the rest with the method and
    with the seasonal-naive baseline.

    :return: ``(method MAPE, baseline MAPE)`` in %
    """
    train, test = series[:-holdout], series[-holdout:]
    return (
        mape(test, forecast(train, holdout, period)),
        mape(test, seasonal_naive(train, holdout, period)),
    )
