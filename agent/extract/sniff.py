"""Tell a file's format from its bytes, never from its name.

Names lie: real samples include a `.jpg` that is a PNG, and e-mail
attachments arrive as `invoice.dat` or with no extension at all.
"""

from __future__ import annotations

import io
import re
import zipfile

FORMATS = ("pdf", "ofd", "zip", "xml", "png", "jpeg", "tiff", "bmp", "gif", "webp",
           "empty", "unknown")
# The media type of each invoice format (what an attachment is sent and
# stored as), and its file extensions, the usual one first (given to a file
# whose own name has none of them).
MEDIA_TYPES = {
    "pdf": "application/pdf", "ofd": "application/ofd", "xml": "application/xml",
    "png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff", "bmp": "image/bmp",
    "gif": "image/gif", "webp": "image/webp",
}
EXTENSIONS = {"pdf": ("pdf",), "ofd": ("ofd",), "xml": ("xml",), "png": ("png",), "jpeg": ("jpg", "jpeg", "jpe"),
              "tiff": ("tif", "tiff"), "bmp": ("bmp",), "gif": ("gif",), "webp": ("webp",), "zip": ("zip",)}

# PDF readers accept a header anywhere in the first KiB (some generators
# write junk before it), so we look as far.
_PDF_HEADER_WINDOW = 1024
_TAR_MAGIC_AT = 257   # POSIX and GNU tar write "ustar" there
_XML_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<(?:\?xml|!--|!DOCTYPE|[A-Za-z_:])", re.IGNORECASE)


def sniff(data: bytes) -> str:
    """Return one of FORMATS for `data`, judged by content only.

    A zip with an `OFD.xml` member is "ofd"; one whose directory cannot be
    read is still "zip" (the reader reports it as corrupt). Never raises.
    """
    if not data:
        return "empty"
    head = data[:16]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "ofd" if _zip_has_ofd_root(data) else "zip"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if _looks_like_xml(data):
        return "xml"
    # A tar archive whose first member is a PDF holds "%PDF-" at byte 512:
    # read as that PDF, the archive's other files were never looked at.
    if is_tar(data):
        return "unknown"
    # So is an Outlook winmail.dat (TNEF) whose first attachment is a PDF:
    # its files are read out of it (agent/tnef.py), never it as the first.
    if is_tnef(data):
        return "unknown"
    # Only after every other magic, so a stored PDF inside a zip or an XML
    # that mentions "%PDF-" is not taken for a PDF.
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return "pdf"
    if not data.strip():
        return "empty"
    return "unknown"


def is_tar(head: bytes) -> bool:
    """Whether `head` (a file's first 262 bytes or more) starts a tar archive
    (POSIX or GNU: "ustar" at byte 257)."""
    return head[_TAR_MAGIC_AT:_TAR_MAGIC_AT + 5] == b"ustar"


# An Outlook TNEF stream (winmail.dat) starts with 0x223E9F78, little-endian.
TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"


def is_tnef(head: bytes | memoryview) -> bool:
    """Whether `head` starts an Outlook TNEF stream (a winmail.dat): its signature."""
    return bytes(head[:4]) == TNEF_SIGNATURE


def _zip_has_ofd_root(data: bytes) -> bool:
    # Only the central directory is read here: no member is decompressed, so
    # a zip bomb costs nothing at this stage.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        # A truncated download loses the directory at the end; a local
        # header naming OFD.xml still says what the file meant to be.
        return _local_header_names_ofd(data)
    if infos and min(i.header_offset for i in infos) != 0:
        # The directory found is of a zip stored further in (a zip of OFDs
        # cut short right after one): not this file's, whose own is unread.
        return False
    return any(i.filename.replace("\\", "/").lstrip("/").lower() == "ofd.xml" for i in infos)


def _local_header_names_ofd(data: bytes) -> bool:
    # The archive's own entries only, one after the other from byte 0 by
    # their sizes: a zip of OFDs cut short holds OFD.xml headers of the OFDs
    # stored in it, which are not its own. An entry whose sizes follow its
    # data (bit 3) cannot be stepped over: not known to be an OFD.
    pos = 0
    while pos + 30 <= len(data) and data[pos:pos + 4] == b"PK\x03\x04":
        flags = int.from_bytes(data[pos + 6:pos + 8], "little")
        size = int.from_bytes(data[pos + 18:pos + 22], "little")
        name_len = int.from_bytes(data[pos + 26:pos + 28], "little")
        extra_len = int.from_bytes(data[pos + 28:pos + 30], "little")
        name = data[pos + 30:pos + 30 + name_len].replace(b"\\", b"/").lstrip(b"/")
        if name.lower() == b"ofd.xml":
            return True
        if flags & 0x08:
            return False
        pos += 30 + name_len + extra_len + size
    return False


def _looks_like_xml(data: bytes) -> bool:
    head = data[:512]
    if head.startswith((b"\xff\xfe<\x00", b"\xfe\xff\x00<")):  # UTF-16 with BOM
        return True
    if head.startswith((b"<\x00?\x00", b"\x00<\x00?")):  # UTF-16 without one, as XML 1.0 F.1 tells it
        return True
    return bool(_XML_START.match(head))
