"""A scan's print, read by OCR, against its QR code.

The QR (CRC-checked) is the authority for what it carries; OCR misreads.
A reading that differs from the QR is therefore, by default, a smudge: a
warning (`ocr-disagrees`), the QR's value kept. Two differences are not
smudges, because a misread cannot produce them:
- the print differs in two of the QR's identity values (代码, 号码, date,
  校验码): the print is another invoice's than the QR's (a QR pasted over
  the paper, or the paper's print under another invoice's QR). Its
  values would join one invoice's key to another's names and amounts, so
  the differing values are conflicts (the `qr-mismatch` error) and an
  `ocr-other-invoice` error says that nothing only the print carries is
  kept;
- an amount the print confirms by itself (金额 + 税额 = 价税合计, and the
  大写 spells that 价税合计) differs from the QR's: a misread digit fails
  one of those two checks, so the paper and its QR say different amounts
  (a forged or swapped QR): a conflict, not a warning.
Pure: no engine, no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agent.model import Invoice, Problem, field_zh, values_differ
from agent.validate.amounts import WordsError, parse_words

SOURCE = "ocr"
# What the QR carries (CRC-checked): compared with the print, never replaced.
COMPARED = ("code", "number", "date", "check_code", "amount", "total")
# The QR's values that say which invoice it is.
IDENTITY = frozenset({"code", "number", "date", "check_code"})
_MONEY = frozenset({"amount", "tax", "total"})


def compare_with_qr(invoice: Invoice, printed: dict[str, Any]) -> bool:
    """Compare the print's readings `printed` with `invoice`'s fields
    (the QR's) under the module docstring's rules: each difference noted on
    `invoice` as an `ocr-disagrees` warning, or as a conflict. True when the
    print is another invoice's: the caller then keeps nothing it read
    (an `ocr-other-invoice` error is on `invoice`). Never replaces a field."""
    differing = {name: printed[name] for name in COMPARED
                 if invoice.fields.get(name) is not None and printed.get(name) is not None
                 and values_differ(invoice.fields[name].value, printed[name])}
    other_invoice = len(differing.keys() & IDENTITY) >= 2
    confirmed = money_confirmed_by_print(printed)
    for name, value in differing.items():
        known = invoice.fields[name]
        if other_invoice or name in confirmed:
            invoice.offer(name, value, SOURCE)  # a Conflict: the qr-mismatch rule's error
            continue
        invoice.problems.append(Problem(
            "ocr-disagrees", "warning", field=name,
            message=f"the printed {name} reads {value} by OCR, the {known.source} says "
                    f"{known.value}; the {known.source} value is kept",
            message_zh=f"{field_zh(name)} 的印刷内容经 OCR 识别为 {value}，与 {known.source} 的 {known.value} 不符"))
    if other_invoice:
        named = ", ".join(sorted(differing.keys() & IDENTITY))
        invoice.problems.append(Problem(
            "ocr-other-invoice", "error", field=None,
            message=f"the print's {named} are not its QR code's: the print is another invoice's (a QR "
                    "pasted over it, or another invoice's print); nothing only the print carries is kept",
            message_zh=f"印刷的{named}与二维码不符：印刷内容属于另一张发票（二维码被覆盖或替换），"
                       "仅印刷内容有的字段均不采用，留待补录"))
    return other_invoice


def money_confirmed_by_print(printed: dict[str, Any]) -> frozenset[str]:
    """The money fields the print confirms by itself: all three when
    金额 + 税额 = 价税合计 and the 大写 spells that 价税合计, else none. A
    misread digit fails one of the two; values that pass both are what
    the paper says."""
    amount, tax, total, words = (printed.get(n) for n in ("amount", "tax", "total", "total_in_words"))
    if not all(isinstance(v, Decimal) for v in (amount, tax, total)) or not isinstance(words, str):
        return frozenset()
    try:
        spelled = parse_words(words)
    except WordsError:
        return frozenset()
    return _MONEY if amount + tax == total == spelled else frozenset()
