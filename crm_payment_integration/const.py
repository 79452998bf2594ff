"""Constants of the Stripe integration: mappings only, no logic.

Kept free of Odoo imports so that the pure parts (``services/``) can use them in unit tests.
"""

# The Stripe API version this add-on is written against, sent with every request and used when
# registering webhook endpoints. See https://docs.stripe.com/api/versioning.
API_VERSION = "2026-10-28.endive"

# Network behaviour of the client. See https://docs.stripe.com/error-low-level#idempotency.
REQUEST_TIMEOUT = 30  # seconds, per HTTP request
MAX_NETWORK_RETRIES = 2  # the SDK retries connection errors, 409, 429 and 5xx with backoff
# Seconds after which a create call whose answer was lost is over (every retry of the client has
# timed out): Stripe either has its object or never will. See https://docs.stripe.com/error-low-level.
UNKNOWN_ANSWER_GRACE = REQUEST_TIMEOUT * (MAX_NETWORK_RETRIES + 1) + 30

# Webhooks. See https://docs.stripe.com/webhooks#verify-events.
WEBHOOK_TOLERANCE = 300  # seconds between the signature's timestamp and now
WEBHOOK_MAX_BODY = 1024 * 1024  # bytes; larger bodies are refused with 413

# Event type -> method of `crm.payment.event` applying it. Types not listed are stored as ignored.
# Other add-ons (and later features) extend `crm.payment.event._crm_get_event_handlers()`.
EVENT_HANDLERS = {
    "customer.updated": "_crm_handle_customer_updated",
    "customer.deleted": "_crm_handle_customer_deleted",
    "payment_method.attached": "_crm_handle_payment_method",
    "payment_method.updated": "_crm_handle_payment_method",
    "payment_method.detached": "_crm_handle_payment_method",
    "payment_intent.succeeded": "_crm_handle_payment_intent",
    "payment_intent.payment_failed": "_crm_handle_payment_intent",
    "payment_intent.canceled": "_crm_handle_payment_intent",
    "charge.refunded": "_crm_handle_charge_refunded",
    "refund.updated": "_crm_handle_refund_updated",
    "refund.failed": "_crm_handle_refund_updated",
    "charge.refund.updated": "_crm_handle_refund_updated",
    "checkout.session.completed": "_crm_handle_checkout_session",
    "checkout.session.async_payment_succeeded": "_crm_handle_checkout_session",
    "checkout.session.async_payment_failed": "_crm_handle_checkout_session",
    "checkout.session.expired": "_crm_handle_checkout_session",
    # Stripe Billing, mirrored (see crm.subscription's managed_by)
    "customer.subscription.created": "_crm_handle_stripe_subscription",
    "customer.subscription.updated": "_crm_handle_stripe_subscription",
    "customer.subscription.deleted": "_crm_handle_stripe_subscription",
    "customer.subscription.paused": "_crm_handle_stripe_subscription",
    "customer.subscription.resumed": "_crm_handle_stripe_subscription",
    "invoice.created": "_crm_handle_stripe_invoice",
    "invoice.finalized": "_crm_handle_stripe_invoice",
    "invoice.paid": "_crm_handle_stripe_invoice",
    "invoice.payment_succeeded": "_crm_handle_stripe_invoice",
    "invoice.payment_failed": "_crm_handle_stripe_invoice",
    "invoice.voided": "_crm_handle_stripe_invoice",
    "invoice.marked_uncollectible": "_crm_handle_stripe_invoice",
    "invoice.payment_action_required": "_crm_handle_stripe_invoice",
}

# Stripe Billing invoice events that need the customer -> why (the email's wording): the
# customer is sent Stripe's hosted invoice page, the salesperson an activity.
# See https://docs.stripe.com/billing/subscriptions/overview#requires-action.
STRIPE_INVOICE_NEEDS_CUSTOMER = {
    "invoice.payment_action_required": "action",
    "invoice.payment_failed": "failed",
}

