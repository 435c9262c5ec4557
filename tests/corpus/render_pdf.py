"""Faces to PDF bytes with reportlab: text as real text, the QR as an image.

The QR is embedded as a PNG image, as issuers do, so readers find it in
`page.images`. The canvas is built with `invariant=1` so one seed always
gives the same bytes.
"""

from __future__ import annotations

import functools
import io

import segno
from PIL import Image, ImageDraw
from reportlab import rl_config
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from tests.corpus.face import Ellipse, Face, Line, Qr, Stamp, Text


@functools.lru_cache(maxsize=8)
def stamp_png(width_px: int, height_px: int) -> bytes:
    """A red oval seal on a transparent ground, as PNG bytes: two rings and
    lines where the seal's lettering would be."""
    img = Image.new("RGBA", (width_px, height_px), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    red = (215, 30, 30, 210)
    ring = max(2, width_px // 40)
    d.ellipse((1, 1, width_px - 2, height_px - 2), outline=red, width=ring)
    d.ellipse((ring * 3, ring * 3, width_px - ring * 3, height_px - ring * 3), outline=red, width=1)
    for i in range(3):
        y = height_px * (0.38 + 0.14 * i)
        d.line((width_px * 0.25, y, width_px * 0.75, y), fill=red, width=ring)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def qr_png(payload: str, scale: int = 4) -> bytes:
    """A QR symbol (error level M, never a Micro QR) as PNG bytes, 2-module border."""
    buf = io.BytesIO()
    segno.make_qr(payload, error="m", boost_error=False).save(buf, kind="png", scale=scale, border=2)
    return buf.getvalue()


def draw_face(c: canvas.Canvas, face: Face, labels_first: bool) -> None:
    """Draw `face` on the current page of `c` (whose size must be the face's)."""
    h = face.height
    for op in face.ordered(labels_first):
        if isinstance(op, Text):
            c.setFillColorRGB(*op.color)
            c.setFont(op.font, op.size)
            c.drawString(op.left(), h - op.y, op.text)
        elif isinstance(op, Line):
            c.setStrokeColorRGB(*op.color)
            c.setLineWidth(op.width)
            c.line(op.x1, h - op.y1, op.x2, h - op.y2)
        elif isinstance(op, Ellipse):
            c.setStrokeColorRGB(*op.color)
            c.setLineWidth(op.width)
            c.ellipse(op.cx - op.rx, h - op.cy - op.ry, op.cx + op.rx, h - op.cy + op.ry)
        elif isinstance(op, Qr):
            img = ImageReader(io.BytesIO(qr_png(op.payload, op.px_per_module)))
            c.drawImage(img, op.x, h - op.y - op.size, op.size, op.size)
        elif isinstance(op, Stamp):
            img = ImageReader(io.BytesIO(stamp_png(round(op.rx * 4), round(op.ry * 4))))
            c.drawImage(img, op.cx - op.rx, h - op.cy - op.ry, 2 * op.rx, 2 * op.ry, mask="auto")


def face_pdf(face: Face, labels_first: bool = False, title: str = "") -> bytes:
    """A one-page PDF of `face`."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(face.width, face.height), invariant=1)
    if title:
        c.setTitle(title)
    c.setCreator("fapiao-agent test corpus")
    draw_face(c, face, labels_first)
    c.showPage()
    c.save()
    return buf.getvalue()


def image_pdf(pages: list[tuple[bytes, int, int, int]]) -> bytes:
    """An image-only PDF (what a scanner writes): one page per
    (jpeg, width_px, height_px, dpi), each sized to its image, no text layer."""
    buf = io.BytesIO()
    # Scanners store the JPEG as is; reportlab's default ASCII85 wrapping is
    # neither what they do nor fast (pure Python over the whole image).
    saved, rl_config.useA85 = rl_config.useA85, 0
    try:
        c = canvas.Canvas(buf, invariant=1)
        c.setCreator("Scanner")
        for jpeg, width_px, height_px, dpi in pages:
            w, h = width_px * 72 / dpi, height_px * 72 / dpi
            c.setPageSize((w, h))
            c.drawImage(ImageReader(io.BytesIO(jpeg)), 0, 0, w, h)
            c.showPage()
        c.save()
    finally:
        rl_config.useA85 = saved
    return buf.getvalue()
