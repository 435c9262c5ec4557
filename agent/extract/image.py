"""Invoices from images and scans, read through their QR code, then OCR.

The QR carries kind, 代码, 号码, date, 校验码 and one amount, which is what a
scan is matched on. Scans at 200-300 dpi decode on the first try; photos and
small renders may need upscaling, binarising or a turn, which are tried only
when the plain decode finds nothing; failing those, the symbol is located on
the page, cut out, straightened and cleaned (`qr_locate.py`). When asked, OCR (`ocr.py`) then reads
what only the print carries: names, tax ids, 税额, 价税合计 and 大写.
"""

from __future__ import annotations

import io
import warnings

import zxingcpp
from PIL import Image, ImageOps, ImageSequence

from agent.errors import ExtractError
from agent.extract.labels import CITY_REGIONS, REGIONS
from agent.extract.ocr import apply_reading, invoice_from_print, read_page_if_available
from agent.extract.qr import apply_qr, malformed_problem, malformed_reason, several_invoices_problem, sort_codes
from agent.extract.qr_locate import relocate_qr
from agent.model import KIND_NAMES, Invoice

# An A3 page at 600 dpi is 70 Mpx; anything beyond is not a scan of an invoice.
MAX_PIXELS = 80_000_000
MAX_FRAMES = 200
# All frames together: a QR search of a blank frame costs ~50 ns a pixel
# through every retry (upscale, binarise, rotations, relocate), so a 388 KB
# TIFF of 200 blank 36-megapixel group-4 frames held a reader ~3 minutes.
# 600 megapixels is ~70 A4 pages at 300 dpi, more than a scanner batch.
MAX_TOTAL_PIXELS = 600_000_000
# Upscaling is for small renders and thumbnails; a big image only gets bigger.
_UPSCALE_MAX_SIDE = 2000
_QR = zxingcpp.BarcodeFormat.QRCode
_HALF_SCALE_MIN_SIDE = 1600
_TOP_FRACTION = 0.4
_TOP_FIRST_MIN_PIXELS = 1_500_000
_WHOLE_PAGE_SIDE = 3600

Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Old-style titles are the region name plus the type name; 数电 and railway
# titles are the type name alone (see KIND_NAMES).
# 卷票 (11) and 通行费 (14) titles vary by issuer, so they are not derived.
_REGIONAL_KINDS = frozenset({"01", "04", "10", "20"})


def decode_qr_image(img: Image.Image) -> list[str]:
    """Texts of the QR codes in `img`, first the plain decode, then retries
    (2x upscale, binarised, rotated 90/180/270) until one finds something.

    Returns [] when nothing decodes. Never raises for a loaded image.
    """
    gray = img if img.mode == "L" else img.convert("L")
    for attempt in _attempts(gray):
        found = zxingcpp.read_barcodes(attempt, formats=_QR)
        texts = [r.text for r in found if r.text]
        if texts:
            return texts
    return []


def _attempts(gray: Image.Image):
    yield gray
    w, h = gray.size
    if max(w, h) <= _UPSCALE_MAX_SIDE:
        yield gray.resize((w * 2, h * 2), Image.Resampling.BICUBIC)
    # JPEG noise and uneven lighting defeat the local binariser; a global
    # threshold after autocontrast often gets through.
    contrasted = ImageOps.autocontrast(gray, cutoff=2)
    yield contrasted.point(lambda v: 255 if v > 127 else 0)
    for angle in (90, 180, 270):
        yield gray.rotate(angle, expand=True)


def title_from_qr(kind: str | None, code: str | None) -> str | None:
    """The printed title implied by a QR: `KIND_NAMES` for 数电/railway, and
    region + type name for old-style invoices (region from the 代码 digits).
    None when the QR does not determine it."""
    if not kind:
        return None
    if kind not in _REGIONAL_KINDS:
        return KIND_NAMES.get(kind) if kind in {"31", "32", "51"} else None
    if not code:
        return None
    digits = code[1:5] if len(code) == 12 else code[:4] if len(code) == 10 else ""
    region = CITY_REGIONS.get(digits) or REGIONS.get(digits[:2])
    return f"{region}{KIND_NAMES[kind]}" if region else None


