"""OFD page text by position, for OFDs whose data is only printed.

Many OFDs carry no CustomDatas, tags or XML attachment for some of what they
print (the goods lines, often), and some carry none at all. Each TextCode is
placed where it is drawn: its TextObject's Boundary origin plus the code's
X/Y, through the object's CTM where there is one (OFD units are mm, y down).
The runs are then laid out in rows as `pdf_geometry` does for PDF glyphs,
and the text goes to the same parser as a PDF's.
"""

from __future__ import annotations

import re
from decimal import Decimal
from xml.etree.ElementTree import Element

from agent.extract.pdf_geometry import FACE_FIELDS, _Glyph, layout_glyphs
from agent.extract.text import ParsedText, normalize_text, parse_text
from agent.extract.xml import local_name
from agent.model import Invoice, LineItem

_POINTS_PER_MM = 72 / 25.4
_DEFAULT_SIZE_MM = 3.5
_MAX_RUNS = 20_000
_MAX_DELTAS = 10_000    # advances in one TextCode; a line of a page has < 200
# The face's one line when the goods are on list pages: no goods line itself.
_LIST_MARKERS = ("详见销货清单", "详见清单")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?")

__all__ = ["FACE_FIELDS", "read_by_position", "offer_by_position"]


def read_by_position(parts: list[Element]) -> ParsedText:
    """The fields and items `text.parse_text` finds in the text of `parts`
    (a page and its templates, parsed), laid out by position."""
    runs: list[_Glyph] = []
    for root in parts:
        runs.extend(_runs(root))
        if len(runs) > _MAX_RUNS:
            return ParsedText()
    return parse_text(normalize_text(layout_glyphs(runs)))


def offer_by_position(invoice: Invoice, reading: ParsedText, source: str) -> None:
    """Fill what `invoice` lacks from `reading`: a field only where it has
    none (a field it has is never replaced or contradicted from here), and
    the goods lines only when it has none and their 金额 and 税额 add up to
    its totals, so that one misplaced number is not stored as a line."""
    for name, value in reading.fields.items():
        if invoice.get(name) is None:
            invoice.offer(name, value, source)
    items = [i for i in reading.items if not any(m in i.name for m in _LIST_MARKERS)]
    if not invoice.items and items and _add_up(items, invoice):
        invoice.items.extend(items)


def _add_up(items: list[LineItem], invoice: Invoice) -> bool:
    amount, tax = invoice.get("amount"), invoice.get("tax")
    if not isinstance(amount, Decimal) or any(i.amount is None for i in items):
        return False
    if sum(i.amount for i in items) != amount:
        return False
    if isinstance(tax, Decimal):
        return sum(i.tax or Decimal(0) for i in items) == tax
    return all(i.tax is None for i in items)


def _runs(root: Element) -> list[_Glyph]:
    out = []
    for obj in root.iter():
        if local_name(obj.tag) != "TextObject":
            continue
        box = _numbers(obj.get("Boundary"), 4)
        if box is None:
            continue
        size = _number(obj.get("Size")) or _DEFAULT_SIZE_MM
        a, b, c, d, e, f = _numbers(obj.get("CTM"), 6) or (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        for code in obj:
            if local_name(code.tag) != "TextCode":
                continue
            text = "".join(code.itertext()).strip()
            if not text:
                continue
            x, y = _number(code.get("X")) or 0.0, _number(code.get("Y")) or 0.0
            left = box[0] + a * x + c * y + e
            baseline = box[1] + b * x + d * y + f
            width = _width(text, size, code.get("DeltaX")) * (abs(a) or 1.0)
            height = size * (abs(d) or 1.0)
            # y up for the layout: the baseline is the glyphs' bottom.
            out.append(_Glyph(text, left * _POINTS_PER_MM, -baseline * _POINTS_PER_MM,
                              (left + width) * _POINTS_PER_MM, (height - baseline) * _POINTS_PER_MM))
    return out


def _width(text: str, size: float, delta_x: str | None) -> float:
    deltas = _deltas(delta_x)
    if deltas:
        return sum(deltas[:len(text) - 1]) + size
    # No advances given: CJK and full-width glyphs are square, others half.
    return sum(size if ord(ch) > 0x2E7F else size / 2 for ch in text)


def _deltas(text: str | None) -> list[float]:
    """DeltaX values, with the `g count value` repetition expanded."""
    if not text:
        return []
    tokens = text.split()
    out: list[float] = []
    i = 0
    while i < len(tokens) and len(out) < _MAX_DELTAS:
        if tokens[i] == "g" and i + 2 < len(tokens):
            count, value = _number(tokens[i + 1]), _number(tokens[i + 2])
            if count is None or value is None:
                return []
            out.extend([value] * max(0, min(int(count), _MAX_DELTAS - len(out))))
            i += 3
            continue
        value = _number(tokens[i])
        if value is None:
            return []
        out.append(value)
        i += 1
    return out


def _number(text: str | None) -> float | None:
    if text is None or not _NUMBER_RE.fullmatch(text.strip()):
        return None
    value = float(text)
    return value if abs(value) < 1e6 else None


def _numbers(text: str | None, count: int) -> tuple[float, ...] | None:
    parts = (text or "").split()
    if len(parts) != count:
        return None
    values = [_number(p) for p in parts]
    return None if any(v is None for v in values) else tuple(values)  # type: ignore[arg-type]
