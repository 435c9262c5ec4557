"""Phone photos of paper invoices: the face printed (scan.rasterise), laid
on a desk and photographed at an angle under office light.

What a photo adds over a scan (scan.py): perspective (the camera tilted up
to ~15 degrees off the page's normal, so the page is a trapezoid, not a
turned rectangle), a shadow or light gradient across the page, lens blur
and JPEG compression; and, when asked, a QR too damaged to decode
(scratched through a finder pattern and partly covered, as a folded or
stamped paper invoice is), a faded date (the worn print of a dot-matrix
or thermal printer: light grey) or a title printed red under a heavier
red seal. Deterministic for the caller's rng.
"""

from __future__ import annotations

import dataclasses
import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

from tests.corpus.content import PAPER_KINDS, expected_fields, make_content, true_items
from tests.corpus.face import MONO, Face, Qr, Stamp, Text
from tests.corpus.layouts import Variant, cipher_rows, legacy_face
from tests.corpus.scan import rasterise

# A phone 3-4 m px camera fills ~1600-2000 px across an A5 invoice.
_PRINT_DPI = (190, 240)


@dataclass(frozen=True)
class Photo:
    """One photographed invoice: JPEG bytes, the truth behind it (the shape
    of expected.json), and what was done to it."""

    data: bytes
    truth: dict
    items: tuple[dict, ...]
    qr_damaged: bool
    tilt: float  # degrees off the page's normal


def _damage_qr(img: Image.Image, face: Face, scale: float, rng: random.Random) -> None:
    """Scratch and cover the QR so no decoder reads it: a finder pattern
    scratched through with paper-white strokes and a third of the symbol
    under a sticker. The print around it is untouched."""
    qr = next(op for op in face.ops if isinstance(op, Qr))
    x, y, size = qr.x * scale, qr.y * scale, qr.size * scale
    draw = ImageDraw.Draw(img)
    paper = img.getpixel((2, 2))
    # A sticker (or the fold's worn patch) over the middle and one side.
    side = rng.choice(("left", "right", "top", "bottom"))
    lo, hi = 0.3 + rng.uniform(-0.05, 0.05), 0.75 + rng.uniform(-0.05, 0.1)
    box = {"left": (x, y + size * 0.1, x + size * hi, y + size * 0.9),
           "right": (x + size * lo, y + size * 0.1, x + size, y + size * 0.9),
           "top": (x + size * 0.1, y, x + size * 0.9, y + size * hi),
           "bottom": (x + size * 0.1, y + size * lo, x + size * 0.9, y + size)}[side]
    draw.rectangle(box, fill=paper)
    # Scratches through the top-left finder pattern.
    for _ in range(rng.randint(3, 5)):
        a = (x + rng.uniform(0, size * 0.3), y + rng.uniform(0, size * 0.3))
        b = (a[0] + rng.uniform(-size * 0.3, size * 0.3), a[1] + rng.uniform(size * 0.1, size * 0.3))
        draw.line((a, b), fill=paper, width=max(2, round(size / 30)))


def _perspective(img: Image.Image, rng: random.Random, tilt: float, backdrop: int) -> Image.Image:
    """`img` as a camera sees it tilted by `tilt` degrees: one edge of the
    page nearer (longer) than the opposite one, plus a small turn and
    margins of desk around it."""
    w, h = img.size
    margin = round(max(w, h) * rng.uniform(0.04, 0.1))
    out_w, out_h = w + 2 * margin, h + 2 * margin
    # Foreshortening of the far edge: tan(tilt) of the half-width.
    shrink = min(0.3, abs(tilt) / 15 * 0.12 + rng.uniform(0, 0.02))
    turn = rng.uniform(-4, 4) / 57.3
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    far = rng.choice(("top", "bottom", "left", "right"))
    dx, dy = w * shrink / 2, h * shrink / 2
    pushed = {"top": [(dx, 0), (-dx, 0), (0, 0), (0, 0)],
              "bottom": [(0, 0), (0, 0), (-dx, 0), (dx, 0)],
              "left": [(0, dy), (0, 0), (0, 0), (0, -dy)],
              "right": [(0, 0), (0, dy), (0, -dy), (0, 0)]}[far]
    import math
    cx, cy = w / 2, h / 2
    dst = []
    for (px, py), (ox, oy) in zip(corners, pushed):
        px, py = px + ox - cx, py + oy - cy
        rx = px * math.cos(turn) - py * math.sin(turn)
        ry = px * math.sin(turn) + py * math.cos(turn)
        dst.append((rx + out_w / 2 + rng.uniform(-4, 4), ry + out_h / 2 + rng.uniform(-4, 4)))
    coeffs = _homography(dst, corners)
    fill = (backdrop, backdrop - 8, backdrop - 20)
    return img.transform((out_w, out_h), Image.Transform.PERSPECTIVE, coeffs,
                         Image.Resampling.BICUBIC, fillcolor=fill)


