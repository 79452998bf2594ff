"""The Insight dashboard: every model and field its spreadsheet reads exists, each headline
pivot answers, and the dashboard opens for an accountant (not for a portal user)."""

import base64
import json
import re

from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged


def referenced_fields(data):
    """Return ``{(model, field path)}`` read by the spreadsheet: pivots' measures, rows,
    columns and domains, and the domains and groupings of its links."""
    found = set()

    def domain_fields(model, domain):
        for leaf in domain:
            if isinstance(leaf, list) and len(leaf) == 3:
                found.add((model, leaf[0]))

    for pivot in data["pivots"].values():
        model = pivot["model"]
        found.update((model, m["fieldName"]) for m in pivot["measures"])
        found.update((model, d["fieldName"]) for d in pivot["rows"] + pivot["columns"])
        domain_fields(model, pivot["domain"])
    for sheet in data["sheets"]:
        for cell in sheet["cells"].values():
            for spec in re.findall(r"odoo://view/(\{.*\})\)", cell.get("content", "")):
                action = json.loads(spec)["action"]
                model = action["modelName"]
                found.add((model, None))
                domain_fields(model, action["domain"])
                context = action["context"]
                for key in ("pivot_row_groupby", "pivot_column_groupby", "group_by"):
                    found.update((model, name.split(":")[0]) for name in context.get(key, []))
    return found


@tagged("post_install", "-at_install")
class TestInsightDashboard(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dashboard = cls.env.ref("crm_payment_integration_spreadsheet.dashboard_crm_payment_insight")
        cls.data = json.loads(base64.b64decode(cls.dashboard.spreadsheet_binary_data))

    def test_every_model_and_field_of_the_dashboard_exists(self):
        references = referenced_fields(self.data)
        models = {model for model, _path in references}
        # The headline figures: subscription movements (MRR, net new, NRR, at risk), payments
        # (success rate, collected), revenue (overdue); links into each report.
        self.assertTrue(
            {"crm.subscription.movement", "crm.payment.analysis", "crm.revenue.analysis", "res.partner"}
            <= models
        )
        missing = []
        for model, path in sorted(references, key=str):
            if model not in self.env:
                if model not in missing:
                    missing.append(model)
                continue
            if path is None:
                continue
            current = self.env[model]
            for name in path.split("."):
                field = current._fields.get(name)
                if field is None:
                    missing.append(f"{model}.{path}")
                    break
                current = self.env[field.comodel_name] if field.relational else current
        self.assertEqual(missing, [], "the dashboard reads models or fields that do not exist")

    def test_headline_pivots_answer(self):
        for pivot in self.data["pivots"].values():
            with self.subTest(pivot=pivot["name"]):
                model = self.env[pivot["model"]]
                groupby = [
                    d["fieldName"] + (":" + d["granularity"] if d.get("granularity") else "")
                    for d in pivot["rows"] + pivot["columns"]
                ]
                measures = [
                    f"{m['fieldName']}:{m.get('aggregator') or model._fields[m['fieldName']].aggregator}"
                    for m in pivot["measures"]
                ]
                groups = model.read_group(pivot["domain"], measures, groupby, lazy=False)
                self.assertIsInstance(groups, list)

    def test_dashboard_opens_for_an_accountant_not_for_a_portal_user(self):
        accountant = new_test_user(self.env, login="dash_acc", groups="account.group_account_invoice")
        self.assertIn(self.dashboard, self.env["spreadsheet.dashboard"].with_user(accountant).search([]))
        self.assertEqual(
            self.dashboard.dashboard_group_id,
            self.env.ref("spreadsheet_dashboard.spreadsheet_dashboard_group_finance"),
        )
        snapshot = self.dashboard.with_user(accountant).get_readonly_dashboard()["snapshot"]
        self.assertEqual(snapshot["pivots"].keys(), self.data["pivots"].keys())
        portal = new_test_user(self.env, login="dash_portal", groups="base.group_portal")
        with self.assertRaises(AccessError):
            self.dashboard.with_user(portal).get_readonly_dashboard()
