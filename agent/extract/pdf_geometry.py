"""A PDF page's text laid out by where its glyphs are, not by stream order.

Stream order is whatever the issuer's software wrote: some write every
label first and every value after (深圳's blockchain invoices), a value
before its label ("南京…公司销 名称:"), or the 密码区 ciphertext right after
the buyer's name, so that a reader following the stream glues the two.
PDFium gives each character's box; rows are the characters whose vertical
centres line up, sorted left to right, with spaces for the gaps between
them, so a label and its value end up on one line as printed and two
columns stay apart. The result is plain text for `text.parse_text`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# PDFium reads text from PDFs it did not write: it is Chrome's engine,
# fuzzed for that. Imported lazily so that XML/OFD readers do not need it.
_COLUMN_POINTS = 4.0    # page points per space of indentation or gap
_GAP_OF_HEIGHT = 0.3    # a gap wider than this share of the glyph height is a space
_ROW_OF_HEIGHT = 0.5    # centres closer than this share of the height share a row
# A gap this wide (share of the glyph height), or any gap between glyphs of
# different sizes or fonts (their loose boxes differ), separates two columns:
# it becomes at least two spaces, which ends a value for the parser.
_COLUMN_OF_HEIGHT = 0.8
_SAME_HEIGHT = 0.06     # loose-box heights closer than this share: the same font and size
_OVERPRINT_HEIGHT = 0.5  # a glyph this much smaller, over another, is a seal's or a stamp's
# The 密码区: rows of ~27 characters of 0-9 + - * / < >. A run this long
# with this many operator signs is ciphertext, whatever the stream order put
# before it; the block's left edge is a column break on each of its rows.
_CIPHER_SYMBOL_CHARS = frozenset("+-*/<>")
_CIPHER_ALPHABET = frozenset("0123456789") | _CIPHER_SYMBOL_CHARS
_CIPHER_RUN = 16
_CIPHER_SYMBOLS = 3
_CIPHER_ALIGN = 3.0     # points: the block's rows start this close together
_UPRIGHT = 0.001        # radians: glyphs turned further (seal lettering) are not read
# Printed on every invoice face (OFD: one missing calls for the reading by position).
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


def page_text(textpage) -> str:
    """The text of a PDFium text page (pypdfium2 PdfTextPage) laid out by
    position (see `layout_glyphs`); "" for a page of more than MAX_CHARS
    characters. Rotated glyphs (a seal's lettering) are left out."""
    return layout_glyphs(page_glyphs(textpage))


def page_glyphs(textpage) -> list[_Glyph]:
    """The upright, non-blank characters of a PDFium text page with their
    loose boxes (PDF points, y up); [] beyond MAX_CHARS characters."""
    import pypdfium2.raw as pdfium_c

    count = textpage.count_chars()
    if count <= 0 or count > MAX_CHARS:
        return []
    raw = textpage.raw
    # One call for every character's text; PDFium puts one character per
    # index (its generated spaces and line breaks included).
    text = textpage.get_text_range(0, count)
    if len(text) != count:
        text = "".join(_unit(pdfium_c.FPDFText_GetUnicode(raw, i)) for i in range(count))
    box = pdfium_c.FS_RECTF()
    loose_box, angle_of = pdfium_c.FPDFText_GetLooseCharBox, pdfium_c.FPDFText_GetCharAngle
    out = []
    for i, ch in enumerate(text):
        if ch.isspace() or ch == "\0" or "\ud800" <= ch <= "\udfff":
            continue
        angle = angle_of(raw, i)
        if _UPRIGHT < angle < 2 * math.pi - _UPRIGHT:
            continue
        # Loose boxes span the font's ascent and descent, so a "." and a "9"
        # of one line share a centre.
        if loose_box(raw, i, box):
            out.append(_Glyph(ch, box.left, box.bottom, box.right, box.top))
    return out


def _unit(unit: int) -> str:
    # Half a surrogate pair is no glyph an invoice label or value uses.
    return "\0" if unit == 0 or 0xD800 <= unit <= 0xDFFF else chr(unit)


def layout_glyphs(glyphs: list[_Glyph]) -> str:
    """Rows of `glyphs` top to bottom, each left to right, indented and
    spaced in proportion to the page distances (PDF points, y up). Glyphs
    share a row when their centre is near the row's mean centre. A wide gap,
    or a gap between glyphs of different fonts or sizes, becomes at least
    two spaces (a column break), so that two columns printed close together
    (a name and the 密码区 beside it) are never read as one value."""
    # A row's centre is the mean of its characters' centres (a run of text
    # counts once per character), so the lone letters of a vertical label
    # (购买方, 备注) between two rows cannot drag a row away from its text.
    rows: list[list] = []  # [sum of centres, characters, height, glyphs]
    for g in sorted(glyphs, key=lambda g: -g.centre):
        weight = max(1, len(g.text))
        if rows:
            row = rows[-1]
            if abs(row[0] / row[1] - g.centre) <= min(row[2], g.height) * _ROW_OF_HEIGHT:
                row[0] += g.centre * weight
                row[1] += weight
                row[3].append(g)
                continue
        rows.append([g.centre * weight, weight, g.height, [g]])
    ordered = [_drop_overprinted(sorted(members, key=lambda g: g.left)) for _, _, _, members in rows]
    edge = _cipher_edge(ordered)
    lines = []
    for members in ordered:
        parts = [" " * min(_MAX_RUN, max(0, int(members[0].left / _COLUMN_POINTS)))]
        # The first glyph of the 密码区 on a row that prints some of it.
        cipher_at = None
        if edge is not None and _cipher_run_start(members) is not None:
            cipher_at = next((g for g in members if g.left >= edge - g.height / 2), None)
        previous = None
        for g in members:
            if previous is not None:
                gap = g.left - previous.right
                height = min(g.height, previous.height)
                if gap > height * _GAP_OF_HEIGHT or g is cipher_at:
                    spaces = min(_MAX_RUN, max(1, round(gap / _COLUMN_POINTS)))
                    if gap > height * _COLUMN_OF_HEIGHT or g is cipher_at \
                            or abs(g.height - previous.height) > _SAME_HEIGHT * max(g.height, previous.height):
                        spaces = max(2, spaces)
                    parts.append(" " * spaces)
            parts.append(g.text)
            previous = g
        lines.append("".join(parts))
    return "\n".join(lines)


def _cipher_run_start(members: list[_Glyph]) -> float | None:
    """Where the row's 密码区 ciphertext starts (the left of its first glyph),
    or None: a run of at least _CIPHER_RUN characters of the cipher alphabet
    with at least _CIPHER_SYMBOLS of + - * / < > (which no amount, date,
    account or tax id has) and no column gap inside."""
    start, chars, symbols, previous = None, 0, 0, None
    for g in members:
        in_alphabet = all(c in _CIPHER_ALPHABET for c in g.text)
        joined = previous is not None and g.left - previous.right <= min(g.height, previous.height) * _COLUMN_OF_HEIGHT
        if not in_alphabet or not joined:
            if chars >= _CIPHER_RUN and symbols >= _CIPHER_SYMBOLS:
                return start
            start, chars, symbols = (g.left, 0, 0) if in_alphabet else (None, 0, 0)
        if in_alphabet:
            start = g.left if start is None else start
            chars += len(g.text)
            symbols += sum(1 for c in g.text if c in _CIPHER_SYMBOL_CHARS)
        previous = g
    return start if chars >= _CIPHER_RUN and symbols >= _CIPHER_SYMBOLS else None


def _cipher_edge(rows: list[list[_Glyph]]) -> float | None:
    """The left edge of the 密码区 block: where at least two rows' ciphertext
    runs start together (its rows are printed left-aligned), or None. A run
    that starts elsewhere (glued to a value ending in digits) does not move it."""
    starts = sorted(x for x in (_cipher_run_start(r) for r in rows) if x is not None)
    best, count = None, 1
    for i, x in enumerate(starts):
        n = sum(1 for y in starts[i:] if y - x <= _CIPHER_ALIGN)
        if n > count:
            best, count = x, n
    return best


def _drop_overprinted(members: list[_Glyph]) -> list[_Glyph]:
    """A row without the glyphs printed over another one (the upright top
    letter of a seal across the title, a fake-bold double): of two glyphs
    overlapping by more than half the narrower one, the smaller is dropped
    when they are the same character or one is much smaller. (A value may
    start inside a full-width colon's box: that is no overprint.)"""
    kept: list[_Glyph] = []
    for g in members:
        if kept:
            last = kept[-1]
            narrower = min(g.right - g.left, last.right - last.left)
            small, big = sorted((g.height, last.height))
            if narrower > 0 and last.right - g.left > narrower / 2 \
                    and (g.text == last.text or small < _OVERPRINT_HEIGHT * big):
                if g.height > last.height:
                    kept[-1] = g
                continue
        kept.append(g)
    return kept
