from . import crm_payment_event
from . import crm_stripe_customer
from . import payment_provider
from . import payment_token
from . import res_partner
