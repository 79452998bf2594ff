"""Billing dates of a subscription, in plain Python: every period is counted from an anchor.

Period ``n`` starts ``n`` intervals after the anchor, computed from the anchor itself and never
by adding an interval to the previous date. Months and years keep the anchor's day where the
month has it, and the month's last day where it does not, as Stripe's ``billing_cycle_anchor``
does: from 31 January, 28 February (29 in a leap year), 31 March, 30 April, 31 May...; yearly
from 29 February, 28 February for three years, then 29 February again. Days and weeks are plain
additions. https://docs.stripe.com/billing/subscriptions/billing-cycle
"""

from datetime import timedelta

from dateutil.relativedelta import relativedelta

MONTHS_PER_UNIT = {"month": 1, "year": 12}
DAYS_PER_UNIT = {"day": 1, "week": 7}


def period_start(anchor, unit, number, index):
    """Return the first day of period ``index`` (0 starts on the anchor; negative: before it).

    :param date anchor: the day the periods are counted from
    :param str unit: ``day``, ``week``, ``month`` or ``year``
    :param int number: how many units make one period
    :param int index: the period's number
    :rtype: date
    """
    if unit in MONTHS_PER_UNIT:
        # relativedelta keeps the anchor's day, or the month's last day when it is shorter.
        return anchor + relativedelta(months=MONTHS_PER_UNIT[unit] * number * index)
    return anchor + timedelta(days=DAYS_PER_UNIT[unit] * number * index)


def period_index(anchor, unit, number, day):
    """Return the number of the period holding ``day``.

    :return: ``index`` such that ``period_start(index) <= day < period_start(index + 1)``
    :rtype: int
    """
    if unit in MONTHS_PER_UNIT:
        months = (day.year - anchor.year) * 12 + day.month - anchor.month
        index = months // (MONTHS_PER_UNIT[unit] * number)
    else:
        index = (day - anchor).days // (DAYS_PER_UNIT[unit] * number)
    # The estimate is off by one at most, when the anchor's day is past the month's length.
    while period_start(anchor, unit, number, index) > day:
        index -= 1
    while period_start(anchor, unit, number, index + 1) <= day:
        index += 1
    return index


def period_bounds(anchor, unit, number, day):
    """Return the first and the last day of the period holding ``day``.

    :rtype: tuple(date, date)
    """
    index = period_index(anchor, unit, number, day)
    return (
        period_start(anchor, unit, number, index),
        period_start(anchor, unit, number, index + 1) - timedelta(days=1),
    )


def is_period_start(anchor, unit, number, day):
    """Return whether a period counted from ``anchor`` starts on ``day``."""
    return period_bounds(anchor, unit, number, day)[0] == day


def next_period_start(anchor, unit, number, start):
    """Return the start of the period following the one starting on ``start``.

    ``start`` is normally a period start (then the next one is returned). A date that is not
    (one set before the anchor was stored) is followed by the first period start at least one
    interval later: a period is never shorter than its interval, the customer never pays a full
    price for a few days.

    :rtype: date
    """
    one_later = period_start(start, unit, number, 1)
    index = period_index(anchor, unit, number, one_later)
    first = period_start(anchor, unit, number, index)
    return first if first >= one_later else period_start(anchor, unit, number, index + 1)


def previous_period_start(anchor, unit, number, start):
    """Return the start of the period ending the day before ``start`` (a period start).

    :rtype: date
    """
    return period_bounds(anchor, unit, number, start - timedelta(days=1))[0]


def remaining_fraction(start, next_start, day):
    """Return the share of the period ``[start, next_start)`` left from ``day`` on, ``day`` included.

    :rtype: float
    """
    return (next_start - day).days / (next_start - start).days


def legacy_anchor(start_date, trial_end_date, next_date, unit, number):
    """Return the anchor of a subscription billed before anchors were stored.

    Its start (or its trial's end) when its next billing date is on that grid, or when the date
    only drifted from a month's end (31 January → 28 February → 28 March: chained months), so
    that it is billed on the month's end again; otherwise (billing restarted after a pause or a
    reactivation) its next billing date, so that its cycle does not move.

    :rtype: date
    """
    candidates = [day for day in (trial_end_date, start_date) if day and day <= next_date]
    for candidate in candidates:
        if is_period_start(candidate, unit, number, next_date):
            return candidate
    for candidate in candidates:
        if unit in MONTHS_PER_UNIT and 28 <= next_date.day < candidate.day:
            return candidate
    return next_date
