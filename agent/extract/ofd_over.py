"""What a viewer draws over and under an OFD page or template from other
parts, and text a page holds where no viewer draws it.

`ofd_drawn` judges a part against its own objects. A viewer draws a page
as: its Background templates, its Body templates, its content, its
Foreground templates (GB/T 33190 CT_Page Template ZOrder, else the
TemplatePage's, else Background; each kind in the order the page names
them), then the page's annotations (the Annotations part Document.xml
names: each Annot's Appearance, a block placed at its Boundary, unless the
Annot is Visible="false"). So an opaque cover in any part drawn after a
page's or a template's text hides it as one drawn after it in its own part
would, by the same rules (`ofd_drawn._cover`: opaque, upright, at least
MIN_COVER across; a seal picture with transparency covers nothing): the
page's content over its Background and Body templates, a Foreground
template over the page and the templates under it, and so on. And white
text shows on something dark drawn before it in a part drawn under its
own (`ofd_faint`): a page's white title on a band its Background template
draws. A template is judged as drawn on the document's first page, the
only one whose templates are read.

Graphic units are drawn from a Layer or PageBlock: a TextObject anywhere
else (in a Clip's Area, whose shapes only clip; inside a PathObject, a
TextCode or an element that holds no units) is drawn by no viewer, and is
`undrawn_text`.

What cannot be told (a part that does not parse, a template or
annotation file not found) covers nothing: a value a viewer shows is never
lost for a trick caught.
"""

from __future__ import annotations

import posixpath
from typing import Callable
from xml.etree.ElementTree import Element

from agent.errors import ExtractError
from agent.extract.ofd_drawn import (
    _CONTAINERS, MIN_COVER, FillOf, _cover, _own_clips, _rect, numbers, page_box, unseen_text,
)
from agent.extract.ofd_faint import Underlay, faint_text, maybe_faint, underlays
from agent.extract.ofd_images import Resources, _Package
from agent.extract.ofd_markup import loose_tree
from agent.extract.pdf_boxes import Box, meet
from agent.extract.xml_parse import local_name, parse_xml, xml_text

_UNITS = ("PathObject", "ImageObject")
_UNREADABLE = frozenset({"corrupt", "unsupported-format"})
MAX_COVER_PARTS = 64   # templates and annotation files looked at for one page; an invoice has 1 or 2
MAX_LOOSE_TAGS = 50_000   # as ofd_package: a page that does not parse and has more is not built
Cover = tuple[Box, "str | None"]   # an opaque box drawn over text, with the image ResourceID that must be opaque
Under = Callable[[], "list[Underlay]"]   # what is drawn under a part, found when asked (there is white text)


