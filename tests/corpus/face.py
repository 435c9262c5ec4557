"""A page as a list of drawing operations, shared by the PDF and scan renderers.

Coordinates are PDF points with y measured from the TOP of the page (the
way one reads an invoice); renderers flip it. Every text carries a role:
"label" for the printed template (名称：, 价税合计（大写）...) and "value" for
what the issuer filled in, so a renderer can draw all labels first and all
values after, as real invoice PDFs do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont

SONG = "STSong-Light"
MONO = "Courier"
pdfmetrics.registerFont(UnicodeCIDFont(SONG))

BLACK = (0.0, 0.0, 0.0)
BROWN = (0.55, 0.25, 0.12)   # template colour of 数电 and old e-invoices
DARK_RED = (0.5, 0.1, 0.05)
SEAL_RED = (0.85, 0.1, 0.1)
BLUE_BLACK = (0.05, 0.05, 0.3)


@dataclass(frozen=True)
class Text:
    """A run of text; `anchor` is "l", "c" or "r" at x; `font` is SONG or MONO."""

    x: float
    y: float
    text: str
    size: float
    role: str = "value"
    color: tuple[float, float, float] = BLACK
    anchor: str = "l"
    font: str = SONG

    def left(self) -> float:
        """The x where the run starts once its anchor is applied."""
        w = text_width(self.text, self.size, self.font)
        return self.x - (w if self.anchor == "r" else w / 2 if self.anchor == "c" else 0)


@dataclass(frozen=True)
class Line:
    """A straight stroke."""

    x1: float
    y1: float
    x2: float
    y2: float
    width: float = 0.7
    color: tuple[float, float, float] = BROWN


@dataclass(frozen=True)
class Ellipse:
    """An outlined ellipse (the 监制章 seal)."""

    cx: float
    cy: float
    rx: float
    ry: float
    width: float = 1.5
    color: tuple[float, float, float] = SEAL_RED


@dataclass(frozen=True)
class Qr:
    """The invoice QR code, `size` points square, top-left corner at (x, y);
    in a PDF it is an image of `px_per_module` pixels per module (issuers embed
    anything from 2 to 8)."""

    x: float
    y: float
    size: float
    payload: str
    px_per_module: int = 4


@dataclass(frozen=True)
class Stamp:
    """A red oval seal: the 全国统一发票监制 seal or the seller's 发票专用章.
    PDFs embed seals as images, so a reader meets images that are not the QR."""

    cx: float
    cy: float
    rx: float
    ry: float


@dataclass
class Face:
    """One page: its size in points and what is drawn on it."""

    width: float
    height: float
    ops: list = field(default_factory=list)

    def text(self, x: float, y: float, text: str, size: float = 9, role: str = "value", **kw) -> Text:
        """Add a text run and return it (for placing a value after its label)."""
        t = Text(x, y, text, size, role, **kw)
        if text:
            self.ops.append(t)
        return t

    def label_value(self, x: float, y: float, label: str, value: str, size: float = 9,
                    value_size: float | None = None, value_font: str = SONG,
                    label_color=BROWN, value_color=BLACK, gap: float = 2) -> None:
        """A template label and, right after it, its filled-in value."""
        self.text(x, y, label, size, "label", color=label_color)
        vx = x + text_width(label, size) + gap
        self.text(vx, y, value, value_size or size, "value", color=value_color, font=value_font)

    def vertical(self, x: float, y: float, chars: str, step: float, size: float = 9,
                 color=BROWN) -> None:
        """A label written top to bottom, one character per line (购买方信息)."""
        for i, ch in enumerate(chars):
            self.text(x, y + i * step, ch, size, "label", color=color)

    def line(self, x1: float, y1: float, x2: float, y2: float, **kw) -> None:
        """Add a stroke."""
        self.ops.append(Line(x1, y1, x2, y2, **kw))

    def box(self, x: float, y: float, w: float, h: float, **kw) -> None:
        """Add a rectangle outline as four strokes."""
        for seg in ((x, y, x + w, y), (x + w, y, x + w, y + h), (x, y + h, x + w, y + h), (x, y, x, y + h)):
            self.ops.append(Line(*seg, **kw))

    def ordered(self, labels_first: bool) -> list:
        """The operations in drawing order: as built, or strokes, then labels,
        then values (the order real issuers' templates produce)."""
        if not labels_first:
            return list(self.ops)
        rank = {"label": 1, "value": 2}
        return sorted(self.ops, key=lambda op: rank.get(getattr(op, "role", None), 0))


def text_width(text: str, size: float, font: str = SONG) -> float:
    """Printed width in points, from the PDF font metrics."""
    return pdfmetrics.stringWidth(text, font, size)


def fit_size(text: str, size: float, max_width: float, font: str = SONG) -> float:
    """`size`, shrunk so `text` fits in `max_width` (long company names)."""
    w = text_width(text, size, font)
    return size if w <= max_width else max(5.0, size * max_width / w)


def wrap(text: str, size: float, max_width: float) -> list[str]:
    """Break `text` into lines no wider than `max_width`, as invoice item
    names wrap inside their column."""
    lines, cur = [], ""
    for ch in text:
        if cur and text_width(cur + ch, size) > max_width:
            lines.append(cur)
            cur = ""
        cur += ch
    return lines + [cur] if cur else lines
