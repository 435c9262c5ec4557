"""Second, closer looks at small regions of a page OCR has read once.

The whole-page pass reads a photo at ~130 dpi in grey. Two things it
misses on paper invoices, and where to look again:
- a faint date (a worn dot-matrix or thermal print): the label 日期 /
  开票日期 / Date was read, its value was not. The strip beside the label
  is cut out at full resolution, straightened along the label's line,
  its red ink dropped (the red channel: a 发票专用章 over the date turns
  white) and its background divided out, then handed to the recogniser
  alone (no detection: the detector is what missed it), in windows a
  little above and below the label's row;
- a title printed red or brown under the red 监制 seal: the line near the
  top that holds most of a title's characters is read again, wider than
  the detector's box, once with red ink dropped, once in grey and once
  with only red ink kept, and each reading is mapped to a known title only
  when unambiguous (`known_titles.match_title`).
A value is kept only when the readings agree: a date read the same in two
windows and no other date read anywhere; a title that every reading which
maps at all maps to. Otherwise the field stays empty and a note says why.
A 税额 that does not add up with the 金额 to the 价税合计 is read again
(`read_tax_again`), its box cut out wider and read with red ink dropped
and in grey: what the caller weighs is whether it reads twice alike.
Pure: the recogniser is passed in (`ocr.recognise_lines`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Sequence

from PIL import Image, ImageFilter, ImageOps

from agent.extract.known_titles import match_title, region_of_code, title_characters
from agent.extract.ocr_layout import TextBox

# Text lines of images in, their readings out (same order).
Recognise = Callable[[list[Image.Image]], list[str]]

# 日期 itself, or 开票?期 with its 日 misread ("开票0期"), or Date; never
# another date's label (有效日期, 出生日期): no other word before 日期.
_DATE_LABEL_RE = re.compile(r"(?<![\u4e00-\u9fff])(?:(?:开票|填开|乘车|交易)?日[ ]*期|开票.?期)[ ]*[:：]?"
                            r"|^[ ]*date\b[ ]*[:：]?", re.I)
# A window's edges cut glyphs of the label or the page edge, which the
# recogniser reads as stray digits ("F2021-12-0470"): a date is the four
# digits before its first separator and two-digit month and day, whatever
# touches them; with 年月日 the 日 fences the day ("年05月209日" is none).
# The windows' vote, not the boundaries, is what guards against a misread.
_DATE_RE = re.compile(r"(20\d{2})(?:[-./](\d{2})[-./](\d{2})|年(\d{1,2})月(\d{1,2})日)")
# A first-pass line that starts a date but did not parse ("2026年090170").
_DATEISH_RE = re.compile(r"20\d{2}[ ]*[-./年]")
# Windows beside a label: centres this many label heights off its middle,
# nearest first; two heights each (one line, or one line and its leading).
_DATE_OFFSETS = (0.0, -0.3, 0.3, -0.6, 0.6, -0.9, 0.9)
_DATE_HEIGHTS = (1.3, 1.7)
_DATE_LENGTH = 14  # label heights: "2023年04月05日" is eleven glyphs
_DATE_BATCH = 6  # the recogniser's batch: windows are read six at a time
_DATE_MAX_WINDOWS = 18
_DATE_MAX_ANCHORS = 2
# An amount as the 合计 row prints it, perhaps with thousands commas.
_AMOUNT_RE = re.compile(r"\d[\d,]*\.\d{2}(?!\d)")
_CURRENCY = frozenset("¥￥Y")
_SUM_LABEL_RE = re.compile(r"^[ ]*合(?:[ ]*计)?[ ]*$")
_TITLE_MIN_CHARS = 3
_TITLE_TOP_SHARE = 0.4
_BACKGROUND_RADIUS = 8


@dataclass
class SecondLook:
    """What the closer looks gave: field values, and for each field looked
    for and left empty, why."""

    fields: dict = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def second_look(page: Image.Image, boxes: Sequence[TextBox], fields: dict, recognise: Recognise,
                skip: frozenset[str] | set[str] = frozenset()) -> SecondLook:
    """Look again at `page` (the image the boxes' `quad`s are in) for the
    date and the title that `fields` (the first pass) lacks and `skip`
    (what the caller knows already) does not name. Never raises for a
    readable page; a region outside the page is clipped."""
    out = SecondLook()
    if not any(b.quad for b in boxes):
        return out
    rgb = page.convert("RGB")
    if fields.get("date") is None and "date" not in skip:
        date, why = _look_for_date(rgb, boxes, recognise)
        if date is not None:
            out.fields["date"] = date
        elif why:
            out.notes["date"] = why
    if fields.get("title") is None and "title" not in skip:
        title, why = _look_for_title(rgb, boxes, region_of_code(fields.get("code")), recognise)
        if title is not None:
            out.fields["title"] = title
        elif why:
            out.notes["title"] = why
    return out


@dataclass(frozen=True)
class _Line:
    """A text line's frame on the page: where it starts, the unit vectors
    along and across it, its height and length, all in page pixels."""

    x: float
    y: float
    ux: float
    uy: float
    vx: float
    vy: float
    height: float
    length: float

    @classmethod
    def of(cls, quad) -> "_Line | None":
        (x0, y0), (x1, y1), _, (x3, y3) = quad[:4]
        length, height = math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)
        if length < 1 or height < 1:
            return None
        return cls(x0, y0, (x1 - x0) / length, (y1 - y0) / length, (x3 - x0) / height, (y3 - y0) / height,
                   height, length)

    def strip(self, img: Image.Image, along: float, across: float, length: float, height: float) -> Image.Image:
        """The straightened rectangle that starts `along` pixels along the
        line and `across` pixels below its top, `length` by `height`."""
        ox, oy = self.x + self.ux * along + self.vx * across, self.y + self.uy * along + self.vy * across
        ax, ay = self.ux * length, self.uy * length
        bx, by = self.vx * height, self.vy * height
        # PIL's QUAD: upper left, lower left, lower right, upper right.
        quad = (ox, oy, ox + bx, oy + by, ox + ax + bx, oy + ay + by, ox + ax, oy + ay)
        return img.transform((max(1, round(length)), max(1, round(height))), Image.Transform.QUAD, quad,
                             Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))


def _flatten(gray: Image.Image) -> Image.Image:
    """`gray` with its paper made even white (divided by the paper's own
    brightness, the ink filtered out of it) and its contrast stretched:
    faint print and print in shadow come out dark on white."""
    import numpy

    paper = gray.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(_BACKGROUND_RADIUS))
    ink = numpy.asarray(gray, dtype=numpy.float32) / numpy.maximum(numpy.asarray(paper, dtype=numpy.float32), 1)
    return ImageOps.autocontrast(Image.fromarray((numpy.clip(ink, 0, 1) * 255).astype(numpy.uint8)), cutoff=1)


def _red_dropped(rgb: Image.Image) -> Image.Image:
    # Red ink reflects red light: in the red channel a red seal is paper.
    return _flatten(rgb.getchannel("R"))


def _red_kept(rgb: Image.Image) -> Image.Image:
    # How much redder than green and blue a pixel is, dark where most red:
    # black and blue print, which are not redder, disappear.
    import numpy

    a = numpy.asarray(rgb, dtype=numpy.int16)
    redness = numpy.clip(a[..., 0] - numpy.maximum(a[..., 1], a[..., 2]), 0, 255).astype(numpy.uint8)
    return ImageOps.autocontrast(ImageOps.invert(Image.fromarray(redness)), cutoff=1)


def _date_anchors(boxes: Sequence[TextBox]) -> list[tuple[_Line, float, float]]:
    """(line, where its value may start, how far it may run) for each date
    label, then each date-shaped line that did not parse, top first."""
    labels, shaped = [], []
    for box in sorted(boxes, key=lambda b: b.top):
        line = _Line.of(box.quad) if box.quad else None
        if line is None:
            continue
        m = _DATE_LABEL_RE.search(box.text)
        if m:
            # The label may be only part of the box: start where it ends.
            start = line.length * m.end() / max(1, len(box.text))
            labels.append((line, start, _DATE_LENGTH * line.height))
        elif _DATEISH_RE.search(box.text):
            shaped.append((line, -line.height / 2, line.length + 2 * line.height))
    return (labels + shaped)[:_DATE_MAX_ANCHORS]


def _look_for_date(rgb: Image.Image, boxes: Sequence[TextBox], recognise: Recognise) -> tuple[dt.date | None, str]:
    anchors = _date_anchors(boxes)
    if not anchors:
        return None, ""
    windows = [(line, start, length, off, h) for line, start, length in anchors
               for off in _DATE_OFFSETS for h in _DATE_HEIGHTS][:_DATE_MAX_WINDOWS]
    votes: Counter[dt.date] = Counter()
    for i in range(0, len(windows), _DATE_BATCH):
        strips = []
        for line, start, length, off, h in windows[i:i + _DATE_BATCH]:
            height = h * line.height
            across = line.height / 2 + off * line.height - height / 2
            strips.append(_red_dropped(line.strip(rgb, start, across, length, height)))
        for text in recognise(strips):
            votes.update(_dates_in(text))
        if _settled(votes):
            break
    if not votes:
        return None, "the date label was found but no date could be read beside it"
    (best, count), *others = votes.most_common()
    if others:
        dates = ", ".join(str(d) for d in sorted(votes))
        return None, f"a second look beside the date label read different dates ({dates})"
    if count < 2:
        return None, f"a second look beside the date label read {best} only once"
    return best, ""


def _settled(votes: Counter) -> bool:
    return len(votes) == 1 and next(iter(votes.values())) >= 2


def _dates_in(text: str) -> list[dt.date]:
    out = []
    for m in _DATE_RE.finditer(text.replace(" ", "")):
        try:
            out.append(dt.date(*(int(g) for g in m.groups() if g is not None)))
        except ValueError:
            continue
    return out


def _title_box(boxes: Sequence[TextBox]) -> TextBox | None:
    """The line near the top of the print holding the most title
    characters (at least three), or None."""
    placed = [b for b in boxes if b.quad]
    if not placed:
        return None
    top, bottom = min(b.top for b in placed), max(b.bottom for b in placed)
    chars = title_characters()
    best, most = None, _TITLE_MIN_CHARS - 1
    for box in placed:
        if box.middle > top + (bottom - top) * _TITLE_TOP_SHARE:
            continue
        count = sum(1 for c in set(box.text) if c in chars)
        if count > most:
            best, most = box, count
    return best


def _look_for_title(rgb: Image.Image, boxes: Sequence[TextBox], region: str | None,
                    recognise: Recognise) -> tuple[str | None, str]:
    box = _title_box(boxes)
    line = _Line.of(box.quad) if box is not None else None
    if line is None:
        return None, ""
    # The detector often boxes only part of a title it cannot read well.
    margin = line.length / 4 + line.height / 2
    cut = line.strip(rgb, -margin, -line.height * 0.1, line.length + 2 * margin, line.height * 1.2)
    readings = recognise([_red_dropped(cut), _flatten(cut.convert("L")), _red_kept(cut)])
    titles, elsewhere, whys = set(), set(), []
    for text in readings:
        title, why = match_title(text, region)
        whys.append(why)
        if title is not None:
            titles.add(title)
        # A reading that is plainly another region's title is a doubt the
        # 代码's region must not paper over.
        elsewhere.add(match_title(text)[0])
    elsewhere -= {None, *titles}
    if len(titles) == 1 and not elsewhere:
        return titles.pop(), ""
    if titles:
        return None, f"the title reads as several titles ({', '.join(sorted(titles | elsewhere))})"
    return None, "the title could not be read: " + "; ".join(whys)


def read_tax_again(page: Image.Image, boxes: Sequence[TextBox], fields: dict,
                   recognise: Recognise) -> tuple[Decimal | None, ...]:
    """The 合计 row's 税额, read again when `fields` (the first pass) hold a
    价税合计 and a 税额 that does not add up with the 金额 to it (or no 金额,
    or no 税额): the box printing it (the lowest whose digits hold the
    税额's digits, one with a currency sign first; with no 税额 read, the
    last box on the 合计 label's row) cut out of `page` with a margin of a
    line height and read twice, red ink dropped and in grey. Each
    reading's last amount, None where it reads none; empty when nothing
    was read again. Never raises: a closer look is an extra."""
    amount, tax, total = (fields.get(n) for n in ("amount", "tax", "total"))
    if not isinstance(total, Decimal) or isinstance(tax, Decimal) and amount is not None and amount + tax == total:
        return ()
    try:
        box = _tax_box(boxes, tax if isinstance(tax, Decimal) else None)
        line = _Line.of(box.quad) if box is not None else None
        if line is None:
            return ()
        cut = line.strip(page.convert("RGB"), -line.height, -line.height / 4, line.length + 2 * line.height,
                         line.height * 1.5)
        out: list[Decimal | None] = []
        for text in recognise([_red_dropped(cut), _flatten(cut.convert("L"))]):
            amounts = _AMOUNT_RE.findall(text.replace(" ", ""))
            out.append(Decimal(amounts[-1].replace(",", "")) if amounts else None)
        return tuple(out)
    except Exception:  # noqa: BLE001 - the first pass's reading stands
        return ()


def _tax_box(boxes: Sequence[TextBox], tax: Decimal | None) -> TextBox | None:
    placed = [b for b in boxes if b.quad]
    if tax is not None:
        digits = re.sub(r"\D", "", f"{tax:.2f}")
        needles = {n for n in (digits, digits.rstrip("0")) if len(n) >= 3}
        found = [b for b in placed if any(n in re.sub(r"\D", "", b.text) for n in needles)]
        return max(found, key=lambda b: (bool(_CURRENCY & set(b.text)), b.bottom), default=None)
    # 合计 alone (not 价税合计), or its two characters spaced apart as boxes.
    labels = [b for b in placed if _SUM_LABEL_RE.match(b.text)]
    if not labels:
        return None
    label = max(labels, key=lambda b: b.bottom)
    row = [b for b in placed if b.left > label.right and abs(b.middle - label.middle) < label.height / 2
           and re.search(r"\d", b.text)]
    # The row prints 金额 then 税额: with one amount found, it is the 金额.
    return max(row, key=lambda b: b.right) if len(row) >= 2 else None
