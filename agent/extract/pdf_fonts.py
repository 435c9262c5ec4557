"""The system fonts PDFium puts in place of the Chinese fonts invoices name
without embedding them, kept loaded for the life of the process once a PDF
naming several of them was read.

E-invoices from the tax-disk software (增值税电子普通发票 and 专用发票
PDFs) print with STSong-Light, SimSun and KaiTi_GB2312, none embedded.
PDFium maps each to an installed CJK font (on Debian, fonts-wqy-microhei: a
5 MB collection) and builds that font's face and caches; all of it is
freed with the last open document that uses it, so every such PDF paid to
build it again. Loading the page of one of them took 6.5 ms; with a small
document naming the same fonts held open, 2.6 ms.

Held only once a PDF naming two of these fonts was read: such a PDF holds
two copies of the font's bytes while it loads (PDFium reads the file again
for each font it maps, before it finds the one it has), so holding one
copy from then on raises no process's peak memory. A PDF naming one (most
generated ones, STSong-Light alone) gains nothing from it (1.02x), and
held from the start the copy added 5 MB to each worker's peak.

The document is built here: one page, two characters in each font, the
fonts described as invoices describe them (STSong-Light a CIDFontType0,
SimSun and KaiTi_GB2312 CIDFontType2, Adobe-GB1, UniGB-UCS2-H). PDFium
maps an invoice's fonts to the same faces it maps these to, so its text
and glyph boxes are the same whether this document is open or not; only
the time differs.
"""

from __future__ import annotations

import atexit

_FONTS = (  # (name, descriptor flags, CID font subtype, Adobe-GB1 supplement)
    ("STSong-Light", 6, "CIDFontType0", 4),
    ("SimSun", 32, "CIDFontType2", 2),
    ("KaiTi_GB2312", 32, "CIDFontType2", 2),
)
_SHOWN = "<53D17968>"  # 发票 in UCS-2, as UniGB-UCS2-H reads it

# The open document and its page, referenced so they are never closed.
_held: tuple | None = None
_tried = False


def fonts_pdf() -> bytes:
    """A one-page PDF showing 发票 in each font of _FONTS, none embedded."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", b"", b""]
    names = []
    for i, (name, flags, subtype, supplement) in enumerate(_FONTS):
        at = len(objects) + 1  # its Type0 font; the CID font and descriptor follow
        objects += [f"<< /Type /Font /Subtype /Type0 /BaseFont /{name} /Encoding /UniGB-UCS2-H "
                    f"/DescendantFonts [{at + 1} 0 R] >>".encode(),
                    f"<< /Type /Font /Subtype /{subtype} /BaseFont /{name} /CIDSystemInfo << /Registry (Adobe) "
                    f"/Ordering (GB1) /Supplement {supplement} >> /FontDescriptor {at + 2} 0 R /DW 1000 >>".encode(),
                    f"<< /Type /FontDescriptor /FontName /{name} /Flags {flags} /FontBBox [0 -140 1000 880] "
                    "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>".encode()]
        names.append(f"/F{i} {at} 0 R")
    content = ("BT " + " ".join(f"/F{i} 12 Tf 0 20 Td {_SHOWN} Tj" for i in range(len(_FONTS))) + " ET").encode()
    objects[2] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] /Resources << /Font << {' '.join(names)} "
                  ">> >> /Contents 4 0 R >>").encode()
    objects[3] = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
    return pdf_file(objects)


def pdf_file(objects: list[bytes]) -> bytes:
    """A well-formed PDF of `objects` (numbered from 1, the first the
    catalog), with its cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def names_several(data: bytes) -> bool:
    """Whether the PDF `data` names two or more of the fonts held (a
    tax-disk invoice names all three). Only names written plainly count:
    one in a compressed object stream is not seen (the PDF is read the
    same, only without the hold)."""
    return sum(b"/" + name.encode() in data for name, *_ in _FONTS) >= 2


def hold_substitute_fonts(data: bytes) -> bool:
    """Once a PDF naming several of the fonts (`names_several(data)`) comes,
    open fonts_pdf() and keep it open for the rest of the process, so
    PDFium keeps the system fonts it maps those fonts to loaded between
    documents. Returns whether it is held. Never raises: without it every
    PDF still reads the same, only slower."""
    global _held, _tried
    if not _tried and names_several(data):
        _tried = True
        try:
            import pypdfium2

            doc = pypdfium2.PdfDocument(fonts_pdf())
            page = doc[0]
            _held = (page.get_textpage(), page, doc)
            # Closed before pypdfium2's own exit handler (atexit runs last
            # registered first), which would warn of an object left open.
            atexit.register(_release)
        except Exception:  # noqa: BLE001 - a speed-up only: PDFs are read the same without it
            _held = None
    return _held is not None


def _release() -> None:
    global _held
    for obj in _held or ():
        obj.close()
    _held = None
