"""The hostile corpus: every case, what it is, and what must become of it.

Expectations:
- "quarantined": a document with the file's sha256 exists, in state
  quarantined or not_invoice, and its problems / last event match `reason`;
- "refused": a row in `refusals` naming the case matches `reason`;
- "refused-kept": refused as above (by its content, at intake, with no
  document), and the refusal names the file's bytes, kept in the vault;
- "mail": the message is in the vault, and the refusals and attachment
  documents it produced match `reason`;
- "archive": a zip dropped in a folder: it is in the vault, and the
  documents that came out of it (and its refusals) match `reason`;
- "absent": the content must never be captured (a symlinked folder's file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.hostile import archives, images, mails, pdfs, special, xmls


@dataclass(frozen=True)
class Case:
    """One hostile input. `content(cid)` gives a regular file's bytes;
    `maker(folder, cid)` creates anything else; `name(cid)` gives a raw
    (bytes) file name when the name itself is the attack."""

    id: str
    folder: str
    expect: str
    reason: str
    content: Callable[[str], bytes] | None = None
    maker: Callable[[Path, str], None] | None = None
    name: Callable[[str], bytes] | None = None
    ext: str = "pdf"


def _c(cid, expect, reason, content=None, *, folder="scan", maker=None, name=None, ext="pdf"):
    return Case(cid, folder, expect, reason, content, maker, name, ext)


_UNREADABLE = r"corrupt|truncated|unsupported|not an invoice|no invoice|no-qr|unreadable|empty"

CASES: list[Case] = [
    # PDFs
    _c("h01-pdf-cut-10", "quarantined", "truncated", lambda t: pdfs.truncated(t, 0.1)),
    _c("h02-pdf-cut-50", "quarantined", "truncated", lambda t: pdfs.truncated(t, 0.5)),
    _c("h03-pdf-cut-95", "quarantined", "truncated|corrupt", lambda t: pdfs.truncated(t, 0.95)),
    _c("h04-pdf-bad-xref", "quarantined", _UNREADABLE, pdfs.corrupt_xref),
    _c("h05-pdf-garbage", "quarantined", _UNREADABLE, pdfs.garbage_after_header),
    _c("h06-pdf-user-password", "quarantined", "encrypted", lambda t: pdfs.encrypted(t, "secret")),
    _c("h07-pdf-owner-only", "quarantined", "not an invoice|no invoice|not-invoice|no-qr",
       lambda t: pdfs.encrypted(t, "")),
    _c("h08-pdf-javascript", "quarantined", "not an invoice|no invoice|not-invoice|no-qr", pdfs.with_javascript),
    _c("h09-pdf-5000-pages", "quarantined", "limit-exceeded: the PDF has 5000 pages", pdfs.many_pages),
    _c("h10-pdf-huge-image", "quarantined", "limit-exceeded: an image on the page is 100000x100000",
       pdfs.huge_image),
    _c("h11-pdf-flate-bomb", "quarantined", _UNREADABLE + "|limit", pdfs.flate_bomb_content),
    _c("h12-pdf-page-loop", "quarantined", _UNREADABLE, pdfs.page_tree_loop),
    _c("h13-pdf-deep-nesting", "quarantined", _UNREADABLE, pdfs.deep_nesting),
    _c("h14-pdf-no-pages", "quarantined", "corrupt: the PDF has no pages", pdfs.no_pages),
    _c("h15-pdf-lying-count", "quarantined", _UNREADABLE + "|limit", pdfs.lying_page_count),
    # plain files
    _c("h16-zero-bytes", "refused", "empty: the file has no bytes", lambda t: b""),
    _c("h17-whitespace", "refused-kept", "empty: only blank bytes.*空白字节", lambda t: b" \n\t " * 1000 + b"\n" * len(t)),
    _c("h18-random-binary", "refused-kept", "unsupported-format.*请发送发票原件",
       lambda t: bytes((i * 7919 + len(t)) % 251 for i in range(5000))),
    _c("h19-windows-exe", "refused-kept", "unsupported-format", lambda t: b"MZ\x90\x00" + t.encode() * 100,
       ext="exe"),
    _c("h20-html", "quarantined", "unsupported-format|not an invoice",
       lambda t: f"<html><body><script>alert('{t}')</script></body></html>".encode(), ext="html"),
    _c("h21-sparse-5gb", "refused", "larger than the limit", maker=special.sparse_5gb),
    # special entries and symlinks
    _c("h22-fifo", "refused", r"is a FIFO \(named pipe\), not a regular file", maker=special.fifo),
    _c("h23-socket", "refused", "is a socket, not a regular file", maker=special.unix_socket),
    _c("h24-char-device", "refused", "is a character device, not a regular file", maker=special.char_device),
    _c("h25-block-device", "refused", "is a block device, not a regular file", maker=special.block_device),
    _c("h26-symlink-passwd", "refused", "symlinks in watched folders are not followed",
       maker=special.symlink_outside),
    _c("h27-symlink-dangling", "refused", "broken symlink|not followed", maker=special.symlink_dangling),
    _c("h28-symlink-to-fifo", "refused", "not followed", maker=special.symlink_to_fifo),
    _c("h29-symlink-dir", "absent", "", special.outside_file_content, maker=special.symlink_dir_outside),
    _c("h30-fifo-gbk-name", "refused", "FIFO", maker=special.fifo_gbk_name),
    # names
    _c("h31-name-gbk", "quarantined", _UNREADABLE, mails.junk_pdf,
       name=lambda cid: cid.encode() + "-增值税发票.pdf".encode("gbk")),
    _c("h32-name-latin1", "quarantined", _UNREADABLE, mails.junk_pdf,
       name=lambda cid: cid.encode() + "-factur\xe9-\xff\xfe.pdf".encode("latin-1")),
    _c("h33-name-255-bytes", "quarantined", _UNREADABLE, mails.junk_pdf,
       name=lambda cid: (cid + "-" + "票" * ((255 - len(cid) - 5) // 3)).encode().ljust(251, b"x") + b".pdf"),
    _c("h34-name-log-injection", "quarantined", _UNREADABLE, mails.junk_pdf,
       name=lambda cid: cid.encode() + b"\nlevel=error msg=forged-by-filename\r.pdf"),
    _c("h35-name-control-chars", "quarantined", _UNREADABLE, mails.junk_pdf,
       name=lambda cid: cid.encode() + b"\x1b[31m\x07\x7f\t.pdf"),
    # archives and OFD
    _c("h36-zip-in-scanner", "archive", "corrupt", archives.plain_zip, ext="zip"),
    _c("h37-zip-ratio-bomb", "refused-kept", "zip-limit-exceeded", archives.ratio_bomb, ext="zip"),
    _c("h38-ofd-ratio-bomb", "quarantined", "limit-exceeded|ratio", archives.ofd_ratio_bomb, ext="ofd"),
    _c("h39-ofd-nested", "quarantined", _UNREADABLE + "|limit|nest", archives.ofd_nested, ext="ofd"),
    _c("h40-ofd-traversal", "quarantined", _UNREADABLE + "|unsafe", archives.ofd_traversal, ext="ofd"),
    _c("h41-ofd-xxe", "quarantined", "unsafe-xml", archives.ofd_xxe, ext="ofd"),
    _c("h42-ofd-truncated", "quarantined", "corrupt|truncated", archives.ofd_truncated, ext="ofd"),
    # XML
    _c("h43-xml-billion-laughs", "quarantined", "unsafe-xml", xmls.billion_laughs, ext="xml"),
    _c("h44-xml-quadratic", "quarantined", "unsafe-xml", xmls.quadratic_blowup, ext="xml"),
    _c("h45-xml-xxe-file", "quarantined", "unsafe-xml", xmls.xxe_file, ext="xml"),
    _c("h46-xml-xxe-parameter", "quarantined", "unsafe-xml", xmls.xxe_parameter, ext="xml"),
    _c("h47-xml-external-dtd", "quarantined", "unsafe-xml", xmls.external_dtd, ext="xml"),
    _c("h48-xml-deep", "quarantined", _UNREADABLE + "|unsafe-xml|limit|was read", xmls.deep_nesting, ext="xml"),
    _c("h49-xml-utf16-lies", "quarantined", _UNREADABLE + "|unsafe-xml", xmls.utf16_lies, ext="xml"),
    _c("h50-xml-unclosed", "quarantined", "corrupt", xmls.unclosed, ext="xml"),
    # images
    _c("h51-png-20000-squared", "quarantined", "limit-exceeded",
       lambda t: images.png_claiming(20000, 20000, t), ext="png"),
    _c("h52-png-zlib-bomb", "quarantined", _UNREADABLE + "|limit", images.png_zlib_bomb, ext="png"),
    _c("h53-png-bad-crc", "quarantined", _UNREADABLE, images.png_bad_crc, ext="png"),
    _c("h54-jpeg-truncated", "quarantined", _UNREADABLE, images.jpeg_truncated, ext="jpg"),
    _c("h55-jpeg-65535-squared", "quarantined", "limit-exceeded",
       lambda t: images.jpeg_claiming(65535, 65535, t), ext="jpg"),
    _c("h56-gif-65535-squared", "quarantined", "limit-exceeded",
       lambda t: images.gif_claiming(65535, 65535, t), ext="gif"),
    _c("h57-tiff-huge", "quarantined", "limit-exceeded", lambda t: images.tiff_claiming(100000, 100000, t),
       ext="tif"),
    _c("h58-bmp-huge", "quarantined", "limit-exceeded|" + _UNREADABLE,
       lambda t: images.bmp_claiming(60000, 60000, t), ext="bmp"),
    _c("h59-webp-garbage", "quarantined", _UNREADABLE, images.webp_garbage, ext="webp"),
    # e-mails
    _c("h60-mail-malformed-mime", "mail", _UNREADABLE, mails.malformed_mime, folder="mail", ext="eml"),
    _c("h61-mail-no-boundary", "mail", _UNREADABLE + "|unsupported", mails.no_boundary, folder="mail", ext="eml"),
    _c("h62-mail-1000-attachments", "mail", "too-many-attachments: limit is 50", mails.thousand_attachments,
       folder="mail", ext="eml"),
    _c("h63-mail-base64-garbage", "mail", "undecodable|" + _UNREADABLE, mails.base64_garbage, folder="mail",
       ext="eml"),
    _c("h64-mail-header-injection", "mail", _UNREADABLE, mails.header_injection, folder="mail", ext="eml"),
    _c("h65-mail-traversal-names", "mail", _UNREADABLE, mails.traversal_filename, folder="mail", ext="eml"),
    _c("h66-mail-nested-rfc822", "mail", "nested-too-deep", mails.nested_rfc822, folder="mail", ext="eml"),
    _c("h67-mail-deep-multipart", "mail", "nested-too-deep|corrupt", mails.deep_multipart, folder="mail",
       ext="eml"),
    _c("h68-mail-zip-traversal", "mail", "unsafe|travers|absolute", lambda t: mails.zipped(t, "traversal"),
       folder="mail", ext="eml"),
    _c("h69-mail-zip-ratio", "mail", "zip-limit-exceeded", lambda t: mails.zipped(t, "ratio"),
       folder="mail", ext="eml"),
    _c("h70-mail-zip-nested", "mail", "zip-limit-exceeded|nest", lambda t: mails.zipped(t, "nested"),
       folder="mail", ext="eml"),
    # A symlink member's bytes are its target's path text: read as data, never followed.
    _c("h71-mail-zip-symlink", "mail", "unsupported-format: content is unknown", lambda t: mails.zipped(t, "symlink"),
       folder="mail", ext="eml"),
    _c("h72-mail-zip-fan-out", "mail", "zip-limit-exceeded", lambda t: mails.zipped(t, "fan-out"),
       folder="mail", ext="eml"),
    _c("h73-mail-zip-overlap", "mail", "zip-|overlap|corrupt", lambda t: mails.zipped(t, "overlap"),
       folder="mail", ext="eml"),
    _c("h74-mail-oversized", "mail", "e-mail refused: message is", mails.oversized, folder="mail", ext="eml"),
    _c("h75-mail-nul-8bit", "mail", _UNREADABLE, mails.nul_and_8bit_headers, folder="mail", ext="eml"),
]
