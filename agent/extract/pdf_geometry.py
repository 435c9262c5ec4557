"""A PDF page's text laid out by where its glyphs are, not by stream order.

pypdf's layout text follows the content stream. Some issuers write every
label first and every value after (深圳's blockchain invoices: pypdf keeps
the labels and loses the values), or a value before its label ("南京…公司销
名称:"). PDFium gives each character's box; rows are the characters whose
vertical centres line up, sorted left to right, with spaces for the gaps
between them, so a label and its value end up on one line as printed.
The result is plain text for `text.parse_text`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.extract.text import ParsedText, normalize_text, parse_text
from agent.model import Problem, values_differ

# PDFium renders and reads text from PDFs it did not write: it is Chrome's
# engine, fuzzed for that. Imported lazily so that XML/OFD readers do not
# need it.
_COLUMN_POINTS = 4.0    # page points per space of indentation or gap
_GAP_OF_HEIGHT = 0.3    # a gap wider than this share of the glyph height is a space
_ROW_OF_HEIGHT = 0.4    # centres closer than this share of the height share a row
# Printed on every invoice face: one missing from the stream-order reading
# calls for the reading by position (which costs a PDFium text page).
FACE_FIELDS = ("number", "date", "total", "buyer_name", "seller_name", "seller_tax_id")
MAX_CHARS = 20_000      # an invoice face has ~1,000; beyond this it is not one
_MAX_RUN = 400          # spaces: a glyph placed far off the page adds no more


@dataclass
class _Glyph:
    text: str
    left: float
    bottom: float
    right: float
    top: float

    @property
    def centre(self) -> float:
        return (self.bottom + self.top) / 2

    @property
    def height(self) -> float:
        return max(self.top - self.bottom, 1.0)


class GeometryReader:
    """Opens the PDF with PDFium once and gives each page's geometric text.

    `page_text` never raises: a page PDFium cannot read gives "". Call
    `close` when done (the document holds native memory).
    """

    def __init__(self, data: bytes):
        self._data = data
        self._doc = None
        self._failed = False

    def complete(self, first: ParsedText, index: int, problems: list[Problem]) -> ParsedText:
        """`first` (the stream-order reading of page `index`), completed by
        the reading by position when it is an invoice face missing one of
        FACE_FIELDS; see `merge_readings`. Returns `first` itself otherwise."""
        if not first.is_invoice_like or all(name in first.fields for name in FACE_FIELDS):
            return first
        second = parse_text(normalize_text(self.page_text(index)))
        return merge_readings(first, second, problems)

    def page_text(self, index: int) -> str:
        doc = self._open()
        if doc is None:
            return ""
        try:
            page = doc[index]
            try:
                textpage = page.get_textpage()
                try:
                    return layout_glyphs(_glyphs(textpage))
                finally:
                    textpage.close()
            finally:
                page.close()
        except Exception:  # noqa: BLE001 - a second reading; the first one stands without it
            return ""

    def close(self) -> None:
        if self._doc is not None:
            self._doc.close()
            self._doc = None

    def _open(self):
        if self._doc is None and not self._failed:
            try:
                import pypdfium2
                self._doc = pypdfium2.PdfDocument(self._data)
            except Exception:  # noqa: BLE001 - not installed, encrypted or broken: no second reading
                self._failed = True
        return self._doc


def _glyphs(textpage) -> list[_Glyph]:
    import pypdfium2.raw as pdfium_c

    count = textpage.count_chars()
    if count > MAX_CHARS:
        return []
    out = []
    for i in range(count):
        # One code unit per char index (7x faster than a text range each);
        # half a surrogate pair is no glyph an invoice label or value uses.
        unit = pdfium_c.FPDFText_GetUnicode(textpage, i)
        if 0xD800 <= unit <= 0xDFFF:
            continue
        ch = chr(unit)
        if not ch or ch.isspace() or unit == 0:
            continue
        # Loose boxes span the font's ascent and descent, so a "." and a "9"
        # of one line share a centre.
        left, bottom, right, top = textpage.get_charbox(i, loose=True)
        out.append(_Glyph(ch, left, bottom, right, top))
    return out


def layout_glyphs(glyphs: list[_Glyph]) -> str:
    """Rows of `glyphs` top to bottom, each left to right, indented and
    spaced in proportion to the page distances (PDF points, y up)."""
    rows: list[tuple[float, float, list[_Glyph]]] = []
    for g in sorted(glyphs, key=lambda g: (-g.centre, g.left)):
        if rows:
            centre, height, members = rows[-1]
            if abs(centre - g.centre) <= min(height, g.height) * _ROW_OF_HEIGHT:
                members.append(g)
                continue
        rows.append((g.centre, g.height, [g]))
    lines = []
    for _, height, members in rows:
        members.sort(key=lambda g: g.left)
        line = " " * min(_MAX_RUN, max(0, int(members[0].left / _COLUMN_POINTS)))
        previous = None
        for g in members:
            if previous is not None:
                gap = g.left - previous.right
                if gap > height * _GAP_OF_HEIGHT:
                    line += " " * min(_MAX_RUN, max(1, round(gap / _COLUMN_POINTS)))
            line += g.text
            previous = g
        lines.append(line)
    return "\n".join(lines)


def merge_readings(first: ParsedText, second: ParsedText, problems: list[Problem]) -> ParsedText:
    """One reading of a page from two: a field either one alone gives is
    kept; a field they give differently is left empty, with a
    "text-readings-differ" warning in `problems`, since nothing says which
    one misread. Items come from `first` unless it has none."""
    fields = dict(first.fields)
    for name, value in second.fields.items():
        if name not in fields:
            fields[name] = value
        elif values_differ(fields[name], value):
            problems.append(Problem(
                code="text-readings-differ", severity="warning", field=name,
                message=(f"the text layer gives {name} as {fields.pop(name)!r} in stream order and "
                         f"{value!r} by position; left empty for 补录"),
                message_zh=f"文本层按顺序与按位置读出的 {name} 不一致，留待补录"))
    return ParsedText(fields=fields, items=first.items or second.items, label_count=first.label_count)
