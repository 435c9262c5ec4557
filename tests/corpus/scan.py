"""Photo-like scans of invoice faces: rasterised at 200-300 dpi with Pillow,
then rotated, blurred, speckled and JPEG-compressed the way a desk scanner
or a phone photo leaves them.

Chinese text uses a CJK font when the system has one (WenQuanYi, Noto CJK,
AR PL); otherwise each character is drawn as a few strokes, which is all a
QR-only reader ever looks at. The QR is drawn from its module matrix at the
scan's resolution, so its sharpness is the scan's, not a resampled PNG's.
Noise comes from the caller's rng (not Pillow's), so output is deterministic.
"""

from __future__ import annotations

import functools
import io
import random
from pathlib import Path

import segno
from PIL import Image, ImageChops, ImageDraw, ImageFont

from tests.corpus.face import MONO, SEAL_RED, Ellipse, Face, Line, Qr, Stamp, Text, text_width
from tests.corpus.render_pdf import image_pdf

_CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
_LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
)


@functools.lru_cache(maxsize=None)
def _font(px: int, cjk: bool, mono: bool = False):
    paths = _CJK_FONTS if cjk else (_LATIN_FONTS[::-1] if mono else _LATIN_FONTS)
    for p in paths:
        if Path(p).exists():
            return ImageFont.truetype(p, px)
    return None if cjk else ImageFont.load_default(px)


def _ink(color: tuple[float, float, float], mode: str):
    if mode == "L":
        r, g, b = color
        return int((0.299 * r + 0.587 * g + 0.114 * b) * 255)
    return tuple(int(c * 255) for c in color)


def _is_cjk(ch: str) -> bool:
    return ord(ch) > 0x2E80


