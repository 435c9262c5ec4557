"""Where on a scan the fields its QR lacks are printed, from the QR alone.

Every 增值税发票 face of one layout puts its fields at the same places
relative to its QR code (top left; 58 pt square with its quiet zone, the
symbol itself ~52 pt across), so the decoded symbol's corners give the
page's scale, tilt and turn, and with them where the party blocks
(名称, 纳税人识别号) and the 合计 / 价税合计 rows are. Those bands are cut
out straightened, at the scale the whole page would be read at, and
stacked in page order into one small image, a mosaic: detecting and
recognising it costs a fraction of the whole page (the header, 密码区,
goods lines, addresses, 备注 and signatures are never read).

Each band is cut with a margin so a line near its edge is whole, and only
the lines whose middle lies in the band proper are read: a line of the
next row caught in the margin is left out.

The layouts (pt on the face, origin top left; positions as on the real
samples): the older 增值税电子/纸质发票 (QR types 01, 04, 10, 20; 609 x 394
pt, buyer block above the goods, seller block below the totals, each with
the 密码区 / 备注 on its right) and the 数电 face (31, 32; 595 x 397 pt,
buyer and seller side by side above the goods). Other QR types (railway,
toll, 卷票) have other faces: they are read whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from PIL import Image

# The symbol's side, quiet zone excluded, in pt: 58 pt with its quiet zone
# of 2 modules a side is 51.0-52.3 pt for the versions invoice payloads use.
SYMBOL_PT = 51.8
_MARGIN_PT = 7.0  # cut around each band: a 10.5 pt line half outside is whole
_GAP_PX = 16  # white between stacked bands


@dataclass(frozen=True)
class Band:
    """A rectangle of a face in pt (left, top, right, bottom) and what it
    prints: "buyer" or "seller" (that party's 名称 and tax id), "totals"."""

    role: str
    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Layout:
    """One face: where its QR symbol's top-left corner is and the bands
    holding the fields a QR of its types lacks, top to bottom."""

    symbol_x: float
    symbol_y: float
    bands: tuple[Band, ...]


# The older face: Qr(15, 8, 58); buyer 名称 / 纳税人识别号 rows at 94 and 108
# between the 购买方 column (x 12-30) and the 密码区 (x 350); 合计 at 250 and
# 价税合计 at 270 across the page; seller rows at 288 and 302 between the
# 销售方 column and 备注.
LEGACY = Layout(18.2, 11.2, (Band("buyer", 28, 84, 348, 111.5), Band("totals", 12, 239, 597, 275.5),
                             Band("seller", 28, 278, 348, 305.5)))
# The 数电 face: Qr(18, 12, 58); the buyer's 名称 at 94 and id at 120 right
# of its 购买方信息 column (x 12-27), the seller's beside them right of its
# own (x 297-312); 合计 at 258 and 价税合计 at 278. Buyer above seller in
# the mosaic, as in reading order.
DIGITAL = Layout(21.3, 15.3, (Band("buyer", 29, 80, 295, 125), Band("seller", 314, 80, 583, 125),
                              Band("totals", 12, 247, 583, 283)))
LAYOUTS = {"01": LEGACY, "04": LEGACY, "10": LEGACY, "20": LEGACY, "31": DIGITAL, "32": DIGITAL}


@dataclass(frozen=True)
class QrFrame:
    """The face's axes on the page, from its QR symbol's corners: the
    symbol's top-left corner in page pixels, unit vectors along the face's
    x and y axes, and page pixels per pt."""

    x: float
    y: float
    ux: float
    uy: float
    vx: float
    vy: float
    px_per_pt: float

    @classmethod
    def of(cls, top_left, top_right, bottom_left) -> "QrFrame | None":
        """The frame of a symbol with these corners ((x, y) page pixels),
        or None for a degenerate one."""
        across = math.dist(top_left, top_right)
        down = math.dist(top_left, bottom_left)
        if across < 8 or down < 8 or not 0.8 < across / down < 1.25:
            return None
        return cls(top_left[0], top_left[1], (top_right[0] - top_left[0]) / across,
                   (top_right[1] - top_left[1]) / across, (bottom_left[0] - top_left[0]) / down,
                   (bottom_left[1] - top_left[1]) / down, (across + down) / 2 / SYMBOL_PT)

    def page_point(self, layout: Layout, x: float, y: float) -> tuple[float, float]:
        """Page pixels of the face point (x, y) pt."""
        dx, dy = (x - layout.symbol_x) * self.px_per_pt, (y - layout.symbol_y) * self.px_per_pt
        return self.x + self.ux * dx + self.vx * dy, self.y + self.uy * dx + self.vy * dy


@dataclass(frozen=True)
class Mosaic:
    """The bands of one page stacked: the image, and for each band its role
    and the rectangle its proper part (margins excluded) spans in the image."""

    image: Image.Image
    rows: tuple[tuple[str, tuple[float, float, float, float]], ...]  # role, (left, top, right, bottom)

    def role_of(self, corners: Sequence[Sequence[float]]) -> str | None:
        """The role of the band whose proper part holds the middle of a line
        with these corners (mosaic pixels); None for a line only in a margin."""
        mx = sum(p[0] for p in corners[:4]) / 4
        my = sum(p[1] for p in corners[:4]) / 4
        return next((role for role, (left, top, right, bottom) in self.rows
                     if left <= mx <= right and top <= my <= bottom), None)

    def keeps(self, corners: Sequence[Sequence[float]]) -> bool:
        """Whether a line with these corners lies in a band proper: a line
        of the next row caught in a margin is not read."""
        return self.role_of(corners) is not None


def mosaic(page: Image.Image, frame: QrFrame, layout: Layout, max_side: int) -> Mosaic | None:
    """The bands of `layout` cut from `page` along `frame`, straightened and
    scaled as the whole page would be read (its long side at most
    `max_side` px), stacked top to bottom; None when a band lies off the page."""
    scale = min(1.0, max_side / max(page.size))
    out_per_pt = frame.px_per_pt * scale
    strips, rows, y = [], [], 0
    for band in layout.bands:
        left, top = band.left - _MARGIN_PT, band.top - _MARGIN_PT
        right, bottom = band.right + _MARGIN_PT, band.bottom + _MARGIN_PT
        corners = [frame.page_point(layout, x, yy) for x, yy in ((left, top), (left, bottom), (right, bottom), (right, top))]
        if not all(-0.02 * page.width <= cx <= 1.02 * page.width and -0.02 * page.height <= cy <= 1.02 * page.height
                   for cx, cy in corners):
            return None
        size = (max(1, round((right - left) * out_per_pt)), max(1, round((bottom - top) * out_per_pt)))
        strips.append(_straightened(page, corners, size, scale))
        margin = _MARGIN_PT * out_per_pt
        rows.append((band.role, (margin, y + margin, size[0] - margin, y + size[1] - margin)))
        y += size[1] + _GAP_PX
    image = Image.new("RGB", (max(s.width for s in strips), y - _GAP_PX), (255, 255, 255))
    at = 0
    for strip in strips:
        image.paste(strip, (0, at))
        at += strip.height + _GAP_PX
    return Mosaic(image, tuple(rows))


def _straightened(page: Image.Image, corners: list[tuple[float, float]], size: tuple[int, int],
                  scale: float) -> Image.Image:
    """The quadrilateral `corners` (upper left, lower left, lower right,
    upper right, page pixels) as an upright RGB image of `size`. The
    region is first shrunk to `scale` with a proper filter, as the whole
    page is (a turn alone does not filter: shrinking by it would alias thin
    strokes away), then turned."""
    x0 = max(0, math.floor(min(x for x, _ in corners)))
    y0 = max(0, math.floor(min(y for _, y in corners)))
    x1 = min(page.width, math.ceil(max(x for x, _ in corners)))
    y1 = min(page.height, math.ceil(max(y for _, y in corners)))
    region = page.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))).convert("RGB")
    if scale < 1:
        region = region.resize((max(1, round(region.width * scale)), max(1, round(region.height * scale))),
                               Image.Resampling.LANCZOS)
    quad = tuple(v for x, y in corners for v in ((x - x0) * scale, (y - y0) * scale))
    return region.transform(size, Image.Transform.QUAD, quad, Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
