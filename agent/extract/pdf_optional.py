"""Text in a PDF's optional content (layers) that the page does not show.

PDFium's text page reads every text object, whatever optional content group
(/OC marked content) it is drawn in; a viewer draws a group only when the
document's optional content configuration turns it on. A forger's value in
a group that is off (a buyer's tax id on a page that shows none, a second
number) is text no one sees, as white text is (pdf_painted). Whether a
group is on cannot be asked of PDFium, and its configuration (OFF arrays,
BaseState, membership dictionaries and their visibility expressions) is
PDFium's to interpret: so the page is drawn as a viewer draws it, with and
without all such objects (FPDFPageObj_SetIsActive), and again as a printer
prints it: four drawings a page, whatever their number. An object in whose
box no pixel changed in either shows nothing. Print counts: a group can be
set to print but not to show on screen (/Usage /Print /PrintState /ON with
/View /ViewState /OFF, by /AS auto-state or, in PDFium, by /Usage alone,
which Acrobat ignores without /AS), and the paper copy an invoice is filed
as holds that text. Text in a form is asked about too when the file names optional
content anywhere: a form's dictionary can say /OC with no mark. (Two such objects drawn over each other, one shown, are both
read: the page's text then holds both, as for text over text.)
"""

from __future__ import annotations

import ctypes
import functools
import re
from dataclasses import dataclass
from typing import Any

from agent.extract.pdf_boxes import Box, Matrix, object_box, plain

_SCALE = 1.0         # a pixel a point: a glyph of 1 pt (pdf_painted.MIN_EM) changes pixels
_OC = "OC".encode("utf-16-le")
# The uses a page is drawn for: on screen, and printed (FPDF_PRINTING, 0x800:
# PDFium then takes each group's /Print state, not its /View one).
_MODES = (0, 0x800)
# The name /OC as a file may write it ("#4F" and "#43" are O and C), not
# the start of a longer name (/OCProperties counts: a layer is configured).
_OC_NAME = re.compile(rb"/(?:O|#4[fF])(?:C|#43)")


def in_optional_content(obj: int) -> bool:
    """Whether page object `obj` (an address) is drawn inside /OC marked
    content. One call for an object with no marks (almost all)."""
    count, get_mark, get_name = _calls()
    marks = count(obj)
    if marks <= 0:
        return False
    name = (ctypes.c_ushort * 8)()
    length = ctypes.c_ulong()
    for i in range(marks):
        mark = get_mark(obj, i)
        if mark and get_name(mark, ctypes.addressof(name), ctypes.sizeof(name), ctypes.addressof(length)):
            if length.value == 6 and bytes(name)[:4] == _OC:   # "OC" and its terminator, UTF-16LE
                return True
    return False


def names_optional_content(data: bytes | None) -> bool:
    """Whether the file's bytes name optional content (/OC, in any
    spelling of the name): a form XObject's dictionary, which is never
    compressed, can put everything drawn in it in a layer with no mark
    saying so. True when the bytes are not at hand."""
    return data is None or _OC_NAME.search(data) is not None


def unshown_optional(page: Any, objects: list[tuple[int, Matrix]], textpage: Any = None) -> set[int]:
    """Of text objects `objects` ((address, matrix placing its parent on
    the page), in optional content) of `page` (a pypdfium2 PdfPage), those
    the page neither shows on screen nor prints: taking them all out
    changes no pixel within the object's box in either drawing (see the
    module's account). With `textpage` (its PdfTextPage), an object whose
    text reads as nothing is not judged (never in the result: it hides no
    value). Every object is left active as it was found."""
    if textpage is not None:
        # An empty `Tj ()` is a text object too, and changes no pixel in any
        # drawing: judged, it kept a real invoice (a layer of 69 objects, one
        # empty) from stopping after the viewer's drawing: two drawings more,
        # its reading twice as long.
        objects = [entry for entry in objects if _reads_text(entry[0], textpage)]
    if not objects:
        return set()
    hidden = None
    for flags in _MODES:
        unseen = _unshown_in(page, objects, flags)
        hidden = unseen if hidden is None else hidden & unseen
        if not hidden:
            break
    return hidden or set()