# PaymentIntent statuses after which nothing changes: the signed event's object is applied as
# it is instead of being read again. See https://docs.stripe.com/payments/paymentintents/lifecycle.
FINAL_PAYMENT_INTENT_STATUSES = ("succeeded", "canceled")

# Stripe invoice statuses worth an Odoo invoice: a draft still changes, a voided draft never
# asked for money. See https://docs.stripe.com/api/invoices/object#invoice_object-status.
MIRRORED_INVOICE_STATUSES = ("open", "paid", "uncollectible", "void")

# Hours a hosted payment page (Checkout Session) stays payable; Stripe allows 30 min to 24 h.
CHECKOUT_SESSION_HOURS = 23

# Three-decimal currencies: Stripe takes their amounts in minor units that are multiples of 10.
# See https://docs.stripe.com/currencies#three-decimal.
THREE_DECIMAL_CURRENCIES = ("BHD", "JOD", "KWD", "OMR", "TND")

# Delays, in minutes, before each retry of an event whose processing failed. After the last one
# the event is marked as failed and an activity is scheduled for a person.
EVENT_RETRY_DELAYS = (1, 5, 30, 120, 720)

# Advisory lock: held shared by a webhook storing an event until it commits, taken by a run of
# the processing cron to mark where it starts; see crm.payment.event._crm_mark_run.
EVENT_RUN_LOCK = 0x63726D5F706179  # "crm_pay"

# Sequence holding the newest event id the last run of the processing cron saw.
EVENT_RUN_MARK = "crm_payment_event_run_mark"

# Events claimed per batch by the processing cron; each batch is committed on its own.
EVENT_BATCH_SIZE = 200

# Payment method types synchronised as Odoo payment tokens.
# See https://docs.stripe.com/api/payment_methods/object#payment_method_object-type.
TOKENIZED_PAYMENT_METHOD_TYPES = ("card",)

# Stripe card brand -> code of Odoo's `payment.method`.
# See https://docs.stripe.com/api/payment_methods/object#payment_method_object-card-brand.
CARD_BRAND_MAPPING = {
    "amex": "amex",
    "cartes_bancaires": "cartes_bancaires",
    "diners": "diners",
    "discover": "discover",
    "eftpos_au": "eftpos_au",
    "interac": "interac",
    "jcb": "jcb",
    "mastercard": "mastercard",
    "unionpay": "unionpay",
    "visa": "visa",
}

# Country code -> Stripe tax id type of the partner's VAT number.
# See https://docs.stripe.com/api/tax_ids/object#tax_id_object-type.
EU_COUNTRY_CODES = {
    "AT",
    "BE",
    "BG",
    "CY",
    "CZ",
    "DE",
    "DK",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "HU",
    "IE",
    "IT",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SE",
    "SI",
    "SK",
}
TAX_ID_TYPES = {
    "AU": "au_abn",
    "CH": "ch_vat",
    "GB": "gb_vat",
    "NO": "no_vat",
    "NZ": "nz_gst",
    **{code: "eu_vat" for code in EU_COUNTRY_CODES},
}

# Decline codes for which a retry with the same payment method cannot succeed.
# See https://docs.stripe.com/declines/codes.
HARD_DECLINE_CODES = {
    "fraudulent",
    "lost_card",
    "pickup_card",
    "restricted_card",
    "stolen_card",
    "card_not_supported",
    "currency_not_supported",
    "invalid_account",
    "new_account_information_available",
    "do_not_honor",
    "revocation_of_all_authorizations",
    "revocation_of_authorization",
    "security_violation",
    "stop_payment_order",
}

# What Stripe accepts in the parameters built from Odoo's data (its API reference: lengths are in
# characters). See https://docs.stripe.com/api/customers/create and
# https://docs.stripe.com/api/metadata.
CUSTOMER_NAME_MAX = 256
CUSTOMER_EMAIL_MAX = 512
CUSTOMER_PHONE_MAX = 20
ADDRESS_FIELD_MAX = 5000  # line1, line2, city, postal_code, state
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
