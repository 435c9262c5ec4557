"""Line items (货物或应税劳务、服务名称 rows) from a page's text lines
(agent/extract/text.py)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from agent.extract import labels as L
from agent.model import LineItem


_ITEM_TAIL_RE = re.compile(
    r"(?P<amount>-?" + L.YUAN + r"\.\d{2})[ ]*(?P<rate>" + L.RATE_RE.pattern + r")[ ]+"
    r"(?P<tax>-?" + L.YUAN + r"\.\d{2}|\*{3})[ ]*$"
)
_NUMBER_TOKEN_RE = re.compile(r"-?\d+(?:\.\d+)?")


def _decimal(text: str | None) -> Decimal | None:
    if text is None or "*" in text:
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def _rate(text: str) -> Decimal | None:
    if text.endswith("%"):
        return (Decimal(text[:-1]) / 100).normalize()
    return None


def parse_items(lines: list[str]) -> list[LineItem]:
    """Line items from rows ending in 金额 税率 税额; a name wrapped onto the
    next line (one column: a name may have spaces) is joined. Quantity and
    unit price are kept only when both are separate numbers right before
    the amount (some layouts glue them together)."""
    items: list[LineItem] = []
    price_first = False
    last: LineItem | None = None
    for line in lines:
        if "数量" in line and "单价" in line:
            price_first = line.find("单价") < line.find("数量")
            continue
        # An item row's amount has a decimal point: other lines need no regex.
        m = _ITEM_TAIL_RE.search(line) if "." in line else None
        if not m:
            if last is not None and line.strip() and not re.search(r"\d\.\d", line) \
                    and len(line) - len(line.lstrip()) < 8 and "  " not in line.strip() \
                    and "合计" not in line:
                last.name += line.strip()
            last = None
            continue
        head = line[:m.start()]
        parts = re.split(r"[ ]{2,}", head.strip())
        if not parts or not parts[0] or parts[0][0].isdigit():
            last = None
            continue
        # 数量 and 单价 print right before 金额: the number tokens there,
        # after the last other token (a spec like "MateBook 14" ends in one).
        numbers: list[str] = []
        for token in reversed(" ".join(parts[1:]).split()):
            if not _NUMBER_TOKEN_RE.fullmatch(token):
                break
            numbers.insert(0, token)
        qty = price = None
        if len(numbers) == 2:
            qty, price = (numbers[1], numbers[0]) if price_first else (numbers[0], numbers[1])
        amount = _decimal(m.group("amount"))
        if m.start("amount") > 0 and line[m.start("amount") - 1] in "0123456789.,":
            # The unit price runs into the amount ("907.54716981907.55"):
            # the digits alone cannot say where one ends, so only the tax
            # can; a guess would be a wrong amount.
            amount = _unglue_amount(line[:m.end("amount")], _rate(m.group("rate")), _decimal(m.group("tax")))
        quantity, unit_price = _decimal(qty), _decimal(price)
        if quantity is not None and unit_price is not None and amount is not None \
                and abs(quantity * unit_price - amount) > Decimal("0.01") + abs(quantity) * Decimal("0.005"):
            quantity = unit_price = None  # not the pair the amount is made of (a spec's number)
        last = LineItem(
            name=parts[0], amount=amount, tax=_decimal(m.group("tax")),
            rate=_rate(m.group("rate")), rate_text=m.group("rate"),
            quantity=quantity, unit_price=unit_price,
        )
        items.append(last)
    return items


def _unglue_amount(glued: str, rate: Decimal | None, tax: Decimal | None) -> Decimal | None:
    """The amount at the end of `glued` (a unit price and an amount printed
    without a gap), when exactly one way to split it gives amount × rate =
    tax to the cent; None when the rate or tax is not a number or the split
    is not unique."""
    if rate is None or tax is None:
        return None
    m = re.search(r"(-?)([\d,]*)(\.\d{2})$", glued)
    if m is None:
        return None
    sign, whole, cents = -1 if m.group(1) else 1, m.group(2).replace(",", ""), m.group(3)
    fits = []
    for start in range(len(whole) - 1, -1, -1):
        digits = whole[start:]
        if len(digits) > 1 and digits[0] == "0":
            continue
        amount = sign * Decimal(digits + cents)
        if abs((amount * rate).quantize(Decimal("0.01")) - tax) <= Decimal("0.01"):
            fits.append(amount)
    return fits[0] if len(fits) == 1 else None