def _unshown_in(page: Any, objects: list[tuple[int, Matrix]], flags: int) -> set[int]:
    # Those of `objects` whose box no pixel changes in when they are taken
    # out of the page drawn with `flags` (view or print); none when the page
    # cannot be drawn (nothing to tell by: taken as shown).
    set_active = _set_active()
    base = _drawing(page, flags)
    if base is None:
        return set()
    try:
        for obj, _ in objects:
            set_active(obj, 0)
        without = _drawing(page, flags)
    finally:
        for obj, _ in objects:
            set_active(obj, 1)
    if without is None:
        return set()
    if without.pixels == base.pixels:
        return {obj for obj, _ in objects}   # the whole layer shows nothing
    hidden = set()
    for obj, matrix in objects:
        region = _pixels(page, object_box(obj, matrix), (base.width, base.height))
        if region is not None and _unchanged(base, without, region):
            hidden.add(obj)
    return hidden


@dataclass(frozen=True)
class _Bitmap:
    # A drawing's pixels as PDFium wrote them (rows `stride` bytes apart,
    # `channels` bytes a pixel): compared as bytes, never decoded into an
    # image (that was a third of the time this module took).
    pixels: bytes
    stride: int
    channels: int
    width: int
    height: int


def _unchanged(a: _Bitmap, b: _Bitmap, region: tuple[int, int, int, int]) -> bool:
    # Whether drawings `a` and `b` hold the same pixels in `region` (left,
    # top, right, bottom; the right and bottom edges not included).
    left, top, right, bottom = region
    start, end = left * a.channels, right * a.channels
    return all(a.pixels[row + start:row + end] == b.pixels[row + start:row + end]
               for row in range(top * a.stride, bottom * a.stride, a.stride))


def _reads_text(obj: int, textpage: Any) -> bool:
    # Whether text object `obj` reads as any text on `textpage` (PDFium
    # gives the UTF-16LE length with its terminator: 2 for nothing).
    return _text_length()(obj, ctypes.cast(textpage.raw, ctypes.c_void_p).value, None, 0) > 2


def _pixels(page: Any, box: Box | None, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    # The bitmap's pixels (left, top, right, bottom) over `box` (page space),
    # a pixel of margin round it for smoothing; None when not on the bitmap.
    if box is None:
        return None
    import pypdfium2.raw as pdfium_c

    width, height = size
    xs, ys = [], []
    x, y = ctypes.c_int(), ctypes.c_int()
    # Two opposite corners: a page turns to the device by quarter turns
    # only (/Rotate), so they are opposite corners there too.
    for px, py in ((box[0], box[1]), (box[2], box[3])):
        if not pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, width, height, 0, px, py, x, y):
            return None
        xs.append(x.value)
        ys.append(y.value)
    left, top = max(min(xs) - 1, 0), max(min(ys) - 1, 0)
    right, bottom = min(max(xs) + 2, width), min(max(ys) + 2, height)
    return (left, top, right, bottom) if right > left and bottom > top else None


def _drawing(page: Any, flags: int = 0) -> _Bitmap | None:
    # The page's pixels as a viewer draws them, or a printer when `flags`
    # is FPDF_PRINTING (optional content as configured for that use),
    # without annotations or form fields.
    try:
        bitmap = page.render(scale=_SCALE, may_draw_forms=False, draw_annots=False, extra_flags=flags)
        return _Bitmap(bytes(bitmap.buffer), bitmap.stride, bitmap.n_channels, bitmap.width, bitmap.height)
    except Exception:  # noqa: BLE001 - not drawn: nothing to tell by
        return None


@functools.cache
def _calls() -> tuple:
    import pypdfium2.raw as pdfium_c

    p, i = ctypes.c_void_p, ctypes.c_int
    return (plain(pdfium_c.FPDFPageObj_CountMarks, i, p), plain(pdfium_c.FPDFPageObj_GetMark, p, p, ctypes.c_ulong),
            plain(pdfium_c.FPDFPageObjMark_GetName, i, p, p, ctypes.c_ulong, p))


@functools.cache
def _set_active():
    import pypdfium2.raw as pdfium_c

    return plain(pdfium_c.FPDFPageObj_SetIsActive, ctypes.c_int, ctypes.c_void_p, ctypes.c_int)


@functools.cache
def _text_length():
    import pypdfium2.raw as pdfium_c

    p = ctypes.c_void_p
    return plain(pdfium_c.FPDFTextObj_GetText, ctypes.c_ulong, p, p, p, ctypes.c_ulong)
