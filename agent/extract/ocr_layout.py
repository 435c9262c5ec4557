"""The page behind OCR's text lines: which way is up, how crooked it lies,
which lines form a row, and whether a bracket was printed full- or
half-width. Pure geometry on the engine's boxes and the page's pixels; the
engine itself is in `ocr.py`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

import zxingcpp
from PIL import Image

# A full-width bracket fills a CJK cell, a half-width one about 0.7 of it in
# the fonts invoices use. Measured from the ink between a bracket's
# neighbours: full 1.16-1.33, half 0.69-0.81 (the recogniser's own character
# positions wobble too much to tell: full 0.82-0.89, half 0.66-0.81).
_FULL_WIDTH_SHARE = 0.95
_BRACKETS = {c: pair for pair in (("（", "("), ("）", ")")) for c in pair}


@dataclass(frozen=True)
class TextBox:
    """One line of text the engine found: its box and its words. `quad`
    is the line's corners (clockwise from top left) in the pixels of the
    image the caller passed, before any downscaling or straightening: where
    a second, closer look at the page goes (`ocr_regions`)."""

    text: str
    left: float
    top: float
    right: float
    bottom: float
    quad: tuple[tuple[float, float], ...] = ()
    # The recogniser's confidence in each character of `text` (empty when
    # the engine did not say, or its pieces do not spell `text`).
    scores: tuple[float, ...] = ()

    @property
    def middle(self) -> float:
        """Vertical centre, for grouping boxes into rows."""
        return (self.top + self.bottom) / 2

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.bottom - self.top


@dataclass(frozen=True)
class EngineLine:
    """A line as the engine gives it: corners clockwise from top left, the
    text, and per character (or word of letters) its box, text and the
    recogniser's confidence (empty when not given)."""

    corners: Sequence[Sequence[float]]
    text: str
    char_boxes: Sequence[Any] = ()
    chars: Sequence[str] = ()
    char_scores: Sequence[float] = ()


def find_qr(img: Image.Image) -> Any:
    """The first QR code zxing decodes in `img` (its text, corners and
    orientation), or None."""
    found = zxingcpp.read_barcodes(img.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    return found[0] if found else None


def upright(img: Image.Image, qr: Any = None) -> Image.Image:
    """`img` turned by the quarter turns that make its QR code upright
    (`qr`, from `find_qr(img)`, or decoded here). The QR is printed square
    to the text, so this turns a page fed sideways or upside down (the
    recogniser reads upright lines only). Unchanged when no QR decodes."""
    qr = qr if qr is not None else find_qr(img)
    if qr is None:
        return img
    quarter = round(qr.orientation / 90) % 4
    turn = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}
    return img.transpose(turn[quarter]) if quarter else img


def page_boxes(gray: Image.Image, lines: list[EngineLine], scale: float = 1.0) -> list[TextBox]:
    """The lines as boxes on the page turned straight (see `skew`), their
    brackets as printed (see `brackets_as_printed`). `gray` is the page the
    engine read, in the same pixels; `scale` is its size over the caller's
    image, so each box's `quad` is in the caller's pixels."""
    turn = skew([line.corners for line in lines])
    boxes = []
    for line in lines:
        points = [rotate(p, turn) for p in line.corners]
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        quad = tuple((float(x) / scale, float(y) / scale) for x, y in line.corners[:4])
        text = brackets_as_printed(gray, line)
        boxes.append(TextBox(text, min(xs), min(ys), max(xs), max(ys), quad, _char_scores(line, text)))
    return boxes


def _char_scores(line: EngineLine, text: str) -> tuple[float, ...]:
    # The engine scores each CJK character and each run of letters or
    # digits; spread over the run's characters, when the pieces spell the
    # line (brackets_as_printed changes a bracket's width, not the count).
    pieces, scores = list(line.chars), list(line.char_scores)
    if not scores or len(pieces) != len(scores) or len("".join(pieces)) != len(text):
        return ()
    return tuple(float(score) for piece, score in zip(pieces, scores) for _ in piece)


def skew(quads: Sequence[Sequence[Sequence[float]]]) -> float:
    """The page's tilt in radians: the median slope of the long text lines'
    top edges. A scan fed crooked by a few degrees puts the right column's
    line a row above or below the left one's; rows are grouped after
    turning the boxes back by this much."""
    slopes = []
    for (x0, y0), (x1, y1), _, (x3, y3) in (q[:4] for q in quads):
        width, height = math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)
        if width > 3 * height:
            slopes.append(math.atan2(y1 - y0, x1 - x0))
    return statistics.median(slopes) if slopes else 0.0


