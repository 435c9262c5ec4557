"""One PDF page object as PDFium draws it, for pdf_painted's rules: the
most ink a text object leaves on white (`drawn_ink`), an image's pixels
under a glyph (`ImageSampler`), and whether an image is opaque: first by
its dictionary (`plainly_opaque`: a seal's soft mask ends it there), then
by its drawing (`drawn_opaque`). Each costs a drawing or a search of the
file, so pdf_painted asks only of the few objects its cheap tests single
out (white text; an image over text).
"""

from __future__ import annotations

import ctypes
import math
import re
from typing import Any

from agent.extract.pdf_boxes import Box

_RENDER_PIXELS = 250_000  # a text object is drawn at a scale that keeps it under this many pixels
# PDFium draws an image object at a pixel a point of its box: one bigger
# than ~2,000 points square (no invoice page is) is not drawn.
_MAX_IMAGE_PIXELS = 4_000_000
# An image dictionary entry that makes some of its box transparent or not
# drawn at all (optional content); "#" escapes in names are undone first.
_SEE_THROUGH = re.compile(rb"/(?:SMask|SMaskInData|Mask|ImageMask|OC)(?![^\s/<>\[\]()%{}])")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_MAX_FINDS = 64  # places a stream's first bytes are looked at in the file


def drawn_ink(page: Any, obj: int) -> int:
    """The most ink on white any pixel of PDFium's drawing of text object
    `obj` alone has (0-255); full ink when it cannot be drawn."""
    import pypdfium2.raw as pdfium_c
    from PIL import Image, ImageChops

    handle = ctypes.cast(obj, pdfium_c.FPDF_PAGEOBJECT)
    sides = [ctypes.c_float() for _ in range(4)]
    if not pdfium_c.FPDFPageObj_GetBounds(handle, *sides):
        return 255
    left, bottom, right, top = (s.value for s in sides)
    # Bounded in pixels: a white text object a page wide and tall must not
    # cost a huge bitmap. Its colour is seen at any scale.
    scale = min(2.0, math.sqrt(_RENDER_PIXELS / max((right - left) * (top - bottom), 1.0)))
    bitmap = pdfium_c.FPDFTextObj_GetRenderedBitmap(page.pdf.raw, page.raw, handle, scale)
    if not bitmap:
        return 255
    try:
        width, height = pdfium_c.FPDFBitmap_GetWidth(bitmap), pdfium_c.FPDFBitmap_GetHeight(bitmap)
        stride = pdfium_c.FPDFBitmap_GetStride(bitmap)
        if width <= 0 or height <= 0:
            return 0
        if pdfium_c.FPDFBitmap_GetFormat(bitmap) != pdfium_c.FPDFBitmap_BGRA:
            return 255
        pixels = ctypes.string_at(pdfium_c.FPDFBitmap_GetBuffer(bitmap), stride * height)
        image = Image.frombuffer("RGBA", (width, height), pixels, "raw", "BGRA", stride, 1)
        red, green, blue, alpha = image.split()
        lightest = ImageChops.darker(ImageChops.darker(red, green), blue)
        return ImageChops.multiply(ImageChops.invert(lightest), alpha).getextrema()[1]
    except Exception:  # noqa: BLE001 - not drawn: taken as inked, the text as shown
        return 255
    finally:
        pdfium_c.FPDFBitmap_Destroy(bitmap)


class ImageSampler:
    """The ink on white of an image's pixels under a box on the page, drawn
    by PDFium once (its mask applied), the first time it is asked: that of
    its lighter pixels (the 90th percentile of lightness), for white
    stands out only where the image is dark throughout, on a dark band, not
    on a scan's printed strokes with its paper between them."""

    def __init__(self, page: Any, obj: int, box: Box) -> None:
        self.page, self.obj, self.box, self.gray = page, obj, box, None

    def __call__(self, region: Box) -> float:
        if self.gray is None:
            self.gray = image_gray(self.page, self.obj) or False
        if self.gray is False:
            return 255.0  # not drawn: taken as dark, the text as shown
        left, bottom, right, top = self.box
        width, height = self.gray.size
        sx, sy = width / max(right - left, 1e-6), height / max(top - bottom, 1e-6)
        crop = (int((region[0] - left) * sx), int((top - region[3]) * sy),
                int(math.ceil((region[2] - left) * sx)), int(math.ceil((top - region[1]) * sy)))
        crop = (max(crop[0], 0), max(crop[1], 0), min(max(crop[2], crop[0] + 1), width),
                min(max(crop[3], crop[1] + 1), height))
        if crop[2] <= crop[0] or crop[3] <= crop[1]:
            return 255.0
        histogram = self.gray.crop(crop).histogram()
        darker, tenth = 0, sum(histogram) * 0.9
        for lightness, count in enumerate(histogram):
            darker += count
            if darker >= tenth:
                return 255.0 - lightness
        return 0.0