def invoice_from_qr_texts(texts: list[str], where: str = "the image",
                          where_zh: str = "图像") -> Invoice | None:
    """An Invoice from the invoice QR among `texts` (source "qr"), a
    not-invoice record when the only codes are something else (a URL), or
    None when `texts` is empty. Never a value that may be another
    invoice's: the QR codes of several invoices (two slips on one sheet)
    give an Invoice with no field and a "several-invoices-on-page" error;
    a code laid out as an invoice QR that does not parse gives one with a
    "qr-malformed" error (`where` names the image or page in messages)."""
    if not texts:
        return None
    payloads, others = sort_codes(texts)
    if len(payloads) > 1:
        invoice = Invoice()
        invoice.problems.append(several_invoices_problem(payloads, where, where_zh))
        return invoice
    if payloads:
        invoice = Invoice()
        apply_qr(invoice, payloads[0])
        invoice.offer("title", title_from_qr(payloads[0].kind, payloads[0].code), "qr")
        return invoice
    for text in others:
        reason = malformed_reason(text)
        if reason is not None:
            invoice = Invoice()
            invoice.problems.append(malformed_problem(text, reason))
            return invoice
    invoice = Invoice(is_invoice=False,
                      not_invoice_reason=f"its QR code is not an invoice QR: {texts[0][:80]!r}")
    invoice.offer("qr", texts[0], "qr")
    return invoice


def several_invoices(invoice: Invoice) -> bool:
    """True for an Invoice that stands for several (`invoice_from_qr_texts`):
    nothing may be added to it by reading its print (OCR)."""
    return any(p.code == "several-invoices-on-page" for p in invoice.problems)


