"""A PDF page read from its pixels, when its images and text do not say
what the page shows.

Two things defeat reading a PDF from its objects: a QR that is no image
pypdf/Pillow decodes (JBIG2, an inline image, a code drawn as vector
squares), and a text layer whose glyphs map to the wrong characters (fonts
with no ToUnicode give control or private-use characters, or the wrong
hanzi). PDFium, Chrome's renderer, draws the page as printed; the QR is
decoded from that, and OCR reads the print as it does a scan.

Rendering costs tens of milliseconds a page, so it runs only when needed:
- a page whose images hold no QR at all (`pdf._page_qr_texts`) is
  rendered for the QR, once: the top-left region of the render is read
  first (where invoices print it), then the whole of it. A page whose images gave a QR that is no
  invoice QR (深圳's blockchain invoices print a URL, trip lists too) is
  not: a page carries one QR, and rendering finds the same one again;
- a page whose text carries no invoice labels gives no field from its
  text (mojibake can spell a number or an amount by shape). With OCR on,
  its render is read by OCR as a scan's page is: with a QR through
  `ocr.apply_reading`, without one through `ocr.invoice_from_print`. With
  no QR, only a garbled text layer (`text_is_garbled`) or none (a scan
  whose image no decoder here reads) is OCR'd: ordinary text with no
  invoice label and no QR (a letter, a 清单 page) says what it is, and
  OCR costs seconds a page.
A text page with invoice labels and a QR image that decodes never renders.
"""

from __future__ import annotations

import math
import time
from typing import Any

import zxingcpp
from PIL import Image

from agent.errors import ExtractError
from agent.extract.image import MAX_PIXELS, decode_qr_image
from agent.extract.ocr import give_back_memory, invoice_from_print, read_page_if_available
from agent.extract.qr import parse_qr
from agent.model import Problem

# An invoice QR is ~2 cm across with 25-37 modules: at 200 dpi that is 4-6
# pixels a module, where zxing reads a clean render at once; a 1.5 cm code
# still gets 3.
RENDER_DPI = 200
# Beyond ~A3 at 300 dpi a page is no invoice: render it smaller rather
# than hold a bitmap of MAX_PIXELS (80 MB grey).
MAX_RENDER_PIXELS = min(MAX_PIXELS, 16_000_000)
# Share of the page, from the top-left corner, where invoices print the QR
# (数电 and old layouts at ~3 % x 3 %, 代开 within the top third).
_QR_REGION = (0.5, 0.45)
_QR = zxingcpp.BarcodeFormat.QRCode
_MAX_FORM_DEPTH = 4  # as pdf_images: forms nested deeper hold no invoice QR
# A text layer is garbage when more than this share of its characters are
# none an invoice prints: not ASCII, not GB 2312 (control characters,
# Private Use Area, other scripts, rare hanzi of a wrong map). Real text
# layers in ../shared/samples have at most 2 %; a CID font without a map
# gives 20-35 % (its digits and Latin codes still read as ASCII), one
# mapped into the Private Use Area 60-100 %.
_FOREIGN_SHARE = 0.1

# Pages this process rendered (each at most once)
# and the seconds PDFium took: tests read the count to see that a good text
# PDF never renders, bench/extract.py both.
renders = 0
render_seconds = 0.0