class Drawing:
    """What a document's parts are drawn with: the page box its CommonData
    gives (`page_box`), its image resources (ofd_images), and the parts
    drawn under and over each part of its pages (templates, annotations)."""

    def __init__(self, doc: Element | None = None, resources: Resources | None = None,
                 pkg: _Package | None = None, doc_dir: str = ""):
        self.default_area = page_box(doc) if doc is not None else None
        self.resources = resources
        self.templates: dict[str, str] = {}   # template ID -> its part's name (ofd_package fills it)
        self._doc, self._pkg, self._doc_dir = doc, pkg, doc_dir
        self._annots: dict[str, list[str]] | None = None
        self._pages: list[tuple[str, str]] | None = None
        self._drawn: dict[str, _Part] = {}
        self._around: dict[str, list[tuple[list[Cover], Under]]] = {}
        self._roots: dict[str, Element] = {}   # page ID -> the page as judged

    def unseen(self, root: Element, part_id: str | None = None) -> dict[Element, str]:
        """`ofd_drawn.unseen_text` and `ofd_faint.faint_text` of a part of
        this document, with what the parts drawn over it and under it draw
        when it is the page or the template `part_id` (`_around_part`), and
        its `undrawn_text`."""
        res = self.resources
        opaque = res.opaque if res is not None else None
        fill_of = self._fill_of()
        found: dict[Element, str] = {}
        faint = maybe_faint(root, fill_of)
        for over, under in self._around_part(root, part_id):
            for el, why in unseen_text(root, self.default_area, opaque, fill_of, over).items():
                found.setdefault(el, why)
            if faint:
                for el, why in faint_text(root, under(), fill_of, res.ink_under if res is not None else None,
                                          opaque).items():
                    found.setdefault(el, why)
        for el, why in undrawn_text(root).items():
            found.setdefault(el, why)
        return found

    def _around_part(self, root: Element, part_id: str | None) -> list[tuple[list[Cover], Under]]:
        """(covers drawn over it, what is drawn under it) of a page or a
        template; both, for an ID that names a page and a template (a
        document that does so is judged as each)."""
        if part_id is None:
            return [([], list)]
        if part_id not in self._around:
            around = []
            if part_id in self.templates:
                around.append(self._around_template(part_id))
            if part_id not in self.templates or part_id in dict(self._page_list()):
                if part_id not in self.templates:   # a template on it is judged against it, not parsed again
                    self._roots.setdefault(part_id, root)
                around.append(self._around_page(root, part_id))
            self._around[part_id] = around
        return self._around[part_id]

    def _around_page(self, root: Element, page_id: str) -> tuple[list[Cover], Under]:
        stack = self._stack(root)
        at = stack.index(None)
        over = [c for tpl in stack[at + 1:] for c in self._part(self.templates[tpl]).covers()]
        below = [self._part(self.templates[tpl]) for tpl in stack[:at]]
        return over + self._annotation_covers(page_id), lambda: [u for part in below for u in part.under()]

    def _around_template(self, template_id: str) -> tuple[list[Cover], Under]:
        # Judged on the document's first page: a template's text is read
        # only as part of it (ofd_package.first_page_parts), and ofd.py's
        # tags name page objects only. Where that page names the template
        # more than once, its topmost drawing is the one that shows most;
        # where it names it not at all (read all the same), under it all.
        pages = self._page_list()
        if not pages:
            return [], list
        page_id, name = pages[0]
        page = self._roots[page_id] if page_id in self._roots else self._parse(name, loose=True)
        stack = self._stack(page) if page is not None else [None]
        at = max((i for i, tpl in enumerate(stack) if tpl == template_id), default=-1)
        parts = [self._part(self.templates[tpl]) if tpl is not None else _Part(lambda: page, self._fill_of())
                 for tpl in stack]
        over = [c for part in parts[at + 1:] for c in part.covers()]
        below = parts[:max(at, 0)]
        return over + self._annotation_covers(page_id), lambda: [u for part in below for u in part.under()]

    def _stack(self, page: Element) -> list[str | None]:
        """The templates page `page` names (by ID, each as often as named)
        and the page itself (None), in the order a viewer draws them: its
        Background templates, its Body templates, itself, its Foreground
        templates (GB/T 33190 CT_Page Template ZOrder, else the
        TemplatePage's ZOrder, else Background)."""
        defaults = {(t.get("ID") or ""): (t.get("ZOrder") or "").strip()
                    for t in (self._doc.iter() if self._doc is not None else ()) if local_name(t.tag) == "TemplatePage"}
        named = [((t.get("TemplateID") or "").strip(), (t.get("ZOrder") or "").strip())
                 for t in page.iter() if local_name(t.tag) == "Template"]
        layers: dict[str, list[str]] = {"Background": [], "Body": [], "Foreground": []}
        for tpl, zorder in named[:MAX_COVER_PARTS]:
            if tpl in self.templates:
                zorder = zorder or defaults.get(tpl, "")
                layers[zorder if zorder in layers else "Background"].append(tpl)
        return layers["Background"] + layers["Body"] + [None] + layers["Foreground"]

    def _part(self, name: str) -> _Part:
        # A template part, parsed once, when first asked.
        if name not in self._drawn:
            self._drawn[name] = _Part(lambda: self._parse(name), self._fill_of())
        return self._drawn[name]

    def _annotation_covers(self, page_id: str) -> list[Cover]:
        covers: list[Cover] = []
        for name in self._annotation_files().get(page_id.strip(), [])[:MAX_COVER_PARTS]:
            annots = self._parse(name)
            for annot in (a for a in (annots.iter() if annots is not None else ()) if local_name(a.tag) == "Annot"):
                if (annot.get("Visible") or "").strip().lower() == "false":
                    continue
                for look in (c for c in annot if local_name(c.tag) == "Appearance"):
                    covers.extend(_appearance_covers(look, self._fill_of()))
        return covers

    def _fill_of(self) -> FillOf | None:
        return self.resources.fill_color if self.resources is not None else None

    def _page_list(self) -> list[tuple[str, str]]:
        """(ID, part name) of the pages Document.xml lists, as ofd_package reads them."""
        if self._pages is None:
            self._pages = []
            for el in (self._doc.iter() if self._doc is not None and self._pkg is not None else ()):
                if local_name(el.tag) == "Page" and (path := self._pkg.resolve(self._doc_dir, el.get("BaseLoc"))):
                    self._pages.append((el.get("ID") or path, path))
        return self._pages

    def _annotation_files(self) -> dict[str, list[str]]:
        """Page ID -> the annotation parts the document's Annotations part lists for it."""
        if self._annots is None:
            self._annots = {}
            index_el = next((c for c in self._doc.iter() if local_name(c.tag) == "Annotations"), None) \
                if self._doc is not None and self._pkg is not None else None
            name = self._pkg.resolve(self._doc_dir, "".join(index_el.itertext())) if index_el is not None else None
            index = self._parse(name) if name else None
            for page in (p for p in (index.iter() if index is not None else ()) if local_name(p.tag) == "Page"):
                for loc in (c for c in page if local_name(c.tag) == "FileLoc"):
                    part = self._pkg.resolve(posixpath.dirname(name), "".join(loc.itertext()))
                    if part:
                        self._annots.setdefault((page.get("PageID") or "").strip(), []).append(part)
        return self._annots

    def _parse(self, name: str, loose: bool = False) -> Element | None:
        """A part, parsed; with `loose`, one that does not parse is built
        as far as its tags nest (ofd_markup.loose_tree, as ofd_package walks
        such a page), unless it has more than MAX_LOOSE_TAGS tags."""
        try:
            data = self._pkg.read(name) if self._pkg is not None else None
        except KeyError:
            return None
        if data is None:
            return None
        try:
            return parse_xml(data)
        except ExtractError as e:
            if e.reason not in _UNREADABLE:
                raise
        if not loose:
            return None
        try:
            text = xml_text(data).replace("\r\n", "\n").replace("\r", "\n")
        except ExtractError:
            return None
        if text.count("<") > MAX_LOOSE_TAGS:
            return None
        tree = loose_tree(text)
        return tree[0] if len(tree) == 1 else tree


