"""The money rules: 金额 + 税额 = 价税合计, line items add up to the totals,
line rates are VAT rates, the 大写 reads back as the 小写, amounts in range.

One family of rules in its own module, like `codes` and `uscc`: they share
the rate tables and the tolerance, and no other rule uses them.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal
from typing import Any, Iterator

from agent.model import Invoice
from agent.validate.amounts import WordsError, parse_words
from agent.validate.context import Context, Finding, decimal_or_none
from agent.validate.ranges import number_of, out_of_range

CENT = Decimal("0.01")
# Rates in force (percent). 0.5 is the 二手车经销 reduced rate since 2020.
RATES = frozenset(Decimal(r) for r in ("13", "9", "6", "5", "3", "1.5", "1", "0.5", "0"))
# Rates abolished on 2019-04-01 (17/11 until 2018-05-01, then 16/10).
OLD_RATES = frozenset(Decimal(r) for r in ("17", "16", "11", "10"))
OLD_RATES_UNTIL = dt.date(2019, 4, 1)
# Printed in place of a rate: exemptions, zero-rating, and *** for 差额征税.
RATE_MARKERS = frozenset({"免税", "不征税", "出口零税率", "普通零税率", "零税率", "***"})


def amount_sum(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    amount, tax, total = ctx.money["amount"], ctx.money["tax"], ctx.money["total"]
    for name, label, value in (("amount", "金额", amount), ("tax", "税额", tax), ("total", "价税合计", total)):
        if isinstance(value, str):
            if number_of(value) is None:  # a number out of range is amount-range's
                yield Finding(name, f"{label} {value!r} is not a number", f"{label} {value} 不是有效金额")
            return
    if total is None:
        # A scan read through its QR alone carries what 查验 needs (code,
        # number, date, amount, check code); the rest is printed only on
        # paper, so its absence is not an error to quarantine for.
        if inv.fields and all(f.source == "qr" for f in inv.fields.values()):
            return
        yield Finding("total", "no 价税合计 was read", "未读到价税合计")
        return
    if amount is None:
        return  # tickets (type 51) print no 金额/税额 split
    expected = amount + (tax or Decimal(0))
    if expected != total:
        yield Finding("total", f"金额 {amount} + 税额 {tax or 0} = {expected}, but 价税合计 is {total}",
                      f"金额 {amount} + 税额 {tax or 0} = {expected}，与价税合计 {total} 不符")


def amount_range(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    for name, en, zh in out_of_range(inv):
        yield Finding(name, en, zh)


def line_sum(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    items = inv.items
    if not items:
        return
    tolerance = CENT * len(items)
    for name, label in (("amount", "金额"), ("tax", "税额")):
        raw = [getattr(i, name) for i in items]
        values = [decimal_or_none(v) for v in raw]
        if any(v is None and r is not None for v, r in zip(values, raw)):
            continue  # an unreadable line amount: nothing sound to add up
        total = ctx.money[name]
        if name == "amount" and (any(v is None for v in values) or not isinstance(total, Decimal)):
            continue
        if name == "tax":
            if all(v is None for v in values) or isinstance(total, str):
                continue
            total = total or Decimal(0)  # 免税: no tax anywhere
        line_total = sum((v for v in values if v is not None), Decimal(0))
        if abs(line_total - total) > tolerance:
            yield Finding(name, f"the {len(items)} lines' {label} add up to {line_total}, "
                                f"but the invoice total is {total}",
                          f"{len(items)} 行明细{label}合计 {line_total}，与发票合计 {total} 不符")


def _rate_ok(text: Any, rate: Any, date: dt.date | None) -> bool:
    allowed = RATES | OLD_RATES if date is not None and date < OLD_RATES_UNTIL else RATES
    text = "".join(unicodedata.normalize("NFKC", str(text)).split()) if text is not None else ""
    if text:
        if text in RATE_MARKERS:
            return True
        value = decimal_or_none(text.rstrip("%"))
        if value is None:
            return False
        # "13%", "13" and "0.13" all mean 13 %; XML writes the fraction.
        percent = value if text.endswith("%") or value >= 1 else value * 100
        return percent in allowed
    if rate is None:
        return True
    value = decimal_or_none(rate)
    return value is not None and value * 100 in allowed


def tax_rate(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    date = ctx.date
    bad = [(n, it) for n, it in enumerate(inv.items, 1) if not _rate_ok(it.rate_text, it.rate, date)]
    if bad:
        shown = sorted({str(it.rate_text or "").strip() or f"rate {it.rate}" for _, it in bad})
        lines = ", ".join(str(n) for n, _ in bad[:10]) + (" …" if len(bad) > 10 else "")
        yield Finding("items", f"tax rate {', '.join(shown)} on line {lines} is not a VAT rate",
                      f"第 {lines} 行税率 {', '.join(shown)} 不是有效的增值税税率")


def words_mismatch(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    words, total = ctx.text["total_in_words"], ctx.money["total"]
    if words is None or not isinstance(total, Decimal):
        return
    try:
        value = parse_words(words)
    except WordsError:
        yield Finding("total_in_words", f"价税合计大写 {words} cannot be read as an amount",
                      f"价税合计大写 {words} 无法识别为金额")
        return
    if value != total:
        yield Finding("total_in_words", f"价税合计大写 {words} says {value}, but 小写 is {total}",
                      f"价税合计大写 {words}（{value}）与小写 {total} 不符")
