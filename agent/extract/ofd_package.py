"""An OFD package as parts: members found case-insensitively, pages and
templates with their text objects, index parts and tag files.

Kept apart from `ofd` (which reads invoice data out of these parts) because
this is the package's structure (GB/T 33190), with its own fallbacks for
malformed XML: a page is walked tag by tag for the text a parser would give
(or none), tag files are read with regexes. It knows no invoice field.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from typing import Iterator
from xml.etree.ElementTree import Element

from agent.errors import ExtractError
from agent.extract.ofd_images import Resources
from agent.extract.ofd_markup import NOT_XML_RE, TAG_RE, attr as _attr, loose_tree, unescape as _unescape
from agent.extract.ofd_over import Drawing
from agent.extract.ofd_shown import drawn_order, element_unshown, unshown_reason
from agent.extract.xml_parse import local_name, parse_xml, text_of, xml_text
from agent.safezip import SafeZip

# Fallback for tag files that are not well-formed XML: an element (any or no
# prefix) whose content is one or more ObjectRefs.
_TAG_REF_RE = re.compile(
    r"<(?:[\w.-]*:)?([\w.-]+)(?:\s[^>]*)?>\s*((?:<(?:[\w.-]*:)?ObjectRef\b[^>]*>\s*\d+\s*</(?:[\w.-]*:)?ObjectRef>\s*)+)<")
_REF_RE = re.compile(r"<(?:[\w.-]*:)?ObjectRef\b([^>]*)>\s*(\d+)\s*<")
_PAGE_REF_RE = re.compile(r"PageRef\s*=\s*[\"'](\d+)[\"']")
# Reasons `parse_xml` gives for a part that other parts can do without: not
# well formed, or in an encoding that cannot be decoded.
_UNREADABLE = frozenset({"corrupt", "unsupported-format"})
# Outside a readable object only these matter: an object or template tag, or
# markup that may hide one. Searched in one pass, so a page of stray '<' or
# of tiny tags costs no Python step each.
_SKIP_TO_RE = re.compile(r"<[!?]|</?(?:[^\s/<>\"'!?]*:)?(?:TextObject|Template)(?=[\s/>])")
# A real TextObject holds a few elements (TextCode, CGTransform, colours);
# one that takes more steps to walk than this is not read, but given no text.
_MAX_OBJECT_STEPS = 1000
MAX_LOOSE_TAGS = 50_000   # an invoice page has a few thousand


class OfdPage:
    """A page or template; its Content.xml is parsed on first use, since a
    5-page invoice with a goods list only needs the face page."""

    def __init__(self, pkg: "OfdPackage", id: str, path: str, drawing: Drawing | None = None):
        self.id = id
        self.path = path
        self._pkg = pkg
        self.drawing = drawing or Drawing()
        self._texts: dict[str, str] | None = None
        self._template_ids: list[str] = []
        self._ambiguous: dict[str, list[str]] = {}
        self._unshown: dict[str, str] = {}
        self._shown: set[str] = set()

    @property
    def texts(self) -> dict[str, str]:
        """TextObject ID -> its text (TextCodes stripped and joined); objects
        without an ID under "#n" keys, which no tag reference names."""
        if self._texts is None:
            self._texts = {}
            _load_page(self._pkg, self)
        return self._texts

    @property
    def ambiguous(self) -> dict[str, list[str]]:
        """IDs that two or more TextObjects of the page carry with different
        texts -> those texts (`texts` holds the first): a tag naming one
        of them names no text for sure."""
        self.texts  # noqa: B018 - loading fills it
        return self._ambiguous

    @property
    def hidden(self) -> dict[str, str]:
        """IDs of TextObjects no viewer shows (ofd_shown: Visible="false",
        transparent, white, too small; ofd_drawn: covered, clipped away,
        off the page) -> why; an ID one shown object
        carries too is not hidden. A tag naming one names no print."""
        self.texts  # noqa: B018 - loading fills it
        return {k: why for k, why in self._unshown.items() if k not in self._shown}

    @property
    def shown_texts(self) -> frozenset[str]:
        """The texts of the page's TextObjects a viewer shows (not `hidden`),
        but the empty one: what a person reads on it, wherever it stands."""
        hidden = self.hidden
        return frozenset(t for k, t in self.texts.items() if t and k not in hidden)

    @property
    def template_ids(self) -> list[str]:
        self.texts  # noqa: B018 - loading fills the template list too
        return self._template_ids


class OfdPackage:
    """Case-insensitive, path-resolving access to the zip members."""

    def __init__(self, zf: SafeZip):
        self.zf = zf
        self.names = zf.names()
        self._by_lower = {n.lower(): n for n in self.names}

    def find(self, path: str | None) -> str | None:
        if not path:
            return None
        norm = posixpath.normpath(path.strip().replace("\\", "/")).lstrip("/")
        return self._by_lower.get(norm.lower())

    def read(self, name: str) -> bytes:
        return self.zf.read(name)

    def resolve(self, base_dir: str, loc: str | None) -> str | None:
        """A member for `loc`, relative to `base_dir` or to the package root."""
        if not loc:
            return None
        loc = loc.strip()
        if loc.startswith("/"):
            return self.find(loc)
        return self.find(posixpath.join(base_dir, loc)) or self.find(loc)


def parse_part(pkg: OfdPackage, name: str) -> Element | None:
    """A package part as XML; None when malformed or in an encoding that
    cannot be decoded (callers fall back), but an unsafe part (entities,
    DTD) or one over the size limit is refused for the whole file."""
    try:
        return parse_xml(pkg.read(name))
    except ExtractError as e:
        if e.reason in _UNREADABLE:
            return None
        raise


def document_pages(pkg: OfdPackage, doc: Element | None, doc_dir: str) -> tuple[list[OfdPage], dict[str, OfdPage]]:
    """The document's pages in order and its template pages by ID; when
    Document.xml lists none, the page-like parts of `doc_dir` in name order.
    Each holds the document's `Drawing`."""
    pages: list[OfdPage] = []
    templates: dict[str, OfdPage] = {}
    drawing = Drawing(doc, Resources(pkg, doc, doc_dir), pkg, doc_dir)
    if doc is not None:
        for el in doc.iter():
            tag = local_name(el.tag)
            if tag in ("Page", "TemplatePage"):
                path = pkg.resolve(doc_dir, el.get("BaseLoc"))
                if path is None:
                    continue
                page = OfdPage(pkg, id=el.get("ID") or path, path=path, drawing=drawing)
                if tag == "Page":
                    pages.append(page)
                else:
                    templates[page.id] = page
                    drawing.templates[page.id] = path
    if not pages:  # Document.xml missing or unreadable: take page-like parts in name order
        pages = [OfdPage(pkg, id=n, path=n, drawing=drawing) for n in sorted(pkg.names)
                 if n.lower().startswith(doc_dir.lower() + "/") and re.search(r"(?i)pages?/.*content\.xml$", n)]
    return pages, templates


