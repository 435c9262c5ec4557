"""OCR of scans: the fields a QR code does not carry (names, tax ids, 税额,
价税合计 and its 大写), read from the printed page.

The engine is RapidOCR (PaddleOCR's PP-OCRv4 models on onnxruntime, shipped
inside its wheel, no download at run time). It is an optional extra
(`pip install 'fapiao-agent[ocr]'`): this is the only module that imports it,
and without it scans are read through their QR code alone.

OCR misreads, so nothing it reads is taken on trust:
- the QR (CRC-checked) stays the authority for the fields it carries; an OCR
  reading that disagrees is a warning, not a conflict that would quarantine
  a genuine invoice for a smudge;
- a value that fails its own check is dropped with a warning instead of
  stored: a tax id of no valid form (a wrong 统一社会信用代码 check digit, a
  wrong length), money where 金额 + 税额 != 价税合计, a 大写 that does not
  spell the 小写.
A missing value sends the invoice to 补录; a wrong one could go unseen.
A date or title the page pass missed gets a second, closer look
(`ocr_regions`), kept only when its readings agree.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, ContextManager

from PIL import Image

from agent.extract.ocr_layout import EngineLine, TextBox, layout_text, page_boxes, upright
from agent.extract.ocr_regions import SecondLook, second_look
from agent.extract.text import normalize_text, parse_text
from agent.model import MONEY_FIELDS, Invoice, LineItem, Problem, values_differ
from agent.validate.amounts import WordsError, parse_words
from agent.validate.codes import code_defects, is_digits, shudian_number_defects
from agent.validate.uscc import classify_tax_id

SOURCE = "ocr"
# Text on an invoice scan stays legible well below 300 dpi: at 1280 px on
# the long side (~130 dpi) 99.3 % of generated scans' printed fields still
# read, and a page costs ~30 % less time and ~100 MB less peak memory than
# at 1600 (a full 2646x1764 page peaks near 800 MB).
_MAX_SIDE = 1280
# Fields OCR may add; the QR's own fields are only compared.
_OCR_FIELDS = ("title", "tax", "total", "total_in_words", "amount",
               "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")
# What the QR carries (CRC-checked): compared with the print, never replaced.
_COMPARED = ("code", "number", "date", "check_code", "amount", "total")
_SAN_RE = re.compile("参(?=[拾佰仟万亿圆元角分])")
_USCC_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "S": "5", "Z": "2"})

_engine: Any = None
_engine_error: str | None = None
_engine_lock = threading.Lock()
_threads = 0  # 0: onnxruntime's default, every core
_gate: Callable[[], ContextManager[Any]] = contextlib.nullcontext


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads per page (0: every core), from the next
    engine load on. Pool workers use 1: two workers each running on every
    core read 0.53 pages/s, on one core each 0.84."""
    global _threads
    _threads = threads


def set_gate(gate: Callable[[], ContextManager[Any]] | None) -> None:
    """Run every page's OCR inside `gate()` (None: no gate). The daemon
    passes one that takes an OCR slot, so at most N processes hold OCR's
    ~600 MB working memory at once; waiting for it is the caller's business,
    this module only asks."""
    global _gate
    _gate = gate or contextlib.nullcontext


def engine_installed() -> bool:
    """True when the OCR extra's package is installed; cheap (nothing is
    imported or loaded), for status lines. `unavailable_reason` is the
    real test."""
    import importlib.util

    try:
        return importlib.util.find_spec("rapidocr_onnxruntime") is not None
    except ValueError:  # imported already, without a spec
        return True


def unavailable_reason() -> str | None:
    """None when OCR can run here, else why not (one line, with the fix).
    Loads the engine on first call (~0.2 s, ~50 MB); later calls are free."""
    _load_engine()
    return _engine_error


def _load_engine() -> Any:
    global _engine, _engine_error
    with _engine_lock:
        if _engine is None and _engine_error is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as e:
                hint = ("apt-get install libgl1 libglib2.0-0" if "lib" in str(e) and ".so" in str(e)
                        else "pip install 'fapiao-agent[ocr]'")
                _engine_error = f"the OCR engine is not installed ({e}); {hint}"
            else:
                try:
                    # Text on invoices is upright once the QR says which way is
                    # up; the angle classifier only costs time.
                    _engine = RapidOCR(use_cls=False, **({"intra_op_num_threads": _threads} if _threads else {}))
                except Exception as e:  # noqa: BLE001 - a broken model or runtime: say so, read QR only
                    _engine_error = f"the OCR engine failed to load ({type(e).__name__}: {e})"
        return _engine


def read_boxes(img: Image.Image) -> list[TextBox]:
    """Every line of text OCR finds in `img`, as boxes on the page turned
    straight, in pixels of the (possibly downscaled) image. Raises
    RuntimeError when OCR is unavailable (see `unavailable_reason`)."""
    engine = _load_engine()
    if engine is None:
        raise RuntimeError(_engine_error)
    import numpy

    rgb = img.convert("RGB")
    scale = min(1.0, _MAX_SIDE / max(rgb.size))
    if scale < 1:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    pixels = numpy.asarray(rgb)[:, :, ::-1].copy()  # the engine wants BGR, as OpenCV reads files
    found, _ = engine(pixels, return_word_box=True)
    lines = [EngineLine(corners, text, *chars[:2]) for corners, text, _score, *chars in found or ()]
    return page_boxes(rgb.convert("L"), lines, scale)


