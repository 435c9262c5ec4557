"""Extraction: the bytes of one file -> the invoices it holds, each field with its source.

The format is sniffed from the content (never the name) and handed to one
reader: XML and OFD here, PDF and images in `pdf.py` / `image.py`. Whatever a
reader does, only `ExtractError` (an `AgentError`) leaves this package.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.errors import AgentError, ExtractError
from agent.extract.plausible import reconcile
from agent.extract.refusal_texts import EMPTY, UNKNOWN, ZIP_NOT_OFD, in_both_languages
from agent.extract.sniff import sniff
from agent.extract.unreadable import HTML, is_html_page, unreadable_kind
from agent.model import Invoice

IMAGE_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "gif", "webp"})
# A 100-page 300 dpi scanner batch is well under this; larger is refused
# before any parser sees it.
MAX_INPUT_BYTES = 128 * 1024 * 1024


def extract_bytes(data: bytes, *, name: str | None = None, ocr: bool = True) -> list[Invoice]:
    """Read every invoice in `data`; one Invoice per invoice (a batch PDF gives several).

    `ocr` lets scans (images, image-only PDF pages) be read by OCR as well as
    by their QR code, when the OCR extra is installed; without it, or with
    `ocr=False`, a scan gives the QR's fields only.

    `name` is used in messages only: the format comes from the content. A
    readable file that is not an invoice (a trip list whose QR is a URL) is
    returned as Invoice(is_invoice=False, not_invoice_reason=...).
    Every invoice's QR amount is cross-checked with the print and values
    read by position that fail a plausibility check are left empty
    (`plausible.reconcile`).
    Raises only ExtractError: "empty", "unsupported-format" (a file of no
    invoice format, named by its bytes as unreadable.py names it: an HTML
    page, a RAR ...), "limit-exceeded", and whatever the reader reports
    ("corrupt", "encrypted", "unsafe-xml", "no-qr" ...), its message in
    English and Chinese with what to do (`refusal_texts`). A reader's
    unexpected exception becomes "corrupt", except MemoryError, which
    propagates.
    """
    try:
        return _extract(data, name, ocr)
    except ExtractError as e:
        # Every reason leaves here in English and Chinese, with what to do:
        # it is what `quarantine` and `show` print for the document.
        told = in_both_languages(e)
        if told is e:
            raise
        raise told from e.__cause__


def _extract(data: bytes, name: str | None, ocr: bool) -> list[Invoice]:
    label = f"{name}: " if name else ""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ExtractError("unsupported-format", f"{label}expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_INPUT_BYTES:
        raise ExtractError("limit-exceeded", f"{label}{len(data)} bytes is over the {MAX_INPUT_BYTES}-byte limit")
    fmt = sniff(data)
    if fmt == "empty":
        raise ExtractError("empty", f"{label}{EMPTY.en}", zh=EMPTY.zh)
    if fmt == "zip":
        raise ExtractError("unsupported-format", f"{label}{ZIP_NOT_OFD.en}", zh=ZIP_NOT_OFD.zh)
    if fmt == "unknown":
        kind = unreadable_kind(data[:1024]) or UNKNOWN   # a RAR, a winmail.dat ...: named
        raise ExtractError("unsupported-format", f"{label}{kind.en}", zh=kind.zh)
    if fmt == "xml" and is_html_page(data):
        # A saved "view your invoice online" page is markup too: named as
        # the page it is, not refused as an XML that is no invoice.
        raise ExtractError("unsupported-format", f"{label}{HTML.en}", zh=HTML.zh)
    try:
        invoices = _read(fmt, data, ocr)
        for invoice in invoices:
            # Every reader's sources, reconciled and checked in one place.
            reconcile(invoice)
    except (AgentError, MemoryError):
        # Out of memory says as much about the other workers as about this
        # file: not "corrupt" for good, but `analyse`'s "internal", read
        # again after a backoff (a file that always exhausts memory ends
        # extract-failed, with this error named).
        raise
    except Exception as e:  # a reader bug or a parser choking: the file is what we can blame
        raise ExtractError("corrupt", f"{label}{fmt} could not be read ({type(e).__name__}: {e})") from e
    if not invoices:
        return [Invoice(is_invoice=False, not_invoice_reason=f"no invoice found in this {fmt} file")]
    return invoices


def _read(fmt: str, data: bytes, ocr: bool) -> list[Invoice]:
    if fmt == "xml":
        from agent.extract.xml import read_xml
        return [read_xml(data)]
    if fmt == "ofd":
        from agent.extract.ofd import read_ofd
        return read_ofd(data, ocr=ocr)
    # The PDF and image readers are imported here, not at module load, so
    # XML/OFD extraction works (and imports stay light) without them.
    try:
        if fmt == "pdf":
            from agent.extract.pdf import read_pdf as reader
        elif fmt in IMAGE_FORMATS:
            from agent.extract.image import read_image as reader
        else:
            raise ExtractError("unsupported-format", f"no reader for {fmt}")
    except ImportError as e:
        raise ExtractError("unsupported-format", f"the {fmt} reader is not available ({e})") from e
    return list(reader(data, ocr=ocr))


def extract_path(path: str | os.PathLike[str], *, ocr: bool = True) -> list[Invoice]:
    """`extract_bytes` on a file's contents. A file that cannot be read (missing,
    a directory or FIFO, no permission) raises ExtractError("unreadable")."""
    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise ExtractError("unreadable", f"{p}: not a regular file")
        size = st.st_size
        if size > MAX_INPUT_BYTES:
            raise ExtractError("limit-exceeded", f"{p}: {size} bytes is over the {MAX_INPUT_BYTES}-byte limit")
        data = p.read_bytes()
    except OSError as e:
        raise ExtractError("unreadable", f"{p}: {e.strerror or e}") from e
    return extract_bytes(data, name=p.name, ocr=ocr)


__all__ = ["extract_bytes", "extract_path", "IMAGE_FORMATS", "MAX_INPUT_BYTES"]
