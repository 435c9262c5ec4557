"""OFD page text by position, for OFDs whose data is only printed.

Many OFDs carry no CustomDatas, tags or XML attachment for some of what they
print (the goods lines, often), and some carry none at all. Each TextCode is
placed where it is drawn (`ofd_drawn.text_runs`): its TextObject's Boundary
origin plus the code's X/Y, through the object's CTM where there is one (OFD
units are mm, y down); text a viewer does not show is left out.
The runs are then laid out in rows as `pdf_geometry` does for PDF glyphs,
and the text goes to the same parser as a PDF's.
"""

from __future__ import annotations

from decimal import Decimal
from xml.etree.ElementTree import Element

from agent.extract.ofd_drawn import text_runs
from agent.extract.ofd_over import Drawing
from agent.extract.ofd_shown import element_unshown
from agent.extract.pdf_geometry import FACE_FIELDS, _Glyph, layout_glyphs
from agent.extract.text import ParsedText, normalize_text, parse_text
from agent.extract.xml_parse import local_name
from agent.model import Invoice, LineItem, Problem, field_zh

_POINTS_PER_MM = 72 / 25.4
_MAX_RUNS = 20_000
# The face's one line when the goods are on list pages: no goods line itself.
_LIST_MARKERS = ("详见销货清单", "详见清单")

__all__ = ["FACE_FIELDS", "read_by_position", "offer_by_position"]


def read_by_position(parts: list[Element], drawing: Drawing | None = None, page_id: str | None = None,
                     part_ids: list[str] | None = None) -> ParsedText:
    """The fields and items `text.parse_text` finds in the text of `parts`
    (a page and its templates, parsed, whose IDs are `part_ids`, or the
    page's alone `page_id`), laid out by position: only text a viewer
    shows (ofd_shown, and ofd_drawn, ofd_faint and ofd_over by the
    document's `drawing`, which knows what each part, by its ID, is drawn
    over and under)."""
    drawing = drawing or Drawing()
    ids = list(part_ids) if part_ids is not None else [page_id]
    runs: list[_Glyph] = []
    for n, root in enumerate(parts):
        runs.extend(_runs(root, drawing, ids[n] if n < len(ids) else None))
        if len(runs) > _MAX_RUNS:
            return ParsedText()
    kept, clashes = _without_overprints(runs)
    reading = parse_text(normalize_text(layout_glyphs(kept)))
    if clashes:
        # The fields the clashing texts would have given (glued into one
        # value): each is reported, and left to the other sources.
        glued = parse_text(normalize_text(layout_glyphs(runs))).fields
        shown = "; ".join(f"{a.text!r} over {b.text!r}" for a, b in clashes[:3])
        for name in (n for n, v in glued.items() if n != "title" and reading.fields.get(n) != v):
            reading.fields.pop(name, None)
            reading.problems.append(Problem(
                code="ofd-inconsistent", severity="error", field=name,
                message=(f"the OFD page prints text over other text where {name} is ({shown}); "
                         "it is not read, as which text shows cannot be told"),
                message_zh=f"OFD 页面在 {field_zh(name)} 处有文字重叠印刷，不读取，留待补录"))
    return reading


# Two runs of different text drawn over each other: this share of the
# narrower run's width covered, on one row. A fake-bold double prints the
# same text twice and is no clash; one-character runs (vertical labels,
# a ¥ beside its number) are left to the layout.
_OVERPRINT_SHARE = 0.8


def _without_overprints(runs: list[_Glyph]) -> tuple[list[_Glyph], list[tuple[_Glyph, _Glyph]]]:
    """`runs` without the pairs of different texts printed on the same spot
    (one over the other, so one is hidden or both are garbled: the layout
    would glue them into one value), and those pairs."""
    ordered = sorted(runs, key=lambda g: g.centre)
    clashing: set[int] = set()
    clashes: list[tuple[_Glyph, _Glyph]] = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.centre - a.centre > min(a.height, b.height) * 0.3:
                break
            if len(a.text) < 2 or len(b.text) < 2 or "".join(a.text.split()) == "".join(b.text.split()):
                continue
            overlap = min(a.right, b.right) - max(a.left, b.left)
            if overlap > _OVERPRINT_SHARE * min(a.right - a.left, b.right - b.left) > 0:
                clashing.update((id(a), id(b)))
                clashes.append((a, b))
    if not clashes:
        return runs, []
    return [g for g in runs if id(g) not in clashing], clashes


def offer_by_position(invoice: Invoice, reading: ParsedText, source: str) -> None:
    """Fill what `invoice` lacks from `reading`: a field only where it has
    none (a field it has is never replaced or contradicted from here), and
    the goods lines only when it has none and their 金额 and 税额 add up to
    its totals, so that one misplaced number is not stored as a line."""
    for name, value in reading.fields.items():
        # A field the OFD's own parts disagree on stays empty (ofd.py's
        # `ofd-inconsistent`): the page prints one of the two.
        if invoice.get(name) is None and not any(
                p.code == "ofd-inconsistent" and p.field == name for p in invoice.problems):
            invoice.offer(name, value, source)
    # Why a field is still empty (text printed over text), when the page
    # was its last chance; a field the data parts gave is not held up.
    invoice.problems.extend(p for p in reading.problems
                            if p not in invoice.problems and (p.field is None or invoice.get(p.field) is None))
    items = [i for i in reading.items if not any(m in i.name for m in _LIST_MARKERS)]
    if not invoice.items and items and _add_up(items, invoice):
        invoice.items.extend(items)


def _add_up(items: list[LineItem], invoice: Invoice) -> bool:
    amount, tax = invoice.get("amount"), invoice.get("tax")
    if not isinstance(amount, Decimal) or any(i.amount is None for i in items):
        return False
    if sum(i.amount for i in items) != amount:
        return False
    if isinstance(tax, Decimal):
        return sum(i.tax or Decimal(0) for i in items) == tax
    return all(i.tax is None for i in items)


def _runs(root: Element, drawing: Drawing, page_id: str | None) -> list[_Glyph]:
    out = []
    unseen = drawing.unseen(root, page_id)
    for obj in root.iter():
        if local_name(obj.tag) != "TextObject" or element_unshown(obj) is not None or obj in unseen:
            continue  # no text object, or one no viewer shows (ofd_shown, ofd_drawn, ofd_over)
        for run in text_runs(obj):
            # y up for the layout: the baseline is the glyphs' bottom.
            out.append(_Glyph(run.text, run.left * _POINTS_PER_MM, -run.baseline * _POINTS_PER_MM,
                              (run.left + run.width) * _POINTS_PER_MM,
                              (run.height - run.baseline) * _POINTS_PER_MM))
    return out
