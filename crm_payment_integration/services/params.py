"""Stripe parameters built from Odoo's values, within what Stripe's API reference accepts.

Odoo stores what people type: an email field holding several addresses, names and address lines
of any length, empty fields, VAT numbers with spaces and dots. Stripe refuses most of that
("Invalid email address", "must be at most 256 characters"), while localstripe accepts it. Every
parameter describing a partner, and every metadata dict, is built here:

- an empty value is left out when an object is created, and sent as ``""`` (Stripe's way to clear
  a field) when it is updated;
- a text longer than Stripe's limit is cut on a character boundary (Stripe counts characters,
  not bytes; a combining accent is never separated from its letter);
- a value that cutting would make wrong (an email without a valid address, a phone number too
  long, a country that is not an ISO code, a malformed tax id) is left out and reported in a
  :class:`LeftOut` for the user to fix.

Pure Python (only Odoo's email parser is borrowed), so that it is unit-tested without a database.
"""

import re
import unicodedata
from collections import namedtuple

from odoo.tools.mail import email_split, single_email_re

from .. import const

LeftOut = namedtuple("LeftOut", ["field", "value", "reason"])
LeftOut.__doc__ = """A partner value not sent to Stripe.

:param str field: the Odoo field (``email``, ``phone``, ``country_id``, ``vat``)
:param str value: the value as Odoo has it
:param str reason: ``invalid_email``, ``invalid_phone``, ``invalid_country`` or ``invalid_tax_id``
"""

ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "state", "country")
_PHONE_FORMATTING = re.compile(r"\(0\)|[\s.\-/()]")
_TAX_ID_FORMATTING = re.compile(r"[\s.\-/]")
# The VAT numbers of the EU (VIES formats, after the country prefix; Greece's prefix is EL).
# See https://docs.stripe.com/billing/customer/tax-ids#supported-tax-id.
EU_VAT_PATTERNS = {
    "AT": r"U\d{8}",
    "BE": r"[01]\d{9}",
    "BG": r"\d{9,10}",
    "CY": r"\d{8}[A-Z]",
    "CZ": r"\d{8,10}",
    "DE": r"\d{9}",
    "DK": r"\d{8}",
    "EE": r"\d{9}",
    "EL": r"\d{9}",
    "ES": r"[0-9A-Z]\d{7}[0-9A-Z]",
    "FI": r"\d{8}",
    "FR": r"[0-9A-Z]{2}\d{9}",
    "HR": r"\d{11}",
    "HU": r"\d{8}",
    "IE": r"\d{7}[A-W][A-IW]?|\d[A-Z+*]\d{5}[A-W]",
    "IT": r"\d{11}",
    "LT": r"\d{9}|\d{12}",
    "LU": r"\d{8}",
    "LV": r"\d{11}",
    "MT": r"\d{8}",
    "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}",
    "PT": r"\d{9}",
    "RO": r"\d{2,10}",
    "SE": r"\d{12}",
    "SI": r"\d{8}",
    "SK": r"\d{10}",
}
_JOINERS = {"\u200d", "\u034f"}  # zero-width joiner, combining grapheme joiner


def text(value):
    """Return a value as Stripe takes text: ``""`` for none, without surrounding spaces, NUL
    characters or lone surrogates (which cannot be encoded in UTF-8)."""
    if value is None or value is False:
        return ""
    value = str(value).replace("\x00", "")
    if any("\ud800" <= char <= "\udfff" for char in value):
        value = "".join(char for char in value if not "\ud800" <= char <= "\udfff")
    return value.strip()


def cut(value, max_length):
    """Return a text of at most ``max_length`` characters, cut where a character (and the accents
    or joiners that belong to it) ends.

    :param value: any value, ``None``/``False`` meaning empty
    :param int max_length: Stripe's limit, in characters
    :rtype: str
    """
    value = text(value)
    if len(value) <= max_length:
        return value
    end = max_length
    # The character just after the cut must start a new one: back off over the marks (and
    # joiners, variation selectors) that belong to the last character kept, and that character.
    while end > 0 and _continues_character(value[end]):
        end -= 1
    return value[:end].rstrip()


def _continues_character(char):
    return (
        unicodedata.combining(char) != 0
        or char in _JOINERS
        or "\ufe00" <= char <= "\ufe0f"  # variation selectors
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin tone modifiers
    )


def first_email(value):
    """Return the first address of an email field that Stripe accepts, or ``""``.

    Odoo lets a partner's email hold several addresses (``billing@acme.example,
    ceo@acme.example``), a display name (``Acme <billing@acme.example>``) or stray spaces; Stripe
    takes one plain address.

    :rtype: str
    """
    for address in email_split(text(value)):
        address = address.strip()
        if len(address) <= const.CUSTOMER_EMAIL_MAX and single_email_re.match(address):
            return address
    return ""


def phone(value):
    """Return a phone number Stripe accepts (at most 20 characters), or ``""``.

    A number written with spaces, dots or dashes that does not fit is sent without them; one that
    still does not fit (two numbers in one field, an extension) is not sent: a number cut short
    would reach someone else.

    :rtype: str
    """
    value = text(value)
    if len(value) > const.CUSTOMER_PHONE_MAX:
        value = _PHONE_FORMATTING.sub("", value)
    return value if len(value) <= const.CUSTOMER_PHONE_MAX else ""


def country(value):
    """Return an ISO 3166-1 alpha-2 country code, or ``""``."""
    value = text(value).upper()
    return value if re.fullmatch(r"[A-Z]{2}", value) else ""


