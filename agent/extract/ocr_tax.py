"""A scan's 价税合计, read by OCR, against the 金额 its QR carries.

The paper prints its 价税合计 twice (小写 and 大写), and a forger who
changes one changes both: the 大写 tells a misread 小写, not a forged one.
What the forger cannot change is the QR (CRC-checked, read by every 查验):
its 金额 fixes what the 价税合计 can be, because the difference is the
税额 (the implied 税额), and a 税额 is no free number. A 价税合计 read by
OCR above the QR's 金额 is kept only when its implied 税额
1. is a tax of that 金额 at a rate the invoice could carry (13/9/6/5/3/1.5/
   1/0.5/0 %, and 17/16/11/10 % before 2019-04-01) within the cents rounding
   leaves (a line's tax may differ from round(金额 × rate) by a cent,
   `fapiao-facts.md`); at the rates its lines print when OCR read their
   税率 column; any share up to the highest rate when a line prints ***
   (差额征税: the tax is of part of the 金额) or, with no line's rate
   read, when the 税额 the paper prints reads the same (rates blend);
2. is contradicted by nothing read: not by the lines' 税额, when OCR read
   them all and their sum is itself a tax of the 金额; not by a reading of
   the 税额 that is itself a tax of the 金额, unless the implied one is
   read twice alike and more often than any other value;
3. is confirmed by something read besides the 大写: the 税额 as the page
   pass read it (金额 + 税额 = 价税合计), or with only its decimal point
   lost (153186.00 for 1531.86); the lines' 税额 adding up to it; the
   rates the lines print giving it; else the 税额 read twice alike by a
   second, closer look (`ocr_regions.read_tax_again`).
A misread 税额 (2279.48 for 2279.43) is no tax of the 金额 and contradicts
nothing; a 价税合计 equal to the QR's 金额 is the QR's own number (免税, or
an issuer who wrote the 价税合计 into the QR, `plausible`) and is kept. A
wrong value is worse than an empty one: what fails is left for 补录.
Pure: no engine, no I/O.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Sequence

from agent.model import LineItem
from agent.validate.totals import OLD_RATES, OLD_RATES_UNTIL, RATES

CENT = Decimal("0.01")
# round(金额 × rate) is within half a cent of the product, and a line priced
# tax-inclusive may be a cent off that.
_LINE_SLACK = Decimal("0.015")
# Lines a paper face prints (more go to a 销货清单): the slack when OCR did
# not read the lines themselves.
_PAGE_LINES = 8
_HUNDRED = Decimal(100)
# Printed for a rate of nothing: exemption, no tax, zero-rating.
_ZERO_MARKERS = frozenset({"免税", "不征税", "出口零税率", "普通零税率", "零税率"})
_SHARE_MARKER = "***"  # 差额征税: the tax is of part of the 金额


def total_defect(amount: Decimal, total: Decimal, date: dt.date | None, tax: Decimal | None = None,
                 taxes_again: Sequence[Decimal | None] = (),
                 items: Sequence[LineItem] = ()) -> tuple[str, str] | None:
    """Why `total` (read by OCR) cannot be kept as the 价税合计 of an invoice
    whose QR says 金额 `amount`, or None when it can, under the module
    docstring's rules. `tax` is the page pass's reading of the 合计 row's
    税额, `taxes_again` the closer looks' (None where unread), `items` the
    goods lines OCR read, `date` the invoice's (for the rates in force).
    The reason comes in English and Chinese, each to follow "the 价税合计
    <total>" in a problem's message. Never raises."""
    implied = total - amount
    if implied < 0:
        return f"is less than the QR's 金额 {amount}", f"小于二维码金额 {amount}"
    if implied == 0:
        return None
    in_force = RATES | OLD_RATES if date is not None and date < OLD_RATES_UNTIL else RATES
    lines_rates, shared = _line_rates(items, in_force)
    rates = lines_rates or in_force
    slack = _LINE_SLACK * (len(items) or _PAGE_LINES)
    ceiling = amount * max(rates) / _HUNDRED + slack
    lines_amounts = [i.amount for i in items]

    def of_amount(value: Decimal) -> bool:
        if shared:
            return 0 <= value <= ceiling
        if len(lines_rates) > 1:
            if None not in lines_amounts and sum(lines_amounts) == amount:  # type: ignore[arg-type]
                expected = sum(i.amount * _percent(i) / _HUNDRED for i in items)  # type: ignore[operator]
                return abs(value - expected) <= slack
            return amount * min(rates) / _HUNDRED - slack <= value <= ceiling
        return any(abs(value - amount * r / _HUNDRED) <= slack for r in rates)

    read = [t for t in (tax, *taxes_again) if t is not None]
    at, at_zh = ("the rates its lines print", "各行所印税率") if lines_rates else ("any rate in force", "任一现行税率")
    # Lines at several rates blend them: with the lines unread, a 税额 the
    # paper prints alike is any share up to the highest.
    if not of_amount(implied) and not (tax == implied and not lines_rates and implied <= ceiling):
        return (f"implies a 税额 of {implied} (价税合计 − the QR's 金额 {amount}), which is no tax of that 金额 "
                f"at {at}", f"减去二维码金额 {amount} 所得税额 {implied} 不是该金额按{at_zh}应有的税额")
    lines_taxes = [i.tax for i in items]
    on_lines = sum(lines_taxes) if items and None not in lines_taxes else None  # type: ignore[arg-type]
    if on_lines is not None and abs(on_lines - implied) > CENT * len(items) and of_amount(on_lines):
        return (f"implies a 税额 of {implied} where its lines' 税额 add up to {on_lines}",
                f"减去二维码金额所得税额 {implied} 与各行税额之和 {on_lines} 不符")
    others = Counter(t for t in read if t != implied and of_amount(t))
    twice = read.count(implied) >= 2 and read.count(implied) > max(others.values(), default=0)
    if others and not twice:
        (other, _), = others.most_common(1)
        return (f"implies a 税额 of {implied} where the 税额 reads {other}, and is not read {implied} twice alike",
                f"减去二维码金额所得税额 {implied} 与印刷的税额 {other} 不符，复读亦未能确认")
    if twice or tax == implied or (tax is not None and _digits(tax) == _digits(implied)) \
            or (on_lines is not None and abs(on_lines - implied) <= CENT * len(items)) \
            or (lines_rates and of_amount(implied)):
        return None
    return (f"implies a 税额 of {implied}, which no other reading confirms (the 税额 unread or misread, and "
            f"not read {implied} twice alike; no line's 税率 or 税额 read)",
            f"减去二维码金额所得税额 {implied} 无其他识别内容可以确认（税额未能识别，复读亦未能确认）")


def _digits(value: Decimal) -> str:
    """`value`'s digits without its decimal point or trailing zeros: a
    税额 read with its point lost has the same."""
    return f"{value:.2f}".replace(".", "").rstrip("0")


def _percent(item: LineItem) -> Decimal | None:
    """The line's rate in percent, 0 for an exemption, None when unread."""
    text = "".join(unicodedata.normalize("NFKC", item.rate_text or "").split())
    if text in _ZERO_MARKERS:
        return Decimal(0)
    if text:
        try:
            value = Decimal(text.rstrip("%"))
        except InvalidOperation:
            return None
        return value if text.endswith("%") or value >= 1 else value * _HUNDRED
    return item.rate * _HUNDRED if item.rate is not None else None


def _line_rates(items: Sequence[LineItem], in_force: frozenset[Decimal]) -> tuple[frozenset[Decimal], bool]:
    """(the rates the lines print, when every line's was read as a rate in
    force, else empty; whether a line prints *** for its rate)."""
    shared = any("".join((i.rate_text or "").split()) == _SHARE_MARKER for i in items)
    percents = [_percent(i) for i in items]
    if not items or shared or any(p is None or p not in in_force for p in percents):
        return frozenset(), shared
    return frozenset(p for p in percents if p is not None), shared
