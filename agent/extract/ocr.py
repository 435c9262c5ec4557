"""OCR of scans: the fields a QR code does not carry (names, tax ids, 税额,
价税合计 and its 大写), read from the printed page.

The engine (RapidOCR, an optional extra) is loaded and called in
`ocr_engine`; without it scans are read through their QR code alone.

A scan whose QR decodes has only the bands printing those fields read,
found from the QR's place and size on the page (`ocr_frame`): ~1/5 of
the page's lines. When the bands do not give every such field, each
passing the checks below, the whole page is read, as a page without a
QR always is.

OCR misreads, so nothing it reads is taken on trust:
- the QR (CRC-checked) stays the authority for the fields it carries; an OCR
  reading that disagrees is a warning, not a conflict that would quarantine
  a genuine invoice for a smudge; but a print that differs in two of the
  QR's identity values (代码, 号码, date, 校验码) is another invoice's (a QR
  pasted over it), and an amount the print confirms itself that differs
  from the QR's is a forged QR: conflicts, not warnings (`ocr_compare`);
- a value that fails its own check is dropped with a warning instead of
  stored: a tax id of no valid form (a wrong 统一社会信用代码 check digit, a
  wrong length), money where 金额 + 税额 != 价税合计, a 大写 that does not
  spell the 小写 (nor the 小写, 税额 and 金额 beside a 大写 that spells
  another amount), a name with a character the recogniser was unsure of
  (`ocr_parties.unsure_names`: no check character guards a name).
A missing value sends the invoice to 补录; a wrong one could go unseen.
A date or title the page pass missed gets a second, closer look
(`ocr_regions`), kept only when its readings agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, ContextManager

from PIL import Image

from agent.extract.ocr_compare import compare_with_qr
from agent.extract.ocr_engine import (MAX_SIDE, engine_installed, give_back_memory, read_boxes, read_mosaic,
                                      recognise_lines, set_threads, unavailable_reason)
from agent.extract.ocr_frame import DIGITAL, LAYOUTS, QrFrame, mosaic
from agent.extract.ocr_layout import find_qr, layout_text, upright
from agent.extract.ocr_parties import place_tax_ids, repair_tax_id, unsure_names
from agent.extract.ocr_regions import SecondLook, read_tax_again, second_look
from agent.extract.ocr_tax import total_defect
from agent.extract.qr import apply_qr, parse_qr
from agent.extract.text import normalize_text, parse_text
from agent.model import MONEY_FIELDS, Invoice, LineItem, Problem, field_zh
from agent.validate.amounts import WordsError, parse_words
from agent.validate.codes import code_defects, is_digits, shudian_number_defects
from agent.validate.uscc import classify_tax_id

__all__ = ["OcrReading", "apply_reading", "engine_installed", "give_back_memory", "invoice_from_print",
           "read_page", "read_page_if_available", "read_regions", "read_whole_page", "set_gate", "set_threads",
           "unavailable_reason"]

SOURCE = "ocr"
# Fields OCR may add; the QR's own fields are only compared.
_OCR_FIELDS = ("title", "tax", "total", "total_in_words", "amount",
               "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")
# What a page's regions must give, each passing its checks, for the page
# not to be read whole: the printed-only fields (the QR carries the rest).
_PARTIES = ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")
_REGION_FIELDS = {"legacy": _PARTIES + ("tax", "total", "total_in_words"),
                  "digital": _PARTIES + ("amount", "tax", "total_in_words")}
_SAN_RE = re.compile("参(?=[拾佰仟万亿圆元角分])")

_gate: Callable[[], ContextManager[Any]] = contextlib.nullcontext


def set_gate(gate: Callable[[], ContextManager[Any]] | None) -> None:
    """Run every page's OCR inside `gate()` (None: no gate). The daemon
    passes one that takes an OCR slot, so at most N processes hold OCR's
    working memory at once; waiting for it is the caller's business,
    this module only asks."""
    global _gate
    _gate = gate or contextlib.nullcontext


@dataclass
class OcrReading:
    """What OCR made of one page: parsed fields, or why there are none."""

    fields: dict[str, Any]
    items: list[LineItem] = field(default_factory=list)
    error: str | None = None
    # The print carries invoice labels, or at least the word 发票 (a taxi
    # invoice prints its 代码 and 号码 with no label).
    says_invoice: bool = False
    # Fields a second look (ocr_regions) sought and left empty, and why.
    unread: dict[str, str] = field(default_factory=dict)
    # "regions": only the bands the QR's fields leave open were read
    # (`read_regions`); "page": the whole page was.
    path: str = "page"
    # The 合计 row's 税额 read again, closer (`ocr_regions.read_tax_again`).
    taxes_again: tuple[Decimal | None, ...] = ()


def read_page(img: Image.Image, known: frozenset[str] | set[str] = frozenset()) -> OcrReading:
    """OCR `img` and parse it as an invoice face. A page whose QR decodes
    and fixes its layout has only the regions holding the fields its QR
    lacks read (`read_regions`); when they do not give every one of them,
    each passing its checks, or the page has no such QR, the whole page is
    read (`read_whole_page`). Never raises: an engine that is missing or
    fails gives a reading with `error` set."""
    try:
        with _gate():
            qr = find_qr(img)
            reading = read_regions(img, qr) if qr is not None else None
            if reading is None:
                reading = read_whole_page(upright(img, qr) if qr is not None else img, known)
    except Exception as e:  # noqa: BLE001 - OCR is an extra; the QR reading must survive it
        return OcrReading({}, error=str(e) or type(e).__name__)
    finally:
        give_back_memory()
    return reading


def read_whole_page(page: Image.Image, known: frozenset[str] | set[str] = frozenset()) -> OcrReading:
    """Every line of `page` (already upright) read and parsed as an invoice
    face; the date and title this misses are looked for again, closely,
    unless in `known` (the caller has them already: a QR). Raises
    RuntimeError when OCR is unavailable."""
    boxes = read_boxes(page)
    norm = _fix_words(normalize_text(layout_text(boxes)))
    parsed = parse_text(norm)
    # Rows, not columns, in the layout text: side-by-side party boxes are
    # told apart by the page's pixels.
    party_fields, party_notes = place_tax_ids(boxes, parsed.fields)
    party_fields, name_notes = unsure_names(boxes, party_fields)
    try:
        look = second_look(page, boxes, parsed.fields, recognise_lines, skip=known)
    except Exception:  # noqa: BLE001 - a closer look is an extra; the page's reading stands
        look = SecondLook()
    # A 税额 that does not add up: a misread, or what the paper prints (`ocr_tax`).
    again = read_tax_again(page, boxes, parsed.fields, recognise_lines)
    return OcrReading(party_fields | look.fields, parsed.items, taxes_again=again,
                      says_invoice=parsed.is_invoice_like or "发票" in norm, unread=party_notes | name_notes | look.notes)


def read_regions(img: Image.Image, qr: Any = None) -> OcrReading | None:
    """The fields `img`'s invoice QR (`qr`, from `find_qr(img)`, or decoded
    here) lacks, read from only the bands of the page that print them
    (`ocr_frame`): None when the QR is no invoice QR of a known layout or
    does not give the title, when a band lies off the page, or when the
    bands do not give every field the QR lacks with each passing its
    checks. The caller then reads the whole page: this never gives less
    than that, only sooner. Raises RuntimeError when OCR is unavailable."""
    from agent.extract.image import title_from_qr  # image imports this module

    qr = qr if qr is not None else find_qr(img)
    payload = parse_qr(qr.text) if qr is not None else None
    layout = LAYOUTS.get(payload.kind) if payload is not None else None
    if layout is None or title_from_qr(payload.kind, payload.code) is None:
        return None
    corners = qr.position
    frame = QrFrame.of(*((p.x, p.y) for p in (corners.top_left, corners.top_right, corners.bottom_left)))
    cut = mosaic(img, frame, layout, MAX_SIDE) if frame is not None else None
    if cut is None:
        return None
    boxes = read_mosaic(cut.image, cut.keeps)
    wanted = _REGION_FIELDS["digital" if layout is DIGITAL else "legacy"]
    read: dict[str, Any] = {}
    for role in ("buyer", "seller", "totals"):
        # Each band parsed alone: a party's fields are its band's, whatever
        # another band reads or misses.
        band = [b for b in boxes if cut.role_of(b.quad) == role]
        norm = _fix_words(normalize_text(layout_text(band)))
        fields, _ = unsure_names(band, parse_text(norm).fields)  # a name dropped: the whole page is read
        if role == "totals":
            read |= {k: fields[k] for k in ("amount", "tax", "total", "total_in_words") if k in fields}
        else:
            read |= {f"{role}_{k}": fields[f"buyer_{k}"] for k in ("name", "tax_id") if f"buyer_{k}" in fields}
    probe = Invoice()
    apply_qr(probe, payload)
    kept = _checked(probe, read)
    if any(kept.get(name) is None for name in wanted):
        return None
    return OcrReading(read, says_invoice=True, path="regions")


def read_page_if_available(img: Image.Image, known: frozenset[str] | set[str] = frozenset()) -> OcrReading | None:
    """`read_page(img)` when OCR can run; None when the OCR extra is not
    installed (the caller keeps its QR reading). Installed but unable to
    load (a missing system library, a broken model), it is a reading with
    `error` set, so every scan says why it was read by QR only."""
    reason = unavailable_reason()
    if reason is None:
        return read_page(img, known)
    return OcrReading({}, error=reason) if engine_installed() else None


def apply_reading(invoice: Invoice, reading: OcrReading) -> None:
    """Add an OCR reading to `invoice` (source "ocr") under the rules in the
    module docstring: the QR's fields are compared, never replaced; values
    that fail their checks are dropped with a warning. A print that is
    another invoice's than the QR's adds conflicts and an
    `ocr-other-invoice` error, and no field of its own."""
    if reading.error is not None:
        invoice.problems.append(Problem("ocr-failed", "warning",
                                        f"OCR could not read the page: {reading.error}",
                                        message_zh="OCR 未能识别此页，仅采用二维码信息"))
        return
    if compare_with_qr(invoice, reading.fields):
        return  # the print is another invoice's: nothing of it is this one's
    for name, value in _checked(invoice, reading.fields, reading.items, reading.taxes_again).items():
        if name in _OCR_FIELDS and name not in invoice.fields:
            invoice.offer(name, value, SOURCE)
    for name, why in reading.unread.items():
        if name not in invoice.fields:
            invoice.problems.append(Problem(
                "ocr-unverified", "warning", field=name,
                message=f"{why}; {name} left empty for 补录",
                message_zh=f"OCR 复读后仍无法确定 {field_zh(name)}（{why}），留待补录"))
    if invoice.get("tax") is None and reading.items:
        _offer_tax_of_items(invoice, reading.items)
    refused = "total" in reading.fields and invoice.get("total") is None  # the lines of a paper not believed
    if reading.items and not invoice.items and not refused and _items_add_up(reading.items, invoice):
        invoice.items.extend(reading.items)


def invoice_from_print(reading: OcrReading) -> Invoice | None:
    """The invoice a page's print alone gives (a photo whose QR cannot be
    decoded), or None when the print does not read as an invoice with a
    sound identity: a 代码 of a known form and region with an 8-digit 号码,
    or a 20-digit 数电 号码 of the invoice's year and a known province. The
    date and a 20-digit 校验码 come with it; every other field passes the
    checks of `apply_reading`. A warning says that nothing was CRC-checked."""
    if reading.error is not None or not reading.says_invoice:
        return None
    fields = reading.fields
    code, number, date = fields.get("code"), fields.get("number"), fields.get("date")
    if code is not None:
        if code_defects(code) or not is_digits(number, 8):
            return None
    elif not is_digits(number, 20) or shudian_number_defects(number, getattr(date, "year", None)):
        return None
    invoice = Invoice()
    for name in ("code", "number", "date"):
        invoice.offer(name, fields.get(name), SOURCE)
    _drop_date_before_stock(invoice)
    if is_digits(fields.get("check_code"), 20):
        invoice.offer("check_code", fields["check_code"], SOURCE)
    apply_reading(invoice, reading)
    _drop_unconfirmed_money(invoice)
    invoice.problems.append(Problem(
        "ocr-only", "warning", field=None,
        message="no QR code could be read: 代码, 号码 and 日期 come from OCR of the print alone",
        message_zh="未能识别二维码：发票代码、号码和日期仅由 OCR 从印刷内容读出"))
    return invoice


def _drop_date_before_stock(invoice: Invoice) -> None:
    # An old-style 代码 carries the year its blank stock was printed (digits
    # 5-6 of 10, 6-7 of a 0-led 12): no invoice is issued on paper not yet
    # printed, so an earlier date is a misread. (A date after the file's
    # arrival is the validator's date-future rule: extract has no clock.)
    code, date = invoice.get("code"), invoice.get("date")
    if not isinstance(date, dt.date) or not isinstance(code, str):
        return
    digits = code[5:7] if len(code) == 12 and code[0] == "0" else code[4:6] if len(code) == 10 else None
    if digits is None or not digits.isdigit():
        return
    stock_year = 2000 + int(digits) if int(digits) < 90 else 1900 + int(digits)
    if date.year < stock_year:
        invoice.problems.append(Problem(
            "ocr-unverified", "warning", field="date",
            message=f"OCR read date as {date} but the 代码 {code} is of {stock_year} stock; left empty for 补录",
            message_zh=f"OCR 识别的开票日期 {date} 早于发票代码所示的 {stock_year} 年，留待补录"))
        del invoice.fields["date"]


def _drop_unconfirmed_money(invoice: Invoice) -> None:
    # With no QR amount to anchor them, money read from the print stays only
    # when a second reading confirms it: the 价税合计 by its 大写, 金额 and
    # 税额 by adding up to that 价税合计.
    total = invoice.get("total") if invoice.get("total_in_words") is not None else None
    amount, tax = invoice.get("amount"), invoice.get("tax")
    sound = total is not None and amount is not None and amount + (tax or Decimal(0)) == total
    for name in ("total", "amount", "tax"):
        if invoice.get(name) is not None and (total is None if name == "total" else not sound):
            invoice.problems.append(Problem(
                "ocr-unverified", "warning", field=name,
                message=f"OCR read {name} as {invoice.get(name)} but nothing confirms it; left empty for 补录",
                message_zh=f"OCR 识别的 {field_zh(name)} 无法核对，留待补录"))
            del invoice.fields[name]
    if invoice.get("total") is None:
        invoice.items.clear()


def _offer_tax_of_items(invoice: Invoice, items: list[LineItem]) -> None:
    # OCR can miss the 合计 row and still read the goods lines. Their 税额 is
    # the invoice's when their 金额 add up to its 金额 and 金额 + 税额 gives a
    # 价税合计 that a second reading confirms (the QR, or a 大写 kept because
    # it spells it): a misread digit cannot pass all three.
    amount, total = invoice.get("amount"), invoice.fields.get("total")
    if amount is None or total is None or any(i.amount is None or i.tax is None for i in items):
        return
    if total.source == SOURCE and invoice.get("total_in_words") is None:
        return
    tax = sum(i.tax for i in items)
    if sum(i.amount for i in items) == amount and amount + tax == total.value:
        invoice.offer("tax", tax, SOURCE)


def _items_add_up(items: list[LineItem], invoice: Invoice) -> bool:
    # Line items are kept only when their 金额 and 税额 sum to the invoice's
    # totals: a misread digit in any one of them fails the sum.
    amount, tax = invoice.get("amount"), invoice.get("tax")
    if amount is None or any(i.amount is None for i in items):
        return False
    if sum(i.amount for i in items) != amount:
        return False
    line_tax = sum(i.tax or Decimal(0) for i in items)
    if tax is None:
        # No 税额 to check the lines' against: the 价税合计 still is one.
        total = invoice.get("total")
        return total is None or all(i.tax is None for i in items) or amount + line_tax == total
    return line_tax == tax


def _fix_words(text: str) -> str:
    """叁 read as its look-alike 参, which is no 大写 digit, where a 大写 unit
    follows; the result must still spell the 小写 to be kept."""
    return _SAN_RE.sub("叁", text)


def _checked(invoice: Invoice, fields: dict[str, Any], items: list[LineItem] | None = None,
             taxes_again: tuple[Decimal | None, ...] = ()) -> dict[str, Any]:
    """`fields` without the values that fail their own checks, each dropped
    value noted on `invoice` as an "ocr-unverified" warning. `items` (the
    goods lines read) and `taxes_again` (closer looks at the 税额) are
    what a 价税合计 is checked against beside the QR's 金额 (`ocr_tax`)."""
    kept = dict(fields)

    def drop(name: str, why: str, why_zh: str | None = None) -> None:
        if name in kept:
            invoice.problems.append(Problem(
                "ocr-unverified", "warning", field=name,
                message=f"OCR read {name} as {kept.pop(name)} but {why}; left empty for 补录",
                message_zh=f"OCR 识别的 {field_zh(name)} 未通过校验（{why_zh or why}），留待补录"))

    for role in ("buyer", "seller"):
        tax_id = kept.get(f"{role}_tax_id")
        if tax_id is None or classify_tax_id(tax_id) != "invalid":
            continue
        repaired = repair_tax_id(tax_id)
        if classify_tax_id(repaired) != "invalid":
            kept[f"{role}_tax_id"] = repaired
        else:
            drop(f"{role}_tax_id", "it is no valid tax id (a wrong 统一社会信用代码 check digit, or the wrong length)")

    def value(name: str) -> Decimal | None:
        known = invoice.get(name)
        return known if known is not None else kept.get(name)

    amount, tax, total = value("amount"), value("tax"), value("total")
    words = kept.get("total_in_words")
    spelled = _spells(words) if words is not None else None
    # The 大写 is a second, independent reading of the 价税合计.
    total_confirmed = invoice.get("total") is not None or (total is not None and spelled == total)
    if None not in (amount, tax, total) and amount + tax != total:
        why = f"金额 {amount} + 税额 {tax} != 价税合计 {total}"
        for name in ("amount", "tax") if total_confirmed else sorted(MONEY_FIELDS):
            drop(name, why)
        total = value("total")
    if invoice.get("total") is None and total is not None and spelled is not None and spelled != total:
        # The paper prints its 价税合计 twice and they differ: a 大写 misread
        # seldom spells another amount, so one of the two was altered (a
        # 税额 and 小写 changed together still add up). Neither is kept,
        # nor the 金额 and 税额 that only agreed with the 小写.
        for name in ("total", "tax", "amount"):
            drop(name, f"the 大写 {words} spells {spelled}, not 价税合计 {total}")
        total = value("total")
    qr_amount = invoice.fields.get("amount")
    if invoice.get("total") is None and total is not None and qr_amount is not None and qr_amount.source == "qr":
        why = total_defect(qr_amount.value, total, invoice.get("date"), fields.get("tax"), taxes_again, items or ())
        for name in ("total", "tax", "total_in_words") if why else ():  # the 大写 and 税额 that agreed go too
            drop(name, f"the 价税合计 {total} {why[0]}", f"价税合计 {total} {why[1]}")
        total = value("total")
    if words is not None:
        if total is None:
            drop("total_in_words", "there is no 价税合计 to check it against")
        elif spelled != total:
            drop("total_in_words", f"it does not spell 价税合计 {total}")
    return kept


def _spells(words: str) -> Decimal | None:
    try:
        return parse_words(words)
    except WordsError:
        return None