class _Part:
    """A part drawn over or under another: its covers (ofd_drawn's rules)
    and what text drawn after it may lie on (ofd_faint), each found when
    first asked, from `root()`, None when it does not parse."""

    def __init__(self, root: Callable[[], Element | None], fill_of: FillOf | None):
        self._parse, self._fill_of = root, fill_of
        self._parsed: list[Element | None] = []
        self._covers: list[Cover] | None = None
        self._under: list[Underlay] | None = None

    def covers(self) -> list[Cover]:
        if self._covers is None:
            root = self._root()
            self._covers = [] if root is None else _covers(root, self._fill_of)
        return self._covers

    def under(self) -> list[Underlay]:
        if self._under is None:
            root = self._root()
            self._under = [] if root is None else underlays(root, self._fill_of)
        return self._under

    def _root(self) -> Element | None:
        if not self._parsed:
            self._parsed.append(self._parse())
        return self._parsed[0]


def undrawn_text(root: Element) -> dict[Element, str]:
    """The TextObjects of `root` (a page or template, parsed) that are not
    held by a Layer or PageBlock, so that no viewer draws them -> why."""
    found: dict[Element, str] = {}
    for parent in root.iter():
        tag = local_name(parent.tag)
        for child in parent:
            if local_name(child.tag) == "TextObject" and tag not in _CONTAINERS:
                found[child] = f"nested in a {tag}, where no viewer draws text"
    # A Layer or PageBlock inside a unit or a clip is not drawn either.
    for unit in (el for el in root.iter() if local_name(el.tag) in ("Clips", "TextObject") + _UNITS):
        for inner in unit.iter():
            if inner is not unit and local_name(inner.tag) == "TextObject":
                found.setdefault(inner, f"nested in a {local_name(unit.tag)}, where no viewer draws text")
    return found


def _covers(root: Element, fill_of: FillOf | None) -> list[tuple[Box, str | None]]:
    """The opaque covers a part draws, in its own space, in no order: the
    units `ofd_drawn._drawn` gives, with their clips and DrawParam, but
    walked without placing what cannot cover (text, unfilled paths)."""
    out = []
    stack: list[tuple[Element, list[tuple[Box, bool]], str | None]] = [(root, [], None)]
    while stack:
        el, clips, param = stack.pop()
        tag = local_name(el.tag)
        param = (el.get("DrawParam") or "").strip() or param
        if tag in _UNITS:
            if (tag == "ImageObject" or (el.get("Fill") or "").strip().lower() == "true") and \
                    (cover := _cover(el, tag, clips + _own_clips(el), param, fill_of)) is not None:
                out.append(cover)
        elif tag not in ("TextObject", "Clips"):
            if tag in _CONTAINERS:
                clips = clips + _own_clips(el)
            stack.extend((child, clips, param) for child in el)
    return out


def _appearance_covers(look: Element, fill_of: FillOf | None) -> list[tuple[Box, str | None]]:
    # An Appearance is a block at its Boundary: its units are placed from
    # that box's corner and cut by it.
    box = _rect(numbers(look.get("Boundary"), 4))
    if box is None:
        return []
    x, y = box[0], box[1]
    out = []
    for (x0, y0, x1, y1), image in _covers(look, fill_of):
        placed = meet((x0 + x, y0 + y, x1 + x, y1 + y), box)
        if min(placed[2] - placed[0], placed[3] - placed[1]) >= MIN_COVER:
            out.append((placed, image))
    return out
