"""Numbers no invoice carries: amounts beyond any 开票限额, quantities past
belief, NaN and infinities, and totals whose parts have opposite signs.

Such a value is a reading or a forgery problem for a person to look at, and
must never reach arithmetic or an INTEGER column (a 价税合计 of 18 digits
overflows the ledger's cents). Red-letter (红字) invoices are negative
throughout, so a negative amount alone is not absurd.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from agent.model import Invoice

# No invoice comes near 10^12 yuan (the highest 开票限额 is 10^9); cents of
# it still fit an INTEGER column with room to spare.
MAX_AMOUNT = Decimal(10) ** 12
# A quantity may be large (screws, kWh) or a price tiny, but not this.
MAX_QUANTITY = Decimal(10) ** 15

_MONEY_LABELS = (("amount", "金额"), ("tax", "税额"), ("total", "价税合计"))
_ITEM_LIMITS = (("amount", "金额", MAX_AMOUNT), ("tax", "税额", MAX_AMOUNT),
                ("unit_price", "单价", MAX_AMOUNT), ("quantity", "数量", MAX_QUANTITY))


def number_of(value: Any) -> Decimal | None:
    """`value` as a Decimal when it is written as a number (NaN and
    infinities included); None when absent or not a number at all."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    text = str(value).replace(",", "").strip()
    if not text:
        return None
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return None


def _bad(value: Decimal, limit: Decimal) -> str | None:
    if not value.is_finite():
        return "not a finite number"
    if abs(value) >= limit:
        return f"beyond {limit:,.0f}"
    return None


def _shown(value: Decimal) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def out_of_range(inv: Invoice) -> Iterator[tuple[str, str, str]]:
    """(field, English, 中文) for every number on `inv` that no invoice
    carries: a money field or line amount at or beyond MAX_AMOUNT, a line
    quantity at or beyond MAX_QUANTITY, any NaN or infinity, and 金额, 税额
    and 价税合计 of opposite signs. Never raises."""
    signs = {}
    for name, label in _MONEY_LABELS:
        value = number_of(inv.get(name))
        if value is None:
            continue
        why = _bad(value, MAX_AMOUNT)
        if why:
            yield name, f"{label} {_shown(value)} is {why}: no invoice carries it", \
                f"{label} {_shown(value)} 超出合理范围"
        elif value:
            signs[label] = value > 0
    if len(set(signs.values())) > 1:
        said = ", ".join(f"{label} {'+' if positive else '-'}" for label, positive in signs.items())
        yield "total", f"金额, 税额 and 价税合计 have opposite signs ({said})", f"金额、税额与价税合计正负号不一致（{said}）"
    bad_lines: dict[str, list[int]] = {}
    for n, item in enumerate(inv.items, 1):
        for name, label, limit in _ITEM_LIMITS:
            value = number_of(getattr(item, name, None))
            if value is not None and _bad(value, limit):
                bad_lines.setdefault(label, []).append(n)
    for label, lines in bad_lines.items():
        shown = ", ".join(map(str, lines[:10])) + (" …" if len(lines) > 10 else "")
        yield "items", f"line {shown}: {label} is not a finite number within range", f"第 {shown} 行{label}超出合理范围"
