"""What a person reads when a file could not be read: English and Chinese,
each saying what to do.

A refusal ends in `fapiao-agent quarantine` and `show` as the document's
reason ("encrypted: ..."); the operators read English or Chinese, and a
reason in one language only, or one that names the trouble and not the way
out of it, leaves them to guess. The rule code (`ExtractError.reason`)
stays as it is: it is what scripts and the weekly report count.

Files whose kind is named by their bytes (a RAR, an HTML page ...) are
`unreadable.py`'s; here the encrypted ones, which a reader opens far enough
to know, and `in_both_languages`, the Chinese (and the way out) for every
other reason a reader gives in English only.
"""

from __future__ import annotations

from agent.errors import ExtractError
from agent.extract.unreadable import Unreadable

# A document quarantined here can still be booked: 补录 (`amend`) takes its
# values from the paper or the sender. Said in both languages, as the
# operators know the command by either name.
_AMEND_EN = "enter its values by 补录 (fapiao-agent amend)"
_AMEND_ZH = "通过补录（fapiao-agent amend）录入"
_UNLOCK_EN = f"the agent cannot decrypt it; ask the sender for an unencrypted copy, or {_AMEND_EN}"
_UNLOCK_ZH = f"程序无法解密：请向发件人索取未加密的副本，或{_AMEND_ZH}"


def encrypted(what_en: str, what_zh: str) -> ExtractError:
    """ExtractError("encrypted") for a file `what_en` / `what_zh` says is
    encrypted, with what to do (an unencrypted copy, or 补录), in English
    and Chinese."""
    return ExtractError("encrypted", f"{what_en}: {_UNLOCK_EN}", zh=f"{what_zh}，{_UNLOCK_ZH}")


# Files no reader takes, said by extract_bytes when no kind of
# unreadable.py fits them.
EMPTY = Unreadable("empty", "the file is empty: ask the sender for the file again",
                   "文件是空的：请向发件人重新索取文件")
ZIP_NOT_OFD = Unreadable("zip", "a zip archive that is not an OFD (no OFD.xml): extract it and put the "
                                "invoice files (PDF, OFD, XML or image) in a watched folder",
                         "不是 OFD 的 zip 压缩包（没有 OFD.xml）：请解压后把发票文件（PDF、OFD、XML 或图片）放入监控文件夹")
UNKNOWN = Unreadable("unknown", "not a PDF, OFD, invoice XML or image: send the invoice's own PDF, OFD or XML",
                     "不是 PDF、OFD、发票 XML 或图片：请发送发票原件（PDF、OFD 或 XML）")
# An e-mail attachment or a zip member of no invoice format and of no kind
# unreadable.py names (refused by the mail walk, listed by `refused`).
PART_UNKNOWN = Unreadable("unknown", "content is unknown, not PDF, OFD, XML or an image: send the invoice's own "
                                     "PDF, OFD or XML",
                          "内容不是 PDF、OFD、XML 或图片：请发送发票原件（PDF、OFD 或 XML）")


def package(kind_en: str) -> Unreadable:
    """A zip that is a file format of its own (`kind_en`: "an OpenDocument
    or EPUB file", "a Java package" ...), said in both languages."""
    return Unreadable("package", f"{kind_en}, not an invoice; its parts are not read: send the invoice's own "
                                 "PDF, OFD or XML",
                      "其他格式的文件（不是发票，也不是装发票的压缩包），其中的内容不读取：请发送发票原件（PDF、OFD 或 XML）")

# For a reason a reader gave in English only: the way out in English, and
# the whole of it in Chinese (the English detail says what exactly was
# found: a page count, a parser's words). Every reason of ExtractError.
_WAY_OUT = {
    "empty": ("ask the sender for the file again", "文件是空的：请向发件人重新索取文件"),
    "unsupported-format": (f"send the invoice's own PDF, OFD or XML, or {_AMEND_EN}",
                           f"不是可读取的发票文件（PDF、OFD、发票 XML 或图片）：请发送发票原件，或{_AMEND_ZH}"),
    "encrypted": (f"ask the sender for an unencrypted copy, or {_AMEND_EN}",
                  f"文件已加密，程序无法打开：请向发件人索取未加密的副本，或{_AMEND_ZH}"),
    "corrupt": (f"the file is damaged; ask the sender for a new copy, or {_AMEND_EN}",
                f"文件已损坏，程序无法读取：请向发件人索取新的副本，或{_AMEND_ZH}"),
    "truncated": (f"the file is incomplete; put the whole file in again, or {_AMEND_EN}",
                  f"文件不完整（被截断）：请重新放入完整的文件，或{_AMEND_ZH}"),
    "limit-exceeded": (f"the file is past what the agent reads; {_AMEND_EN}, or ask the sender for the "
                       "invoice on its own",
                       f"文件超出程序的读取上限（大小、页数或复杂程度）：请{_AMEND_ZH}，或请发件人单独发送这张发票"),
    "unsafe-xml": (f"XML that declares a DTD or entities is never read; ask the sender for the invoice's own "
                   f"file, or {_AMEND_EN}",
                   f"XML 声明了 DTD 或实体，为安全起见不读取：请向发件人索取发票原件，或{_AMEND_ZH}"),
    "no-qr": (f"scan it again, sharper and whole, or {_AMEND_EN}",
              f"扫描件上找不到发票二维码，无法识别：请重新清晰完整地扫描后放入，或{_AMEND_ZH}"),
    "not-invoice": (f"if it is an invoice, {_AMEND_EN}", f"文件中没有找到发票：如确是发票，请{_AMEND_ZH}"),
    "unreadable": ("check that the file is there and readable by the agent", "无法读取文件：请检查文件是否存在、程序能否读取"),
}
_OTHER = (_AMEND_EN, f"无法读取文件：请{_AMEND_ZH}")


def way_out_zh(reason: str) -> str:
    """The Chinese of a reason code and what to do (`_WAY_OUT`), for one
    said in English only; a code not known gets the general way out."""
    return _WAY_OUT.get(reason, _OTHER)[1]


def in_both_languages(error: ExtractError) -> ExtractError:
    """`error` itself when it is said in Chinese too; else an ExtractError
    with the same reason whose message is its English, the way out, and
    the same in Chinese. Never raises."""
    if error.zh:
        return error
    en, zh = _WAY_OUT.get(error.reason, _OTHER)
    return ExtractError(error.reason, f"{error.message}; {en}", zh=zh)
