"""XML markup read without a parser: for OFD pages that do not parse.

`ofd_package` walks such a page tag by tag for the text a parser would
give; `loose_tree` builds the same page's elements, as far as its tags
nest, for `ofd_drawn` to tell where the walk's text objects are drawn and
what is drawn over them. Tags, attributes and references are read here
the same way for both.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, SubElement

# For pages that do not parse: a tag with its quoted attributes (which hold
# no '<' in XML, so a broken one ends at the next tag), an attribute, an
# entity or character reference (after its '&'), what XML forbids in text.
TAG_RE = re.compile(r"<(/?)([^\s/<>\"'!?]+)((?:[^<>\"']|\"[^\"<]*\"|'[^'<]*')*)>")
_ATTR_RE = re.compile(r"(?:^|\s)([^\s=/]+)\s*=\s*(?:\"([^\"<]*)\"|'([^'<]*)')")
_ENTITY_RE = re.compile(r"#([0-9]{1,7});|#x([0-9A-Fa-f]{1,6});|(amp|lt|gt|quot|apos);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
NOT_XML_RE = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|]]>")


def loose_tree(text: str) -> Element:
    """The elements of markup `text` (line ends already normalised) as
    far as its tags nest: each start tag an element under the innermost
    open one, an end tag closing the innermost open one of its name (none:
    ignored), character data and CDATA its text, comments, processing
    instructions and declarations skipped (as `ofd_package`'s walk skips
    them, so its TextObjects are these, in this order). Tags keep their
    prefix; attributes are decoded (one a parser refuses is left out).
    What is no tag is passed over."""
    root = Element("LooseMarkup")
    stack, pos = [root], 0
    while pos < len(text):
        lt = text.find("<", pos)
        end = len(text) if lt < 0 else lt
        if end > pos:
            _add_text(stack[-1], unescape(text[pos:end]) or "")
        if lt < 0:
            break
        if text.startswith("<![CDATA[", lt):
            close = text.find("]]>", lt)
            _add_text(stack[-1], text[lt + 9:close] if close >= 0 else "")
            pos = len(text) if close < 0 else close + 3
        elif text.startswith(("<!", "<?"), lt):
            opener, closer = next(pair for pair in (("<!--", "-->"), ("<?", "?>"), ("<!", ">"))
                                  if text.startswith(pair[0], lt))
            close = text.find(closer, lt + len(opener))
            pos = len(text) if close < 0 else close + len(closer)
        elif (m := TAG_RE.match(text, lt)) is None:
            pos = lt + 1
        else:
            pos = m.end()
            closing, name, attrs = m[1] == "/", m[2], m[3]
            if closing:
                depth = next((i for i in range(len(stack) - 1, 0, -1) if stack[i].tag == name), None)
                if depth is not None:
                    del stack[depth:]
                continue
            values = {k: attr(attrs, k) for k in dict.fromkeys(a[1] for a in _ATTR_RE.finditer(attrs))}
            el = SubElement(stack[-1], name, {k: v for k, v in values.items() if isinstance(v, str)})
            if not attrs.endswith("/"):
                stack.append(el)
    return root


def _add_text(el: Element, text: str) -> None:
    if len(el):
        el[-1].tail = (el[-1].tail or "") + text
    else:
        el.text = (el.text or "") + text


def attr(attrs: str, name: str) -> str | None | bool:
    """The value of attribute `name` with its references decoded; None when
    absent, False when it holds one a parser would refuse."""
    for m in _ATTR_RE.finditer(attrs):
        if m[1] == name:
            value = unescape(m[2] if m[2] is not None else m[3])
            return False if value is None else value
    return None


def unescape(text: str) -> str | None:
    """`text` with its entity and character references replaced as an XML
    parser does; None when it holds what a parser refuses: a bare '&', an
    entity XML does not predefine (&nbsp;), a character XML forbids."""
    if NOT_XML_RE.search(text):
        return None
    head, *rest = text.split("&")
    out = [head]
    for part in rest:
        m = _ENTITY_RE.match(part)
        if m is None:
            return None
        if m[3]:
            out.append(_NAMED[m[3]])
        else:
            char = int(m[1]) if m[1] else int(m[2], 16)
            if char > 0x10FFFF or NOT_XML_RE.match(chr(char)) and chr(char) != "\r":
                return None
            out.append(chr(char))
        out.append(part[m.end():])
    return "".join(out)
