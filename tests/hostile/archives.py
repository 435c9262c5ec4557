"""Hostile zips and OFDs: ratio bombs, nesting, traversal, lying directories."""

from __future__ import annotations

import io
import stat
import zipfile

OFD_XML = ('<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" '
           'Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>{tag}</ofd:DocID>'
           '</ofd:DocInfo><ofd:DocRoot>{root}</ofd:DocRoot></ofd:DocBody></ofd:OFD>')


def _zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], level: int = 9) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def ratio_bomb(tag: str, inflated_mb: int = 150) -> bytes:
    """One member inflating from ~150 KB to `inflated_mb` MB of zeros."""
    return _zip([(f"{tag}.txt", tag.encode()), ("invoice.pdf", b"\0" * (inflated_mb * 1024 * 1024))])


def nested_bomb(tag: str, depth: int = 8) -> bytes:
    """A zip in a zip in a zip ... `depth` levels, an invoice-looking PDF at the bottom."""
    data = b"%PDF-1.4\n% " + tag.encode() + b"\n%%EOF\n"
    name = "invoice.pdf"
    for level in range(depth):
        data = _zip([(name, data)])
        name = f"level{level}.zip"
    return data


def fan_out_bomb(tag: str, copies: int = 16, inner_mb: int = 16) -> bytes:
    """A zip holding `copies` zips that each inflate to `inner_mb` MB: fine
    one by one, too much together (the shared byte budget)."""
    inner = _zip([("big.pdf", b"%PDF-1.4\n" + b"\0" * (inner_mb * 1024 * 1024))])
    return _zip([(f"{tag}.txt", tag.encode())] + [(f"part{i}.zip", inner) for i in range(copies)], level=0)


def traversal(tag: str) -> bytes:
    """Members named ../, absolute, with backslashes and drive letters."""
    pdf = b"%PDF-1.4\n% " + tag.encode() + b"\n%%EOF\n"
    return _zip([("../../../../tmp/" + tag + "-escaped.pdf", pdf + b"1"),
                 ("/etc/cron.d/" + tag + ".pdf", pdf + b"2"),
                 ("..\\..\\windows\\" + tag + ".pdf", pdf + b"3"),
                 ("C:/Users/" + tag + ".pdf", pdf + b"4")])


def symlink_member(tag: str) -> bytes:
    """A member flagged as a Unix symlink to /etc/passwd."""
    info = zipfile.ZipInfo(tag + "-link.pdf")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip([(info, b"/etc/passwd")])


def overlapping(tag: str, copies: int = 500) -> bytes:
    """Many central-directory entries pointing at the same local file
    (the overlapping-file bomb)."""
    data = _zip([("a.pdf", b"%PDF-1.4\n" + tag.encode() * 1000)])
    cd_at = data.find(b"PK\x01\x02")
    eocd_at = data.find(b"PK\x05\x06")
    entry = data[cd_at:eocd_at]
    directory = entry * copies
    eocd = bytearray(data[eocd_at:])
    eocd[8:10] = eocd[10:12] = copies.to_bytes(2, "little")
    eocd[12:16] = len(directory).to_bytes(4, "little")
    return data[:cd_at] + directory + bytes(eocd)


def many_members(tag: str, count: int = 20_000) -> bytes:
    """More members than any invoice zip has."""
    return _zip([(f"{tag}/{i}.pdf", b"") for i in range(count)], level=1)


def lying_sizes(tag: str) -> bytes:
    """A member whose directory entry claims 10 bytes but inflates to 50 MB."""
    data = bytearray(_zip([("invoice.pdf", b"%PDF-1.4\n" + b" " * (50 * 1024 * 1024)), (tag, b"x")]))
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(sig)
        data[at + off:at + off + 4] = (10).to_bytes(4, "little")
    return bytes(data)


def ofd_ratio_bomb(tag: str) -> bytes:
    """An OFD whose Document.xml inflates to 300 MB."""
    return _zip([("OFD.xml", OFD_XML.format(tag=tag, root="Doc_0/Document.xml").encode()),
                 ("Doc_0/Document.xml", b"<ofd:Document>" + b" " * (300 * 1024 * 1024))])


def ofd_nested(tag: str) -> bytes:
    """An OFD that holds another OFD, that holds another (attachments inside attachments)."""
    inner = _zip([("OFD.xml", OFD_XML.format(tag=tag + "-inner", root="Doc_0/Document.xml").encode())])
    for level in range(5):
        inner = _zip([("OFD.xml", OFD_XML.format(tag=f"{tag}-{level}", root="Doc_0/Document.xml").encode()),
                      ("Doc_0/Attachs/Attachments.xml",
                       b'<ofd:Attachments xmlns:ofd="http://www.ofdspec.org/2016"><ofd:Attachment ID="1" '
                       b'Name="x" Format="ofd"><ofd:FileLoc>inner.ofd</ofd:FileLoc></ofd:Attachment>'
                       b'</ofd:Attachments>'),
                      ("Doc_0/Attachs/inner.ofd", inner)])
    return inner


def ofd_traversal(tag: str) -> bytes:
    """An OFD whose DocRoot climbs out of the package."""
    return _zip([("OFD.xml", OFD_XML.format(tag=tag, root="../../../../etc/passwd").encode())])


def ofd_xxe(tag: str) -> bytes:
    """An OFD whose OFD.xml declares an external entity."""
    xml = ('<?xml version="1.0"?><!DOCTYPE ofd:OFD [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           + OFD_XML.format(tag=tag + "&x;", root="Doc_0/Document.xml").split("?>", 1)[1])
    return _zip([("OFD.xml", xml.encode())])


def ofd_truncated(tag: str) -> bytes:
    """An OFD cut in half (its central directory is gone)."""
    data = _zip([("OFD.xml", OFD_XML.format(tag=tag, root="Doc_0/Document.xml").encode()),
                 ("Doc_0/Document.xml", tag.encode() * 2000)])
    return data[:len(data) // 2]


def plain_zip(tag: str) -> bytes:
    """An ordinary zip of PDFs dropped in a scanner folder (not an OFD)."""
    return _zip([(f"{tag}.pdf", b"%PDF-1.4\n% " + tag.encode() + b"\n%%EOF\n")])
