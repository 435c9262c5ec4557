"""What a PDF page shows, as against what its objects hold.

A page's objects can hold more than a viewer draws, and a reader that takes
them all reads what no one sees:
- text in a render mode that paints nothing (3, invisible; 7, clip only):
  a searchable scan's OCR layer, misreads and all, or a forger's hidden
  value. It is no printed text (`undrawn_text`, used by
  pdf_geometry.page_glyphs);
- what lies outside the page's CropBox: a 2-up sheet split into two pages
  by their CropBoxes shares one content stream, so each page's objects
  hold the other invoice too (`shown_box`; pdf_geometry drops the glyphs
  outside it, pdf_images the images it shows too little of: `shown_share`).
Text drawn under an opaque image, white on white, or clipped away is still
read: telling those apart from print needs the page's pixels.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from agent.errors import ExtractError

Box = tuple[float, float, float, float]  # left, bottom, right, top: PDF points, y up
Matrix = tuple[float, float, float, float, float, float]  # a, b, c, d, e, f as in PDF
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_NOT_DRAWN = frozenset((3, 7))  # text render modes that paint nothing: invisible, clip only
# An invoice page draws ~100-300 objects. Forms nest without a depth limit
# here (PDFium's text page reads text at any depth), so a form drawn many
# times inside forms drawn many times could make a walk of millions: past
# this many, the page is refused rather than walked for seconds.
MAX_OBJECTS = 100_000


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


def undrawn_text(page: Any) -> frozenset[int]:
    """Addresses of the page's text objects, inside forms too (at any
    depth, as PDFium's text page reads them), whose render mode paints
    nothing: the values FPDFText_GetTextObject gives for their characters.
    Empty for almost every page."""
    return page_objects(page)[1]


def page_objects(page: Any, image_depth: int = 4) -> tuple[list[tuple[int, int, Matrix]], frozenset[int]]:
    """One walk of the page's objects (a pypdfium2 PdfPage), forms included:
    its images as (address, form depth, matrix placing them on the page),
    those in forms fewer than `image_depth` deep, and `undrawn_text`. One
    walk for both (~0.1 ms for ~200 objects): the reader needs both of
    every page, and almost every page has no undrawn text, so that no glyph
    pays for a look-up.

    Raises ExtractError "limit-exceeded" for a page of more than
    MAX_OBJECTS objects."""
    count, get, form_count, form_get, kind_of, mode_of = _plain_calls()
    budget = MAX_OBJECTS
    images: list[tuple[int, int, Matrix]] = []
    undrawn = []
    stack = [(ctypes.cast(page.raw, ctypes.c_void_p).value, get, count, 0, IDENTITY)]
    while stack:
        parent, get_at, size, depth, matrix = stack.pop()
        n = size(parent)
        budget -= max(n, 0)
        if budget < 0:
            raise ExtractError("limit-exceeded", f"a page draws more than {MAX_OBJECTS} objects")
        for i in range(n):
            obj = get_at(parent, i)
            if not obj:
                continue
            kind = kind_of(obj)
            if kind == 1:  # FPDF_PAGEOBJ_TEXT
                if mode_of(obj) in _NOT_DRAWN:
                    undrawn.append(obj)
            elif kind == 3:  # FPDF_PAGEOBJ_IMAGE
                if depth < image_depth:
                    images.append((obj, depth, matrix))
            elif kind == 5:  # FPDF_PAGEOBJ_FORM
                # A form's objects are placed in its own space: its matrix
                # maps them into its parent's.
                stack.append((obj, form_get, form_count, depth + 1, concat(form_matrix(obj), matrix)))
    return images, frozenset(undrawn)


@functools.cache
def _plain_calls() -> tuple:
    """The page-object calls `undrawn_text` makes, taking plain addresses
    (pypdfium2's declared argument types cost much of a call in
    conversions, and a page has ~200 objects)."""
    import pypdfium2.raw as pdfium_c

    def plain(func, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(ctypes.cast(func, ctypes.c_void_p).value)

    p, i = ctypes.c_void_p, ctypes.c_int
    return (plain(pdfium_c.FPDFPage_CountObjects, i, p), plain(pdfium_c.FPDFPage_GetObject, p, p, i),
            plain(pdfium_c.FPDFFormObj_CountObjects, i, p), plain(pdfium_c.FPDFFormObj_GetObject, p, p, i),
            plain(pdfium_c.FPDFPageObj_GetType, i, p), plain(pdfium_c.FPDFTextObj_GetTextRenderMode, i, p))


def concat(inner: Matrix, outer: Matrix) -> Matrix:
    """The matrix of `inner` then `outer` (a form's object placed by the
    form's matrix into its parent)."""
    a, b, c, d, e, f = inner
    oa, ob, oc, od, oe, of = outer
    return (a * oa + b * oc, a * ob + b * od, c * oa + d * oc, c * ob + d * od,
            e * oa + f * oc + oe, e * ob + f * od + of)


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
