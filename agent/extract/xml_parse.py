"""Untrusted XML bytes to an element tree: decoded in Python, parsed safely.

Invoice XML (数电 files, OFD parts) comes from strangers and in whatever
encoding its issuer chose. expat reads no multi-byte codec (GBK, GB18030),
so the bytes are decoded here, by byte order mark or declared encoding,
and handed to defusedxml as UTF-8, which refuses any DTD, entity
declaration or external reference: real invoice XML never carries one.
Apart from `xml` (which reads invoice fields) so that the OFD reader can
decode its parts the same way; here too the ways both find elements by
local name (`local_name`, `text_of`, `Tags`).
"""

from __future__ import annotations

import codecs
import functools
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
    # A second byte order mark after the first (a file saved twice with
    # one) would hide the declaration from the rewrite below, and expat
    # would then read these UTF-8 bytes in the encoding it names.
    text = xml_text(data).lstrip("\ufeff")
    declared = _DECLARED_TEXT_RE.match(text)
    if declared is not None:  # now UTF-8, whatever it was
        text = f'{declared[1]}"UTF-8"{text[declared.end():]}'
    try:
        if "<!DOCTYPE" not in text:
            # No document type declaration, so no entity can be declared and
            # none expanded: expat alone refuses any reference but the five
            # predefined ones. Its C tree builder reads a 数电 XML in a third
            # of the time of defusedxml's Python one, which guards only the
            # declarations. Any text holding "<!DOCTYPE" (in a comment or
            # CDATA too: the string test never lets a real one by) goes to
            # defusedxml, which refuses a declaration and reads the rest.
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


def local_name(tag: object) -> str:
    """The tag without namespace or prefix: `{ns}InvoiceNo` -> `InvoiceNo`."""
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    # Only names of a plausible length are remembered: a worker lives for
    # many files, and a sender's megabyte-long tag names would stay in it.
    return _local_name(tag) if len(tag) <= _CACHED_TAG_MAX else tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


_CACHED_TAG_MAX = 256


@functools.lru_cache(maxsize=4096)  # a few dozen distinct tags, looked up thousands of times
def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def find_first(root: Element, *names: str) -> Element | None:
    """The first descendant (or `root`) whose local name is one of `names`."""
    wanted = set(names)
    for el in root.iter():
        if local_name(el.tag) in wanted:
            return el
    return None


def text_of(root: Element, *names: str) -> str | None:
    """Stripped text of the first element named one of `names`; None if empty or absent."""
    el = find_first(root, *names)
    if el is None:
        return None
    text = "".join(el.itertext()).strip()
    return text or None


class Tags:
    """The elements of a tree a reader asks for (`wanted` local names), by
    name in document order: one walk of the tree serves all of a reading's
    lookups (a field a walk each cost a 数电 XML 60 % of its reading). Only
    wanted names are held, one reference an element, so a file of millions
    of other elements costs no more memory than its tree."""

    def __init__(self, root: Element, wanted: frozenset[str]):
        self._root, self._wanted = root, wanted
        self._named: dict[str, list[Element]] = {}
        for el in root.iter():
            name = local_name(el.tag)
            if name in wanted:
                self._named.setdefault(name, []).append(el)

    def named(self, *names: str) -> list[Element]:
        """The elements named one of `names`, in document order. Raises
        LookupError for a name the reader did not declare as wanted (a bug:
        it would read as absent)."""
        if not self._wanted.issuperset(names):
            raise LookupError(f"XML reader asked for undeclared tags {sorted(set(names) - self._wanted)}")
        if len(names) == 1:
            return list(self._named.get(names[0], ()))
        # Two names in one field (InvoiceNumber or EIid): their order in the
        # document is the tree's, so walk it for these few lookups only.
        wanted = set(names)
        return [el for el in self._root.iter() if local_name(el.tag) in wanted] if any(
            name in self._named for name in names) else []

    def text_of(self, *names: str) -> str | None:
        """As `text_of` over the whole tree."""
        els = self.named(*names)
        text = "".join(els[0].itertext()).strip() if els else ""
        return text or None
