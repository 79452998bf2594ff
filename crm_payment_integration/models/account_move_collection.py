from odoo import api, models
from odoo.tools.sql import create_index


class AccountMove(models.Model):
    _inherit = "account.move"  # pylint: disable=consider-merging-classes-inherited

    def init(self):
        """The customer invoices still due, by due date: the reminders run reads those that
        reached a level (a tenth of the open invoices) without scanning the others."""
        result = super().init()
        create_index(
            self.env.cr,
            "account_move_crm_collection_due_idx",
            self._table,
            ["invoice_date_due", "company_id"],
            where="move_type = 'out_invoice' AND state = 'posted' "
            "AND payment_state IN ('not_paid', 'partial') AND amount_residual > 0",
        )
        return result

    @api.model
    def _crm_collection_excluded_move_ids(self):
        """The invoices the collections leave alone: those in an open Stripe dispute
        (`crm.payment.dispute`, not won, lost or closed). The one place to add a reason.

        :return: a set of `account.move` ids
        """
        disputes = (
            self.env["crm.payment.dispute"]
            .sudo()
            ._read_group([("is_open", "=", True), ("invoice_id", "!=", False)], ["invoice_id"])
        )
        return {invoice.id for (invoice,) in disputes}

    def _crm_payment_link_tx(self, settled=False):
        """A page paying this invoice alone closes the customer's open page paying all their
        overdue invoices (applied if paid meanwhile): one invoice is never paid twice."""
        pay_all = (
            self.env["payment.transaction"]
            .sudo()
            .search(
                [
                    ("crm_collection_pay_all", "=", True),
                    ("invoice_ids", "in", self.ids),
                    ("state", "in", ("draft", "pending")),
                ]
            )
        )
        pay_all._crm_expire_checkout_session()
        return super()._crm_payment_link_tx(settled=settled)