def _load_page(pkg: OfdPackage, page: OfdPage) -> None:
    data = pkg.read(page.path)
    try:
        root = parse_xml(data)
    except ExtractError as e:
        if e.reason not in _UNREADABLE:
            raise
        try:
            text = xml_text(data)
        except ExtractError:
            return  # not decodable in its own encoding: no text rather than garbled text
        _walk_page(page, text)
        return
    unseen = page.drawing.unseen(root, page.id)
    for el in root.iter():
        tag = local_name(el.tag)
        if tag == "Template" and el.get("TemplateID"):
            page._template_ids.append(el.get("TemplateID"))
        elif tag == "TextObject":
            codes = [("".join(c.itertext()).strip(), c.get("X"), c.get("Y"))
                     for c in el.iter() if local_name(c.tag) == "TextCode"]
            obj_id = (el.get("ID") or "").strip() or _unnamed(page)
            _keep(page, obj_id, drawn_order(codes, el.get("Size")), element_unshown(el) or unseen.get(el))


def _walk_page(page: OfdPage, text: str) -> None:
    """Read a page that does not parse as `_load_page` reads one that does:
    its Template references, and each TextObject's TextCodes stripped and
    joined, with CDATA unwrapped and references decoded as a parser would.
    An object holding what a parser would refuse (a bare '&', an HTML
    entity, an unclosed CDATA, a '<' that opens no tag, a missing end tag)
    gets no text: empty, never garbled. Comments and processing
    instructions are skipped, as a parser skips them. Where each object is
    drawn is told from the page's `loose_tree` (ofd_drawn), the n-th
    TextObject there being the walk's n-th."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # XML 2.11: before anything is read
    drawn = _drawn_reasons(page, text)
    obj: _Object | None = None
    pos = 0
    while pos < len(text):
        if obj is not None and obj.ok:
            obj.steps += 1
            obj.ok = obj.steps <= _MAX_OBJECT_STEPS
        if obj is None or not obj.ok:  # nothing to read before the next object tag
            skip = _SKIP_TO_RE.search(text, pos)
            if skip is None:
                break
            pos = skip.start()
        lt = text.find("<", pos)
        if lt < 0 or lt > pos:  # character data up to the next markup
            end = len(text) if lt < 0 else lt
            if obj is not None and obj.code is not None:
                obj.add(_unescape(text[pos:end]))
            pos = end
        elif text.startswith("<![CDATA[", lt):
            close = text.find("]]>", lt)
            if obj is not None and obj.code is not None:
                piece = None if close < 0 else text[lt + 9:close]
                obj.add(None if piece is None or NOT_XML_RE.search(piece) else piece)
            pos = len(text) if close < 0 else close + 3
        elif text.startswith(("<!", "<?"), lt):  # a comment, processing instruction or declaration
            opener, closer = next(pair for pair in (("<!--", "-->"), ("<?", "?>"), ("<!", ">"))
                                  if text.startswith(pair[0], lt))
            close = text.find(closer, lt + len(opener))
            pos = len(text) if close < 0 else close + len(closer)
        elif (m := TAG_RE.match(text, lt)) is None:  # a '<' that opens no tag
            if obj is not None:
                obj.ok = False
            pos = lt + 1
        else:
            pos = m.end()
            closing, name, attrs = m[1] == "/", local_name(m[2]), m[3]
            if name == "TextObject":
                if obj is not None:
                    obj.close(page, ended=closing)  # an object opening inside one: its end tag is missing
                obj = None if closing else _Object(_attr(attrs, "ID"), attrs, next(drawn, None))
                if obj is not None and isinstance(size := _attr(attrs, "Size"), str):
                    obj.size = size
                if obj is not None and attrs.endswith("/"):
                    obj.close(page, ended=True)
                    obj = None
            elif name == "FillColor" and obj is not None and not closing:
                obj.fill = tuple(v if isinstance(v, str) else None
                                 for v in (_attr(attrs, n) for n in ("Value", "Alpha", "ColorSpace")))
            elif name == "TextCode" and obj is not None:
                obj.code_tag(closing, attrs.endswith("/"), (_attr(attrs, "X"), _attr(attrs, "Y")))
            elif name == "Template" and not closing and (template := _attr(attrs, "TemplateID")):
                page._template_ids.append(template)
    if obj is not None:  # the page ends inside an object
        obj.close(page, ended=False)


def _drawn_reasons(page: OfdPage, text: str) -> Iterator[str | None]:
    """Why each TextObject of a page that does not parse is out of sight
    (ofd_drawn over its `loose_tree`), in order; None for one in sight.
    A page of more than MAX_LOOSE_TAGS tags is not built: its every object
    is taken as out of sight (no invoice page is near it)."""
    if text.count("<") > MAX_LOOSE_TAGS:
        return itertools.repeat("on a page that does not parse, too large to tell where it is drawn")
    tree = loose_tree(text)
    unseen = page.drawing.unseen(tree[0] if len(tree) == 1 else tree, page.id)  # the Page: its Area is its child
    return (unseen.get(el) for el in tree.iter() if local_name(el.tag) == "TextObject")


class _Object:
    """A TextObject being walked: its ID (False when unreadable), its
    TextCodes' texts so far, the open TextCode's pieces (None when none is
    open), whether every piece was read as a parser would, and the steps
    the walk has taken inside it."""

    def __init__(self, obj_id: str | None | bool, attrs: str = "", unseen: str | None = None):
        self.id, self.codes, self.code, self.ok, self.unseen = obj_id, [], None, obj_id is not False, unseen
        self.steps, self.at, self.size, self.attrs, self.fill = 0, (None, None), None, attrs, None

    def add(self, piece: str | None) -> None:
        if piece is None:
            self.ok = False
        else:
            self.code.append(piece)

    def code_tag(self, closing: bool, empty: bool, at: tuple = (None, None)) -> None:
        if closing and self.code is not None:
            self.codes.append(("".join(self.code).strip(), *self.at))
            self.code = None
        elif not closing and self.code is not None:  # nested, or the last one never ended
            self.ok = False
        elif not closing and not empty:
            self.code, self.at = [], at
        if False in at:  # a position a parser would refuse
            self.ok = False

    def close(self, page: OfdPage, ended: bool) -> None:
        ok = self.ok and ended and self.code is None
        _keep(page, (self.id or "").strip() or _unnamed(page), drawn_order(self.codes, self.size) if ok else "",
              unshown_reason(lambda name: _attr(self.attrs, name), self.fill) or self.unseen)


def _keep(page: OfdPage, obj_id: str, text: str, unshown: str | None = None) -> None:
    if unshown is None:
        page._shown.add(obj_id)
    else:
        page._unshown.setdefault(obj_id, unshown)
    known = page._texts.setdefault(obj_id, text)
    if known != text:
        seen = page._ambiguous.setdefault(obj_id, [known])
        if text not in seen:
            seen.append(text)


def _unnamed(page: OfdPage) -> str:
    # A TextObject without an ID is still printed text (the title, the 大写):
    # kept under a key no ObjectRef (digits) can name.
    return f"#{len(page._texts)}"


def file_locs(pkg: OfdPackage, listing_name: str | None) -> list[str]:
    """The package members an index part (Attachments.xml, CustomTags.xml)
    names in its FileLoc elements, resolved against the index's folder;
    [] when there is no readable index."""
    listing = parse_part(pkg, listing_name) if listing_name else None
    if listing is None:
        return []
    base = posixpath.dirname(listing_name)
    found = (pkg.resolve(base, "".join(el.itertext())) for el in listing.iter() if local_name(el.tag) == "FileLoc")
    return [name for name in found if name]


def tag_files(pkg: OfdPackage, doc: Element | None, doc_dir: str) -> list[str]:
    """The custom tag parts of a document: those its CustomTags index names,
    then any other .xml under its Tags folder, each once."""
    index_name = pkg.resolve(doc_dir, text_of(doc, "CustomTags")) if doc is not None else None
    index_name = index_name or pkg.find(posixpath.join(doc_dir, "Tags/CustomTags.xml"))
    files = file_locs(pkg, index_name)
    tags_dir = (doc_dir + "/tags/").lower()
    files += [n for n in pkg.names if n.lower().startswith(tags_dir) and n.lower().endswith(".xml")
              and posixpath.basename(n).lower() != "customtags.xml"]
    return list(dict.fromkeys(files))


def tag_refs(pkg: OfdPackage, name: str) -> list[tuple[str, list[tuple[str | None, str]]]]:
    """(element local name, [(page id, object id)...]) for each element holding ObjectRefs."""
    root = parse_part(pkg, name)
    out: list[tuple[str, list[tuple[str | None, str]]]] = []
    if root is None:
        try:
            text = xml_text(pkg.read(name))
        except ExtractError:
            return out  # not decodable in its own encoding: no reference is sure
        for tag, refs in _TAG_REF_RE.findall(text):
            pairs = [(_first_group(_PAGE_REF_RE, attrs), obj) for attrs, obj in _REF_RE.findall(refs + "<")]
            out.append((tag, pairs))
        return out
    for el in root.iter():
        refs = [c for c in el if local_name(c.tag) == "ObjectRef"]
        if refs:
            out.append((local_name(el.tag), [(c.get("PageRef"), "".join(c.itertext()).strip()) for c in refs]))
    return out


def _first_group(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    return m.group(1) if m else None


def first_page_parts(pages: list[OfdPage], templates: dict[str, OfdPage]) -> list[OfdPage]:
    """The first page and the templates it draws on (the first template when it names none)."""
    if not pages:
        return []
    first = pages[0]
    return [first] + [templates[t] for t in first.template_ids or list(templates)[:1] if t in templates]
