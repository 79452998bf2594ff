"""Write the spreadsheet of the Insight dashboard (crm_payment_integration_spreadsheet).

    python3 tools/build_insight_dashboard.py

Headline figures are PIVOT.VALUE formulas over the add-on's report models; each tile links
into its report. Run again after changing it and commit the JSON.
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / (
    "crm_payment_integration_spreadsheet/data/files/crm_payment_insight_dashboard.json"
)
THIS_MONTH = 'TEXT(TODAY(),"mm/yyyy")'


def pivot(pivot_id, name, model, measures, rows=(), columns=(), domain=()):
    return {
        "type": "ODOO",
        "id": str(pivot_id),
        "formulaId": str(pivot_id),
        "name": name,
        "model": model,
        "domain": list(domain),
        "context": {},
        "measures": [
            {"id": m, "fieldName": m.split(":")[0], "aggregator": m.split(":")[1]}
            if ":" in m
            else {"id": m, "fieldName": m}
            for m in measures
        ],
        "rows": [dict(zip(("fieldName", "granularity"), r.split(":"), strict=False)) for r in rows],
        "columns": [dict(zip(("fieldName", "granularity"), c.split(":"), strict=False)) for c in columns],
        "sortedColumn": None,
        "fieldMatching": {},
    }


def link(label, model, view_type, name, context=None, domain=()):
    action = {
        "domain": list(domain),
        "context": context or {},
        "modelName": model,
        "views": [[False, "pivot"], [False, "graph"], [False, "list"], [False, "search"]],
    }
    spec = {"viewType": view_type, "action": action, "threshold": 0, "name": name}
    return f"[{label}](odoo://view/{json.dumps(spec, separators=(',', ':'))})"


PIVOTS = {
    "1": pivot(1, "MRR", "crm.subscription.movement", ["mrr_change"]),
    "2": pivot(
        2,
        "MRR movements by month and kind",
        "crm.subscription.movement",
        ["mrr_change"],
        rows=["date:month"],
        columns=["kind"],
    ),
    "3": pivot(
        3,
        "Payments by month",
        "crm.payment.analysis",
        ["success_rate", "attempt_count", "success_count", "amount_net"],
        rows=["date:month"],
    ),
    "4": pivot(4, "Overdue revenue", "crm.revenue.analysis", ["revenue_overdue"]),
    "5": pivot(
        5,
        "MRR of customers at risk",
        "crm.subscription.movement",
        ["mrr_change"],
        domain=[["partner_id.crm_churn_risk", ">=", 70]],
    ),
    "6": pivot(
        6,
        "Success rate by gateway",
        "crm.payment.analysis",
        ["success_rate", "attempt_count"],
        rows=["provider_id"],
    ),
}

NET_NEW = f'PIVOT.VALUE(2,"mrr_change","date:month",{THIS_MONTH})'
KIND = 'PIVOT.VALUE(2,"mrr_change","date:month",{m},"kind","{k}")'.format


def tiles():
    month = THIS_MONTH
    retained = "+".join(KIND(m=month, k=k) for k in ("expansion", "contraction", "churn"))
    return [
        (
            "MRR",
            '=PIVOT.VALUE(1,"mrr_change")',
            link("Subscription metrics", "crm.subscription.movement", "pivot", "MRR Movements"),
        ),
        (
            "Net new MRR (this month)",
            f"={NET_NEW}",
            link(
                "MRR movements",
                "crm.subscription.movement",
                "pivot",
                "MRR Movements",
                {"pivot_row_groupby": ["date:month"], "pivot_column_groupby": ["kind"]},
            ),
        ),
        (
            "NRR (this month)",
            f'=IFERROR((PIVOT.VALUE(1,"mrr_change")-{NET_NEW}+{retained})'
            f'/(PIVOT.VALUE(1,"mrr_change")-{NET_NEW}),"")',
            link("MRR movements", "crm.subscription.movement", "pivot", "MRR Movements"),
        ),
        (
            "Payment success rate (this month, %)",
            f'=IFERROR(PIVOT.VALUE(3,"success_rate","date:month",{month}),"")',
            link("Payment analysis", "crm.payment.analysis", "pivot", "Payment Analysis"),
        ),
        (
            "Collected this month (net of refunds)",
            f'=IFERROR(PIVOT.VALUE(3,"amount_net","date:month",{month}),0)',
            link("Payment analysis", "crm.payment.analysis", "list", "Payment Analysis"),
        ),
        (
            "Overdue (untaxed)",
            '=PIVOT.VALUE(4,"revenue_overdue")',
            link("Revenue analysis", "crm.revenue.analysis", "pivot", "Revenue Analysis"),
        ),
        (
            "MRR of at-risk customers (churn risk ≥ 70)",
            '=PIVOT.VALUE(5,"mrr_change")',
            link(
                "Customers at risk", "res.partner", "list", "Customers", domain=[["crm_churn_risk", ">=", 70]]
            ),
        ),
    ]


def build():
    cells = {"A1": {"content": "Payments & Recurring Revenue"}}
    row = 3
    for label, formula, target in tiles():
        cells[f"A{row}"] = {"content": label}
        cells[f"B{row}"] = {"content": formula}
        cells[f"C{row}"] = {"content": target}
        row += 1
    row += 1
    cells[f"A{row}"] = {
        "content": link(
            "Success rate by gateway",
            "crm.payment.analysis",
            "pivot",
            "Payment Analysis",
            {"pivot_row_groupby": ["provider_id"]},
        )
    }
    for i in range(1, 6):
        cells[f"A{row + i}"] = {"content": f'=PIVOT.HEADER(6,"#provider_id",{i})'}
        cells[f"B{row + i}"] = {"content": f'=PIVOT.VALUE(6,"success_rate","#provider_id",{i})'}
        cells[f"C{row + i}"] = {"content": f'=PIVOT.VALUE(6,"attempt_count","#provider_id",{i})'}
    return {
        "version": 21,
        "sheets": [
            {
                "id": "crm-payment-insight",
                "name": "Dashboard",
                "colNumber": 4,
                "rowNumber": row + 8,
                "rows": {},
                "cols": {"0": {"size": 320}, "1": {"size": 160}, "2": {"size": 220}},
                "merges": [],
                "cells": cells,
                "styles": {"A1": 1},
                "formats": {},
                "borders": {},
                "conditionalFormats": [],
                "figures": [],
                "tables": [],
                "areGridLinesVisible": False,
                "isVisible": True,
                "headerGroups": {"ROW": [], "COL": []},
                "dataValidationRules": [],
                "comments": {},
            }
        ],
        "styles": {"1": {"textColor": "#01666b", "bold": True, "fontSize": 16}},
        "formats": {},
        "borders": {},
        "revisionId": "START_REVISION",
        "uniqueFigureIds": True,
        "settings": {
            "locale": {
                "name": "English (US)",
                "code": "en_US",
                "thousandsSeparator": ",",
                "decimalSeparator": ".",
                "dateFormat": "mm/dd/yyyy",
                "timeFormat": "hh:mm:ss",
                "formulaArgSeparator": ",",
                "weekStart": 7,
            }
        },
        "pivots": PIVOTS,
        "pivotNextId": len(PIVOTS) + 1,
        "customTableStyles": {},
        "odooVersion": 12,
        "globalFilters": [],
        "lists": {},
        "listNextId": 1,
        "chartOdooMenusReferences": {},
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(OUT)
