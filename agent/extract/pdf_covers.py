"""Opaque objects drawn over text: what a viewer shows instead of it.

A glyph is not shown when the middle half (each way) of its box lies under
an object drawn after it that hides what is under its box (pdf_painted's
GlyphRule): a filled upright rectangle, or an upright image whose
dictionary plainly has no soft mask, mask or optional content
(`pdf_drawn.plainly_opaque`: a seal image has a soft mask, so the seller's
name under it is read) and which PDFium draws opaque all over
(`pdf_drawn.drawn_opaque`), either drawn with no blend, soft mask or alpha
and clipped by nothing or by rectangles. Anything else is taken to cover
nothing: a value a viewer shows is never lost for a trick caught. So an
opaque image whose dictionary names a soft mask PDFium cannot use (a
reference to nothing) is not caught: telling needs its drawing, which an
invoice's seal would then pay for on every page.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from agent.extract.pdf_boxes import (
    IDENTITY, Box, Matrix, area, box_call, concat, is_rectangle, map_box, meet, meet_clips, object_clip, path_points,
    plain, upright,
)
from agent.extract.pdf_drawn import drawn_opaque, plainly_opaque
from agent.extract.pdf_shown import Drawing, check_pairs

MIN_COVER = 1.0  # points: an object narrower than this covers no glyph one could read
_TILING = (191, 191, 191)  # PDFium's colour for a coloured tiling pattern: it may have gaps


def covered_text(page: Any, textpage: Any, drawing: Drawing, data: bytes | None, hidden: set,
                 boxes: dict) -> list[tuple[int, Box]]:
    """(text object, cover box) for each text object of `drawing` (not in
    `hidden`) and each opaque object drawn after it over its box (see the
    module's rules); `boxes` holds text objects' boxes already known, `data`
    the file's bytes (without them no image covers), `textpage` the page's
    PdfTextPage or None. A cover over no character of `textpage` is dropped
    in one call (an invoice's QR image, drawn after most of its text, is
    one); then one call a text object drawn before the last cover.

    Raises ExtractError "limit-exceeded" beyond pdf_shown.MAX_PAIRS pairs
    to look at."""
    covers = [(at, box, image) for at, box, image in _covers(drawing)
              if (textpage is None or _characters_in(textpage, box))
              and (not image or (data is not None and plainly_opaque(image, data)))]
    found: list[tuple[int, Box]] = []
    if not covers:
        return found
    check_pairs(len(drawing.texts), len(covers))
    last = max(at for at, _, _ in covers)
    bounds = box_call()
    sides = (ctypes.c_float * 4)()
    s0 = ctypes.addressof(sides)
    s1, s2, s3 = s0 + 4, s0 + 8, s0 + 12
    opaque: dict[int, bool] = {}
    for order, obj, matrix, _, _ in drawing.texts:
        if order > last:
            break  # drawn after every cover
        if obj in hidden:
            continue
        if obj in boxes:
            box = boxes[obj]
        elif bounds(obj, s0, s1, s2, s3):
            box = tuple(sides) if matrix is IDENTITY else map_box(tuple(sides), matrix)
        else:
            continue
        if box is None:
            continue
        left, bottom, right, top = box
        for at, cover, image in covers:
            c_left, c_bottom, c_right, c_top = cover
            if at > order and c_left < right and left < c_right and c_bottom < top and bottom < c_top:
                if image:
                    if image not in opaque:
                        opaque[image] = drawn_opaque(page, image)
                    if not opaque[image]:
                        continue
                found.append((obj, cover))
    return found


def _covers(drawing: Drawing) -> list[tuple[int, Box, int]]:
    """(draw order, box on the page, image address or 0) of the objects
    drawn after the first text that hide what is under their box, as far
    as PDFium's objects tell: a filled upright rectangle or an upright
    image, drawn with no transparency (blend, soft mask, alpha), clipped
    by nothing or by rectangles. An image's own transparency is told by
    `covered_text`, only where it is over text. A path costs a call or two
    (invoices rule their tables with ~50)."""
    fill, draw_mode, transparent = _calls()[:3]
    first = drawing.texts[0][0]
    found = []
    rgba = (ctypes.c_uint * 4)()
    at_rgba = ctypes.addressof(rgba)
    modes = (ctypes.c_int * 2)()
    at_fill, at_stroke = ctypes.addressof(modes), ctypes.addressof(modes) + 4
    bounds = box_call()
    sides = (ctypes.c_float * 4)()
    s0 = ctypes.addressof(sides)
    s1, s2, s3 = s0 + 4, s0 + 8, s0 + 12
    min_cover = MIN_COVER
    for order, obj, kind, matrix, clip in drawing.paints:
        if order < first or kind == 4:
            continue  # a shading paints its own extent, not its box
        if kind == 2 and not (draw_mode(obj, at_fill, at_stroke) and modes[0]):
            continue  # not filled: a line, however wide, is taken to hide nothing
        if not bounds(obj, s0, s1, s2, s3):
            continue
        left, bottom, right, top = sides
        if matrix is IDENTITY and (right - left < min_cover or top - bottom < min_cover):
            continue  # a rule of a table (filled, on some invoices): the common case, told in one look
        box = map_box((left, bottom, right, top), matrix)
        if min(box[2] - box[0], box[3] - box[1]) < min_cover or transparent(obj):
            continue
        if not upright(concat(_own_matrix(obj), matrix)):
            continue
        if kind == 2 and (not fill(obj, at_rgba, at_rgba + 4, at_rgba + 8, at_rgba + 12)
                          or tuple(rgba[:3]) == _TILING or not is_rectangle(path_points(obj))):
            continue
        clip = meet_clips(clip, object_clip(obj, matrix))
        if clip is not None:
            if not clip[1]:
                continue  # clipped to some shape inside its box: what it leaves is not known
            box = meet(box, clip[0])
        if area(box) > 0:
            found.append((order, box, obj if kind == 3 else 0))
    return found


def _characters_in(textpage: Any, box: Box) -> int:
    """How many characters of `textpage` have a box meeting `box`."""
    left, bottom, right, top = box
    return _calls()[4](ctypes.cast(textpage.raw, ctypes.c_void_p).value, left, top, right, bottom, None, 0)


def _own_matrix(obj: int) -> Matrix:
    m = (ctypes.c_float * 6)()
    return tuple(m) if _calls()[3](obj, ctypes.addressof(m)) else IDENTITY


@functools.cache
def _calls() -> tuple:
    """The calls of the cover rules, taking plain addresses: fill colour,
    path draw mode, transparency, matrix, and the text page's count of
    characters in a box."""
    import pypdfium2.raw as pdfium_c

    p, i, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
    return (plain(pdfium_c.FPDFPageObj_GetFillColor, i, p, p, p, p, p),
            plain(pdfium_c.FPDFPath_GetDrawMode, i, p, p, p), plain(pdfium_c.FPDFPageObj_HasTransparency, i, p),
            plain(pdfium_c.FPDFPageObj_GetMatrix, i, p, p),
            plain(pdfium_c.FPDFText_GetBoundedText, i, p, d, d, d, d, p, i))