def recognise_lines(strips: list[Image.Image]) -> list[str]:
    """The text of each image in `strips`, each read as one line by the
    recogniser alone (no detection; ~0.1 s a strip): "" where it reads
    nothing it trusts. Raises RuntimeError when OCR is unavailable."""
    engine = _load_engine()
    if engine is None:
        raise RuntimeError(_engine_error)
    if not strips:
        return []
    import numpy

    found, _ = engine.text_rec([numpy.asarray(s.convert("RGB"))[:, :, ::-1].copy() for s in strips])
    return [text if score >= engine.text_score else "" for text, score in found]


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


def read_page(img: Image.Image, known: frozenset[str] | set[str] = frozenset()) -> OcrReading:
    """OCR `img` and parse it as an invoice face; the date and title the
    whole-page pass misses are looked for again, closely, unless in
    `known` (the caller has them already: a QR). Never raises: an engine
    that is missing or fails gives a reading with `error` set."""
    try:
        with _gate():
            page = upright(img)
            boxes = read_boxes(page)
            norm = _fix_words(normalize_text(layout_text(boxes)))
            parsed = parse_text(norm)
            try:
                look = second_look(page, boxes, parsed.fields, recognise_lines, skip=known)
            except Exception:  # noqa: BLE001 - a closer look is an extra; the page's reading stands
                look = SecondLook()
    except Exception as e:  # noqa: BLE001 - OCR is an extra; the QR reading must survive it
        return OcrReading({}, error=str(e) or type(e).__name__)
    finally:
        give_back_memory()
    return OcrReading(parsed.fields | look.fields, parsed.items,
                      says_invoice=parsed.is_invoice_like or "发票" in norm, unread=look.notes)


def give_back_memory() -> None:
    """Hand memory malloc keeps after a big page back to the system (glibc;
    elsewhere nothing happens). Never raises.

    A page's working memory (an OCR pass ~300 MB, a scan's or a render's
    pixels several MB) is freed but kept by malloc; a pool worker would hold
    it between pages and files. Trimming hands it back (470 -> 177 MB
    resident after an OCR page) and costs ~1 ms."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory stays with the process
        pass


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
    that fail their checks are dropped with a warning."""
    if reading.error is not None:
        invoice.problems.append(Problem("ocr-failed", "warning",
                                        f"OCR could not read the page: {reading.error}",
                                        message_zh="OCR 未能识别此页，仅采用二维码信息"))
        return
    for name in _COMPARED:
        known, value = invoice.fields.get(name), reading.fields.get(name)
        if known is not None and value is not None and values_differ(known.value, value):
            invoice.problems.append(Problem(
                "ocr-disagrees", "warning", field=name,
                message=f"the printed {name} reads {value} by OCR, the {known.source} says "
                        f"{known.value}; the {known.source} value is kept",
                message_zh=f"{name} 的印刷内容经 OCR 识别为 {value}，与 {known.source} 的 {known.value} 不符"))
    for name, value in _checked(invoice, reading.fields).items():
        if name in _OCR_FIELDS and name not in invoice.fields:
            invoice.offer(name, value, SOURCE)
    for name, why in reading.unread.items():
        if name not in invoice.fields:
            invoice.problems.append(Problem(
                "ocr-unverified", "warning", field=name,
                message=f"{why}; {name} left empty for 补录",
                message_zh=f"OCR 复读后仍无法确定 {name}（{why}），留待补录"))
    if invoice.get("tax") is None and reading.items:
        _offer_tax_of_items(invoice, reading.items)
    if reading.items and not invoice.items and _items_add_up(reading.items, invoice):
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
                message_zh=f"OCR 识别的 {name} 无法核对，留待补录"))
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


def _repair_tax_id(tax_id: str) -> str:
    """Letters a 统一社会信用代码 never holds (I O S V Z) read for the digits
    they resemble; the check digit then decides whether the id is kept."""
    if len(tax_id) == 19 and tax_id.count("VV") == 1:  # W split in two
        tax_id = tax_id.replace("VV", "W")
    return tax_id.translate(_USCC_LOOKALIKES) if len(tax_id) == 18 else tax_id


def _checked(invoice: Invoice, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` without the values that fail their own checks, each dropped
    value noted on `invoice` as an "ocr-unverified" warning."""
    kept = dict(fields)

    def drop(name: str, why: str) -> None:
        if name in kept:
            invoice.problems.append(Problem(
                "ocr-unverified", "warning", field=name,
                message=f"OCR read {name} as {kept.pop(name)} but {why}; left empty for 补录",
                message_zh=f"OCR 识别的 {name} 未通过校验（{why}），留待补录"))

    for role in ("buyer", "seller"):
        tax_id = kept.get(f"{role}_tax_id")
        if tax_id is None or classify_tax_id(tax_id) != "invalid":
            continue
        repaired = _repair_tax_id(tax_id)
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
