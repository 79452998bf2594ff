"""18.0.1.2.0 logs MRR movements: rebuild them once for the subscriptions that exist, from their
history (see ``crm.subscription.movement._crm_rebuild``), then the subscriber figures."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["crm.subscription.movement"]._crm_rebuild()
    env["res.partner"]._crm_refresh_subscription_insight(env["res.company"].search([]))
