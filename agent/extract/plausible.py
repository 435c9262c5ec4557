"""The last step of every reading: what the sources said, reconciled and checked.

Two things happen once all sources have been offered (PDF, OFD, image: one
place, `agent.extract.extract_bytes`, and for the arrival date the pipeline):

1. The QR amount is cross-checked against the printed 金额, 税额 and 价税合计.
   The QR's one amount is 金额 for the older VAT types and 价税合计 for 数电,
   but some issuers (代开 invoices) write the other one. When the QR amount
   equals the printed 价税合计 (or, for 数电, the printed 金额) and a non-zero
   税额 is printed, the QR cannot be the field it was stored as: the printed
   value takes its place when 金额 + 税额 = 价税合计 holds with it, the field is
   left empty otherwise, and a `qr-amount-other` warning says so.
2. Every value read by position from a page (PDF text, OFD page text, OCR:
   `POSITIONAL`) must pass a plausibility check, or it is removed (never
   stored, never guessed) with an `implausible-*` problem naming what was read:
   - a name holds no run of 密码区 characters (`<>/*+-` and digits);
   - a tax id is of a valid form (the 统一社会信用代码 check digit, or a legacy
     15/17/18/20-character form);
   - a 发票代码, 发票号码 or 校验码 has the structure of one;
   - 金额 + 税额 = 价税合计 (the readings no other source or the 大写 confirms are
     removed when it fails);
   - the date is not after the day the file arrived (`drop_dates_after`).
Values from structured parts (QR, XML, OFD data) are judged by validation,
which keeps them visible; a positional value is only a reading of where a
value seemed to be, and one from the wrong box is worse than none.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Callable

from agent.extract.qr import TAX_EXCLUSIVE_KINDS, parse_qr
from agent.model import Conflict, Field, Invoice, Problem, field_zh, values_differ
from agent.validate.amounts import WordsError, parse_words
from agent.validate.codes import code_defects, is_digits, shudian_number_defects
from agent.validate.uscc import classify_tax_id

# Sources that read a value by where it is printed rather than by what names it.
POSITIONAL = frozenset({"pdf-text", "ofd-text", "ocr"})

# 密码区 ciphertext: digits and + - * / < >, with the look-alikes a text layer
# or OCR gives for < and > (‹ › 〈 〉 ＜ ＞ survive NFKC as ‹ › 〈 〉).
_CIPHER = r"0-9<>/*+\-‹›〈〉"
_CIPHER_RUN_RE = re.compile(rf"[{_CIPHER}]{{4,}}")
_OPERATOR_RE = re.compile(r"[<>/*+‹›〈〉]")
_DIGIT_RUN_RE = re.compile(r"[0-9\-]{10,}")
_BLOCKCHAIN_CHECK_RE = re.compile(r"^[0-9a-f]{5}$")


def reconcile(invoice: Invoice) -> None:
    """Cross-check the QR amount, then drop implausible positional values
    (points 1 and 2 of the module docstring, all but the arrival date).
    Changes `invoice` in place; never raises on any field values."""
    if not invoice.is_invoice:
        return
    _reconcile_qr_amount(invoice)
    _check_fields(invoice)
    _check_sum(invoice)


def drop_dates_after(invoice: Invoice, arrived: dt.date) -> None:
    """Remove a positional date reading later than `arrived` (the day, in
    China, the file reached us), with an `implausible-date` problem: no
    invoice is issued after it is received, so such a date came from another
    box. A date from the QR or structured data stays (validation judges it)."""
    def late(value: Any) -> str | None:
        if isinstance(value, dt.date) and value > arrived:
            return f"it is after the day the file arrived ({arrived.isoformat()})"
        return None
    _check(invoice, "date", late, "implausible-date", "开票日期晚于文件收到日期")


# -- 1. the QR amount ---------------------------------------------------------

def _readings(invoice: Invoice, name: str) -> list[tuple[str, Any]]:
    """(source, value) of every reading of `name`: the field, then the conflict's others."""
    out: list[tuple[str, Any]] = []
    f = invoice.fields.get(name)
    if f is not None and f.value is not None:
        out.append((f.source, f.value))
    for c in invoice.conflicts:
        if c.field == name:
            out.extend((s, v) for s, v in c.values.items() if f is None or s != f.source)
    return out


def _printed(invoice: Invoice, name: str) -> tuple[str, Decimal] | None:
    return next(((s, v) for s, v in _readings(invoice, name) if s != "qr" and isinstance(v, Decimal)), None)


def _reconcile_qr_amount(invoice: Invoice) -> None:
    payload = parse_qr(invoice.get("qr")) if isinstance(invoice.get("qr"), str) else None
    if payload is None or payload.amount is None:
        return
    qr_field = "amount" if payload.kind in TAX_EXCLUSIVE_KINDS else "total"
    amount, tax, total = (_printed(invoice, n) for n in ("amount", "tax", "total"))
    if tax is None or tax[1] == 0:
        return  # no tax: 金额 = 价税合计, the QR cannot be the wrong one of them
    if qr_field == "amount":
        other, label, mine = total, "价税合计", amount
    else:
        other, label, mine = amount, "金额", total
    if other is None or other[1] != payload.amount:
        return
    consistent = amount is not None and total is not None and amount[1] + tax[1] == total[1]
    keep = mine if consistent else None
    _remove_reading(invoice, qr_field, "qr")
    if keep is not None:
        _put(invoice, qr_field, keep[1], keep[0])
    what = f"the printed {keep[1]} is kept" if keep else "the field is left empty for 补录"
    invoice.problems.append(Problem(
        "qr-amount-other", "warning", field=qr_field,
        message=(f"the QR amount {payload.amount} is the printed {label}, not the {qr_field} "
                 f"(税额 {tax[1]} is printed); {what}"),
        message_zh=f"二维码金额 {payload.amount} 为印刷的{label}，不是{'金额' if qr_field == 'amount' else '价税合计'}"))


