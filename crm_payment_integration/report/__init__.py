from . import crm_payment_analysis
from . import crm_revenue_analysis
from . import crm_collection_statement