def drawn_opaque(page: Any, obj: int) -> bool:
    """Whether PDFium draws image object `obj` opaque all over its box (its
    masks and its dictionary's every entry applied): what a dictionary
    that reads opaque must be, for the image to cover text. False when it
    cannot be drawn."""
    import pypdfium2.raw as pdfium_c
    from PIL import Image

    bitmap = _drawn_image(page, obj)
    if not bitmap:
        return False
    try:
        width, height = pdfium_c.FPDFBitmap_GetWidth(bitmap), pdfium_c.FPDFBitmap_GetHeight(bitmap)
        if width <= 0 or height <= 0 or width * height > _MAX_IMAGE_PIXELS:
            return False
        if pdfium_c.FPDFBitmap_GetFormat(bitmap) != pdfium_c.FPDFBitmap_BGRA:
            return True  # no alpha channel: nothing see-through
        stride = pdfium_c.FPDFBitmap_GetStride(bitmap)
        pixels = ctypes.string_at(pdfium_c.FPDFBitmap_GetBuffer(bitmap), stride * height)
        alpha = Image.frombuffer("RGBA", (width, height), pixels, "raw", "BGRA", stride, 1).getchannel("A")
        return alpha.getextrema()[0] == 255
    except Exception:  # noqa: BLE001 - a broken image: covers nothing
        return False
    finally:
        pdfium_c.FPDFBitmap_Destroy(bitmap)


def image_gray(page: Any, obj: int):
    """The image object as PDFium draws it on the page (its mask applied),
    on white, in grey; None when it cannot."""
    import pypdfium2.raw as pdfium_c
    from PIL import Image

    bitmap = _drawn_image(page, obj)
    if not bitmap:
        return None
    try:
        width, height = pdfium_c.FPDFBitmap_GetWidth(bitmap), pdfium_c.FPDFBitmap_GetHeight(bitmap)
        if width <= 0 or height <= 0 or width * height > _MAX_IMAGE_PIXELS \
                or pdfium_c.FPDFBitmap_GetFormat(bitmap) != pdfium_c.FPDFBitmap_BGRA:
            return None
        stride = pdfium_c.FPDFBitmap_GetStride(bitmap)
        pixels = ctypes.string_at(pdfium_c.FPDFBitmap_GetBuffer(bitmap), stride * height)
        image = Image.frombuffer("RGBA", (width, height), pixels, "raw", "BGRA", stride, 1)
        return Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image).convert("L")
    except Exception:  # noqa: BLE001 - a broken image: taken as dark
        return None
    finally:
        pdfium_c.FPDFBitmap_Destroy(bitmap)


def plainly_opaque(obj: int, data: bytes) -> bool:
    """Whether image object `obj`'s dictionary plainly makes it opaque: its
    stream's bytes are found in the file `data` as a stream's body (an
    image's stream is never in an object stream; an encrypted file's are
    not as PDFium holds them), and no dictionary before such a body has an
    entry that makes part of the image see-through or not drawn
    (_SEE_THROUGH). False whenever that is not plain. A cheap first look
    (a seal's soft mask ends it); `drawn_opaque` has the last word."""
    import pypdfium2.raw as pdfium_c

    handle = ctypes.cast(obj, pdfium_c.FPDF_PAGEOBJECT)
    size = pdfium_c.FPDFImageObj_GetImageDataRaw(handle, None, 0)
    if size <= 0 or size > len(data):
        return False
    raw = ctypes.create_string_buffer(size)
    if pdfium_c.FPDFImageObj_GetImageDataRaw(handle, raw, size) != size:
        return False
    heads = []
    # Found by a short prefix (a long needle costs a pass to prepare), then
    # compared whole; a stream's body follows "stream" and an end of line.
    # A prefix found in too many places tells nothing plainly.
    raw, probe, at = raw.raw, raw.raw[:32], data.find(raw.raw[:32])
    for _ in range(_MAX_FINDS):
        if at < 0 or len(heads) >= 8:
            break
        before = data[max(at - 8, 0):at]
        if before.endswith((b"stream\r\n", b"stream\n")) and data[at:at + size] == raw \
                and data[at + size:at + size + 11].lstrip(b"\r\n").startswith(b"endstream"):
            start = data.rfind(b" obj", 0, at)
            heads.append(data[start:at] if start >= 0 else b"")
        at = data.find(probe, at + 1)
    else:
        return False
    if not heads:
        return False
    for head in heads:
        head = _NAME_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), head)
        if b"/Image" not in head or _SEE_THROUGH.search(head):
            return False
    return True


def _drawn_image(page: Any, obj: int):
    """PDFium's drawing of image object `obj` (an FPDF_BITMAP the caller
    destroys), or None: not drawn, or its box too big to draw."""
    import pypdfium2.raw as pdfium_c

    handle = ctypes.cast(obj, pdfium_c.FPDF_PAGEOBJECT)
    sides = [ctypes.c_float() for _ in range(4)]
    if not pdfium_c.FPDFPageObj_GetBounds(handle, *sides):
        return None
    left, bottom, right, top = (s.value for s in sides)
    if (right - left) * (top - bottom) > _MAX_IMAGE_PIXELS:
        return None
    return pdfium_c.FPDFImageObj_GetRenderedBitmap(page.pdf.raw, page.raw, handle) or None