def text_is_garbled(text: str) -> bool:
    """True when most of `text` is characters no invoice prints: what a
    font without (or with a wrong) Unicode map gives. False for empty text."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return False
    foreign = sum(1 for c in chars if not _printable(c))
    return foreign > _FOREIGN_SHARE * len(chars)


def _printable(c: str) -> bool:
    if c < "\x80":
        return " " < c <= "~"  # GB 2312 takes control characters too: they are no print
    if c in "¥￥（）":
        return True
    try:
        c.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


class PageRenderer:
    """Renders pages of one PDF (the reader's open PDFium pages: it opens
    and closes them). A page PDFium cannot draw is read as if it had not
    been rendered; the one error raised is ExtractError "limit-exceeded"
    for an image too big to decode (see `_check_images`)."""

    def __init__(self) -> None:
        self._rendered = False

    def complete(self, page: Any, pdf_page: Any, text: str, scanned: bool, ocr: bool) -> None:
        """Complete `page` (a `pdf._Page` read from the objects of
        `pdf_page`, a pypdfium2 PdfPage; `text` its normalised text layer)
        from the rendered page, under the rules in the module docstring: set
        `payload` (or add to `other_codes`) from a QR found in the pixels;
        for a page whose text has no invoice labels, drop the text's fields
        (`parsed` keeps only its label count and items; a garbled text layer
        is dropped whole: `parsed` None, the page is a scan) and, with `ocr`,
        set `ocr` (a QR was found) or `printed` (`ocr.invoice_from_print`)
        from an OCR reading of the render. The page is rendered at most once."""
        labelled = page.parsed is not None and page.parsed.is_invoice_like
        if labelled and page.payload is not None:
            return
        garbled = not scanned and not labelled and text_is_garbled(text)
        if not scanned and not labelled:
            # Text with no invoice label gives no field: mojibake can spell a
            # number or an amount by shape, and a wrong value is worse than none.
            page.parsed.fields.clear()
            if garbled:
                page.parsed = None
                page.problems.append(Problem(
                    "text-layer-garbled", "warning", field=None,
                    message=(f"the text layer of page {page.number} is not readable text (fonts without a "
                             "Unicode map); the page was read from its rendering"),
                    message_zh=f"第{page.number}页文本层无法识别（字体缺少 Unicode 映射），已按渲染图像识别"))
        legible = not scanned and not labelled and not garbled
        embedded_qr = page.payload is not None
        bitmap = None
        try:
            if page.payload is None and not page.other_codes:
                bitmap = self._find_qr(page, pdf_page, scanned)
            if not ocr or labelled:
                return
            if scanned and embedded_qr:
                return  # pdf._ocr_scan reads the scan image at its own resolution
            if page.payload is None and legible:
                return  # ordinary text, no invoice label, no invoice QR: not an invoice
            bitmap = bitmap or self._render(pdf_page)
            image = _to_image(bitmap) if bitmap is not None else None
            try:
                reading = read_page_if_available(image) if image is not None else None
            finally:
                if image is not None:
                    image.close()
            if reading is None:
                return
            if page.payload is not None:
                page.ocr = reading
            else:
                page.printed = invoice_from_print(reading)
        finally:
            if bitmap is not None:
                bitmap.close()
            if self._rendered:
                self._rendered = False
                _count_render()
                give_back_memory()

    def _find_qr(self, page: Any, pdf_page: Any, scanned: bool) -> Any:
        """Set `page.payload` from the rendered page's QR: the top-left
        region (_QR_REGION) is read first, then the whole page. Returns the
        page's render (a pypdfium2 PdfBitmap, the caller closes it), or None
        when PDFium cannot draw the page. The page is rendered once: the
        region is a view of the whole render, the same pixels a render
        cropped to it gives."""
        bitmap = self._render(pdf_page)
        if bitmap is None:
            return None
        pixels = memoryview(bitmap.buffer).cast("B")
        width, height = _region_size(pdf_page, bitmap.width, bitmap.height)
        if width >= 1 and height >= 1 and self._take(page, _read_qr(pixels, width, height, bitmap.stride)):
            return bitmap
        if scanned:
            # A scan keeps its noise through the render: it gets the retries.
            image = _to_image(bitmap)
            texts = decode_qr_image(image)
            image.close()
        else:
            texts = _read_qr(pixels, bitmap.width, bitmap.height, bitmap.stride)
        self._take(page, texts)
        return bitmap

    @staticmethod
    def _take(page: Any, texts: list[str]) -> bool:
        for text in texts:
            payload = parse_qr(text)
            if payload is not None:
                page.payload = payload
                return True
            if text not in page.other_codes:
                page.other_codes.append(text)
        return False

    def _render(self, pdf_page: Any) -> Any:
        """The page as a grey pypdfium2 PdfBitmap at RENDER_DPI, fewer
        pixels when the page is too big for MAX_RENDER_PIXELS; None when
        PDFium cannot draw it. The caller closes it."""
        global render_seconds
        try:
            _check_images(pdf_page)
            width, height = pdf_page.get_size()
            if not (width > 1 and height > 1):
                return None
            self._rendered = True
            started = time.perf_counter()
            try:
                return pdf_page.render(scale=_scale(width, height), grayscale=True,
                                       fill_color=(255, 255, 255, 255), may_draw_forms=True)
            finally:
                render_seconds += time.perf_counter() - started
        except ExtractError:
            raise
        except Exception:  # noqa: BLE001 - a page PDFium cannot draw is read as if not rendered
            return None


def _scale(width: float, height: float) -> float:
    return min(RENDER_DPI / 72, math.sqrt(MAX_RENDER_PIXELS / (width * height)))


def _region_size(pdf_page: Any, bitmap_width: int, bitmap_height: int) -> tuple[int, int]:
    """Pixels (width, height) of the _QR_REGION corner of the page's render:
    what pypdfium2 gives when it renders the page cropped to that region
    (the crop rounded up to whole pixels at the render's scale)."""
    width, height = pdf_page.get_size()
    scale = _scale(width, height)
    right, bottom = width * (1 - _QR_REGION[0]), height * (1 - _QR_REGION[1])
    return bitmap_width - math.ceil(right * scale), bitmap_height - math.ceil(bottom * scale)


def _to_image(bitmap: Any) -> Image.Image:
    """A grey PIL image of its own (the bitmap's buffer dies with it)."""
    image = bitmap.to_pil()
    return image.convert("L") if image.mode != "L" else image.copy()


def _check_images(pdf_page: Any) -> None:
    """Raise "limit-exceeded" for an image on the page (inline, or in a
    form) of more than MAX_PIXELS: PDFium would decode it whole to draw it.
    pdf_images checks the XObjects pypdf sees; this is every image."""
    import pypdfium2.raw as pdfium_c

    for obj in pdf_page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=_MAX_FORM_DEPTH):
        try:
            width, height = obj.get_px_size()
        except Exception:  # noqa: BLE001 - no size known: PDFium draws nothing for it
            continue
        if width * height > MAX_PIXELS:
            raise ExtractError("limit-exceeded",
                               f"an image on the page is {width}x{height} pixels, limit {MAX_PIXELS}")


def _count_render() -> None:
    global renders
    renders += 1


def _read_qr(pixels: memoryview, width: int, height: int, stride: int) -> list[str]:
    """QR texts in the `width` x `height` top-left corner of a grey bitmap's
    bytes (`stride` bytes a row), read in place: no copy of the pixels."""
    view = zxingcpp.ImageView(pixels, width, height, zxingcpp.ImageFormat.Lum, stride)
    return [r.text for r in zxingcpp.read_barcodes(view, formats=_QR) if r.text]