def rotate(point: Sequence[float], angle: float) -> tuple[float, float]:
    """`point` turned by -`angle` about the origin."""
    x, y = point
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def layout_text(boxes: list[TextBox]) -> str:
    """The boxes as layout text, as pypdf prints a page: one line per row
    (boxes whose vertical centres are within half a line of each other),
    left to right, columns apart by at least two spaces."""
    if not boxes:
        return ""
    line = statistics.median(b.height for b in boxes)
    rows: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: b.middle):
        if rows and abs(box.middle - _row_middle(rows[-1])) <= line / 2:
            rows[-1].append(box)
        else:
            rows.append([box])
    return "\n".join("  ".join(b.text for b in sorted(row, key=lambda b: b.left)) for row in rows)


def _row_middle(row: list[TextBox]) -> float:
    return sum(b.middle for b in row) / len(row)


def brackets_as_printed(gray: Image.Image | None, line: EngineLine) -> str:
    """The line's text with its brackets full-width or half-width as printed:
    names are compared as printed, and the recogniser does not tell （ from (.
    All brackets of a line are judged together (a pair never comes out as
    （广东)). Unchanged when the characters do not line up with the text or
    the line has too few CJK characters to measure a cell against."""
    text, chars, char_boxes = line.text, list(line.chars), list(line.char_boxes)
    if not any(c in _BRACKETS for c in text) or "".join(chars) != text or len(chars) != len(char_boxes):
        return text
    starts = [min(p[0] for p in box) for box in char_boxes]
    advances = [b - a for a, b in zip(starts, starts[1:])]
    cjk = [a for c, a in zip(chars, advances) if "\u4e00" <= c <= "\u9fff"]
    if len(cjk) < 3:
        return text
    at = [i for i, c in enumerate(chars) if c in _BRACKETS]
    spans = _ink_spans(gray, line, at) if gray is not None else []
    # Where the ink cannot be measured (a bracket at the line's end), the
    # recogniser's positions are all there is.
    measured = spans or [advances[i] for i in at if i < len(advances)]
    if not measured:
        return text
    full = statistics.mean(measured) >= _FULL_WIDTH_SHARE * statistics.median(cjk)
    return "".join(_BRACKETS[c][0 if full else 1] if c in _BRACKETS else c for c in chars)


def _ink_spans(gray: Image.Image, line: EngineLine, at: list[int]) -> list[float]:
    """For each bracket (index in `at`) with ink on both sides: the distance
    from the previous glyph's ink to the next glyph's, which is the
    bracket's cell plus one inter-glyph gap."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = (tuple(p) for p in line.corners[:4])
    width, height = round(math.hypot(x1 - x0, y1 - y0)), round(math.hypot(x3 - x0, y3 - y0))
    if width < 8 or height < 4 or x1 == x0:
        return []
    # Straighten the line's quadrilateral into a strip (PIL wants its corners
    # as upper-left, lower-left, lower-right, upper-right).
    strip = gray.transform((width, height), Image.Transform.QUAD, (x0, y0, x3, y3, x2, y2, x1, y1),
                           Image.Resampling.BILINEAR)
    import numpy  # installed with the OCR engine, which is the only caller

    pixels = numpy.asarray(strip, dtype=numpy.int16)
    columns = pixels.min(axis=0)
    threshold = (int(columns.min()) + float(numpy.median(pixels))) / 2
    runs = _runs([bool(v) for v in columns < threshold])
    spans = []
    for i in at:
        box = line.char_boxes[i]
        middle = (min(p[0] for p in box) + max(p[0] for p in box)) / 2
        x = (middle - x0) / (x1 - x0) * width
        k = min(range(len(runs)), key=lambda r: abs((runs[r][0] + runs[r][1]) / 2 - x), default=None)
        if k is not None and 0 < k < len(runs) - 1:
            spans.append(runs[k + 1][0] - runs[k - 1][1])
    return spans


def _runs(ink: list[bool]) -> list[tuple[int, int]]:
    """(start, end) of each run of True."""
    out, start = [], None
    for x, v in enumerate(ink + [False]):
        if v and start is None:
            start = x
        elif not v and start is not None:
            out.append((start, x))
            start = None
    return out
