"""Name what a file is when no invoice reader takes it, by its bytes.

`sniff` answers "unknown" for a RAR, a 7z, an Outlook winmail.dat, a
gzip, an old Word file ...: a refusal saying only "content is unknown"
leaves the operator to guess. These are what people actually send in
place of an invoice file, each with what to do about it, in English and
Chinese (the operators read either). Judged by content only, never the
file's name: a `.pdf` that is a RAR is named a RAR.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from agent.extract.sniff import TNEF_SIGNATURE, is_tar


class Unreadable(NamedTuple):
    """What a file is (`kind`, a stable word) and what to do, for people."""

    kind: str
    en: str
    zh: str

    @property
    def text(self) -> str:
        """The refusal's detail: English, then Chinese."""
        return f"{self.en} / {self.zh}"


_EXTRACT = "extract it and put the invoice files (PDF, OFD, XML or image) in a watched folder"
RAR = Unreadable("rar", f"a RAR archive: the agent does not open RAR; {_EXTRACT}",
                 "RAR 压缩包：程序不解 RAR，请解压后把发票文件放入监控文件夹")
SEVEN_ZIP = Unreadable("7z", f"a 7z archive: the agent does not open 7z; {_EXTRACT}",
                       "7z 压缩包：程序不解 7z，请解压后把发票文件放入监控文件夹")
TNEF = Unreadable("tnef", "an Outlook TNEF file (winmail.dat): Outlook wrapped the attachments in rich text; "
                          "ask the sender to send as plain text or HTML, or extract it and drop the files",
                  "Outlook 的 winmail.dat（TNEF）：附件被 Outlook 富文本格式打包，请让发件人改用纯文本或 HTML "
                  "格式重发，或解开后放入文件")
COMPRESSED = Unreadable("compressed", f"a gzip, bzip2, xz or tar archive: the agent opens only zip; {_EXTRACT}",
                        "gzip/bzip2/xz/tar 压缩包：程序只解 zip，请解压后把发票文件放入监控文件夹")
OLE2 = Unreadable("office", "a Word or Excel file (Office 97-2003, or an Outlook .msg): an invoice pasted into "
                            "a document cannot be read; send the invoice's own PDF, OFD or XML",
                  "Word/Excel 文件（或 Outlook .msg）：粘贴进文档的发票无法识别，请发送发票原件（PDF、OFD 或 XML）")
WORD = Unreadable("office", "a Word document: an invoice pasted into a document cannot be read; "
                            "send the invoice's own PDF, OFD or XML",
                  "Word 文档：粘贴进文档的发票无法识别，请发送发票原件（PDF、OFD 或 XML）")
EXCEL = Unreadable("office", "an Excel workbook: an invoice listed in a spreadsheet cannot be read; "
                             "send the invoice's own PDF, OFD or XML",
                   "Excel 表格：表格里的发票无法识别，请发送发票原件（PDF、OFD 或 XML）")
HTML = Unreadable("html", "an HTML page (a \"view your invoice online\" mail): not the invoice; open the link "
                          "and download the invoice's PDF, OFD or XML, then drop that file",
                  "HTML 网页（“在线查看发票”邮件）：不是发票本身，请打开链接下载 PDF、OFD 或 XML 后放入")

# Magic numbers at offset 0. RAR 1.5-4 and RAR5 differ after the 6th byte.
_MAGIC = ((b"Rar!\x1a\x07\x00", RAR), (b"Rar!\x1a\x07\x01\x00", RAR), (b"7z\xbc\xaf\x27\x1c", SEVEN_ZIP),
          (TNEF_SIGNATURE, TNEF), (b"\x1f\x8b\x08", COMPRESSED),
          (b"\xfd7zXZ\x00", COMPRESSED), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE2))


def unreadable_kind(head: bytes) -> Unreadable | None:
    """What a file that no invoice reader takes is, from its first bytes
    (512 are enough), or None when it is none of the kinds named here (or
    too short to tell). Never raises; never reads a file name."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return COMPRESSED  # "BZh" alone is also text: the block (or end) magic follows the level digit
    if is_tar(head):
        return COMPRESSED
    if looks_like_html(head):
        return HTML
    return None


def looks_like_html(data: bytes) -> bool:
    """Whether `data` begins as an HTML page (its first KiB has <html or
    <!doctype html): sniff takes one for XML."""
    head = data[:1024].lower()
    return b"<html" in head or b"<!doctype html" in head


# How far past the start a page's first tag is looked for: a saved page's
# "saved from url" comment and a licence banner are well under it.
_PROLOG_BYTES = 64 * 1024
_SPACE = re.compile(r"\s*")
_HTML_START = re.compile(r"<!doctype\s+html(?![\w.:-])|<(?:[\w.-]+:)?html(?=[\s/>])", re.IGNORECASE)


def is_html_page(data: bytes) -> bool:
    """Whether `data` (which sniff takes for XML) is an HTML or XHTML page:
    past a byte order mark (UTF-8 or UTF-16), white space, the XML
    declaration, processing instructions and comments, its doctype is
    html's or its first element is <html> (any case, any prefix). Judged
    by that start only, never by words further in, so an invoice XML that
    mentions <html> in a field is still read. Never raises."""
    head = _markup_text(data[:_PROLOG_BYTES])
    pos = 0
    while True:
        pos = _SPACE.match(head, pos).end()
        for opening, closing in (("<!--", "-->"), ("<?", "?>")):
            if head.startswith(opening, pos):
                end = head.find(closing, pos + len(opening))
                if end < 0:
                    return False
                pos = end + len(closing)
                break
        else:
            return _HTML_START.match(head, pos) is not None


def _markup_text(head: bytes) -> str:
    # Markup is ASCII in every encoding a page is saved in but UTF-16; the
    # bytes between tags (GBK, UTF-8 text) need not decode for the tags to be seen.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    if head.startswith(b"<\x00"):
        return head.decode("utf-16-le", errors="ignore")
    if head.startswith(b"\x00<"):
        return head.decode("utf-16-be", errors="ignore")
    return head.removeprefix(b"\xef\xbb\xbf").decode("latin-1")


def office_zip_kind(names: list[str]) -> Unreadable | None:
    """WORD or EXCEL for a zip whose members (`names`) are a Word document's
    or an Excel workbook's (its main part, word/document.xml or
    xl/workbook.xml, which no archive of invoices holds), else None."""
    have = {n.replace("\\", "/").lstrip("/").lower() for n in names}
    if "word/document.xml" in have:
        return WORD
    if "xl/workbook.xml" in have:
        return EXCEL
    return None
