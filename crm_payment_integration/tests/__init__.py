from . import test_gateway
from . import test_provider
from . import test_partner_sync
from . import test_event_processing
from . import test_webhook
from . import test_concurrency
from . import test_payments
from . import test_checkout
