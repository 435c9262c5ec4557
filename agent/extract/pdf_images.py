"""A PDF page's images, through PDFium: found (inside forms too), ordered
most QR-like first, and decoded to PIL images.

Apart from `pdf` (which reads invoices from pages) because this is image
plumbing: which image objects a page draws, their pixel sizes, and their
decoding, bounded against bombs by the caller's size check (the pixel size
is read from the image dictionary before anything is decoded). PDFium
decodes every filter a PDF viewer does (Flate, ASCII85, JPEG, JBIG2, CCITT,
1-bit and indexed colour). It reads no QR and no text.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from agent.extract.pdf_shown import shown_box, shown_share, walk_page

# Smallest image that can hold a version-1 QR code at one pixel per module.
_MIN_QR_SIDE = 21
_MAX_FORM_DEPTH = 4
# Share of an image's area the page must show for the image to be read from
# its object. A scan whose CropBox trims its margins shows nearly all of it;
# one half of a 2-up sheet shows half, and its object would also give the
# other half's QR: such a page is read from its render, which shows only
# what the page does (pdf_render).
_SHOWN_SHARE = 2 / 3


def image_candidates(page: Any, images: list | None = None) -> list[tuple[Any, int, int]]:
    """(pypdfium2 PdfImage, width, height) of the images the page draws that
    are at least a QR's size, including those inside forms (up to
    _MAX_FORM_DEPTH deep), ordered square first, then by area. An image the
    page shows less than _SHOWN_SHARE of (`shown_box`) is left out.
    `images` is the page's `pdf_shown.walk_page(page).images` when the caller
    has it. Never raises: broken objects are skipped."""
    import ctypes

    import pypdfium2
    import pypdfium2.raw as pdfium_c

    found: list[tuple[Any, int, int]] = []
    w, h = ctypes.c_uint(), ctypes.c_uint()
    try:
        if images is None:
            images = walk_page(page, _MAX_FORM_DEPTH).images
        shown = shown_box(page)
        # Raw calls: a page draws ~100 objects (paths, text), and only its
        # few images need a wrapper.
        for address, depth, matrix in images:
            raw = ctypes.cast(address, pdfium_c.FPDF_PAGEOBJECT)
            if pdfium_c.FPDFImageObj_GetImagePixelSize(raw, w, h) and min(w.value, h.value) >= _MIN_QR_SIDE \
                    and (shown is None or shown_share(raw, matrix, shown) >= _SHOWN_SHARE):
                image = pypdfium2.PdfObject(raw, page=page, pdf=page.pdf, level=depth)
                found.append((image, int(w.value), int(h.value)))
    except Exception:  # noqa: BLE001 - broken resources: decode what was found
        pass
    return sorted(found, key=lambda c: (not 0.8 <= c[1] / c[2] <= 1.25, c[1] * c[2]))


def last_filter(image: Any) -> str | None:
    """The image stream's last (outermost-decoded) filter name, or None."""
    try:
        filters = image.get_filters()
    except Exception:  # noqa: BLE001
        return None
    return filters[-1] if filters else None


def decode_pdf_image(image: Any, width: int, height: int, half: bool = False) -> Image.Image | None:
    """The image as a grayscale PIL image (a JPEG at half scale when `half`).

    A JPEG is handed to Pillow as stored (its draft mode decodes straight to
    gray, at half scale if asked); everything else is decoded by PDFium.
    The caller has checked `width` x `height` against its pixel limit.
    """
    if last_filter(image) == "DCTDecode" and len(image.get_filters()) == 1:
        img = Image.open(io.BytesIO(image.get_data(decode_simple=True)))
        img.draft("L", (width // 2, height // 2) if half else img.size)
        return img.convert("L")
    bitmap = image.get_bitmap(render=False)
    try:
        # The PIL image shares PDFium's buffer: copied before it is freed.
        pil = bitmap.to_pil()
        return pil.copy() if pil.mode == "L" else pil.convert("L")
    finally:
        bitmap.warn_on_close = False  # freeing it here, after the copy, is the point
        bitmap.close()
