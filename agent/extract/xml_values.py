"""Values as invoice XML writes them: money, dates, rates, quantities, ids
and names, read strictly (a value that could be read two ways is no
value: None, never a guess).

Apart from agent/extract/xml.py, which reads the two layouts' trees: the
OFD reader (its own tags) and the PDF text reader use these too.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation

from agent.model import Problem
from agent.textchars import has_invisible

_CENT = Decimal("0.01")
# A number as xs:decimal writes one (digits of any script, which Decimal
# reads): Decimal alone also takes "2_0.00" as 20 and "2E0" as 2, which no
# invoice writes; such text is unreadable, never a guess.
_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# Year, month and day with no digit glued on either side: "2023-02-230" or
# "12023-02-23" holds the shape of 23 February 2023 and says another thing
# (a typo, a forgery's trace): no date is read from it, and it is named.
_DATE_RE = re.compile(r"(?<!\d)(\d{4})\s*[-年/.]\s*(\d{1,2})\s*[-月/.]\s*(\d{1,2})(?!\d)")
GLUED_DATE_RE = re.compile(r"\d{4}\s*[-年/.]\s*\d+\s*[-月/.]\s*\d+")
NO_TAX_MARKS = frozenset({"***", "**", "*", "免税", "不征税"})

# A comma in an amount is read only as thousands grouping ("1,234.50"): 1-3
# digits (not led by 0), then groups of exactly 3, decimals after a '.'. Any
# other comma ("2,00", "0,060") may be a decimal comma: no reading is sure.
GROUPED_RE = re.compile(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
def parse_money(text: str | None, *, grouping: bool = True) -> Decimal | None:
    """A money amount as Decimal; None for empty, `***` (免税) or unreadable text.

    Currency signs and spaces are ignored, and commas (, or ，) that group
    thousands; a comma that does not, or any comma when not `grouping`
    (the document writes decimal commas), makes the text unreadable: None,
    never a guess. Amounts that are whole cents are quantized to two places
    so "0.120000" reads as 0.12.
    """
    if text is None:
        return None
    cleaned = re.sub(r"[\s¥￥]", "", text).replace("，", ",")
    if "," in cleaned:
        if not grouping or not GROUPED_RE.fullmatch(cleaned):
            return None
        cleaned = cleaned.replace(",", "")
    if not cleaned or cleaned in NO_TAX_MARKS or not _PLAIN_NUMBER_RE.fullmatch(cleaned):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    try:
        cents = value.quantize(_CENT)
    except InvalidOperation:  # more digits than the context holds
        return None
    return cents if cents == value else value


_ZONED_RE = re.compile(r"\s*(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(Z|[+-]\d{2}:?\d{2})\s*")
_CHINA = dt.timezone(dt.timedelta(hours=8))


def parse_date(text: str | None) -> dt.date | None:
    """A date from `2022年05月05日`, `2023-02-23 10:08:05`, `20200805` ...; None if unreadable.
    A moment written with its UTC offset (`2023-02-22T23:30:00-08:00`) is
    the day it was in China (UTC+8), where invoices are dated."""
    if text and has_invisible(text):
        return None   # `2025-01-1<ZWSP>5` holds the shape of 1 January: no reading
    if text and (zoned := _ZONED_RE.fullmatch(text)):
        try:
            moment = dt.datetime.fromisoformat(f"{zoned[1]}T{zoned[2]}{zoned[3].replace('Z', '+00:00')}")
            return moment.astimezone(_CHINA).date()
        except ValueError:
            return None
    m = date_shape(text)
    if not m:
        return None
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def date_shape(text: str | None) -> re.Match | None:
    """Year, month and day (groups 1-3) in one of the shapes `parse_date`
    reads, whether or not they make a real day; None when there are none."""
    if not text:
        return None
    return _DATE_RE.search(text) or re.fullmatch(r"\s*(\d{4})(\d{2})(\d{2})\s*", text)


def impossible_date(text: str) -> Problem:
    """The error for a 开票日期 written in a date's shape that is no real date."""
    return Problem("date-impossible", "error", field="date",
                   message=f"开票日期 {text!r} is not a real date; left empty for 补录",
                   message_zh=f"开票日期 {text} 不是真实存在的日期，留空待补录")


def parse_rate(text: str | None) -> tuple[Decimal | None, str | None]:
    """(rate as a fraction, rate as printed) from `0.13`, `13%` or `免税`."""
    if text is None:
        return None, None
    t = text.strip()
    if not t:
        return None, None
    try:
        if t.endswith("%"):
            rate = Decimal(t[:-1]) / 100
        else:
            rate = Decimal(t)
    except InvalidOperation:
        return None, t  # 免税, 不征税 ...: no numeric rate
    rate = rate.normalize()
    shown = f"{(rate * 100).normalize():f}%"
    return rate, (t if t.endswith("%") else shown)


def id_digits(text: str | None) -> str | None:
    """A number or tax id as the ASCII the invoice key, duplicate checks and
    validation use: full-width digits and letters (２３４４…) are the same
    id (NFKC), white space dropped; None for empty text."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)) if text else None


_CJK_WIDE = r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]"


def printed_name(text: str | None) -> str | None:
    """A name as printed: a pretty-printer's line break (and its indent)
    inside it is removed between CJK characters and one space elsewhere."""
    if not text:
        return None
    return re.sub(rf"(?<={_CJK_WIDE})\s*\n\s*(?={_CJK_WIDE})", "", text).replace("\r", "") \
        if "\n" in text else text


def parse_decimal(text: str | None) -> Decimal | None:
    """A quantity or unit price as Decimal; None when empty or unreadable."""
    if not text or not _PLAIN_NUMBER_RE.fullmatch(text.strip()):
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
