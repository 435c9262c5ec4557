"""Files the agent cannot read, made for tests: HTML pages as browsers save
them, an OFD's parts rewritten or added to (GM/T 0099's Encryptions.xml);
and the check of a reason written for people, "English / 中文"."""

from __future__ import annotations

import io
import re
import zipfile

_CJK = re.compile(r"[\u4e00-\u9fff]")


def told_in_both(message: str, *english: str, chinese: tuple[str, ...] = ()) -> None:
    """`message` is "English / 中文": the English part names each of
    `english`, the Chinese part holds Chinese and each of `chinese`."""
    en, sep, zh = message.partition(" / ")
    assert sep, f"no Chinese part in {message!r}"
    assert _CJK.search(zh), f"no Chinese in {zh!r}"
    for word in english:
        assert word in en, (word, en)
    for word in chinese:
        assert word in zh, (word, zh)


def rezipped(data: bytes, add: dict[str, bytes] | None = None, change=None) -> bytes:
    """The zip `data` with each member through `change(name, bytes)` when
    given, and the members of `add` after its own."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            body = src.read(name)
            out.writestr(name, change(name, body) if change else body)
        for name, body in (add or {}).items():
            out.writestr(name, body)
    return buf.getvalue()


# GM/T 0099-2020's decryption entry, as its writers put it beside OFD.xml.
ENCRYPTIONS = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Encryptions xmlns:ofd="http://www.ofdspec.org/2016">'
               b'<ofd:EncryptInfo ID="1"><ofd:EntriesMapLoc>Encs/entriesmap.dat</ofd:EntriesMapLoc>'
               b'</ofd:EncryptInfo></ofd:Encryptions>')

UTF8_BOM = b"\xef\xbb\xbf"
XHTML_DOCTYPE = (b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
                 b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n')
PAGE = "<head><title>查看发票</title></head><body><a href='https://fp.example.cn/v?id=1'>在线查看您的发票</a></body>"
# A "view your invoice online" page, saved as browsers and mailers save it.
HTML_PAGES = {
    "html": f"<html>{PAGE}</html>".encode(),
    "html5-doctype": f"<!DOCTYPE html>\n<html lang='zh'><meta charset='utf-8'>{PAGE}".encode(),
    "upper-case": f"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\">\n<HTML>{PAGE.upper()}</HTML>".encode(),
    "xhtml": b'<?xml version="1.0" encoding="utf-8"?>\n' + XHTML_DOCTYPE
             + f'<html xmlns="http://www.w3.org/1999/xhtml">{PAGE}</html>'.encode(),
    "xhtml-no-doctype": f'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">{PAGE}</html>'.encode(),
    "bom-and-space": UTF8_BOM + f" \r\n\t <!doctype html><html>{PAGE}</html>".encode(),
    "saved-from-comment": f"<!-- saved from url=(0041)https://fp.example.cn/v?id=1 -->\n<html>{PAGE}</html>".encode(),
    # Past the first KiB: the mail walk's old test ("<html" in the first KiB) missed it.
    "long-banner-comment": UTF8_BOM + b"<!--" + b" (c) example.cn " * 200 + b"-->\n" + f"<html>{PAGE}</html>".encode(),
    "gbk": "<html><head><meta charset='gbk'></head><body>在线查看发票</body></html>".encode("gbk"),
    "utf-16": f"\ufeff<!DOCTYPE html><html>{PAGE}</html>".encode("utf-16-le"),
}
