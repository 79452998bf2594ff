from datetime import timedelta

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestCreditHold(TransactionCase):
    """A quotation of a customer above the overdue threshold needs a manager to confirm it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.write({"crm_credit_hold_amount": 500.0, "crm_credit_hold_days": 0})
        cls.customer = cls.env["res.partner"].create({"name": "Late Payer", "is_company": True})
        cls.contact = cls.env["res.partner"].create({"name": "Buyer", "parent_id": cls.customer.id})
        cls.salesman = new_test_user(cls.env, login="hold_salesman", groups="sales_team.group_sale_salesman")
        cls.manager = new_test_user(cls.env, login="hold_manager", groups="sales_team.group_sale_manager")
        cls.product = cls.env["product.product"].create({"name": "Desk", "list_price": 100.0})

    def _overdue_invoice(self, amount, days):
        due = fields.Date.today() - timedelta(days=days)
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": self.customer.id,
                "invoice_date": due,
                "invoice_date_due": due,
                "invoice_line_ids": [
                    (0, 0, {"name": "Desks", "price_unit": amount, "tax_ids": [(6, 0, [])]})
                ],
            }
        )
        invoice.action_post()
        return invoice

    def _quotation(self, user):
        self.env.invalidate_all()  # a new request: the hold read from the invoices as they are
        return (
            self.env["sale.order"]
            .with_user(user)
            .create(
                {
                    "partner_id": self.contact.id,
                    "user_id": user.id,
                    "order_line": [(0, 0, {"product_id": self.product.id, "product_uom_qty": 1})],
                }
            )
        )

    def test_held_customer_needs_a_manager(self):
        self._overdue_invoice(300.0, 10)
        order = self._quotation(self.salesman)
        self.assertFalse(order.crm_credit_hold, "300 overdue: under the 500 threshold")
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self._overdue_invoice(200.0, 2)  # 300 + 200 = 500 overdue: held
        held = self._quotation(self.salesman)
        self.assertTrue(held.crm_credit_hold)
        with self.assertRaisesRegex(UserError, "Late Payer on credit hold"):
            held.action_confirm()
        self.assertEqual(held.state, "draft")
        held.with_user(self.manager).action_confirm()
        self.assertEqual(held.state, "sale")
        self.assertIn("approved by", held.message_ids[:1].body)

    def test_days_threshold(self):
        self.company.write({"crm_credit_hold_amount": 0.0, "crm_credit_hold_days": 30})
        self._overdue_invoice(10.0, 29)
        self.assertFalse(self._quotation(self.salesman).crm_credit_hold)
        self._overdue_invoice(10.0, 30)
        order = self._quotation(self.salesman)
        self.assertTrue(order.crm_credit_hold)
        with self.assertRaises(UserError):
            order.action_confirm()
