"""Hostile e-mail shapes that cost memory, built byte for byte (shared by
tests/integration/test_mail_memory.py and bench/mail.py)."""

from __future__ import annotations

import base64
import io
import os
import zipfile

MB = 1024 * 1024
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _mail(*parts: bytes, boundary: bytes = b"B") -> bytes:
    head = (b"From: sender@example.cn\r\nTo: ap@example.cn\r\nSubject: invoices\r\n"
            b"Message-ID: <m@example.cn>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n")
    return head + b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--\r\n"


def _part(cte: bytes, body: bytes, name: bytes = b"a.pdf") -> bytes:
    return (b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"" + name
            + b"\"\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n" + body)


def qp_soft_breaks(mb: int = 39) -> bytes:
    """One quoted-printable part made of nothing but soft line breaks (the issue's case)."""
    return _mail(_part(b"quoted-printable", b"=\r\n" * (mb * MB // 3)))


def qp_pdf_one_char_lines(mb: int = 8) -> tuple[bytes, bytes]:
    """A PDF attachment QP-encoded one character per line, and the PDF: it must come out whole."""
    pdf = b"%PDF-1.7 " + b"x" * (mb * MB) + b" %%EOF"  # only characters QP leaves as they are
    encoded = bytearray(len(pdf) * 4)
    encoded[0::4] = pdf
    encoded[1::4] = b"=" * len(pdf)
    encoded[2::4] = b"\r" * len(pdf)
    encoded[3::4] = b"\n" * len(pdf)
    return _mail(_part(b"quoted-printable", bytes(encoded))), pdf


def base64_with_junk(mb: int = 39) -> bytes:
    """Base64 with junk between every group, in 5-byte lines."""
    return _mail(_part(b"base64", b"QUJD!\r\n" * (mb * MB // 7)))


def deep_multipart(depth: int = 200_000) -> bytes:
    """Multiparts nested far past any sane depth."""
    return (b"From: a@example.cn\r\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=\"%d\"\r\n\r\n--%d\r\n" % (i, i) for i in range(depth)) + b"x\r\n")


def tiny_parts(mb: int = 39) -> bytes:
    """Millions of one-byte parts."""
    part = b"--B\r\nContent-Type: application/pdf\r\n\r\nx\r\n"
    head = (b"From: a@example.cn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n")
    return head + part * (mb * MB // len(part)) + b"--B--\r\n"


def huge_header(mb: int = 39) -> bytes:
    """One Subject header of `mb` MB, folded every few bytes."""
    return b"From: a@example.cn\r\nSubject: " + b"x\r\n " * (mb * MB // 4) + b"\r\n\r\nbody\r\n"


def many_empty_lines(mb: int = 39) -> bytes:
    """A base64 attachment drowned in empty lines."""
    body = b"\r\n".join([base64.b64encode(PDF)] + [b""] * (mb * MB // 2))
    return _mail(_part(b"base64", body))


def zipped_pdfs(member_mb: int, count: int, filler_mb: int = 0) -> bytes:
    """A zip of `count` PDFs of `member_mb` MB each (compressing about 60:1,
    under the ratio limit), plus `filler_mb` MB of random bytes in a second part."""
    def member(i: int) -> bytes:
        return b"%PDF-1.7 " + b"".join(os.urandom(60) + b"\0" * 4036 for _ in range(member_mb * 256 - 1)) + bytes([i])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            archive.writestr(f"{i}.pdf", member(i))
    parts = [_part(b"base64", base64.encodebytes(buf.getvalue()), b"invoices.zip")]
    if filler_mb:
        parts.append(_part(b"base64", base64.encodebytes(os.urandom(filler_mb * MB)), b"noise.bin"))
    return _mail(*parts)


SHAPES = {"qp-soft-breaks": qp_soft_breaks, "base64-junk": base64_with_junk, "deep-multipart": deep_multipart,
          "tiny-parts": tiny_parts, "huge-header": huge_header, "empty-lines": many_empty_lines}
