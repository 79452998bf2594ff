from odoo import fields, models


class CrmPaymentRiskClearWizard(models.TransientModel):
    """Clear open risk flags, saying why: who and why are kept on each flag."""

    _name = "crm.payment.risk.clear.wizard"
    _description = "Clear Risk Flags"

    flag_ids = fields.Many2many("crm.payment.risk.flag", string="Flags", required=True)
    reason = fields.Text(required=True, help="Why the flags are cleared (kept on each flag for audits).")

    def action_confirm(self):
        """Clear the flags; the customers' held automatic charges resume.

        :return: an action closing the dialog
        :raise UserError: without accounting rights or without a reason
        """
        self.ensure_one()
        self.env["account.move"]._crm_check_accounting_rights()
        # Every flag of the dialog, those the user may not see included: refused, not skipped.
        flags = self.sudo().flag_ids.with_env(self.env)
        flags.check_access("write")
        flags._crm_clear(self.reason)
        return {"type": "ir.actions.act_window_close"}