# -- 2. positional values -----------------------------------------------------

def _name_defect(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    for run in _CIPHER_RUN_RE.finditer(value):
        if _OPERATOR_RE.search(run.group()):
            return f"it holds 密码区 characters ({run.group()})"
    if (run := _DIGIT_RUN_RE.search(value)) is not None:
        return f"it holds a run of digits ({run.group()}) no name prints"
    return None


def _tax_id_defect(value: Any) -> str | None:
    if isinstance(value, str) and classify_tax_id(value) == "invalid":
        return "it is no valid tax id (a wrong 统一社会信用代码 check digit, or no known form)"
    return None


def _code_defect(value: Any) -> str | None:
    if isinstance(value, str) and code_defects(value):
        return code_defects(value)[0][0]
    return None


def _number_defect(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if is_digits(value, 20):
        defects = shudian_number_defects(value, None)
        return defects[0][0] if defects else None
    return None if is_digits(value, 8) else "a 发票号码 is 8 or 20 digits"


def _check_code_defect(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if is_digits(value, 20) or _BLOCKCHAIN_CHECK_RE.match(value):
        return None
    return "a 校验码 is 20 digits"


_FIELD_CHECKS: tuple[tuple[tuple[str, ...], Callable[[Any], str | None], str, str], ...] = (
    (("buyer_name", "seller_name"), _name_defect, "implausible-name", "名称含密码区字符或数字串"),
    (("buyer_tax_id", "seller_tax_id"), _tax_id_defect, "implausible-tax-id", "纳税人识别号校验不通过"),
    (("code",), _code_defect, "implausible-code", "发票代码结构不符"),
    (("number",), _number_defect, "implausible-number", "发票号码结构不符"),
    (("check_code",), _check_code_defect, "implausible-check-code", "校验码结构不符"),
)


def _check_fields(invoice: Invoice) -> None:
    for names, defect, code, zh in _FIELD_CHECKS:
        for name in names:
            _check(invoice, name, defect, code, zh)


def _check(invoice: Invoice, name: str, defect: Callable[[Any], str | None], code: str, zh: str) -> None:
    for source, value in _readings(invoice, name):
        if source not in POSITIONAL:
            continue
        why = defect(value)
        if why is None:
            continue
        _remove_reading(invoice, name, source)
        invoice.problems.append(Problem(
            code, "error", field=name,
            message=f"{name} was read from the page ({source}) as {value!r}, but {why}; left empty for 补录",
            message_zh=f"{field_zh(name)} 由页面（{source}）读出为 {value}，但{zh}，留待补录"))


def _check_sum(invoice: Invoice) -> None:
    fields = {n: invoice.fields.get(n) for n in ("amount", "tax", "total")}
    if any(f is None or not isinstance(f.value, Decimal) for f in fields.values()):
        return
    amount, tax, total = (fields[n].value for n in ("amount", "tax", "total"))  # type: ignore[union-attr]
    if amount + tax == total:
        return
    anchored = {n for n, f in fields.items() if f.source not in POSITIONAL}  # type: ignore[union-attr]
    if _spells(invoice.get("total_in_words")) == total:
        anchored.add("total")  # the 大写 is a second, independent reading of it
    why = f"金额 {amount} + 税额 {tax} != 价税合计 {total}"
    for name in ("amount", "tax", "total"):
        if name in anchored:
            continue
        value, source = fields[name].value, fields[name].source  # type: ignore[union-attr]
        _remove_reading(invoice, name, source)
        invoice.problems.append(Problem(
            "implausible-sum", "error", field=name,
            message=f"{name} was read from the page ({source}) as {value}, but {why}; left empty for 补录",
            message_zh=f"{field_zh(name)} 由页面读出为 {value}，但金额与税额之和不等于价税合计，留待补录"))


def _spells(words: Any) -> Decimal | None:
    if not isinstance(words, str):
        return None
    try:
        return parse_words(words)
    except WordsError:
        return None


# -- the invoice's readings, edited -------------------------------------------

def _remove_reading(invoice: Invoice, name: str, source: str) -> None:
    """Forget what `source` said of `name`. When it was the field, the next
    reading of a conflict takes its place; a conflict left with one distinct
    value is no conflict."""
    conflict = next((c for c in invoice.conflicts if c.field == name), None)
    field = invoice.fields.get(name)
    if field is not None and field.source == source:
        del invoice.fields[name]
    if conflict is None:
        return
    conflict.values.pop(source, None)
    if name not in invoice.fields and conflict.values:
        first_source, first_value = next(iter(conflict.values.items()))
        invoice.fields[name] = Field(first_value, first_source)
    _settle(invoice, conflict)


def _put(invoice: Invoice, name: str, value: Any, source: str) -> None:
    """Make (source, value) the field's reading; a conflict holding only it goes."""
    invoice.fields[name] = Field(value, source)
    conflict = next((c for c in invoice.conflicts if c.field == name), None)
    if conflict is not None:
        _settle(invoice, conflict)


def _settle(invoice: Invoice, conflict: Conflict) -> None:
    field = invoice.fields.get(conflict.field)
    values = list(conflict.values.values()) + ([field.value] if field is not None else [])
    if field is not None:
        conflict.values.setdefault(field.source, field.value)
    if all(not values_differ(values[0], v) for v in values[1:]):
        invoice.conflicts.remove(conflict)
