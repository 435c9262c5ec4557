"""Which OFD text objects a viewer shows (GB/T 33190 graphic units).

A TextObject can hold text no viewer draws, and a reader that takes it
reads a value no one sees: a tag naming a hidden object with one buyer or
amount while the page shows another, untagged, where it stood. As the PDF
reader does (pdf_painted), such text is no print. An object is not shown
when:
- it says Visible="false";
- its Alpha, times its FillColor's, leaves under FAINT_INK of 255;
- its glyphs are under MIN_EM_MM high: its Size through the scale of its CTM.
A fill lighter than #F0F0F0 (`near_white`) shows nothing on an invoice's
white paper but shows on a dark band: whether something dark is drawn
under it is `ofd_faint`'s.
What cannot be told (a colour space of its own, a number that does not
read) is taken as shown: a value a viewer shows is never lost for a trick
caught. Both page readers ask here: `ofd_package` (the parser's and the
tag-by-tag walk's objects) and `ofd_geometry` (text by position). Here
too the order a TextObject's codes show in (`drawn_order`). Where an
object is drawn (covered, clipped away, off the page) is `ofd_drawn`'s.
"""

from __future__ import annotations

import math
from typing import Callable
from xml.etree.ElementTree import Element

from agent.extract.xml_parse import local_name

FAINT_INK = 16      # of 255, as pdf_painted: under this opacity, or this far from white, shows nothing
MIN_EM_MM = 0.35    # 1 pt: glyphs smaller than this are not seen

Fill = tuple[str | None, str | None, str | None]   # a FillColor's Value, Alpha, ColorSpace


def unshown_reason(attribute: Callable[[str], object], fill: Fill | None) -> str | None:
    """Why a TextObject shows nothing, or None when it may show: `attribute`
    gives its attributes by name (None when absent, anything but a str
    when unreadable); `fill` its FillColor's, when it has one."""
    def text(name: str) -> str | None:
        value = attribute(name)
        return value.strip() if isinstance(value, str) else None

    if (text("Visible") or "").lower() == "false":
        return 'Visible="false"'
    _, fill_alpha, _ = fill or (None, None, None)
    alpha = _number(text("Alpha"), 255.0) * _number(fill_alpha, 255.0) / 255.0
    if alpha < FAINT_INK:
        return f"all but transparent (alpha {alpha:g} of 255)"
    size = _number(text("Size"), math.inf)
    ctm = [_number(v, math.nan) for v in (text("CTM") or "1 0 0 1 0 0").split()]
    scale = math.sqrt(abs(ctm[0] * ctm[3] - ctm[1] * ctm[2])) if len(ctm) == 6 else math.nan
    if math.isfinite(size) and math.isfinite(scale) and size * scale < MIN_EM_MM:
        return f"glyphs {size * scale:.3g} mm high"
    return None


def near_white(fill: Element | None) -> str | None:
    """The colour a FillColor gives, as written, when it is lighter than
    #F0F0F0 in the default RGB colour space (a ColorSpace of its own tells
    no colour: None), else None."""
    if fill is None or fill.get("ColorSpace") is not None:
        return None
    value = fill.get("Value") or ""
    rgb = [_number(v, -1.0) for v in value.split()]
    return value.strip() if len(rgb) == 3 and min(rgb) >= 255 - FAINT_INK else None


def element_unshown(obj: Element) -> str | None:
    """`unshown_reason` of a parsed TextObject element."""
    fill = next((c for c in obj if local_name(c.tag) == "FillColor"), None)
    return unshown_reason(obj.get, None if fill is None else
                          (fill.get("Value"), fill.get("Alpha"), fill.get("ColorSpace")))


def drawn_order(codes: list[tuple[str, str | None, str | None]], size: str | None = None) -> str:
    """The text of a TextObject's TextCodes (text, X, Y) as the page shows
    it: lines top to bottom, each left to right. A code without X or Y is
    placed where the one before it was (GB/T 33190), from 0. The file's
    order is no proof: two codes written right-to-left in the file draw
    "苏州交投" "物产有限公司" as one name all the same. "" when a position
    does not read as a number: where it is drawn cannot be told, and no
    text is better than text in the wrong order."""
    if len(codes) < 2:
        return "".join(text for text, _, _ in codes)
    placed, x, y = [], 0.0, 0.0
    for i, (text, raw_x, raw_y) in enumerate(codes):
        try:
            x = float(raw_x) if raw_x is not None else x
            y = float(raw_y) if raw_y is not None else y
        except ValueError:
            return ""
        if not (math.isfinite(x) and math.isfinite(y)):
            return ""
        placed.append((y, x, i, text))
    try:
        tolerance = max(float(size or 0) / 2, 0.5)
    except ValueError:
        tolerance = 0.5
    tolerance = tolerance if math.isfinite(tolerance) else 0.5
    # Lines by baseline (a code within half a glyph of the line's first is on
    # it), then left to right; the file's order breaks ties.
    placed.sort()
    out, line, top = [], [], None
    for entry in placed:
        if top is not None and entry[0] - top > tolerance:
            out += sorted(line, key=lambda e: (e[1], e[2]))
            line, top = [], None
        top = entry[0] if top is None else top
        line.append(entry)
    out += sorted(line, key=lambda e: (e[1], e[2]))
    return "".join(e[3] for e in out)


def _number(text: str | None, default: float) -> float:
    # A number as written; `default` when absent or unreadable (taken as shown).
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return value if math.isfinite(value) else default
