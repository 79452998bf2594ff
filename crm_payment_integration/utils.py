"""Small helpers shared by the models: translated messages for gateway errors, Stripe values."""

from datetime import datetime, timezone

import psycopg2.errors

from odoo import _
from odoo.exceptions import UserError
from odoo.tools import SQL, mute_logger

from .const import HARD_DECLINE_CODES


class Ignored(str):
    """The result of an event handler that matched nothing this add-on keeps: the reason, in
    words (a string, so that a caller may still join or show it).

    The ledger stores such an event as ``ignored`` with the reason (see
    ``crm.payment.event._crm_process``); a handler returns one only when it changed nothing.
    """

    __slots__ = ()


def notification(message, title=None, kind="success", sticky=False, reload=True):
    """The client action showing a notification, then reloading the view (or closing a dialog).

    :param str kind: ``success``, ``warning``, ``danger`` or ``info``
    :return: the action; without a title, it has no ``title`` key at all (XML-RPC cannot send
        ``None``; the web client shows no title either way)
    """
    params = {
        "message": message,
        "type": kind,
        "sticky": sticky,
        "next": {"type": "ir.actions.client", "tag": "soft_reload"}
        if reload
        else {"type": "ir.actions.act_window_close"},
    }
    if title:
        params["title"] = title
    return {"type": "ir.actions.client", "tag": "display_notification", "params": params}


def decline_reason(decline_code):
    """Return a decline code of Stripe in words a salesperson can repeat to the customer.

    :param str decline_code: Stripe's ``decline_code`` (or ``code``), e.g. ``insufficient_funds``
    :return: the reason, translated
    :rtype: str
    """
    reasons = {
        "authentication_required": _("the bank requires the customer to authenticate"),
        "card_declined": _("the card was declined by the bank"),
        "card_velocity_exceeded": _("the card's limit was exceeded"),
        "do_not_honor": _("the bank refused the payment without a reason"),
        "expired_card": _("the card has expired"),
        "fraudulent": _("the payment was flagged as fraudulent"),
        "generic_decline": _("the card was declined by the bank"),
        "incorrect_cvc": _("the security code is incorrect"),
        "insufficient_funds": _("the card has insufficient funds"),
        "invalid_account": _("the card or its account is invalid"),
        "lost_card": _("the card was reported lost"),
        "pickup_card": _("the card cannot be used (reported lost or stolen)"),
        "processing_error": _("an error occurred while processing the card"),
        "stolen_card": _("the card was reported stolen"),
    }
    return reasons.get(decline_code) or _("declined by the bank (code %(code)s)", code=decline_code)


def gateway_error_message(error, provider=None):
    """Return the message a user should read for a :class:`StripeGatewayError`, saying what to do.

    :param StripeGatewayError error: the classified error
    :param recordset provider: the `payment.provider` the call was made with, if any
    :return: the translated message
    :rtype: str
    """
    name = provider.display_name if provider else "Stripe"
    kind = error.kind
    if kind == "authentication":
        return _(
            "Stripe refused the secret key of %(provider)s. Paste a valid secret key (test keys "
            "start with sk_test_) on the payment provider.",
            provider=name,
        )
    if kind == "permission":
        return _(
            "The key of %(provider)s is not allowed to do this in Stripe. Use a secret key with "
            "full access or grant this permission to the restricted key.",
            provider=name,
        )
    if kind == "not_found":
        return _(
            "Stripe does not know this object (%(detail)s). It may have been deleted in Stripe: "
            "synchronise the partner again.",
            detail=error.message,
        )
    if kind == "card_declined":
        code = error.decline_code or error.code or "card_declined"
        advice = (
            _("Ask the customer for another payment method.")
            if code in HARD_DECLINE_CODES
            else _("Ask the customer to contact their bank or use another payment method.")
        )
        return _(
            "The payment was declined: %(reason)s. %(advice)s", reason=decline_reason(code), advice=advice
        )
    if kind == "rate_limited":
        return _("Stripe is receiving too many requests right now. Wait a minute and try again.")
    if kind == "network":
        return _(
            "Stripe could not be reached (%(detail)s). Check the server's connection and try again.",
            detail=error.message,
        )
    if kind == "idempotency":
        return _("Stripe already received this request with different data. Reload the page and try again.")
    if kind == "invalid_request":
        return _("Stripe refused the request: %(detail)s", detail=error.message)
    return _("Stripe had a problem (%(detail)s). Try again in a few minutes.", detail=error.message)


def raise_user_error(error, provider=None):
    """Raise the :class:`UserError` matching a gateway error.

    :raise UserError: always
    """
    raise UserError(gateway_error_message(error, provider)) from error


def stripe_date(timestamp):
    """Return the UTC date of a Stripe timestamp (seconds since the epoch), ``False`` for none."""
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).date() if timestamp else False


def stripe_id(value):
    """Return the id of an expandable Stripe field, whether it holds an id or the object."""
    return value.get("id") if isinstance(value, dict) else value


def lock_nowait(records, message):
    """Lock the rows of ``records`` until the end of the transaction, or refuse at once.

    ``FOR NO KEY UPDATE``: rows referring to them (a record of another transaction) may still
    be inserted meanwhile.

    :param str message: what the user reads when another transaction holds them
    :raise UserError: when another transaction holds one of the rows
    """
    if not records:
        return
    try:
        with mute_logger("odoo.sql_db"), records.env.cr.savepoint(flush=False):
            records.env.cr.execute(
                SQL(
                    "SELECT id FROM %s WHERE id IN %s FOR NO KEY UPDATE NOWAIT",
                    SQL.identifier(records._table),
                    tuple(records.ids),
                )
            )
    except psycopg2.errors.LockNotAvailable:
        raise UserError(message) from None
