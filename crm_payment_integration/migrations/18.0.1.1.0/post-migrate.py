"""18.0.1.1.0 stores each subscription's billing anchor: fill it in for those already billing."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["crm.subscription"].with_context(active_test=False).search(
        [("billing_anchor_date", "=", False), ("next_invoice_date", "!=", False), ("managed_by", "=", "odoo")]
    )._crm_init_billing_anchor()
