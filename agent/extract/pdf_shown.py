"""What a PDF page shows, as against what its objects hold.

A page's objects can hold more than a viewer draws, and a reader that takes
them all reads what no one sees:
- text in a render mode that paints nothing (3, invisible; 7, clip only):
  a searchable scan's OCR layer, misreads and all, or a forger's hidden
  value. It is no printed text (`Drawing.undrawn`, found by `walk_page`);
- text that paints but shows nothing: white on white or transparent, too
  small to see, clipped away, or under an opaque box or image drawn after
  it (pdf_painted, from the same walk); pdf_geometry.page_glyphs leaves
  both out of the page's text;
- what lies outside the page's CropBox: a 2-up sheet split into two pages
  by their CropBoxes shares one content stream, so each page's objects
  hold the other invoice too (`shown_box`; pdf_geometry drops the glyphs
  outside it, pdf_images the images it shows too little of: `shown_share`);
- text in optional content (a layer) the document's configuration turns
  off: `Drawing.optional`, judged by pdf_optional.
Text in an ordinary colour on something of its own colour (black on a black
box or image), or under a soft mask, is still read: pdf_painted judges paint
against white, and only near-white paint against what lies under it.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ExtractError
from agent.extract.pdf_boxes import IDENTITY, Box, Clip, Matrix, concat, meet_clips, object_clip, plain
from agent.extract.pdf_optional import in_optional_content

__all__ = ["IDENTITY", "MAX_OBJECTS", "MAX_PAIRS", "Box", "Drawing", "Matrix", "check_pairs", "concat",
           "form_matrix", "shown_box", "shown_share", "walk_page"]
_NOT_DRAWN = frozenset((3, 7))  # text render modes that paint nothing: invisible, clip only
# An invoice page draws ~100-300 objects. Forms nest without a depth limit
# here (PDFium's text page reads text at any depth), so a form drawn many
# times inside forms drawn many times could make a walk of millions: past
# this many, the page is refused rather than walked for seconds.
MAX_OBJECTS = 100_000
# Text objects set against what lies under or over them (pdf_painted,
# pdf_covers), a page: ~0.1 s of comparisons. An invoice page makes a few
# thousand; past this many, the page is refused as well.
MAX_PAIRS = 1_000_000


def shown_box(page: Any) -> Box | None:
    """The part of the page (a pypdfium2 PdfPage) a viewer shows: its
    CropBox within its MediaBox, in the space of the page's content; None
    when PDFium cannot tell. What lies outside is not on the page."""
    import pypdfium2.raw as pdfium_c

    rect = pdfium_c.FS_RECTF()
    if not pdfium_c.FPDF_GetPageBoundingBox(page.raw, rect):
        return None
    left, right = sorted((rect.left, rect.right))
    bottom, top = sorted((rect.bottom, rect.top))
    return (left, bottom, right, top) if right > left and top > bottom else None


@dataclass
class Drawing:
    """What one walk of a page's objects found, in the order they are
    drawn (a form's objects where the form is drawn): `images` (address,
    form depth, matrix placing it on the page) of the images in forms
    fewer than `image_depth` deep; `texts` (draw order, address, matrix placing
    its parent's space on the page, the clip its forms impose, render mode)
    for the text objects that paint; `paints` (draw order, address, kind,
    matrix, forms' clip) for paths (2), images (3) and shadings (4), what
    can lie under or over text; `undrawn` the text objects whose render
    mode paints nothing; `optional` (address, matrix) of the text objects
    that paint drawn in optional content (/OC marked content, theirs or a form's they are
    drawn in: pdf_optional tells whether the page shows them). The clip of
    the forms above an object is a pdf_boxes.Clip, or None. `in_forms`:
    the other text objects that paint drawn in forms (a form's dictionary
    may name optional content, which no mark shows)."""

    images: list[tuple[int, int, Matrix]] = field(default_factory=list)
    texts: list[tuple[int, int, Matrix, Clip | None, int]] = field(default_factory=list)
    paints: list[tuple[int, int, int, Matrix, Clip | None]] = field(default_factory=list)
    undrawn: list[int] = field(default_factory=list)
    optional: list[tuple[int, Matrix]] = field(default_factory=list)
    in_forms: list[tuple[int, Matrix]] = field(default_factory=list)


def walk_page(page: Any, image_depth: int = 4) -> Drawing:
    """One walk of the page's objects (a pypdfium2 PdfPage), forms included
    at any depth (PDFium's text page reads text at any depth), in the order
    they are drawn: see `Drawing`. Images in forms `image_depth` or more
    deep are left out of `images` (not of `paints`). ~0.1 ms for ~200
    objects: calls with plain addresses, no call per object beyond its
    kind (and a text object's render mode).

    Raises ExtractError "limit-exceeded" for a page of more than
    MAX_OBJECTS objects."""
    count, get, form_count, form_get, kind_of, mode_of = _plain_calls()
    page_address = ctypes.cast(page.raw, ctypes.c_void_p).value
    n = count(page_address)
    budget = MAX_OBJECTS - max(n, 0)
    if budget < 0:
        raise ExtractError("limit-exceeded", f"a page draws more than {MAX_OBJECTS} objects")
    drawing = Drawing()
    images, texts, paints, undrawn = drawing.images, drawing.texts, drawing.paints, drawing.undrawn
    optional_texts, form_texts = drawing.optional, drawing.in_forms
    order = 0
    # Each frame: a parent (the page or a form), where to go on in it, and
    # what places its objects on the page. A form is walked where it is
    # drawn, its parent resumed after it: draw order, which says what lies
    # over what.
    stack = [(page_address, get, n, 0, 0, IDENTITY, None, False)]
    while stack:
        parent, get_at, size, start, depth, matrix, clip, optional = stack.pop()
        for i in range(start, size):
            obj = get_at(parent, i)
            if not obj:
                continue
            kind = kind_of(obj)
            order += 1
            if kind == 1:  # FPDF_PAGEOBJ_TEXT
                mode = mode_of(obj)
                if mode in _NOT_DRAWN:
                    undrawn.append(obj)
                else:
                    texts.append((order, obj, matrix, clip, mode))
                    if optional or in_optional_content(obj):
                        optional_texts.append((obj, matrix))
                    elif depth:
                        form_texts.append((obj, matrix))
            elif kind == 5:  # FPDF_PAGEOBJ_FORM
                inner = form_count(obj)
                budget -= max(inner, 0)
                if budget < 0:
                    raise ExtractError("limit-exceeded", f"a page draws more than {MAX_OBJECTS} objects")
                stack.append((parent, get_at, size, i + 1, depth, matrix, clip, optional))
                # A form's objects are placed in its own space: its matrix
                # maps them into its parent's. The clip it is drawn under
                # (its parent's space) bounds everything in it.
                stack.append((obj, form_get, inner, 0, depth + 1, concat(form_matrix(obj), matrix),
                              meet_clips(clip, object_clip(obj, matrix)), optional or in_optional_content(obj)))
                break
            elif kind in (2, 3, 4):  # path, image, shading
                paints.append((order, obj, kind, matrix, clip))
                if kind == 3 and depth < image_depth:
                    images.append((obj, depth, matrix))
    return drawing


def check_pairs(texts: int, others: int) -> None:
    """Raises ExtractError "limit-exceeded" when `texts` text objects set
    against `others` objects under or over them make more than MAX_PAIRS
    pairs."""
    if texts * others > MAX_PAIRS:
        raise ExtractError("limit-exceeded", f"a page draws {texts} text objects to set against {others} "
                                             f"objects over or under them, limit {MAX_PAIRS} pairs")


@functools.cache
def _plain_calls() -> tuple:
    """The page-object calls `walk_page` makes, taking plain addresses
    (pypdfium2's declared argument types cost much of a call in
    conversions, and a page has ~200 objects)."""
    import pypdfium2.raw as pdfium_c

    p, i = ctypes.c_void_p, ctypes.c_int
    return (plain(pdfium_c.FPDFPage_CountObjects, i, p), plain(pdfium_c.FPDFPage_GetObject, p, p, i),
            plain(pdfium_c.FPDFFormObj_CountObjects, i, p), plain(pdfium_c.FPDFFormObj_GetObject, p, p, i),
            plain(pdfium_c.FPDFPageObj_GetType, i, p), plain(pdfium_c.FPDFTextObj_GetTextRenderMode, i, p))


def form_matrix(form: Any) -> Matrix:
    """The matrix that places a form object's contents in its parent."""
    import pypdfium2.raw as pdfium_c

    m = pdfium_c.FS_MATRIX()
    form = ctypes.cast(form, pdfium_c.FPDF_PAGEOBJECT) if isinstance(form, int) else form
    return (m.a, m.b, m.c, m.d, m.e, m.f) if pdfium_c.FPDFPageObj_GetMatrix(form, m) else IDENTITY


def shown_share(obj: Any, matrix: Matrix, shown: Box) -> float:
    """Share of the page object's box, mapped by `matrix` onto the page,
    that lies inside `shown`; 1.0 when PDFium gives no box."""
    import pypdfium2.raw as pdfium_c

    sides = [ctypes.c_float() for _ in range(4)]
    obj = ctypes.cast(obj, pdfium_c.FPDF_PAGEOBJECT) if isinstance(obj, int) else obj
    if not pdfium_c.FPDFPageObj_GetBounds(obj, *sides):
        return 1.0
    left, bottom, right, top = (s.value for s in sides)
    a, b, c, d, e, f = matrix
    xs = [a * x + c * y + e for x, y in ((left, bottom), (left, top), (right, bottom), (right, top))]
    ys = [b * x + d * y + f for x, y in ((left, bottom), (left, top), (right, bottom), (right, top))]
    area = (max(xs) - min(xs)) * (max(ys) - min(ys))
    if area <= 0:
        return 1.0
    width = min(max(xs), shown[2]) - max(min(xs), shown[0])
    height = min(max(ys), shown[3]) - max(min(ys), shown[1])
    return max(width, 0.0) * max(height, 0.0) / area
