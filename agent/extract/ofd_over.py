"""What a viewer draws over an OFD page from other parts, and text a page
holds where no viewer draws it.

`ofd_drawn` judges a part against its own objects. A viewer draws a page
as: its Background templates, its content, its Foreground templates
(GB/T 33190 CT_Page Template ZOrder), then the page's annotations (the
Annotations part Document.xml names: each Annot's Appearance, a block
placed at its Boundary, unless the Annot is Visible="false"). So an opaque
cover in a Foreground template or an annotation's Appearance hides the
page's text under it as one drawn after it on the page would, by the same
rules (`ofd_drawn._cover`: opaque, upright, at least MIN_COVER across; a
seal picture with transparency covers nothing). Background templates and
the page's text they are under are not looked at here.

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
from xml.etree.ElementTree import Element

from agent.errors import ExtractError
from agent.extract.ofd_drawn import _CONTAINERS, MIN_COVER, FillOf, _cover, _drawn, _rect, numbers, page_box, unseen_text
from agent.extract.ofd_images import Resources, _Package
from agent.extract.pdf_boxes import Box, meet
from agent.extract.xml_parse import local_name, parse_xml

_UNITS = ("PathObject", "ImageObject")
_UNREADABLE = frozenset({"corrupt", "unsupported-format"})
MAX_COVER_PARTS = 64   # templates and annotation files looked at for one page; an invoice has 1 or 2


class Drawing:
    """What a document's parts are drawn with: the page box its CommonData
    gives (`page_box`), its image resources (ofd_images), and the parts
    drawn over its pages (Foreground templates, annotations)."""

    def __init__(self, doc: Element | None = None, resources: Resources | None = None,
                 pkg: _Package | None = None, doc_dir: str = ""):
        self.default_area = page_box(doc) if doc is not None else None
        self.resources = resources
        self.templates: dict[str, str] = {}   # template ID -> its part's name (ofd_package fills it)
        self._doc, self._pkg, self._doc_dir = doc, pkg, doc_dir
        self._annots: dict[str, list[str]] | None = None
        self._over: dict[str, list[tuple[Box, str | None]]] = {}

    def unseen(self, root: Element, page_id: str | None = None) -> dict[Element, str]:
        """`ofd_drawn.unseen_text` of a part of this document, with what its
        Foreground templates and annotations draw over it when it is the
        page `page_id`, and its `undrawn_text`."""
        res = self.resources
        over = self._covers_over(root, page_id) if page_id is not None else []
        found = unseen_text(root, self.default_area, res.opaque if res is not None else None,
                            res.fill_color if res is not None else None, over)
        for el, why in undrawn_text(root).items():
            found.setdefault(el, why)
        return found

    def _covers_over(self, root: Element, page_id: str) -> list[tuple[Box, str | None]]:
        if page_id not in self._over:
            fill_of = self.resources.fill_color if self.resources is not None else None
            covers: list[tuple[Box, str | None]] = []
            parts = [self.templates.get((t.get("TemplateID") or "").strip()) for t in root.iter()
                     if local_name(t.tag) == "Template" and (t.get("ZOrder") or "").strip() == "Foreground"]
            for name in [p for p in parts if p][:MAX_COVER_PARTS]:
                tpl = self._parse(name)
                if tpl is not None:
                    covers.extend(_covers(tpl, fill_of))
            for name in self._annotation_files().get(page_id.strip(), [])[:MAX_COVER_PARTS]:
                annots = self._parse(name)
                for annot in (a for a in (annots.iter() if annots is not None else ())
                              if local_name(a.tag) == "Annot"):
                    if (annot.get("Visible") or "").strip().lower() == "false":
                        continue
                    for look in (c for c in annot if local_name(c.tag) == "Appearance"):
                        covers.extend(_appearance_covers(look, fill_of))
            self._over[page_id] = covers
        return self._over[page_id]

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

    def _parse(self, name: str) -> Element | None:
        try:
            return parse_xml(self._pkg.read(name))
        except ExtractError as e:
            if e.reason in _UNREADABLE:
                return None
            raise
        except KeyError:
            return None


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
    # The opaque covers a part draws, in its own space.
    out = []
    for el, clips, param in _drawn(root):
        tag = local_name(el.tag)
        if tag in _UNITS and (cover := _cover(el, tag, clips, param, fill_of)) is not None:
            out.append(cover)
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