def customer_params(values, update=False):
    """Return the Stripe Customer parameters describing a partner, and what was left out.

    :param dict values: the partner's ``name``, ``email``, ``phone``, ``mobile``, ``street``,
        ``street2``, ``city``, ``zip``, ``state`` (code), ``country`` (code) and ``metadata``
        (a dict); missing or falsy values are empty
    :param bool update: parameters of an update (empty values clear Stripe's) rather than of a
        creation (empty values are left out)
    :return: ``(params, left_out)``, ``left_out`` a list of :class:`LeftOut`
    :rtype: tuple
    """
    params, left_out = {}, []

    def put(key, value):
        if value or update:
            params[key] = value

    put("name", cut(values.get("name"), const.CUSTOMER_NAME_MAX))
    email = first_email(values.get("email"))
    if email or not text(values.get("email")):
        put("email", email)
    else:
        left_out.append(LeftOut("email", text(values.get("email")), "invalid_email"))
    number = ""
    for field in ("phone", "mobile"):
        number = phone(values.get(field))
        if number:
            break
    if number or not (text(values.get("phone")) or text(values.get("mobile"))):
        put("phone", number)
    else:
        field = "phone" if text(values.get("phone")) else "mobile"
        left_out.append(LeftOut(field, text(values.get(field)), "invalid_phone"))
    address = {
        "line1": cut(values.get("street"), const.ADDRESS_FIELD_MAX),
        "line2": cut(values.get("street2"), const.ADDRESS_FIELD_MAX),
        "city": cut(values.get("city"), const.ADDRESS_FIELD_MAX),
        "postal_code": cut(values.get("zip"), const.ADDRESS_FIELD_MAX),
        "state": cut(values.get("state"), const.ADDRESS_FIELD_MAX),
        "country": country(values.get("country")),
    }
    if text(values.get("country")) and not address["country"]:
        left_out.append(LeftOut("country_id", text(values.get("country")), "invalid_country"))
        del address["country"]  # Stripe keeps the country it has
    if any(address.values()):
        params["address"] = address if update else {key: value for key, value in address.items() if value}
    elif update and len(address) == len(ADDRESS_FIELDS):
        params["address"] = ""  # Stripe's way to clear the whole address
    meta = metadata(values.get("metadata") or {}, update=update)
    if meta:
        params["metadata"] = meta
    return params, left_out


def tax_id(vat, country_code):
    """Return the Stripe tax id ``(type, value)`` of a partner's VAT number.

    :param str vat: the VAT number as typed in Odoo (spaces, dots and a missing country prefix
        are fine)
    :param str country_code: the partner's country
    :return: ``(type, value)``; ``(None, None)`` when there is nothing to send (no VAT, or a
        country whose tax ids this add-on does not send); ``(type, None)`` when the number is not
        one Stripe accepts for its type
    :rtype: tuple
    """
    vat = text(vat).upper()
    tax_type = const.TAX_ID_TYPES.get(country(country_code))
    if not (vat and tax_type):
        return None, None
    compact = _TAX_ID_FORMATTING.sub("", vat)
    value = None
    if tax_type == "eu_vat":
        if compact.startswith("GR"):
            compact = "EL" + compact[2:]
        if compact[:1].isdigit() or compact[:2] not in EU_VAT_PATTERNS:
            compact = {"GR": "EL"}.get(country_code.upper(), country_code.upper()) + compact
        pattern = EU_VAT_PATTERNS.get(compact[:2])
        value = compact if pattern and re.fullmatch(pattern, compact[2:]) else None
    elif tax_type == "gb_vat":
        if compact[:1].isdigit():
            compact = "GB" + compact
        value = compact if re.fullmatch(r"GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})", compact) else None
    elif tax_type == "ch_vat":
        match = re.fullmatch(r"(?:CHE)?(\d{9})(MWST|TVA|IVA)?", compact)
        if match:
            digits = match.group(1)
            value = f"CHE-{digits[:3]}.{digits[3:6]}.{digits[6:]} {match.group(2) or 'MWST'}"
    elif tax_type == "no_vat":
        match = re.fullmatch(r"(?:NO)?(\d{9})(?:MVA)?", compact)
        value = f"{match.group(1)}MVA" if match else None
    elif tax_type == "au_abn":
        value = compact if re.fullmatch(r"\d{11}", compact) else None
    elif tax_type == "nz_gst":
        value = compact if re.fullmatch(r"\d{8,9}", compact) else None
    return tax_type, value


def metadata(values, update=False):
    """Return metadata within Stripe's limits: 50 keys of at most 40 characters (no square
    brackets), values of at most 500 characters.

    :param dict values: key -> value (any value is sent as text)
    :param bool update: empty values are sent as ``""`` (which unsets the key in Stripe) instead
        of being left out
    :rtype: dict
    """
    result = {}
    for key, value in values.items():
        key = cut(str(key).replace("[", "(").replace("]", ")"), const.METADATA_KEY_MAX)
        if not key or key in result:
            continue
        value = cut(value, const.METADATA_VALUE_MAX)
        if value or update:
            result[key] = value
        if len(result) == const.METADATA_MAX_KEYS:
            break
    return result


def join_ids(ids, max_length=const.METADATA_VALUE_MAX):
    """Return record ids as one metadata value (``"4,8,15"``), keeping only whole ids.

    :param list ids: integers
    :rtype: str
    """
    joined = ",".join(str(i) for i in ids)
    if len(joined) <= max_length:
        return joined
    return joined[: max_length + 1].rsplit(",", 1)[0]
