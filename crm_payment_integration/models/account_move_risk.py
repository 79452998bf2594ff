from odoo import models


class AccountMove(models.Model):
    _inherit = "account.move"

    def _crm_charge_saved_method(self, token=None, amount=None, reason=None):
        """Override: no saved-card charge while a risk flag holds the customer's charges."""
        self.ensure_one()
        self.partner_id._crm_check_charges_not_held(self.company_id)
        return super()._crm_charge_saved_method(token=token, amount=amount, reason=reason)