def _strokes(draw: ImageDraw.ImageDraw, x: float, y: float, px: int, ch: str, fill) -> None:
    # No CJK font: a few strokes per character, the same for the same character.
    r = random.Random(ord(ch))
    w = max(1, px // 12)
    for _ in range(r.randint(3, 6)):
        x1, y1 = x + r.random() * px * 0.8, y + r.random() * px * 0.8
        if r.random() < 0.5:
            draw.line((x1, y1, x1 + px * 0.6 * r.random(), y1), fill=fill, width=w)
        else:
            draw.line((x1, y1, x1, y1 + px * 0.6 * r.random()), fill=fill, width=w)


def _draw_text(draw: ImageDraw.ImageDraw, op: Text, scale: float, mode: str) -> None:
    px = max(6, round(op.size * scale))
    x, baseline = op.left() * scale, op.y * scale
    fill = _ink(op.color, mode)
    cjk_font = _font(px, True)
    for ch in op.text:
        if _is_cjk(ch):
            if cjk_font is not None:
                draw.text((x, baseline), ch, font=cjk_font, fill=fill, anchor="ls")
            else:
                _strokes(draw, x, baseline - px * 0.85, px, ch, fill)
            x += px
        else:
            font = _font(px, False, op.font == MONO)
            draw.text((x, baseline), ch, font=font, fill=fill, anchor="ls")
            # Advance by the PDF metrics so the raster keeps the PDF's layout.
            x += text_width(ch, op.size, op.font) * scale


def _draw_qr(img: Image.Image, op: Qr, scale: float) -> None:
    qr = segno.make_qr(op.payload, error="m", boost_error=False)
    matrix = [list(row) for row in qr.matrix]
    n = len(matrix) + 4
    size = round(op.size * scale)
    sym = Image.new("L", (n, n), 255)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                sym.putpixel((c + 2, r + 2), 0)
    img.paste(sym.resize((size, size), Image.NEAREST).convert(img.mode),
              (round(op.x * scale), round(op.y * scale)))


def rasterise(face: Face, dpi: float, paper: int = 255, mode: str = "RGB") -> Image.Image:
    """`face` drawn at `dpi` in `mode` ("RGB" or "L") on paper of grey level
    `paper`, as a printer would put it on paper."""
    scale = dpi / 72
    img = Image.new(mode, (round(face.width * scale), round(face.height * scale)),
                    paper if mode == "L" else (paper, paper, max(0, paper - 6)))
    draw = ImageDraw.Draw(img)
    for op in face.ops:
        if isinstance(op, Text):
            _draw_text(draw, op, scale, img.mode)
        elif isinstance(op, Line):
            draw.line((op.x1 * scale, op.y1 * scale, op.x2 * scale, op.y2 * scale),
                      fill=_ink(op.color, img.mode),
                      width=max(1, round(op.width * scale)))
        elif isinstance(op, Ellipse):
            draw.ellipse(((op.cx - op.rx) * scale, (op.cy - op.ry) * scale,
                          (op.cx + op.rx) * scale, (op.cy + op.ry) * scale),
                         outline=_ink(op.color, img.mode), width=max(1, round(op.width * scale)))
        elif isinstance(op, Qr):
            _draw_qr(img, op, scale)
        elif isinstance(op, Stamp):
            ink = _ink(SEAL_RED, img.mode)
            for inset, width in ((0, 1.5), (3, 0.6)):
                draw.ellipse(((op.cx - op.rx + inset) * scale, (op.cy - op.ry + inset) * scale,
                              (op.cx + op.rx - inset) * scale, (op.cy + op.ry - inset) * scale),
                             outline=ink, width=max(1, round(width * scale)))
    return img


def photo_effects(rng: random.Random, face: Face, dpi: int, mode: str, noise: int = 22) -> Image.Image:
    """`face` as a scan at `dpi`: margins, a slight skew (now and then a
    quarter turn), optical blur, uneven exposure and sensor noise of up to
    `noise` grey levels.

    Blur is made the way cheap optics make it: the page is captured at a
    lower effective resolution (down to dpi / 1.4) and scaled up, which also
    keeps rasterising and turning cheap.
    """
    effective = dpi / rng.uniform(1.0, 1.4)
    img = rasterise(face, effective, rng.randint(236, 255), mode)
    paper = img.getpixel((0, 0))
    margin = round(effective * rng.uniform(0.1, 0.4))
    framed = Image.new(img.mode, (img.width + 2 * margin, img.height + 2 * margin), paper)
    framed.paste(img, (margin, margin))
    angle = rng.uniform(-4, 4)
    if rng.random() < 0.1:
        angle += rng.choice((90, 180, 270))
    backdrop = rng.randint(180, 235)
    out = framed.rotate(angle, resample=Image.BILINEAR, expand=True,
                        fillcolor=backdrop if img.mode == "L" else (backdrop,) * 3)
    factor = dpi / effective
    out = out.resize((round(out.width * factor), round(out.height * factor)), Image.BILINEAR)
    # Exposure and contrast in one lookup table.
    gain, contrast = rng.uniform(0.85, 1.05), rng.uniform(0.8, 1.1)
    lut = [max(0, min(255, round((v * gain - 128) * contrast + 128))) for v in range(256)]
    out = out.point(lut * (3 if out.mode == "RGB" else 1))
    amp = rng.randint(max(1, noise // 4), noise)
    noise = Image.frombytes("L", out.size, rng.randbytes(out.width * out.height))
    noise = noise.point(lambda v: 128 + (v - 128) * amp // 128).convert(out.mode)
    return ImageChops.add(out, noise, 1.0, -128)


def _scan_image(rng: random.Random, face: Face, fmt: str) -> tuple[Image.Image, int]:
    dpi = rng.randint(200, 300)
    # Scanners mostly save grey; phone photos and some scanners colour.
    mode = "L" if fmt == "png" or rng.random() < 0.7 else "RGB"
    # A flatbed saving PNG is much cleaner than a phone camera.
    return photo_effects(rng, face, dpi, mode, noise=8 if fmt == "png" else 22), dpi


def _jpeg(rng: random.Random, img: Image.Image, dpi: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(40, 80), dpi=(dpi, dpi))
    return buf.getvalue()


def make_scan(rng: random.Random, face: Face, fmt: str) -> tuple[bytes, str]:
    """A scanned or photographed invoice as (bytes, extension): fmt "jpg",
    "png" (grayscale, as scanners save; now and then named .jpg, as a real
    sample is) or "pdf" (a JPEG inside an image-only PDF)."""
    if fmt not in ("jpg", "png", "pdf"):
        raise ValueError(f"unknown scan format {fmt!r}")
    img, dpi = _scan_image(rng, face, fmt)
    if fmt == "png":
        buf = io.BytesIO()
        img.save(buf, "PNG", dpi=(dpi, dpi), compress_level=1)
        return buf.getvalue(), ("jpg" if rng.random() < 0.1 else "png")
    if fmt == "jpg":
        return _jpeg(rng, img, dpi), "jpg"
    return image_pdf([(_jpeg(rng, img, dpi), img.width, img.height, dpi)]), "pdf"


def make_scan_batch(rng: random.Random, faces: list[Face]) -> bytes:
    """A scanner batch: one image-only PDF with one scanned invoice per page."""
    pages = []
    for face in faces:
        img, dpi = _scan_image(rng, face, "pdf")
        pages.append((_jpeg(rng, img, dpi), img.width, img.height, dpi))
    return image_pdf(pages)
