"""Where an OFD page draws its text, and whether a viewer shows it there.

A TextObject whose own attributes show it (ofd_shown) can still be out of
sight: drawn over, clipped away or off the paper. A reader that takes its
text reads a value no one sees, as the PDF reader would without its cover
and clip rules (pdf_covers, pdf_painted), whose thresholds these are. A
TextObject is not shown (`unseen_text`) when:
- covered: the middle half (each way) of one of its glyphs lies under an
  opaque object drawn after it in the same part: a filled PathObject that
  is one upright rectangle at least MIN_COVER across, with a FillColor
  (its own, else its DrawParam's or its Layer's DrawParam's, through their
  Relative chain: ofd_images; a Value, no pattern or shading) and no Alpha
  under 255 on it or its colour; or an upright ImageObject with no Alpha and no
  ImageMask whose picture decodes with no transparent pixel
  (`opaque_image`: a seal is a PNG with transparency, so the seller's
  name under it is read; a picture that is not decoded, JBIG2, covers
  nothing). A cover clipped to anything but one rectangle covers nothing.
  One glyph is enough: the object's text is then not what the page shows;
- clipped away: less than CLIPPED_SHARE of its glyphs' box lies inside
  the clip it is drawn under: its Clips (a Clip's Areas joined, Clips
  met), those of the Layer or PageBlock it is in and their Boundary (not
  its own Boundary: writers draw glyphs past it, viewers show them).
  A clip Area is bounded by its Path's (or Text's) Boundary through the
  Area's CTM, placed at its owner's Boundary: a box that holds the clip
  whatever the Path's own CTM and data say (converters write those
  oddly), so text outside it is outside the clip;
- off the page: less than CLIPPED_SHARE of that box lies inside the
  page's area: its PhysicalBox, or ApplicationBox when that is larger,
  of the page's (or template's) Area, else the document's PageArea.
What other parts (templates, annotations) draw over a part's text, and
text nested where no viewer draws it, are ofd_over's; white text on what
lies under it is ofd_faint's. What cannot be told (no Boundary, a
number that does not read, a DrawParam that is not found) is taken as shown:
a value a viewer shows is never lost for a trick caught. The glyph boxes
are those `ofd_geometry` lays the page out by (`text_runs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable
from xml.etree.ElementTree import Element

from agent.extract.pdf_boxes import (
    IDENTITY, LINETO, MOVETO, Box, area, contains, is_rectangle, map_box, meet, share_inside, upright,
)
from agent.extract.pdf_shown import check_pairs
from agent.extract.xml_parse import local_name

MIN_COVER = 0.35        # mm (1 pt, as pdf_covers): an object narrower than this covers no glyph one could read
CLIPPED_SHARE = 0.1     # as pdf_painted: text with less of its box inside its clip or the page shows nothing
DEFAULT_SIZE_MM = 3.5
_MAX_DELTAS = 10_000    # advances in one TextCode; a line of a page has < 200
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?")
_CONTAINERS = frozenset({"Layer", "PageBlock"})

OpaqueImage = Callable[[str], bool]   # a ResourceID -> whether its picture is opaque all over
FillOf = Callable[[str], "Element | None"]   # a DrawParam's ID -> the FillColor it gives, if any


@dataclass
class Run:
    """One TextCode as drawn: its text; for the layout (mm, y down) the
    left end of its baseline, its width and height as `ofd_geometry` has
    always reckoned them (no turn); and, for the rules, where it lies in
    its object's own space (X, Y, size, each character's advance) and
    the CTM and Boundary origin that place that space on the page."""

    text: str
    left: float
    baseline: float
    width: float
    height: float
    at: tuple[float, float]
    size: float
    advances: list[float]
    matrix: tuple[float, ...]
    origin: tuple[float, float]

    @property
    def box(self) -> Box:
        """The upright box bounding the run on the page."""
        x, y = self.at
        return self._placed((x, y - self.size, x + sum(self.advances[:-1]) + self.size, y))

    def glyphs(self) -> list[Box]:
        """Each character's box on the page: square for CJK and full-width,
        half as wide for others (as the run's width is reckoned)."""
        out, (x, y) = [], self.at
        for ch, advance in zip(self.text, self.advances):
            wide = self.size if ord(ch) > 0x2E7F else self.size / 2
            out.append(self._placed((x, y - self.size, x + wide, y)))
            x += advance
        return out

    def _placed(self, box: Box) -> Box:
        left, top, right, bottom = map_box(box, self.matrix)
        dx, dy = self.origin
        return left + dx, top + dy, right + dx, bottom + dy


def text_runs(obj: Element) -> list[Run]:
    """The runs a TextObject draws: each TextCode at its Boundary origin
    plus its X/Y, through the object's CTM; [] without a Boundary."""
    box = numbers(obj.get("Boundary"), 4)
    if box is None:
        return []
    size = number(obj.get("Size")) or DEFAULT_SIZE_MM
    matrix = numbers(obj.get("CTM"), 6) or IDENTITY
    a, b, c, d, e, f = matrix
    scale_x = abs(a) or 1.0
    out = []
    for code in obj:
        if local_name(code.tag) != "TextCode":
            continue
        text = "".join(code.itertext()).strip()
        if not text:
            continue
        x, y = number(code.get("X")) or 0.0, number(code.get("Y")) or 0.0
        deltas = _deltas(code.get("DeltaX"))
        estimated = [size if ord(ch) > 0x2E7F else size / 2 for ch in text]
        width = sum(deltas[:len(text) - 1]) + size if deltas else sum(estimated)
        advances = [deltas[i] if i < len(deltas) else estimated[i] for i in range(len(text))]
        out.append(Run(text, box[0] + a * x + c * y + e, box[1] + b * x + d * y + f, width * scale_x,
                       size * (abs(d) or 1.0), (x, y), size, advances, matrix, (box[0], box[1])))
    return out


def unseen_text(root: Element, default_area: Box | None = None, opaque_image: OpaqueImage | None = None,
                fill_of: FillOf | None = None, over: list[tuple[Box, str | None]] = ()) -> dict[Element, str]:
    """The TextObjects of `root` (a page or template, parsed) that no
    viewer shows there (see the module's rules) -> why. `default_area` is
    the document's page box (x0, y0, x1, y1 in mm) for a part with no
    Area of its own; `opaque_image` tells whether an image resource is
    opaque all over (without it no image covers); `fill_of` gives the
    FillColor a DrawParam gives (without it a path with no FillColor of
    its own covers nothing); `over` the covers (box, image ResourceID or
    None) other parts draw after all of it (ofd_over).

    Raises ExtractError "limit-exceeded" for a part whose text and covers
    make more than pdf_shown.MAX_PAIRS pairs to look at."""
    page = page_box(root) or default_area
    texts: list[tuple[int, Element, list[Run]]] = []
    covers: list[tuple[int, Box, str | None]] = []
    found: dict[Element, str] = {}
    for order, (el, clips, param) in enumerate(_drawn(root)):
        tag = local_name(el.tag)
        if tag == "TextObject":
            runs = text_runs(el)
            if not runs:
                continue
            texts.append((order, el, runs))
            boxes = [run.box for run in runs]
            why = _outside(boxes, [clip for clip, _ in clips], "its clip") or (
                _outside(boxes, [page], "the page's area") if page is not None else None)
            if why:
                found[el] = why
        elif tag in ("PathObject", "ImageObject") and (cover := _cover(el, tag, clips, param, fill_of)) is not None:
            covers.append((order, *cover))
    # `order` is now the last element's (the root is always one): drawn after all of it.
    covers.extend((order + 1 + i, *cover) for i, cover in enumerate(over))
    if texts and covers:
        check_pairs(len(texts), len(covers))
        _covered(texts, covers, opaque_image, found)
    return found


def page_box(root: Element) -> Box | None:
    """The box of a page's (or the document's CommonData's) Area: its
    PhysicalBox, or its ApplicationBox where that reaches further; None
    when it has none that reads."""
    area_el = next((c for c in root if local_name(c.tag) in ("Area", "PageArea")), None)
    if area_el is None:
        common = next((c for c in root if local_name(c.tag) == "CommonData"), None)
        return None if common is None else page_box(common)
    boxes = [_rect(numbers("".join(c.itertext()), 4)) for c in area_el
             if local_name(c.tag) in ("PhysicalBox", "ApplicationBox")]
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _drawn(root: Element) -> list[tuple[Element, list[tuple[Box, bool]], str | None]]:
    """Every element of `root` in drawing (document) order, with the clips
    it is drawn under ((box, exactly that box) for its own and its
    containers' Clips and Boundary) and the DrawParam it takes what it
    does not say from: its own, else its Layer's."""
    out: list[tuple[Element, list[tuple[Box, bool]], str | None]] = []
    stack: list[tuple[Element, list[tuple[Box, bool]], str | None]] = [(root, [], None)]
    while stack:
        el, clips, param = stack.pop()
        tag = local_name(el.tag)
        if tag in _CONTAINERS or tag in ("TextObject", "PathObject", "ImageObject"):
            clips = clips + _own_clips(el)
        param = (el.get("DrawParam") or "").strip() or param
        out.append((el, clips, param))
        if tag not in ("Clips", "TextObject", "PathObject", "ImageObject"):
            stack.extend((child, clips, param) for child in reversed(el))
    return out


def _own_clips(el: Element) -> list[tuple[Box, bool]]:
    """The clips a graphic unit or container sets on what it draws: its
    Boundary (GB/T 33190: a unit drawn beyond it is cut), but a TextObject's,
    and each Clip of
    its Clips, a box bounding its Areas' (exact when it has one Area of
    one upright rectangle)."""
    boundary = _rect(numbers(el.get("Boundary"), 4))
    # A TextObject's own Boundary is not taken to cut it: writers draw
    # glyphs past it (a baseline at the box's top), and viewers show them.
    out = [] if boundary is None or local_name(el.tag) == "TextObject" else [(boundary, True)]
    origin = (boundary[0], boundary[1]) if boundary is not None else (0.0, 0.0)
    for clips in (c for c in el if local_name(c.tag) == "Clips"):
        for clip in (c for c in clips if local_name(c.tag) == "Clip"):
            areas = [_clip_area(a, origin) for a in clip if local_name(a.tag) == "Area"]
            if not areas or any(a is None for a in areas):
                continue  # a clip that cannot be placed is taken to cut nothing
            box = (min(a[0][0] for a in areas), min(a[0][1] for a in areas),
                   max(a[0][2] for a in areas), max(a[0][3] for a in areas))
            out.append((box, len(areas) == 1 and areas[0][1]))
    return out


def _clip_area(area_el: Element, origin: tuple[float, float]) -> tuple[Box, bool] | None:
    shape = next((c for c in area_el if local_name(c.tag) in ("Path", "Text")), None)
    bound = _rect(numbers(shape.get("Boundary"), 4)) if shape is not None else None
    if bound is None:
        return None
    matrix = numbers(area_el.get("CTM"), 6) or IDENTITY
    box = map_box(bound, matrix)
    exact = (upright(matrix) and local_name(shape.tag) == "Path" and shape.get("CTM") is None
             and _rectangle_box(shape) == (0.0, 0.0, bound[2] - bound[0], bound[3] - bound[1]))
    return (box[0] + origin[0], box[1] + origin[1], box[2] + origin[0], box[3] + origin[1]), exact


def _cover(el: Element, tag: str, clips: list[tuple[Box, bool]], param: str | None = None,
           fill_of: FillOf | None = None) -> tuple[Box, str | None] | None:
    """(box on the page, image ResourceID or None) of a path or image that
    hides what is under it (see the module's rules; a path's FillColor is
    its own, else the one DrawParam `param` gives through `fill_of`), else None."""
    if (el.get("Visible") or "").strip().lower() == "false" or _alpha(el.get("Alpha")) < 255:
        return None
    boundary = _rect(numbers(el.get("Boundary"), 4))
    matrix = numbers(el.get("CTM"), 6) or IDENTITY
    if boundary is None or not upright(matrix):
        return None
    if tag == "PathObject":
        fill = next((c for c in el if local_name(c.tag) == "FillColor"), None)
        if fill is None and param and fill_of is not None:
            fill = fill_of(param)
        value = (fill.get("Value") or "") if fill is not None else ""
        if (el.get("Fill") or "").strip().lower() != "true" or fill is None or len(fill) or not value.split() \
                or numbers(value, len(value.split())) is None or _alpha(fill.get("Alpha")) < 255:
            return None  # not filled, or with a colour not its own, a pattern, a shading, some transparency
        shape = _rectangle_box(el)
        resource = None
    else:
        if el.get("ImageMask") is not None or not el.get("ResourceID"):
            return None
        shape, resource = (0.0, 0.0, 1.0, 1.0), el.get("ResourceID").strip()
    if shape is None:
        return None
    x, y, _, _ = boundary
    box = map_box(shape, matrix)
    box = (box[0] + x, box[1] + y, box[2] + x, box[3] + y)
    for clip, exact in clips:
        if not exact:
            return None  # clipped to some shape inside its box: what it leaves is not known
        box = meet(box, clip)
    if min(box[2] - box[0], box[3] - box[1]) < MIN_COVER:
        return None  # a rule of a table, or nothing left
    return box, resource


def _covered(texts: list, covers: list, opaque_image: OpaqueImage | None, found: dict[Element, str]) -> None:
    opaque: dict[str, bool] = {}
    last = max(at for at, _, _ in covers)
    for order, el, runs in texts:
        if order > last or el in found:
            continue
        whole = [run.box for run in runs]
        over = [(box, image) for at, box, image in covers
                if at > order and any(area(meet(box, run)) > 0 for run in whole)]
        if not over:
            continue   # nothing drawn after it meets it: its glyphs need not be placed
        for glyph in (g for run in runs for g in run.glyphs()):
            w, h = (glyph[2] - glyph[0]) / 4, (glyph[3] - glyph[1]) / 4
            middle = (glyph[0] + w, glyph[1] + h, glyph[2] - w, glyph[3] - h)
            cover = next((c for c in over if contains(c[0], middle) and _opaque(c[1], opaque_image, opaque)), None)
            if cover is not None:
                what = "an image" if cover[1] else "a filled rectangle"
                found[el] = f"covered by {what} drawn after it ({' '.join(f'{v:g}' for v in cover[0])})"
                break


def _opaque(image: str | None, opaque_image: OpaqueImage | None, known: dict[str, bool]) -> bool:
    # A path cover is opaque; an image only when its picture is (asked once).
    if image is None:
        return True
    if image not in known:
        known[image] = opaque_image is not None and opaque_image(image)
    return known[image]


def _outside(boxes: list[Box], clips: list[Box], where: str) -> str | None:
    whole = sum(area(b) for b in boxes)
    for clip in clips:
        inside = sum(area(meet(b, clip)) for b in boxes) / whole if whole > 0 else \
            min(share_inside(b, clip) for b in boxes)
        if inside < CLIPPED_SHARE:
            return f"drawn outside {where} ({inside:.0%} of it inside)"
    return None


def _rectangle_box(el: Element) -> Box | None:
    """The box of a path whose AbbreviatedData is one upright rectangle
    (M, then L only, then C or nothing), else None."""
    data = next((c.text or "" for c in el if local_name(c.tag) == "AbbreviatedData"), "").split()
    if data[-1:] == ["C"]:
        data = data[:-1]
    if len(data) not in (12, 15) or any(data[i] != ("M" if i == 0 else "L") for i in range(0, len(data), 3)):
        return None
    values = [number(v) for i, v in enumerate(data) if i % 3]
    if any(v is None for v in values):
        return None
    points = [(values[i], values[i + 1], MOVETO if i == 0 else LINETO) for i in range(0, len(values), 2)]
    if not is_rectangle(points):
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _rect(xywh: tuple[float, ...] | None) -> Box | None:
    # An OFD box (x y width height) as x0, y0, x1, y1; None when negative.
    if xywh is None or xywh[2] < 0 or xywh[3] < 0:
        return None
    x, y, w, h = xywh
    return x, y, x + w, y + h


def _alpha(text: str | None) -> float:
    value = number(text)
    return 255.0 if value is None else value


def _deltas(text: str | None) -> list[float]:
    """DeltaX values, with the `g count value` repetition expanded."""
    if not text:
        return []
    tokens = text.split()
    out: list[float] = []
    i = 0
    while i < len(tokens) and len(out) < _MAX_DELTAS:
        if tokens[i] == "g" and i + 2 < len(tokens):
            count, value = number(tokens[i + 1]), number(tokens[i + 2])
            if count is None or value is None:
                return []
            out.extend([value] * max(0, min(int(count), _MAX_DELTAS - len(out))))
            i += 3
            continue
        value = number(tokens[i])
        if value is None:
            return []
        out.append(value)
        i += 1
    return out


def number(text: str | None) -> float | None:
    """A number as OFD writes one (no exponent above 1e6); None otherwise."""
    if text is None or not _NUMBER_RE.fullmatch(text.strip()):
        return None
    value = float(text)
    return value if abs(value) < 1e6 else None


def numbers(text: str | None, count: int) -> tuple[float, ...] | None:
    """`count` numbers separated by spaces, or None."""
    parts = (text or "").split()
    if len(parts) != count:
        return None
    values = [number(p) for p in parts]
    return None if any(v is None for v in values) else tuple(values)  # type: ignore[arg-type]
