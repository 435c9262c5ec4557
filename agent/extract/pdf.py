"""Invoices from PDF files: the embedded QR first, then the text by position.

One PDFium document per file and one pass per page: the page's characters
and their boxes give its text laid out by position (`pdf_geometry`: a label
and its value on one row as printed, whatever order the issuer's software
wrote them in), and the page's images are decoded lazily, the QR-looking
ones (square) first, stopping at the first invoice QR (`pdf_images`).
Pages without shown text (scans, and searchable scans: their OCR layer is
invisible, see `_read_page`) go through the image decoder with its
retries. pypdf is used only to say why a file PDFium cannot open, or
cannot decrypt, is unreadable.

A file becomes one Invoice per invoice it holds: a scanner batch of several
invoices gives several (with `page` set), while a face followed by 销货清单
pages, which repeat or omit the face's 代码/号码, stays one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import zxingcpp
from PIL import Image

from agent.errors import ExtractError
from agent.extract.image import MAX_PIXELS, decode_qr_image, title_from_qr
from agent.extract.ocr import OcrReading, apply_reading, give_back_memory, read_page_if_available
from agent.extract.pdf_bombs import check_inflation
from agent.extract.pdf_cut import check_complete
from agent.extract.pdf_fonts import hold_substitute_fonts
from agent.extract.pdf_geometry import page_text
from agent.extract.pdf_images import decode_pdf_image, image_candidates, last_filter
from agent.extract.pdf_render import PageRenderer
from agent.extract.pdf_painted import unshown_text
from agent.extract.pdf_shown import shown_box, walk_page
from agent.extract.qr import (
    QrPayload, apply_qr, malformed_problem, malformed_reason, parse_qr, several_invoices_problem, sort_codes,
    verification_url_of,
)
from agent.extract.refusal_texts import encrypted
from agent.extract.text import ParsedText, normalize_text, offer_parsed, parse_text
from agent.model import Invoice, LineItem, Problem

MAX_PAGES = 300
# A page with fewer printable characters than this has no usable text layer.
_MIN_TEXT_CHARS = 20
_QR = zxingcpp.BarcodeFormat.QRCode
_LIST_MARKERS = ("详见销货清单", "详见清单")
_HALF_SCALE_MIN_SIDE = 1600
_PAGE_IMAGE_MIN_SIDE = 800


@dataclass
class _Page:
    number: int
    parsed: ParsedText | None
    payload: QrPayload | None = None
    other_codes: list[str] = field(default_factory=list)
    ocr: OcrReading | None = None
    problems: list[Problem] = field(default_factory=list)
    printed: Invoice | None = None  # a page with no QR read by OCR alone (pdf_render)
    several: list[str] = field(default_factory=list)  # the numbers, when it carries several invoices' QR codes

    @property
    def key(self) -> str | None:
        if self.several:
            return "several:" + ",".join(self.several)  # its own group: its error is never merged away
        if self.payload is not None:
            return f"{self.payload.code or ''}-{self.payload.number}"
        if self.printed is not None:
            return f"{self.printed.get('code') or ''}-{self.printed.get('number')}"
        # A number read by shape alone (an order id on a trip sheet) is no
        # identity: only a page that reads as an invoice has one.
        if self.parsed is not None and self.parsed.is_invoice_like and "number" in self.parsed.fields:
            return f"{self.parsed.fields.get('code', '')}-{self.parsed.fields['number']}"
        return None


@dataclass
class _Group:
    pages: list[_Page]
    face: _Page
    key: str | None


def read_pdf(data: bytes, *, ocr: bool = False) -> list[Invoice]:
    """Invoices in a PDF, in page order: QR fields (source "qr") offered
    first, then text fields (source "pdf-text"), so disagreements become
    Conflicts. With `ocr`, a scanned page with an invoice QR is also read by
    OCR (source "ocr", see `ocr.apply_reading`). A PDF with no invoice QR and
    no invoice labels gives one Invoice with is_invoice False and the reason.
    Every PDFium object it opens is closed before it returns or raises.

    Raises ExtractError: "encrypted" (a user password is needed, or nothing
    in it decrypts), "truncated" (cut short, `pdf_cut`: never read) or
    "corrupt" (unreadable), "limit-exceeded"
    (too many pages, an oversized image, a page of more than pdf_shown's
    MAX_OBJECTS objects or MAX_PAIRS text-and-cover pairs), "no-qr" (a scan
    with no QR on any page).
    """
    check_complete(data)
    check_inflation(data)
    doc = _open(data)
    try:
        count = len(doc)
        if count == 0:
            raise ExtractError("corrupt", "the PDF has no pages")
        if count > MAX_PAGES:
            raise ExtractError("limit-exceeded", f"the PDF has {count} pages, limit {MAX_PAGES}")
        renderer = PageRenderer()
        pages = [_read_page(doc, i, data, ocr, renderer) for i in range(count)]
        encrypted = _is_encrypted(doc)
    finally:
        doc.close()
    groups = _group(pages)
    if not any(g.face.payload or g.face.printed or g.face.several or (g.face.parsed and g.face.parsed.is_invoice_like)
               or any(malformed_reason(c) for c in g.face.other_codes) for g in groups):
        return [_not_invoice(pages, data if encrypted else None)]
    invoices = [_build(g) for g in groups]
    if len(invoices) > 1:
        for invoice, group in zip(invoices, groups):
            invoice.page = group.face.number
    return invoices


def _open(data: bytes):
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    hold_substitute_fonts(data)  # fonts tax-disk invoices do not embed stay loaded once one came
    try:
        # An owner password alone (print/copy restrictions) opens with the
        # empty user password, as every PDF viewer does; PDFium decrypts
        # RC4 and AES itself.
        return pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as e:
        code = getattr(e, "err_code", None)
        # PDFium's last error is per thread and not reset by every failed
        # load: a file that fails otherwise, read after an encrypted one in
        # the same worker, reports that file's password error. Only a file
        # that declares encryption (its trailer's /Encrypt, never inside a
        # compressed stream) is said to be encrypted.
        if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY) and b"/Encrypt" not in data:
            code = None
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise encrypted("the PDF is encrypted with a user password", "PDF 已加密（打开需要密码）") from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise encrypted(f"the PDF's security handler is not supported ({e})", "PDF 的加密方式程序不支持") from None
        raise _unreadable(data, e) from None
    except Exception as e:  # noqa: BLE001 - a native parser fails in many ways on broken files
        raise _unreadable(data, e) from None


def _is_encrypted(doc) -> bool:
    import pypdfium2.raw as pdfium_c

    return pdfium_c.FPDF_GetSecurityHandlerRevision(doc) != -1


def _unreadable(data: bytes, error: Exception) -> ExtractError:
    if _pages_by_pypdf(data) == 0:
        return ExtractError("corrupt", "the PDF has no pages")
    return ExtractError("corrupt", f"the PDF cannot be parsed: {error}")


def _pages_by_pypdf(data: bytes) -> int | None:
    """Pages pypdf counts in a file PDFium refused (a second opinion for the
    message only); None when pypdf cannot read it either."""
    import pypdf

    try:
        return len(pypdf.PdfReader(io.BytesIO(data), strict=False).pages)
    except Exception:  # noqa: BLE001
        return None


def _encryption_of(data: bytes) -> str:
    """The cipher named in the /Encrypt dictionary ("AESV2", "RC4" ...), for messages."""
    import pypdf

    try:
        encrypt = pypdf.PdfReader(io.BytesIO(data), strict=False).trailer["/Encrypt"].get_object()
        if int(encrypt.get("/V", 0)) >= 4:
            filters = encrypt["/CF"].get_object()
            return str(filters[encrypt.get("/StmF", "/StdCF")].get_object().get("/CFM", "?")).lstrip("/")
        return "RC4"
    except Exception:  # noqa: BLE001 - the message only
        return "unknown cipher"


def _read_page(doc, index: int, data: bytes, ocr: bool, renderer: PageRenderer) -> _Page:
    """Page `index` of `doc`: its text parsed by position (None for a page
    without a text layer), its invoice QR or the other codes its images
    carry, and its OCR reading when asked for on a scan. The page and its
    text page are closed before it returns or raises."""
    try:
        page = doc[index]
    except Exception as e:  # noqa: BLE001
        raise _unreadable(data, e) from None
    scanned = True
    try:
        drawing = walk_page(page)  # one walk for the text and the images
        try:
            textpage = page.get_textpage()
        except Exception as e:  # noqa: BLE001
            raise _unreadable(data, e) from None
        try:
            # A page refused for its size is limit-exceeded, not unreadable.
            unshown = unshown_text(page, drawing, data, textpage)
            try:
                raw = page_text(textpage, shown_box(page), unshown)
            except Exception as e:  # noqa: BLE001
                raise _unreadable(data, e) from None
        finally:
            textpage.close()
        norm = normalize_text(raw)
        # `raw` holds only text the page shows (pdf_geometry.page_glyphs,
        # pdf_painted): a searchable scan, whose text layer is invisible (or
        # white on its paper), is a scan here. Its layer is the scanner's
        # OCR, misreads and all, and nothing checks it: read as print it
        # would be stored as pdf-text, unverified. As a scan, its QR comes
        # from its image and its printed-only fields from our OCR under
        # OCR's checks, or, with OCR off, stay empty for 补录.
        scanned = len("".join(norm.split())) < _MIN_TEXT_CHARS
        result = _Page(number=index + 1, parsed=None if scanned else parse_text(norm))
        payloads, result.other_codes = sort_codes(list(_page_qr_texts(page, scanned, drawing.images)))
        if len(payloads) > 1:
            _several(result, payloads)
            return result
        result.payload = payloads[0] if payloads else None
        renderer.complete(result, page, norm, scanned, ocr)
        if ocr and scanned and result.payload is not None and result.ocr is None:
            result.ocr = _ocr_scan(page)
        return result
    finally:
        page.close()
        if scanned:
            # A scan's decoded pixels (tens of MB) are freed but kept by
            # malloc: hand them back before the next page.
            give_back_memory()


def _several(page: _Page, payloads: list[QrPayload]) -> None:
    # The QR codes of several invoices on one page (two slips on one scan, a
    # ticket printed beside an invoice): which printed value belongs to
    # which is not known, so none is kept (as for several printed faces,
    # text.parse_text); the page is not rendered or read by OCR either.
    page.several = [p.number for p in payloads]
    if page.parsed is not None:
        page.parsed.fields = {}  # the title too: it may be the other invoice's (a ticket's)
        page.parsed.items = []
        page.parsed.problems = []  # several printed faces: said by the problem below, with the numbers
    page.problems.append(several_invoices_problem(payloads, f"page {page.number}", f"第{page.number}页"))


def _ocr_scan(page) -> OcrReading | None:
    """OCR of the page's biggest image (the scan itself); None when OCR is
    not installed or the image cannot be decoded."""
    candidates = image_candidates(page)
    if not candidates:
        return None
    image, width, height = max(candidates, key=lambda c: c[1] * c[2])
    try:
        img = decode_pdf_image(image, width, height)
    except Exception:  # noqa: BLE001 - the QR was read; an undecodable scan just gets no OCR
        return None
    return read_page_if_available(img) if img is not None else None


def _page_qr_texts(page, scanned: bool, images: list):
    """QR texts of the page's images, most QR-like image first. Once an
    invoice QR was found, the other square images get only the quick decode
    of a pristine symbol (a second invoice's QR beside it is one: a ticket
    printed next to an invoice), and the rest none."""
    found_invoice = False
    for image, width, height in image_candidates(page, images):
        if width * height > MAX_PIXELS:
            raise ExtractError("limit-exceeded",
                               f"an image on the page is {width}x{height} pixels, limit {MAX_PIXELS}")
        if found_invoice and not 0.8 <= width / height <= 1.25:
            return  # candidates come square first: no other QR image is left
        try:
            if found_invoice:
                img = decode_pdf_image(image, width, height)
                texts = _read_qr(img, pure_only=True) if img is not None else []
            # A page image (a scan, or a searchable scan with an OCR text
            # layer) gets the photo treatment with retries.
            elif scanned or min(width, height) >= _PAGE_IMAGE_MIN_SIDE:
                texts = _scan_qr_texts(image, width, height)
            else:
                # Generated QR images are pristine: one decode is enough.
                img = decode_pdf_image(image, width, height)
                texts = _read_qr(img) if img is not None else []
        except ExtractError:
            raise
        except Exception:  # noqa: BLE001 - undecodable image (broken stream): skip it
            continue
        found_invoice = found_invoice or any(parse_qr(t) is not None for t in texts)
        yield from texts


def _read_qr(img: Image.Image, pure_only: bool = False) -> list[str]:
    gray = img if img.mode == "L" else img.convert("L")
    # An embedded QR image is the symbol alone, axis-aligned: the "pure"
    # reader samples it directly (3x faster than locating it; its
    # Reed-Solomon check still rejects a misread). Anything else gets the
    # full search, unless `pure_only`.
    texts = [r.text for r in zxingcpp.read_barcodes(gray, formats=_QR, is_pure=True) if r.valid and r.text]
    if texts or pure_only:
        return texts
    return [r.text for r in zxingcpp.read_barcodes(gray, formats=_QR) if r.valid and r.text]


def _scan_qr_texts(image, width: int, height: int) -> list[str]:
    # A big JPEG scan is tried at half scale first (see image.py); full
    # scale with the retries is the fallback.
    if last_filter(image) == "DCTDecode" and min(width, height) >= _HALF_SCALE_MIN_SIDE:
        texts = _read_qr(decode_pdf_image(image, width, height, half=True))
        if texts:
            return texts
    img = decode_pdf_image(image, width, height)
    return decode_qr_image(img) if img is not None else []


def _group(pages: list[_Page]) -> list[_Group]:
    groups: list[_Group] = []
    for page in pages:
        key = page.key
        current = groups[-1] if groups else None
        if current is None or (key and current.key and key != current.key):
            groups.append(_Group(pages=[page], face=page, key=key))
            continue
        current.pages.append(page)
        if current.key is None and key:
            # The first page with an identity is the face (a cover or trip
            # sheet before it is kept with it).
            current.key, current.face = key, page
    return groups


def _build(group: _Group) -> Invoice:
    face = group.face
    invoice = face.printed if face.payload is None and face.printed is not None else Invoice()
    if face.payload is not None:
        apply_qr(invoice, face.payload)
    if face.parsed is not None:
        offer_parsed(face.parsed, invoice, "pdf-text")
        invoice.items.clear()
    invoice.problems.extend(face.problems)
    if face.payload is None:
        invoice.offer("qr", verification_url_of(face.other_codes, invoice.get("number")), "qr")
        for code in face.other_codes:
            if (reason := malformed_reason(code)) is not None:
                invoice.problems.append(malformed_problem(code, reason))
    if face.payload is not None and invoice.get("title") is None:
        # A scan, or a title the text layer garbled: the QR implies it.
        invoice.offer("title", title_from_qr(face.payload.kind, face.payload.code), "qr")
    if face.ocr is not None:
        apply_reading(invoice, face.ocr)
    text_items = _group_items(group)
    if text_items:
        # The text layer's lines, never beside OCR's reading of the same
        # lines (a page whose labels are an image is both: counted twice).
        invoice.items[:] = text_items
    for page in group.pages:
        if page is not face and page.parsed is None and page.payload is None:
            invoice.problems.append(Problem(
                code="page-unread", severity="warning", field=None,
                message=(f"scanned page {page.number} has no invoice QR code; "
                         f"kept with the invoice on page {face.number}"),
                message_zh=f"第{page.number}页扫描件没有发票二维码，已归入第{face.number}页的发票",
            ))
    return invoice


def _group_items(group: _Group) -> list[LineItem]:
    items: list[LineItem] = []
    for page in group.pages:
        if page.parsed is not None:
            items.extend(i for i in page.parsed.items if not any(m in i.name for m in _LIST_MARKERS))
    return items


def _not_invoice(pages: list[_Page], encrypted_data: bytes | None = None) -> Invoice:
    codes = [c for p in pages for c in p.other_codes]
    if codes:
        invoice = Invoice(is_invoice=False, not_invoice_reason=(
            f"its QR code is not an invoice QR ({codes[0][:80]}) and its text has no invoice labels"))
        invoice.offer("qr", codes[0], "qr")
        return invoice
    if all(p.parsed is None for p in pages):
        if encrypted_data is not None:
            # An encrypted file that opened but gave no text and no image
            # on any page: its content did not decrypt.
            cipher = _encryption_of(encrypted_data)
            raise encrypted(f"the PDF is encrypted ({cipher}) and none of its pages could be decrypted",
                            f"PDF 已加密（{cipher}），没有一页能解密")
        raise ExtractError("no-qr", "scanned PDF with no invoice QR code on any page")
    return Invoice(is_invoice=False,
                   not_invoice_reason="no invoice QR code and no invoice labels in its text")
