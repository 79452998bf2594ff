from . import crm_payment_charge_wizard
from . import crm_payment_refund_wizard
from . import crm_payment_request_wizard
from . import crm_subscription_cancel_wizard
from . import crm_payment_dispute_evidence_wizard
from . import crm_payment_risk_clear_wizard
