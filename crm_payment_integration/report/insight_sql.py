"""SQL fragments shared by the Insight reports."""

from odoo.tools import SQL


def rate_sql(currency, company, date):
    """SQL for the rate of ``currency`` at ``date`` as Odoo's ``res.currency._get_rates`` reads
    it: the latest rate on or before the date, of the company's root company or shared, else
    the earliest one, else 1.

    :param SQL currency: SQL of a ``res_currency`` id
    :param SQL company: SQL of a ``res_company`` row alias (its ``parent_path`` gives the root)
    :param SQL date: SQL of the date
    """
    root = SQL("split_part(%s.parent_path, '/', 1)::int", company)
    return SQL(
        """COALESCE(
            (SELECT r.rate FROM res_currency_rate r
              WHERE r.currency_id = %(currency)s AND r.name <= %(date)s
                AND (r.company_id IS NULL OR r.company_id = %(root)s)
              ORDER BY r.company_id, r.name DESC LIMIT 1),
            (SELECT r.rate FROM res_currency_rate r
              WHERE r.currency_id = %(currency)s
                AND (r.company_id IS NULL OR r.company_id = %(root)s)
              ORDER BY r.company_id, r.name ASC LIMIT 1),
            1.0)""",
        currency=currency,
        date=date,
        root=root,
    )


def to_company_currency_sql(amount, currency, company, company_currency, date):
    """SQL converting ``amount`` in ``currency`` to the company's currency at ``date``'s rate,
    rounded to the company currency's rounding as ``res.currency._convert`` does; the rate
    look-ups run only for amounts in another currency.

    :param SQL company_currency: SQL alias of the company's ``res_currency`` row
    """
    return SQL(
        """CASE WHEN %(currency)s = %(cc)s.id THEN %(amount)s
           ELSE ROUND(%(amount)s * %(to_rate)s / %(from_rate)s / %(cc)s.rounding) * %(cc)s.rounding
           END""",
        amount=amount,
        currency=currency,
        cc=company_currency,
        to_rate=rate_sql(SQL("%s.id", company_currency), company, date),
        from_rate=rate_sql(currency, company, date),
    )
