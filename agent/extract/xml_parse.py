"""Untrusted XML bytes to an element tree: decoded in Python, parsed safely.

Invoice XML (数电 files, OFD parts) comes from strangers and in whatever
encoding its issuer chose. expat reads no multi-byte codec (GBK, GB18030),
so the bytes are decoded here, by byte order mark or declared encoding,
and handed to defusedxml as UTF-8, which refuses any DTD, entity
declaration or external reference: real invoice XML never carries one.
Apart from `xml` (which reads invoice fields) so that the OFD reader can
decode its parts the same way.
"""

from __future__ import annotations

import codecs
import re
from xml.etree.ElementTree import Element, ParseError, XMLParser

import defusedxml.ElementTree as safe_et
from defusedxml.common import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from agent.errors import ExtractError

# A real invoice XML is a few KiB; a 5-page OFD attachment with 400 lines is
# 60 KiB. Anything this size is not an invoice and is refused before parsing.
MAX_XML_BYTES = 16 * 1024 * 1024

# Byte order marks, UTF-32 first: its little-endian mark begins with UTF-16's.
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32LE"), (codecs.BOM_UTF32_BE, "UTF-32BE"), (codecs.BOM_UTF8, "UTF-8"),
         (codecs.BOM_UTF16_LE, "UTF-16LE"), (codecs.BOM_UTF16_BE, "UTF-16BE"))
# The encoding an XML declaration names; expat judges the rest of it.
_DECLARED_RE = re.compile(rb"<\?xml[^>]*?[\s\"']encoding\s*=\s*([\"'])(.*?)\1")
_DECLARED_TEXT_RE = re.compile(r"(<\?xml[^>]*?[\s\"']encoding\s*=\s*)([\"'])(.*?)\2")
# GB2312 and GBK documents are decoded as GB18030, as browsers do (WHATWG):
# it reads every GBK byte pair to the same character, and also what issuers
# labelled GB2312 but wrote in GBK (镕, 堃), and maps A1A4 to the middle dot
# U+00B7 that a UTF-8 invoice prints in a name (Python's gb2312: U+30FB).
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030"}
# Python codecs that are transforms, not character sets: they read ASCII
# bytes as other characters (`\u4e2d`, `+Ti0-`), which no XML reader does.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "utf-7"})


def xml_text(data: bytes) -> str:
    """The characters of an XML document, as XML 1.0 appendix F reads them:
    by its byte order mark, else UTF-16 by its first bytes, else by the
    encoding its declaration names, else UTF-8. A mark wins over the
    declaration.

    Raises ExtractError("unsupported-format") naming the encoding when it is
    one Python does not know as a character set, when the bytes are not
    valid in it, or when the declaration is not written in what it declares.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _decode(data[len(bom):], codec, f"{codec} (by its byte order mark)")
    if data.startswith((b"<\0?\0", b"\0<\0?")):
        codec = "UTF-16LE" if data[0] else "UTF-16BE"
        return _decode(data, codec, f"{codec} (by its first bytes)")
    declared = _DECLARED_RE.match(data)
    if declared is None:
        return _decode(data, "UTF-8", "UTF-8 (no encoding is declared)")
    name = declared[2].decode("ascii", "replace")
    shown = repr(name if len(name) <= 40 else name[:40] + "…")
    try:
        codec = codecs.lookup(name).name
        text = None if codec in _NOT_CHARSETS else _decode(data, _SUPERSETS.get(codec, codec),
                                                           f"{shown}, the encoding it declares")
    except (LookupError, ValueError):  # unknown, or a bytes-to-bytes codec (base64, zlib)
        text = None
    if text is None:
        raise ExtractError("unsupported-format", f"XML declares encoding {shown}, which is not a character set "
                                                 "this reader knows")
    again = _DECLARED_TEXT_RE.match(text)
    if again is None or again[3] != name:  # UTF-16 declared over 8-bit bytes, an EBCDIC codec ...
        raise ExtractError("unsupported-format", f"XML declares encoding {shown} but is not written in it "
                                                 "(its declaration does not read back)")
    return text


def _decode(data: bytes, codec: str, shown: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        bad = e.object[e.start:e.end][:8].hex(" ")
        raise ExtractError("unsupported-format", f"XML is not valid {shown}: bytes {bad} at offset {e.start}") from None


def parse_xml(data: bytes) -> Element:
    """Parse untrusted XML; DTDs, entities and external references are refused.

    The bytes are decoded by `xml_text` and parsed as UTF-8, with the same
    defusedxml protections whatever the encoding. Raises
    ExtractError("unsafe-xml") for those, ExtractError("corrupt") for XML
    that is not well formed, ExtractError("limit-exceeded") when too big, and
    ExtractError("unsupported-format") for an encoding it cannot decode.
    """
    if len(data) > MAX_XML_BYTES:
        raise ExtractError("limit-exceeded", f"XML of {len(data)} bytes is over {MAX_XML_BYTES}")
    text = xml_text(data)
    declared = _DECLARED_TEXT_RE.match(text)
    if declared is not None:  # now UTF-8, whatever it was
        text = f'{declared[1]}"UTF-8"{text[declared.end():]}'
    try:
        if "<!DOCTYPE" not in text:
            # No document type declaration, so no entity can be declared and
            # none expanded: expat alone refuses any reference but the five
            # predefined ones. Its C tree builder reads a 数电 XML in a third
            # of the time of defusedxml's Python one, which guards only the
            # declarations (refused below whenever "<!DOCTYPE" appears at
            # all, in a comment too: the string test never lets one by).
            parser = XMLParser()
            parser.feed(text.encode("utf-8"))
            return parser.close()
        return safe_et.fromstring(text.encode("utf-8"), forbid_dtd=True, forbid_entities=True,
                                  forbid_external=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as e:
        raise ExtractError("unsafe-xml", f"XML declares a DTD or entities, refused: {type(e).__name__}") from e
    except ParseError as e:
        raise ExtractError("corrupt", f"XML is not well formed: {e}") from e
    except (LookupError, ValueError, UnicodeError) as e:  # a declaration expat reads otherwise than we do
        raise ExtractError("corrupt", f"XML cannot be decoded: {e}") from e
