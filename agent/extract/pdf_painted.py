"""What a PDF page's text objects paint where a viewer shows them.

A text object can hold characters no viewer shows, and a reader that takes
them reads a value no one sees: a forger's second number, name or tax id, a
'searchable scan' tool's layer. Beyond the render modes that paint nothing
(pdf_shown), a text object's glyphs are not shown (`unshown_text`) when:
- its paint is invisible on white: the fill (or the stroke, as its render
  mode paints one or both) is lighter than #F0F0F0 or under ~6 % opaque
  (FAINT_INK); reported pure white, PDFium's drawing of the object alone
  must agree (it reports a shading pattern as white). Such a glyph shows
  only where something white stands out on (DARK_INK) was drawn before it,
  under its centre: a filled path of that ink or a shading (by its box),
  or an image whose lighter pixels under the glyph are that dark (a white
  header on a dark band is print; a white OCR layer on a scan's paper, or
  over its printed strokes, is not);
- it is too small to see: under MIN_EM points across or high from its font
  size through its own and its forms' matrices, and by its box turned with
  the text (both must say so: a Type 3 font's own matrix is not in the font
  size, a font may give a glyph no ascent). Asked only of a glyph whose box
  is under MIN_EM (`Unshown.too_small`);
- its clip path leaves less than a tenth of its box (CLIPPED_SHARE): text
  partly inside is read whole, so a value cut at a cell's edge is not read
  cut short;
- it is drawn in optional content (a layer) that the page neither shows
  on screen nor prints (pdf_optional);
- the middle half (each way) of the glyph's box is covered by an opaque
  object drawn after it (pdf_covers, `GlyphRule`): a filled upright
  rectangle, or an upright image whose dictionary plainly has no soft mask,
  mask or optional content and which PDFium draws opaque all over, drawn
  with no blend, soft mask or alpha (a seal image has a soft mask: the
  seller's name under it is read).
What cannot be told cheaply is taken as shown: a value a viewer shows is
never lost for a trick caught. A page costs three calls a text object and
one or two a path or image drawn after text; more only where one of these
finds something (0.1-0.2 ms for an invoice page).
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass, field
from typing import Any

from agent.extract.pdf_boxes import (
    Box, Matrix, area, clip_calls, concat, contains, meet, meet_clips, object_box, object_clip, plain, share_inside,
)
from agent.extract.pdf_covers import covered_text
from agent.extract.pdf_drawn import ImageSampler, drawn_ink
from agent.extract.pdf_optional import names_optional_content, unshown_optional
from agent.extract.pdf_shown import Drawing, check_pairs, walk_page

FAINT_INK = 16      # of 255: paint lighter than #F0F0F0 on white, or under ~6 % opaque, is not seen
DARK_INK = 32       # of 255: white shows on #DFDFDF or darker, not on paper or a scan's paper
MIN_EM = 1.0        # points: a glyph smaller than this across or high is not seen
CLIPPED_SHARE = 0.1  # a text object with less of its box inside its clip shows nothing
MAX_RENDERS = 200   # white text objects drawn by PDFium to check their colour, a page
_FILLS, _STROKES = frozenset((0, 2, 4, 6)), frozenset((1, 2, 5, 6))  # render modes that fill, stroke
_WHITE = (255, 255, 255)


class GlyphRule:
    """Which glyphs of one text object a viewer shows: not one whose box's
    middle half (each way) lies inside a box of `covers` (opaque objects
    drawn after it); and, for faint text (`over` is not None), only one
    whose centre lies on something dark drawn before it: `over` holds
    (box, image sampler or None) pairs."""

    __slots__ = ("covers", "over")

    def __init__(self) -> None:
        self.covers: list[Box] = []
        self.over: list[tuple[Box, Any]] | None = None

    def shows(self, left: float, bottom: float, right: float, top: float) -> bool:
        """Whether the glyph of this box (page space, y up) is shown."""
        w, h = (right - left) / 4, (top - bottom) / 4
        middle = (left + w, bottom + h, right - w, top - h)
        if any(contains(cover, middle) for cover in self.covers):
            return False
        if self.over is None:
            return True
        x, y = (left + right) / 2, (bottom + top) / 2
        for box, sampler in self.over:
            if box[0] <= x <= box[2] and box[1] <= y <= box[3] and (sampler is None or sampler(middle) >= DARK_INK):
                return True
        return False


@dataclass
class Unshown:
    """The text a page holds but does not show: `objects`, the addresses of
    text objects no glyph of which is shown; `glyphs`, a GlyphRule for each
    object only some glyphs of which may be; `too_small(address)` for a
    glyph whose box is under MIN_EM across or high."""

    objects: frozenset[int] = frozenset()
    glyphs: dict[int, GlyphRule] = field(default_factory=dict)
    texts: list = field(default_factory=list)  # Drawing.texts: each object's matrix
    _small: dict[int, bool] = field(default_factory=dict)
    _matrices: dict[int, Matrix] | None = None

    def __bool__(self) -> bool:
        return bool(self.objects or self.glyphs)

    def too_small(self, obj: int) -> bool:
        """Whether text object `obj` draws glyphs too small to see (see
        `_too_small`), asked of a glyph whose box is under MIN_EM across or
        high: its box alone is no proof (a font may give no ascent, a glyph
        no width). Once an object."""
        small = self._small.get(obj)
        if small is None:
            if self._matrices is None:
                self._matrices = {entry[1]: entry[2] for entry in self.texts}
            matrix = self._matrices.get(obj)
            small = self._small[obj] = matrix is not None and _too_small(obj, matrix)
        return small


def unshown_text(page: Any, drawing: Drawing | None = None, data: bytes | None = None,
                 textpage: Any = None) -> Unshown:
    """The text page `page` (a pypdfium2 PdfPage) holds but does not show
    (see the module's rules); `drawing` is its `pdf_shown.walk_page` when
    the caller has it, `data` the file's bytes (without them no image is
    taken to cover text: its dictionary is read from them), `textpage` its
    PdfTextPage when the caller has it (it tells in one call that a cover
    is over no character). What cannot be judged is taken as shown.

    Raises ExtractError "limit-exceeded" for a page whose white text and
    what lies under it, or text and what covers it, would make more than
    pdf_shown.MAX_PAIRS pairs to look at (a crafted page)."""
    drawing = walk_page(page) if drawing is None else drawing
    optional = drawing.optional + (drawing.in_forms if drawing.in_forms and names_optional_content(data) else [])
    hidden = set(drawing.undrawn) | unshown_optional(page, optional, textpage)
    rules: dict[int, GlyphRule] = {}
    if not drawing.texts:
        return Unshown(frozenset(hidden), rules, drawing.texts)
    clipped, faint = _suspects(drawing.texts)
    boxes: dict[int, Box | None] = {}
    for _, obj, matrix, clip, _ in clipped:
        clip = meet_clips(clip, object_clip(obj, matrix))
        box = boxes[obj] = object_box(obj, matrix)
        if clip is not None and box is not None and share_inside(box, clip[0]) < CLIPPED_SHARE:
            hidden.add(obj)
    renders = 0
    under: list | None = None  # what white could show on, looked for once, if any text is white
    for order, obj, matrix, white, clear in faint:
        if obj in hidden:
            continue
        if clear:
            hidden.add(obj)  # shows on nothing
            continue
        if white and renders < MAX_RENDERS:
            # Reported white: PDFium reports a shading pattern so too. Its
            # drawing of the object alone tells.
            renders += 1
            if drawn_ink(page, obj) >= FAINT_INK:
                continue
        box = boxes.get(obj) or object_box(obj, matrix)
        if box is None:
            continue  # nowhere to tell what is under it: taken as shown
        if under is None:
            under = _underlays(page, faint[-1][0], drawing.paints)
            check_pairs(len(faint), len(under))
        over = [(at_box, sampler) for at, at_box, sampler in under if at < order and area(meet(at_box, box)) > 0]
        if over:
            rules.setdefault(obj, GlyphRule()).over = over
        else:
            hidden.add(obj)
    for obj, cover in covered_text(page, textpage, drawing, data, hidden, boxes):
        rules.setdefault(obj, GlyphRule()).covers.append(cover)
    return Unshown(frozenset(hidden), rules, drawing.texts)


def _suspects(texts: list) -> tuple[list, list]:
    """The text objects of `texts` (Drawing.texts) the clip and paint rules
    must look at closer: those drawn under a clip; and, as (draw order,
    address, matrix, reported pure white, all but transparent), those whose
    paint has under FAINT_INK. Three calls an object, with no allocation: every text object
    of every page comes here (the size rule looks at glyph boxes first:
    `Unshown.too_small`)."""
    fill = _calls()[0]
    clip_of, paths_of = clip_calls()
    rgba = (ctypes.c_uint * 4)()
    c0 = ctypes.addressof(rgba)
    c1, c2, c3 = c0 + 4, c0 + 8, c0 + 12
    values = memoryview(rgba).cast("B").cast("I")  # reads an element in a fraction of the array's time
    faint_ink, dark = FAINT_INK * 255, 255 - FAINT_INK
    clipped, faint = [], []
    for entry in texts:
        order, obj, matrix, clip, mode = entry
        if clip is not None or paths_of(clip_of(obj)) > 0:
            clipped.append(entry)
        if mode == 0:  # fill only: almost all text
            # Opaque with red well off white (black, grey, the brown and blue
            # of invoice print) is seen, told by two of the four values.
            if fill(obj, c0, c1, c2, c3) and not (values[0] <= dark and values[3] == 255):
                r, g, b, alpha = values.tolist()
                if alpha * (255 - min(r, g, b)) < faint_ink:
                    faint.append((order, obj, matrix, r == g == b == alpha == 255, alpha < FAINT_INK))
        else:
            ink, white, clear = _paint_ink(obj, mode)
            if ink < FAINT_INK:
                faint.append((order, obj, matrix, white, clear))
    return clipped, faint


def _too_small(obj: int, matrix: Matrix) -> bool:
    """Whether text object `obj` draws glyphs under MIN_EM across or high:
    its font size through its matrix and its forms' `matrix`, confirmed by
    its box turned with the text (both must say so)."""
    font_size, get_matrix, rotated_bounds = _calls()[2:5]
    size = ctypes.c_float()
    m = (ctypes.c_float * 6)()
    if not font_size(obj, ctypes.addressof(size)) or not get_matrix(obj, ctypes.addressof(m)):
        return False
    a, b, c, d = concat(tuple(m), matrix)[:4]
    across = math.hypot(a, b)
    high = abs(a * d - b * c) / across if across > 0 else math.hypot(c, d)
    if min(across, high) * abs(size.value) >= MIN_EM:
        return False
    quad = (ctypes.c_float * 8)()
    if not rotated_bounds(obj, ctypes.addressof(quad)):
        return False
    a, b, c, d = matrix[:4]  # its forms' matrix: lengths only, so no shift
    corners = [(a * quad[2 * k] + c * quad[2 * k + 1], b * quad[2 * k] + d * quad[2 * k + 1]) for k in range(4)]
    sides = (math.dist(corners[0], corners[1]), math.dist(corners[0], corners[3]))
    return min(sides) < MIN_EM


def _paint_ink(obj: int, mode: int) -> tuple[int, bool, bool]:
    """How much ink on white text object `obj` paints (0-255: alpha times
    how far the colour is from white), taking the fill and/or the stroke as
    its render `mode` paints them; whether a paint was reported pure white
    and opaque; whether every paint is all but transparent (under
    FAINT_INK of alpha: it shows on nothing). Full ink when PDFium cannot
    say."""
    if not 0 <= mode <= 7:
        return 255, False, False
    fill, stroke = _calls()[:2]
    rgba = (ctypes.c_uint * 4)()
    at = ctypes.addressof(rgba)
    ink, white, clear = 0, False, True
    for paints, get in ((mode in _FILLS, fill), (mode in _STROKES, stroke)):
        if not paints:
            continue
        if not get(obj, at, at + 4, at + 8, at + 12):
            return 255, False, False
        r, g, b, alpha = rgba
        ink = max(ink, alpha * (255 - min(r, g, b)) // 255)
        white = white or ((r, g, b) == _WHITE and alpha == 255)
        clear = clear and alpha < FAINT_INK
    return ink, white, clear


def _underlays(page: Any, last: int, paints: list) -> list[tuple[int, Box, Any]]:
    """(draw order, box, image sampler or None) of what was drawn before
    draw order `last` that white could show on: filled paths of at least
    DARK_INK and shadings (their boxes), and images (their boxes, with a
    sampler of their pixels; in a form that turns or flips it, its box
    alone)."""
    fill, draw_mode = _calls()[0], _calls()[5]
    modes = (ctypes.c_int * 2)()
    rgba = (ctypes.c_uint * 4)()
    at_modes, at_rgba = ctypes.addressof(modes), ctypes.addressof(rgba)
    found = []
    for order, obj, kind, matrix, _ in paints:
        if order >= last:
            break
        if kind == 2:
            if not draw_mode(obj, at_modes, at_modes + 4) or not modes[0]:
                continue
            if fill(obj, at_rgba, at_rgba + 4, at_rgba + 8, at_rgba + 12) \
                    and rgba[3] * (255 - min(rgba[0], rgba[1], rgba[2])) // 255 < DARK_INK:
                continue
        box = object_box(obj, matrix)
        if box is None or area(box) <= 0:
            continue
        # PDFium draws an image as it lies in its parent; forms that only
        # scale it keep that drawing the way up it is on the page.
        sampled = kind == 3 and matrix[1] == matrix[2] == 0 and matrix[0] > 0 and matrix[3] > 0
        found.append((order, box, ImageSampler(page, obj, box) if sampled else None))
    return found


@functools.cache
def _calls() -> tuple:
    """The page-object calls of the rules, taking plain addresses: fill and
    stroke colour, font size, matrix, turned bounds, path draw mode,
    transparency."""
    import pypdfium2.raw as pdfium_c

    p, i = ctypes.c_void_p, ctypes.c_int
    return (plain(pdfium_c.FPDFPageObj_GetFillColor, i, p, p, p, p, p),
            plain(pdfium_c.FPDFPageObj_GetStrokeColor, i, p, p, p, p, p),
            plain(pdfium_c.FPDFTextObj_GetFontSize, i, p, p), plain(pdfium_c.FPDFPageObj_GetMatrix, i, p, p),
            plain(pdfium_c.FPDFPageObj_GetRotatedBounds, i, p, p), plain(pdfium_c.FPDFPath_GetDrawMode, i, p, p, p),
            plain(pdfium_c.FPDFPageObj_HasTransparency, i, p))