def _homography(src, dst) -> tuple[float, ...]:
    """PIL's PERSPECTIVE coefficients mapping output points `src` to input `dst`."""
    import numpy

    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(numpy.linalg.solve(numpy.array(rows, float), numpy.array(rhs, float)))


def _light(img: Image.Image, rng: random.Random) -> Image.Image:
    """Office light: brighter on one side, a soft shadow (a hand or the
    phone) falling across another, the whole a little warm."""
    import numpy

    w, h = img.size
    ys, xs = numpy.mgrid[0:h, 0:w].astype(numpy.float32)
    angle = rng.uniform(0, 6.283)
    ramp = (xs / w - 0.5) * numpy.cos(angle) + (ys / h - 0.5) * numpy.sin(angle)
    gain = 1.0 - rng.uniform(0.15, 0.35) * (ramp + 0.5)
    # A shadow: a soft-edged band darkening part of the page.
    sx, sy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    reach = rng.uniform(0.25, 0.5) * max(w, h)
    shadow = numpy.clip(1 - numpy.hypot(xs - sx, ys - sy) / reach, 0, 1)
    gain = gain * (1 - rng.uniform(0.1, 0.3) * shadow ** 0.5)
    pixels = numpy.asarray(img.convert("RGB"), dtype=numpy.float32)
    warm = numpy.array([1.0, 0.97, 0.9], numpy.float32)
    out = numpy.clip(pixels * gain[..., None] * warm, 0, 255).astype(numpy.uint8)
    return Image.fromarray(out, "RGB")


def photograph(rng: random.Random, face: Face, *, damage_qr: bool, dim: bool = False,
               max_tilt: float = 15) -> tuple[bytes, float]:
    """`face` printed on paper and photographed: JPEG bytes and the tilt
    used. `dim`: a dim room and a cheap phone, so fewer pixels, more blur
    and harder JPEG compression (the QR still holds, barely)."""
    dpi = rng.uniform(160, 180) if dim else rng.uniform(*_PRINT_DPI)
    scale = dpi / 72
    img = rasterise(face, dpi, rng.randint(238, 252), "RGB")
    if damage_qr:
        _damage_qr(img, face, scale, rng)
    tilt = rng.uniform(4, max_tilt)
    img = _perspective(img, rng, tilt, rng.randint(70, 140))
    img = _light(img, rng)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.2, 1.5) if dim else rng.uniform(0.4, 1.1)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(25, 35) if dim else rng.randint(55, 85))
    return buf.getvalue(), tilt


def _fade_date(face: Face, date_text: tuple[str, ...], rng: random.Random, grey: float | None) -> None:
    """The date's digits printed faint: a worn ribbon or thermal print,
    light grey (`grey`, or a random faint one) where the rest of the values
    are blue-black; 1.0 wears them away."""
    grey = rng.uniform(0.85, 0.89) if grey is None else grey
    face.ops = [Text(op.x, op.y, op.text, op.size, op.role, (grey, grey, grey), op.anchor, op.font)
                if isinstance(op, Text) and op.font == MONO and op.text in date_text and op.x > 420 else op
                for op in face.ops]


def _red_title(face: Face, title: str, rng: random.Random) -> None:
    """The title printed red, the 监制 seal over it drawn twice as heavy
    (paper invoices print both in red, one over the other)."""
    red = (rng.uniform(0.85, 0.95), rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.5))
    ops = []
    for op in face.ops:
        if isinstance(op, Text) and op.text == title:
            op = Text(op.x, op.y, op.text, op.size, op.role, red, op.anchor, op.font)
        ops.append(op)
        if isinstance(op, Stamp):
            ops.append(Stamp(op.cx, op.cy, op.rx - 1.5, op.ry - 1.5))
    face.ops = ops


def make_photo(rng: random.Random, today, *, damage_qr: bool = False, dim: bool = False,
               kind: str | None = None, faint_date: bool | float = False, red_title: bool = False) -> Photo:
    """A paper invoice (专票 01 or 普票 04; `kind` to choose) dated within
    the 300 days up to `today`, photographed (see `photograph`); with
    `faint_date` its date's digits faded (a float: to that grey level),
    with `red_title` its title red under a heavy red seal."""
    kind = kind or rng.choice(PAPER_KINDS)
    content = make_content(rng, kind, today)
    variant = Variant.pick(rng, rng.random() < 0.3, False)
    if faint_date or red_title:
        # Kangxi code points are a text layer's quirk: on paper they are the
        # same ink as 日 and 月, which the raster font here lacks (tofu).
        variant = dataclasses.replace(variant, kangxi=False)
    face = legacy_face(content, variant, cipher_rows(rng))
    if faint_date:
        d = content.date
        grey = None if faint_date is True else float(faint_date)
        _fade_date(face, (f"{d.year}", f"{d.month:02d}", f"{d.day:02d}"), rng, grey)
    if red_title:
        _red_title(face, content.title, rng)
    data, tilt = photograph(rng, face, damage_qr=damage_qr, dim=dim)
    return Photo(data, expected_fields(content), true_items(content), damage_qr, tilt)
