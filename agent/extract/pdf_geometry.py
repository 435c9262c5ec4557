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

import ctypes
import functools
import math
import re
from operator import itemgetter

from agent.extract.pdf_boxes import plain
from agent.extract.pdf_painted import MIN_EM, Unshown, unshown_text
from agent.extract.pdf_wrapped import join_wrapped

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
_CIPHER_SYMBOL_LIST = "+-*/<>"
_CIPHER_SYMBOL_CHARS = frozenset(_CIPHER_SYMBOL_LIST)
_CIPHER_ALPHABET = frozenset("0123456789") | _CIPHER_SYMBOL_CHARS
_CIPHER_RUN = 16
_CIPHER_SYMBOLS = 3
_CIPHER_PREFILTER_RE = re.compile(r"[0-9+\-*/<>]{%d,}" % _CIPHER_RUN)
_CIPHER_ALIGN = 3.0     # points: the block's rows start this close together
_BLANKS = frozenset("\0\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
                    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_SPACES = frozenset(" \xa0\u3000")  # typed spaces: a word break in a Latin name
_UPRIGHT = 0.001        # radians: glyphs turned further (seal lettering) are not read
# Printed on every invoice face (OFD: one missing calls for the reading by position).
FACE_FIELDS = ("number", "date", "total", "buyer_name", "seller_name", "seller_tax_id")
MAX_CHARS = 20_000      # an invoice face has ~1,000; beyond this it is not one
_MAX_RUN = 400          # spaces: a glyph placed far off the page adds no more


class _Glyph:
    """A character (or an OFD text run) and its box, PDF points with y up."""

    __slots__ = ("text", "left", "bottom", "right", "top", "centre", "height")

    def __init__(self, text: str, left: float, bottom: float, right: float, top: float):
        self.text, self.left, self.bottom, self.right, self.top = text, left, bottom, right, top
        self.centre = (bottom + top) / 2
        self.height = max(top - bottom, 1.0)

    def __repr__(self) -> str:
        return f"_Glyph({self.text!r}, {self.left:.1f}, {self.bottom:.1f}, {self.right:.1f}, {self.top:.1f})"


# The layout works on plain tuples, g = (text, left, bottom, right, top,
# centre, height, index, spaced_after), read as g[0] ... g[8] (see page_glyphs): a page has ~500 glyphs, and
# building a tuple costs a fifth of building an object (_Glyph is the
# readable form, for OFD runs and tests).
_BY_CENTRE = itemgetter(5)
_BY_LEFT = itemgetter(1)


def page_text(textpage, shown: tuple[float, float, float, float] | None = None,
              unshown: Unshown | None = None) -> str:
    """The text of a PDFium text page (pypdfium2 PdfTextPage) laid out by
    position (see `layout_glyphs`); "" for a page of more than MAX_CHARS
    characters. Only shown glyphs inside `shown` count (see `page_glyphs`);
    rotated glyphs (a seal's lettering) are left out."""
    return _layout(page_glyphs(textpage, shown, unshown))


def page_glyphs(textpage, shown: tuple[float, float, float, float] | None = None,
                unshown: Unshown | None = None) -> list[tuple]:
    """The upright, non-blank characters a PDFium text page draws, with
    their loose boxes (PDF points, y up), as layout tuples (text, left,
    bottom, right, top, centre, height, index, spaced_after): index is the
    character's place in PDFium's text and spaced_after the index of the
    character before it when the stream has a space between them (else -2);
    [] beyond MAX_CHARS characters.

    Text that is not printed is not in it: glyphs the page holds but does
    not show (`pdf_painted.unshown_text`: an invisible or clip-only render
    mode, a searchable scan's OCR layer; white on white, too small to see,
    clipped away or covered: a forger's hidden value) and, when `shown`
    (left, bottom, right, top) is given, glyphs whose centre lies outside
    it (the page's CropBox: another page's half of a 2-up sheet).
    `unshown` is `unshown_text` of the page when the caller has it."""
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
    loose_box, angle_of, is_generated, text_object = _plain_calls()
    # The whole plane when no box is given: every glyph is inside.
    x0, y0, x1, y1 = shown if shown is not None else (-math.inf, -math.inf, math.inf, math.inf)
    # Why: a searchable scan's invisible (mode 3) text is a scanner's OCR,
    # misreads and all, and text no one sees may be a forger's; either
    # would be read as print and trusted as such. Found by one walk of the
    # page's objects: almost every page has none, and then no character
    # pays for a look-up.
    if unshown is None:
        unshown = unshown_text(textpage.page, textpage=textpage)
    hidden, rules, too_small, min_em = unshown.objects, unshown.glyphs, unshown.too_small, MIN_EM
    look_up = bool(hidden or rules)
    rule = None
    raw, box_at = ctypes.cast(raw, ctypes.c_void_p).value, ctypes.addressof(box)
    low, high = _UPRIGHT, 2 * math.pi - _UPRIGHT
    blanks, spaces = _BLANKS, _SPACES
    out = []
    append = out.append
    # A space the stream has (not one PDFium made up for a gap) between two
    # characters: the second glyph carries the first's index, so that the
    # layout keeps one space where the two end up neighbours on a row (a
    # space's advance is narrower than the gap that makes one).
    last, spaced_after = -1, -2
    for i, ch in enumerate(text):
        if ch in blanks:
            if spaced_after != last and ch in spaces and not is_generated(raw, i):
                spaced_after = last
            continue
        after, last = (spaced_after if spaced_after == last else -2), i
        if ch >= "\u2e80":
            # Half a surrogate pair is no glyph an invoice label or value uses.
            if "\ud800" <= ch <= "\udfff":
                continue
            # Seals letter their text around an arc (全国统一发票监制, 税务局
            # names): CJK only, so only CJK glyphs pay for the angle.
            if low < angle_of(raw, i) < high:
                continue
        if look_up:
            obj = text_object(raw, i)
            if obj in hidden:
                continue
            rule = rules.get(obj)
        # Loose boxes span the font's ascent and descent, so a "." and a "9"
        # of one line share a centre.
        if loose_box(raw, i, box_at):
            left, bottom, right, top = box.left, box.bottom, box.right, box.top
            centre = (bottom + top) / 2
            if not (x0 <= (left + right) / 2 <= x1 and y0 <= centre <= y1):
                continue  # outside the page as shown: not on this page
            if rule is not None and not rule.shows(left, bottom, right, top):
                continue  # covered, or white where nothing dark is under it
            height = top - bottom
            # A glyph box under a point across or high is a suspect only:
            # its object's size tells (a font may give no ascent).
            if (height < min_em or right - left < min_em) and too_small(text_object(raw, i)):
                continue
            # centre and height exactly as _Glyph computes them (max(h, 1.0)).
            append((ch, left, bottom, right, top, centre, 1.0 if 1.0 > height else height, i, after))
    return out


@functools.cache
def _plain_calls() -> tuple:
    """FPDFText_GetLooseCharBox, FPDFText_GetCharAngle, FPDFText_IsGenerated
    and FPDFText_GetTextObject taking plain addresses: pypdfium2's declared
    argument types cost ~40 % of a call in conversions, and a page makes
    ~800 of them. Same functions, same results."""
    import pypdfium2.raw as pdfium_c

    return (plain(pdfium_c.FPDFText_GetLooseCharBox, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p),
            plain(pdfium_c.FPDFText_GetCharAngle, ctypes.c_float, ctypes.c_void_p, ctypes.c_int),
            plain(pdfium_c.FPDFText_IsGenerated, ctypes.c_int, ctypes.c_void_p, ctypes.c_int),
            plain(pdfium_c.FPDFText_GetTextObject, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int))


def _unit(unit: int) -> str:
    # Half a surrogate pair is no glyph an invoice label or value uses.
    return "\0" if unit == 0 or 0xD800 <= unit <= 0xDFFF else chr(unit)


def layout_glyphs(glyphs: list[_Glyph]) -> str:
    """Rows of `glyphs` top to bottom, each left to right, indented and
    spaced in proportion to the page distances (PDF points, y up). Glyphs
    share a row when their centre is near the row's mean centre. A wide gap,
    a gap between glyphs of different fonts or sizes, and the left edge of
    the 密码区 become at least two spaces (a column break), so that two
    columns printed close together (a name and the ciphertext beside it)
    are never read as one value."""
    return _layout([(g.text, g.left, g.bottom, g.right, g.top, g.centre, g.height, -1, -2) for g in glyphs])


def _layout(glyphs: list[tuple]) -> str:
    """`layout_glyphs` on layout tuples (see page_glyphs)."""
    # A row's centre is the mean of its characters' centres (a run of text
    # counts once per character), so the lone letters of a vertical label
    # (购买方, 备注) between two rows cannot drag a row away from its text.
    rows: list[list[tuple]] = []
    total = weight = limit = 0.0
    members: list[tuple] = []
    row_share = _ROW_OF_HEIGHT
    for g in sorted(glyphs, key=_BY_CENTRE, reverse=True):
        n = len(g[0]) or 1
        centre, height = g[5], g[6]
        # min(limit, height) spelled out: same value, no call per glyph.
        if members and abs(total / weight - centre) <= (height if height < limit else limit) * row_share:
            total += centre * n
            weight += n
            members.append(g)
            continue
        members = [g]
        rows.append(members)
        total, weight, limit = centre * n, n, height
    ordered = [_drop_overprinted(sorted(row, key=_BY_LEFT)) for row in rows]
    runs = [_cipher_run(row) for row in ordered]
    edge = _cipher_edge([row[run[0]][1] if run else None for row, run in zip(ordered, runs)])
    width = _cipher_row_length(ordered, runs, edge)
    rows_parts, rows_breaks = [], []
    # The constants as locals: this loop runs once per glyph.
    gap_share, column_share, same_share, column_points = _GAP_OF_HEIGHT, _COLUMN_OF_HEIGHT, _SAME_HEIGHT, _COLUMN_POINTS
    for row, run in zip(ordered, runs):
        first = row[0]
        parts = [" " * min(_MAX_RUN, max(0, int(first[1] / column_points))), first[0]]
        breaks = [(first, 1)]  # each column's first glyph and the index of its text in parts
        append = parts.append
        cipher_at = _cipher_glyph(row, run, edge, width)
        previous_right, ph, previous_index = first[3], first[6], first[7]
        for g in row[1:]:
            text, left, _, right, _, _, h, index, spaced_after = g
            gap = left - previous_right
            height = h if h < ph else ph
            if gap > height * gap_share or g is cipher_at:
                spaces = min(_MAX_RUN, max(1, round(gap / column_points)))
                if spaces < 2 and (gap > height * column_share or g is cipher_at
                                   or abs(h - ph) > same_share * (h if h > ph else ph)):
                    spaces = 2
                if spaces > 1:
                    breaks.append((g, len(parts) + 1))
                append(" " * spaces)
            elif spaced_after == previous_index:
                append(" ")  # the stream's space between these two neighbours
            append(text)
            previous_right, ph, previous_index = right, h, index
        rows_parts.append(parts)
        rows_breaks.append(breaks)
    lines = ["".join(parts) for parts in rows_parts]
    join_wrapped(ordered, runs, rows_parts, rows_breaks, lines, _CIPHER_ALIGN)
    return "\n".join(lines)


def _cipher_run(row: list[tuple]) -> tuple[int, int, int] | None:
    """The row's 密码区 ciphertext run as (first glyph, end glyph, characters),
    or None: a run of at least _CIPHER_RUN characters of the cipher alphabet
    with at least _CIPHER_SYMBOLS of + - * / < > (which no amount, date,
    account or tax id has) and no column gap inside. A value printed right
    before the ciphertext and ending in digits starts the run early."""
    joined = "".join([g[0] for g in row])
    # Most rows (and every row of a 数电 face) have no run: no 16 characters
    # of the alphabet in a row, or fewer symbols in the whole row than a run needs.
    if not _CIPHER_PREFILTER_RE.search(joined) or sum(map(joined.count, _CIPHER_SYMBOL_LIST)) < _CIPHER_SYMBOLS:
        return None
    alphabet, symbol_chars = _CIPHER_ALPHABET, _CIPHER_SYMBOL_CHARS
    start, chars, symbols, previous = None, 0, 0, None
    for i, g in enumerate(row):
        text = g[0]
        # A PDF glyph is one character; an OFD run is several.
        in_alphabet = text in alphabet if len(text) == 1 else all(c in alphabet for c in text)
        if not in_alphabet and start is not None and _overprints(g, previous, row[i + 1] if i + 1 < len(row) else None):
            continue  # a label printed across the ciphertext (the 密 of 密码区) does not end it
        joined = previous is not None and g[1] - previous[3] <= min(g[6], previous[6]) * _COLUMN_OF_HEIGHT
        if not in_alphabet or not joined:
            if start is not None and chars >= _CIPHER_RUN and symbols >= _CIPHER_SYMBOLS:
                return start, i, chars
            start, chars, symbols = None, 0, 0
        if in_alphabet:
            start = i if start is None else start
            chars += len(text)
            symbols += (text in symbol_chars) if len(text) == 1 else sum(1 for c in text if c in symbol_chars)
        previous = g
    if start is not None and chars >= _CIPHER_RUN and symbols >= _CIPHER_SYMBOLS:
        return start, len(row), chars
    return None


def _overprints(g: tuple, previous: tuple | None, following: tuple | None) -> bool:
    """True when `g` overlaps a neighbour by more than a quarter of the narrower box."""
    for other in (previous, following):
        if other is None:
            continue
        overlap = min(g[3], other[3]) - max(g[1], other[1])
        if overlap > min(g[3] - g[1], other[3] - other[1]) / 4:
            return True
    return False


def _cipher_row_length(rows: list[list[tuple]], runs: list[tuple[int, int, int] | None],
                       edge: float | None) -> int | None:
    """How many characters each row of the 密码区 block prints (its rows are
    of one length), or None: the length that the runs starting at the
    block's edge all print, when at least two do; rows of
    different lengths give no length to cut a glued run by."""
    if edge is None:
        return None
    lengths = {run[2] for row, run in zip(rows, runs)
               if run is not None and abs(row[run[0]][1] - edge) <= _CIPHER_ALIGN}
    return lengths.pop() if len(lengths) == 1 else None


def _cipher_glyph(row: list[tuple], run: tuple[int, int, int] | None, edge: float | None,
                  width: int | None) -> tuple | None:
    """The row's first glyph of the 密码区, where a column break goes, or None.
    On a row whose ciphertext run starts at the block's edge (or that prints
    only part of the block), the first glyph at the edge. On a row whose run
    starts left of the edge (the ciphertext printed right after the buyer's
    name or tax id, no gap between), the run's last `width` characters are
    the ciphertext, so a value ending in digits keeps them; without a known
    `width`, or a run shorter than it, only the break at the edge: the
    glued value stays glued (and fails its plausibility check) rather than
    be cut at a guess."""
    if edge is None or run is None:
        return None
    first, end, chars = run
    at_edge = next((g for g in row if g[1] >= edge - g[6] / 2), None)
    if row[first][1] >= edge - _CIPHER_ALIGN or width is None or chars < width:
        return at_edge
    skip = chars - width
    for g in row[first:end]:
        if not all(c in _CIPHER_ALPHABET for c in g[0]):
            continue  # a label printed across it
        if skip == 0:
            return g
        if skip < len(g[0]):
            break  # the block's edge falls inside one text run (OFD)
        skip -= len(g[0])
    return at_edge


def _cipher_edge(starts: list[float | None]) -> float | None:
    """The left edge of the 密码区 block: where at least two rows' ciphertext
    runs start together (its rows are printed left-aligned), or None. A run
    that starts elsewhere (glued to a value ending in digits) does not move it."""
    found = sorted(x for x in starts if x is not None)
    best, count = None, 1
    for i, x in enumerate(found):
        n = sum(1 for y in found[i:] if y - x <= _CIPHER_ALIGN)
        if n > count:
            best, count = x, n
    return best


def _drop_overprinted(members: list[tuple]) -> list[tuple]:
    """A row without the glyphs printed over another one (the upright top
    letter of a seal across the title, a fake-bold double): of two glyphs
    overlapping by more than half the narrower one, the smaller is dropped
    when they are the same character or one is much smaller. (A value may
    start inside a full-width colon's box: that is no overprint.)"""
    # Most rows have no glyph starting before its left neighbour ends: they
    # are kept whole, without copying them glyph by glyph.
    right = members[0][3]
    for first in range(1, len(members)):
        g = members[first]
        if right - g[1] > 0:
            break
        right = g[3]
    else:
        return members
    kept: list[tuple] = members[:first]
    last = members[first - 1]
    for g in members[first:]:
        overlap = last[3] - g[1]
        if overlap > 0:
            narrower = min(g[3] - g[1], last[3] - last[1])
            small, big = (g[6], last[6]) if g[6] < last[6] else (last[6], g[6])
            if narrower > 0 and overlap > narrower / 2 \
                    and (g[0] == last[0] or small < _OVERPRINT_HEIGHT * big):
                if g[6] > last[6]:
                    kept[-1] = last = g
                continue
        kept.append(g)
        last = g
    return kept
