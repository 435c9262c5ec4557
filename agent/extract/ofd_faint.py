"""White text on an OFD page, and what lies under it.

Text filled near white (ofd_shown.near_white: lighter than #F0F0F0) shows
nothing on an invoice's white paper, but a white title on a dark band is
print: refusing it empties a true field. As pdf_painted does for a PDF,
such a TextObject (its colour its own FillColor, else its DrawParam's) is
shown (`faint_text`) only when the centre of each of its glyphs lies on
something dark drawn before it. What is there is found from the top down,
among what its own part draws before it and what the parts drawn before
that part on the page draw (ofd_over: a page's Background and Body
templates, or what lies under a template):
- a filled PathObject whose colour, through its and its colour's Alpha,
  is at least DARK_INK on white (as pdf_painted), by its Boundary met with
  its clips: the glyph shows. Its colour is its own FillColor, else its
  DrawParam's; one that cannot be told (a ColorSpace of its own, a
  pattern, a shading, a DrawParam that gives none) is taken as dark; with
  no FillColor and no DrawParam the fill is transparent (GB/T 33190);
- an ImageObject whose picture is that dark under the glyph
  (ofd_images.ink_under: its lighter pixels); one turned or flipped, with
  an ImageMask, or not decoded, is taken as dark by its box;
- something lighter that hides what is under it (ofd_drawn._cover: an
  opaque upright rectangle or picture over the glyph's middle): the glyph
  is on it, and does not show;
- nothing: the glyph is on the white paper, and does not show.
One glyph that does not show is enough: the object's text is not what the
page shows (as for covers, ofd_drawn). A near-white object that cannot be
placed (no Boundary) is taken to be on paper. Text of any other colour is
not judged here: what cannot be told is taken as shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from xml.etree.ElementTree import Element

from agent.extract.ofd_drawn import FillOf, OpaqueImage, _alpha, _cover, _drawn, _rect, numbers, text_runs
from agent.extract.ofd_shown import near_white
from agent.extract.pdf_boxes import IDENTITY, Box, area, contains, map_box, meet
from agent.extract.pdf_shown import check_pairs
from agent.extract.xml_parse import local_name

DARK_INK = 32   # of 255, as pdf_painted: white shows on #DFDFDF or darker, not on paper

InkUnder = Callable[[str, Box], float]   # (ResourceID, region of its unit square) -> its ink there


@dataclass(frozen=True)
class Underlay:
    """A path or picture drawn before some text: `box`, where it may paint
    (page space, mm, y down); `ink`, a path's ink on white (0-255), or for
    a picture the most its Alpha lets it give; `image`, a picture's
    ResourceID, sampled over `unit` (where its unit square lies, upright)
    or, when `unit` is None, dark by its box; `cover`, the box it hides
    what is under it in, with the ResourceID whose picture must be opaque
    for that (ofd_drawn._cover), if any."""

    box: Box
    ink: float
    image: str | None = None
    unit: Box | None = None
    cover: tuple[Box, str | None] | None = None


def underlays(root: Element, fill_of: FillOf | None = None) -> list[Underlay]:
    """What part `root` draws that text drawn after it may lie on, in
    drawing order."""
    return [u for _, u in _underlays(root, fill_of)]


def maybe_faint(root: Element, fill_of: FillOf | None = None) -> bool:
    """Whether part `root` may hold near-white text, told cheaply: a
    TextObject with a near-white FillColor, or a DrawParam that gives one
    named by a TextObject or a Layer or PageBlock (whose text takes it).
    False: `faint_text` finds nothing there."""
    for el in root.iter():
        tag = el.tag   # a suffix is enough to look further (str.endswith: no local_name call per element)
        if not isinstance(tag, str) or not tag.endswith(("TextObject", "Layer", "PageBlock")):
            continue
        if tag.endswith("TextObject") and near_white(
                next((c for c in el if local_name(c.tag) == "FillColor"), None)) is not None:
            return True
        param = el.get("DrawParam")
        if param and fill_of is not None and near_white(fill_of(param.strip())) is not None:
            return True
    return False


def faint_text(root: Element, under: list[Underlay] = (), fill_of: FillOf | None = None,
               ink_under: InkUnder | None = None, opaque_image: OpaqueImage | None = None) -> dict[Element, str]:
    """The near-white TextObjects of `root` (a page or template, parsed)
    that do not show on what lies under them (see the module's rules) ->
    why. `under` is what the parts drawn before it draw (`underlays`),
    bottom first; `ink_under` says how dark a picture is under a glyph
    (without it a picture is taken as dark); `opaque_image` whether a
    picture hides what is under it (without it none does).

    Raises ExtractError "limit-exceeded" for a part whose white text and
    what lies under it make more than pdf_shown.MAX_PAIRS pairs."""
    texts = []
    for order, (el, _, param) in enumerate(_drawn(root)):
        if local_name(el.tag) != "TextObject":
            continue
        fill = next((c for c in el if local_name(c.tag) == "FillColor"), None)
        if fill is None and param and fill_of is not None:
            fill = fill_of(param)
        if (white := near_white(fill)) is not None:
            texts.append((order, el, white))
    found: dict[Element, str] = {}
    if not texts:
        return found
    own = _underlays(root, fill_of)
    check_pairs(len(texts), len(under) + len(own))
    opaque: dict[str, bool] = {}
    for order, el, white in texts:
        below = list(under) + [u for at, u in own if at < order]
        glyphs = [g for run in text_runs(el) for g in run.glyphs()]
        if not glyphs or not all(_shows(g, below, ink_under, opaque_image, opaque) for g in glyphs):
            found[el] = f"filled near white ({white}) with nothing dark drawn under it"
    return found


def _shows(glyph: Box, below: list[Underlay], ink_under: InkUnder | None, opaque_image: OpaqueImage | None,
           known: dict[str, bool]) -> bool:
    # From the top down: the first dark thing under the centre shows the
    # glyph; a lighter one that hides what is under it ends the search.
    x, y = (glyph[0] + glyph[2]) / 2, (glyph[1] + glyph[3]) / 2
    w, h = (glyph[2] - glyph[0]) / 4, (glyph[3] - glyph[1]) / 4
    middle = (glyph[0] + w, glyph[1] + h, glyph[2] - w, glyph[3] - h)
    for u in reversed(below):
        if not (u.box[0] <= x <= u.box[2] and u.box[1] <= y <= u.box[3]):
            continue
        if _ink(u, middle, ink_under) >= DARK_INK:
            return True
        if u.cover is not None and contains(u.cover[0], middle):
            image = u.cover[1]
            if image is None:
                return False
            if image not in known:
                known[image] = opaque_image is not None and opaque_image(image)
            if known[image]:
                return False
    return False


def _ink(u: Underlay, middle: Box, ink_under: InkUnder | None) -> float:
    if u.image is None:
        return u.ink
    if u.unit is None or ink_under is None:
        return u.ink   # not sampled: dark as far as its Alpha lets it be
    x0, y0, x1, y1 = u.unit
    sx, sy = x1 - x0, y1 - y0
    region = (max((middle[0] - x0) / sx, 0.0), max((middle[1] - y0) / sy, 0.0),
              min((middle[2] - x0) / sx, 1.0), min((middle[3] - y0) / sy, 1.0))
    return ink_under(u.image, region) * u.ink / 255.0


def _underlays(root: Element, fill_of: FillOf | None) -> list[tuple[int, Underlay]]:
    out = []
    for order, (el, clips, param) in enumerate(_drawn(root)):
        tag = local_name(el.tag)
        if tag not in ("PathObject", "ImageObject") or (el.get("Visible") or "").strip().lower() == "false":
            continue
        boundary = _rect(numbers(el.get("Boundary"), 4))
        if boundary is None:
            continue
        box = boundary
        for clip, _ in clips:
            box = meet(box, clip)
        if area(box) <= 0:
            continue
        share = _alpha(el.get("Alpha")) / 255.0
        cover = _cover(el, tag, clips, param, fill_of)
        if tag == "PathObject":
            ink = _path_ink(el, param, fill_of)
            if ink is not None:
                out.append((order, Underlay(box, ink * share, cover=cover)))
            continue
        resource = (el.get("ResourceID") or "").strip()
        if not resource or el.get("ImageMask") is not None:
            out.append((order, Underlay(box, 255.0 * share)))   # what it paints cannot be told: dark
            continue
        a, b, c, d, e, f = numbers(el.get("CTM"), 6) or IDENTITY
        unit = None
        if b == c == 0 and a > 0 and d > 0:
            unit = (boundary[0] + e, boundary[1] + f, boundary[0] + e + a, boundary[1] + f + d)
            box = meet(box, unit)   # where the picture paints: a centre beside it is not on it
        else:
            placed = map_box((0.0, 0.0, 1.0, 1.0), (a, b, c, d, e, f))
            box = meet(box, (placed[0] + boundary[0], placed[1] + boundary[1],
                             placed[2] + boundary[0], placed[3] + boundary[1]))
        out.append((order, Underlay(box, 255.0 * share, resource, unit, cover)))
    return out


def _path_ink(el: Element, param: str | None, fill_of: FillOf | None) -> float | None:
    """A filled path's ink on white (255: its colour cannot be told), or
    None when it fills nothing."""
    if (el.get("Fill") or "").strip().lower() != "true":
        return None
    fill = next((c for c in el if local_name(c.tag) == "FillColor"), None)
    if fill is None and param:
        fill = fill_of(param) if fill_of is not None else None
        if fill is None:
            return 255.0   # a DrawParam that gives no colour here: cannot be told
    if fill is None:
        return None   # no colour: transparent
    rgb = numbers(fill.get("Value"), 3)
    if fill.get("ColorSpace") is not None or len(fill) or rgb is None:
        return 255.0
    return _alpha(fill.get("Alpha")) / 255.0 * (255.0 - min(rgb))
