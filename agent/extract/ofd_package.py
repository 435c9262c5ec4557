"""An OFD package as parts: members found case-insensitively, pages and
templates with their text objects, index parts and tag files.

Apart from `ofd` (which reads invoice data out of these parts) because this
is the package's structure (GB/T 33190), with its own fallbacks for
malformed XML (regexes over page and tag text); it knows no invoice field.
"""

from __future__ import annotations

import html
import posixpath
import re
from xml.etree.ElementTree import Element

from agent.errors import ExtractError
from agent.extract.xml import local_name, parse_xml, text_of
from agent.safezip import SafeZip

# Fallback for tag files that are not well-formed XML: an element (any or no
# prefix) whose content is one or more ObjectRefs.
_TAG_REF_RE = re.compile(
    r"<(?:[\w.-]*:)?([\w.-]+)(?:\s[^>]*)?>\s*((?:<(?:[\w.-]*:)?ObjectRef\b[^>]*>\s*\d+\s*</(?:[\w.-]*:)?ObjectRef>\s*)+)<")
_REF_RE = re.compile(r"<(?:[\w.-]*:)?ObjectRef\b([^>]*)>\s*(\d+)\s*<")
_PAGE_REF_RE = re.compile(r"PageRef\s*=\s*[\"'](\d+)[\"']")
_TEXT_OBJECT_RE = re.compile(r"<(?:[\w.-]*:)?TextObject\b([^>]*)>(.*?)</(?:[\w.-]*:)?TextObject>", re.S)
_ID_RE = re.compile(r"\bID\s*=\s*[\"'](\d+)[\"']")
_TEXT_CODE_RE = re.compile(r"<(?:[\w.-]*:)?TextCode\b[^>]*>(.*?)</(?:[\w.-]*:)?TextCode>", re.S)


class OfdPage:
    """A page or template; its Content.xml is parsed on first use, since a
    5-page invoice with a goods list only needs the face page."""

    def __init__(self, pkg: "OfdPackage", id: str, path: str):
        self.id = id
        self.path = path
        self._pkg = pkg
        self._texts: dict[str, str] | None = None
        self._template_ids: list[str] = []
        self._ambiguous: dict[str, list[str]] = {}

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
    """A package part as XML; None when malformed (callers fall back), but an
    unsafe part (entities, DTD) is refused for the whole file."""
    try:
        return parse_xml(pkg.read(name))
    except ExtractError as e:
        if e.reason == "corrupt":
            return None
        raise


def document_pages(pkg: OfdPackage, doc: Element | None, doc_dir: str) -> tuple[list[OfdPage], dict[str, OfdPage]]:
    """The document's pages in order and its template pages by ID; when
    Document.xml lists none, the page-like parts of `doc_dir` in name order."""
    pages: list[OfdPage] = []
    templates: dict[str, OfdPage] = {}
    if doc is not None:
        for el in doc.iter():
            tag = local_name(el.tag)
            if tag in ("Page", "TemplatePage"):
                path = pkg.resolve(doc_dir, el.get("BaseLoc"))
                if path is None:
                    continue
                page = OfdPage(pkg, id=el.get("ID") or path, path=path)
                if tag == "Page":
                    pages.append(page)
                else:
                    templates[page.id] = page
    if not pages:  # Document.xml missing or unreadable: take page-like parts in name order
        pages = [OfdPage(pkg, id=n, path=n) for n in sorted(pkg.names)
                 if n.lower().startswith(doc_dir.lower() + "/") and re.search(r"(?i)pages?/.*content\.xml$", n)]
    return pages, templates


def _load_page(pkg: OfdPackage, page: OfdPage) -> None:
    data = pkg.read(page.path)
    try:
        root = parse_xml(data)
    except ExtractError as e:
        if e.reason != "corrupt":
            raise
        # Malformed page XML: read the text objects with a regex.
        text = data.decode("utf-8", "replace")
        for attrs, body in _TEXT_OBJECT_RE.findall(text):
            codes = _TEXT_CODE_RE.findall(body)
            obj_id = _first_group(_ID_RE, attrs) or _unnamed(page)
            _keep(page, obj_id, "".join(html.unescape(c).strip() for c in codes))
        return
    for el in root.iter():
        tag = local_name(el.tag)
        if tag == "Template" and el.get("TemplateID"):
            page._template_ids.append(el.get("TemplateID"))
        elif tag == "TextObject":
            codes = [c for c in el.iter() if local_name(c.tag) == "TextCode"]
            obj_id = (el.get("ID") or "").strip() or _unnamed(page)
            _keep(page, obj_id, "".join("".join(c.itertext()).strip() for c in codes))


def _keep(page: OfdPage, obj_id: str, text: str) -> None:
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
        text = pkg.read(name).decode("utf-8", "replace")
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