def open_image(data: bytes) -> Image.Image:
    """Open image bytes lazily, with the pixel limit checked before decoding.

    Raises ExtractError: "limit-exceeded" for too many pixels, "corrupt" for
    bytes PIL cannot read.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ExtractError("limit-exceeded", f"image too large: {e}") from None
    except (OSError, ValueError, SyntaxError, TypeError) as e:
        raise ExtractError("corrupt", f"unreadable image: {e}") from None
    _check_pixels(img.size)
    return img


def _check_pixels(size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ExtractError("limit-exceeded", f"image is {w}x{h} pixels, limit {MAX_PIXELS}")


def _load_gray(img: Image.Image) -> Image.Image:
    # Decoding JPEG straight to grayscale skips the colour conversion, which
    # is most of the cost on a 300 dpi scan.
    if img.format == "JPEG" and img.mode != "L":
        img.draft("L", img.size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            return img if img.mode == "L" else img.convert("L")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ExtractError("limit-exceeded", f"image too large: {e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        reason = "truncated" if "truncated" in str(e).lower() else "corrupt"
        raise ExtractError(reason, f"unreadable image: {e}") from None


def _frame_qr_texts(frame: Image.Image, data: bytes, frames: int) -> list[str]:
    # A big JPEG decodes four times faster at half scale (DCT scaling), and a
    # 300 dpi scan's QR still has ~3 px per module there; full scale is the
    # fallback for 200 dpi scans and small QR codes.
    if frames == 1 and frame.format == "JPEG" and min(frame.size) >= _HALF_SCALE_MIN_SIDE:
        small = Image.open(io.BytesIO(data))
        small.draft("L", (frame.width // 2, frame.height // 2))
        found = zxingcpp.read_barcodes(_load_gray(small), formats=_QR)
        texts = [r.text for r in found if r.text]
        if texts:
            return texts
    elif frames == 1 and frame.format == "PNG" and frame.width * frame.height >= _TOP_FIRST_MIN_PIXELS:
        top = _png_top_rows(data, _TOP_FRACTION)
        if top is not None:
            found = zxingcpp.read_barcodes(top, formats=_QR)
            texts = [r.text for r in found if r.text]
            if texts:
                # The rest of the page too: a second slip scanned on the same
                # sheet carries its own QR lower down, and must not be missed.
                return texts + [t for t in _whole_page_texts(frame) if t not in texts]
    gray = _load_gray(frame)
    # A photo's QR lost to blur, shadow or angle: found, cut out and
    # cleaned, it often still reads (bounded: see qr_locate).
    return decode_qr_image(gray) or relocate_qr(gray)


def _whole_page_texts(frame: Image.Image) -> list[str]:
    """QR texts of the whole frame at no more than _WHOLE_PAGE_SIDE pixels a
    side: a 300 dpi A4 page keeps ~2.5 px a module, and a huge image (a
    bomb just under MAX_PIXELS) costs one bounded search, not minutes."""
    gray = _load_gray(frame)
    factor = -(-max(gray.size) // _WHOLE_PAGE_SIDE)
    if factor > 1:
        gray = gray.reduce(factor)
    return [r.text for r in zxingcpp.read_barcodes(gray, formats=_QR) if r.text]


def _in_colour(frame: Image.Image, data: bytes, frames: int) -> Image.Image:
    """`frame` with its colours: a JPEG was decoded straight to grey for
    the QR (`_load_gray`), and OCR tells red print and seals from black
    by colour. Decoded again (~20 ms), in colour, when that happened."""
    if frames == 1 and frame.format == "JPEG" and frame.mode == "L":
        fresh = open_image(data)
        if fresh.mode != "L":
            return fresh
    return frame


def _png_top_rows(data: bytes, fraction: float) -> Image.Image | None:
    """The top rows of a big PNG, inflating only those: the invoice QR sits
    top left, and inflating a 300 dpi page costs ~50 ms. None when the PNG is
    interlaced or Pillow lays it out differently; the caller decodes all."""
    try:
        img = Image.open(io.BytesIO(data))
        if len(img.tile) != 1 or img.tile[0][0] != "zip" or img.info.get("interlace"):
            return None
        width, height = img.size
        rows = max(1, int(height * fraction))
        # Pillow inflates row by row and stops once the tile's extent is full.
        img.tile = [img.tile[0]._replace(extents=(0, 0, width, rows))]
        img._size = (width, rows)
        img.load()
        return img if img.mode == "L" else img.convert("L")
    except Exception:  # noqa: BLE001 - an optimisation only: any surprise means "decode all"
        return None


def read_image(data: bytes, *, ocr: bool = False) -> list[Invoice]:
    """Invoices in an image file (PNG, JPEG, TIFF, BMP, GIF, WebP), one per
    frame that carries a QR; `page` is set when a multi-frame file (a TIFF
    scanner batch) gives several. With `ocr`, each invoice frame is also
    read by OCR (see `ocr.apply_reading` for what that may add).

    With `ocr`, an image with no QR is read from its print alone when that
    gives a sound 代码 and 号码 (`ocr.invoice_from_print`).

    Raises ExtractError: "no-qr" when no frame has a QR code (and, with
    `ocr`, the print gives no sound invoice identity), "corrupt",
    "truncated" or "limit-exceeded" for bad or oversized images.
    """
    img = open_image(data)
    invoices: list[Invoice] = []
    frames = getattr(img, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise ExtractError("limit-exceeded", f"image has {frames} frames, limit {MAX_FRAMES}")
    total = 0
    try:
        for index, frame in enumerate(ImageSequence.Iterator(img), start=1):
            if index > 1:
                _check_pixels(frame.size)
            total += frame.size[0] * frame.size[1]
            if total > MAX_TOTAL_PIXELS:
                raise ExtractError("limit-exceeded", f"image frames 1 to {index} hold {total:,} pixels in all, "
                                                     f"limit {MAX_TOTAL_PIXELS:,}")
            where = (f"frame {index}", f"第{index}帧") if frames > 1 else ("the image", "图像")
            invoice = invoice_from_qr_texts(_frame_qr_texts(frame, data, frames), *where)
            if invoice is not None and invoice.is_invoice and ocr and not several_invoices(invoice):
                reading = read_page_if_available(_in_colour(frame, data, frames), known=set(invoice.fields))
                if reading is not None:
                    apply_reading(invoice, reading)
            if invoice is not None:
                invoice.page = index if frames > 1 else None
                invoices.append(invoice)
    except (OSError, ValueError, EOFError) as e:
        raise ExtractError("corrupt", f"unreadable image frame: {e}") from None
    real = [i for i in invoices if i.is_invoice]
    if real:
        if len(real) == 1:
            real[0].page = None
        return real
    if invoices:
        return invoices[:1]
    if ocr:
        # No QR anywhere (a photo of a paper invoice): the print alone, if
        # its 代码 and 号码 hold their structure.
        img.seek(0)
        reading = read_page_if_available(_in_colour(img, data, frames))
        invoice = invoice_from_print(reading) if reading is not None else None
        if invoice is not None:
            return [invoice]
    raise ExtractError("no-qr", "no invoice QR code found in the image")
