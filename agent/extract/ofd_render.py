"""Render an OFD page drawn as vector paths, for OCR.

Some converters (ofdrw's OFD R&W) write an invoice with no text at all:
every glyph is a PathObject outline. Only the pixels can be read then. The
page's PathObjects are translated into one PDF page (OFD's M/L/Q/B/C
commands are PDF's m/l/c/c/h, in mm with y down) with their DrawParam
colours, and PDFium renders it. Text and image objects are not drawn: this
is for pages that have no text, and the QR is decoded from its image
elsewhere.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

from PIL import Image

from agent.extract.pdf_fonts import pdf_file
from agent.extract.xml_parse import local_name
from agent.model import Invoice

_POINTS_PER_MM = 72 / 25.4
_RENDER_LONG_SIDE = 2000      # px; OCR scales down to its own size
MAX_PATHS = 5_000             # a page drawn as glyph outlines has a few hundred
MAX_COMMANDS = 400_000
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def read_drawn_page(invoice: Invoice, root: Element, resources: list[Element]) -> None:
    """OCR of a page drawn with no text (`root`, colours from `resources`),
    added to `invoice` under `ocr.apply_reading`'s checks; nothing when the
    page has text, cannot be rendered, or OCR is not installed."""
    if not has_paths_but_no_text(root):
        return
    image = render_paths(root, fill_colours(resources))
    if image is None:
        return
    from agent.extract.ocr import apply_reading, read_page_if_available

    reading = read_page_if_available(image)
    if reading is not None:
        apply_reading(invoice, reading)


def has_paths_but_no_text(root: Element) -> bool:
    """True when the page draws PathObjects and holds no TextObject."""
    tags = {local_name(el.tag) for el in root.iter()}
    return "PathObject" in tags and "TextObject" not in tags


def fill_colours(resources: list[Element]) -> dict[str, str]:
    """DrawParam ID -> its fill colour as PDF operands ("0.5 0 0 rg")."""
    out = {}
    for res in resources:
        for el in res.iter():
            if local_name(el.tag) != "DrawParam" or not el.get("ID"):
                continue
            colour = next((c.get("Value") for c in el if local_name(c.tag) == "FillColor"), None)
            values = _numbers(colour or "")
            if len(values) == 3:
                out[el.get("ID")] = " ".join(f"{max(0.0, min(v, 255.0)) / 255:.3f}" for v in values) + " rg"
    return out


def render_paths(root: Element, colours: dict[str, str]) -> Image.Image | None:
    """The page's filled paths as a grayscale image, or None when it has
    none, too many, or PDFium cannot render them. Never raises."""
    try:
        width, height = _page_size(root)
        content = _content(root, colours, height)
        if content is None:
            return None
        return _render(_pdf(width, height, content), width, height)
    except Exception:  # noqa: BLE001 - a last resort for pages with no text: nothing more to lose
        return None


def _page_size(root: Element) -> tuple[float, float]:
    for el in root.iter():
        if local_name(el.tag) == "PhysicalBox":
            box = _numbers(el.text or "")
            if len(box) == 4 and 10 < box[2] < 2000 and 10 < box[3] < 2000:
                return box[2], box[3]
    return 210.0, 297.0


def _content(root: Element, colours: dict[str, str], height: float) -> bytes | None:
    k = _POINTS_PER_MM
    ops = [f"{k:.5f} 0 0 {-k:.5f} 0 {height * k:.3f} cm"]
    paths = commands = 0
    for el in root.iter():
        if local_name(el.tag) != "PathObject" or el.get("Fill", "false").lower() != "true":
            continue
        data = next((c.text for c in el if local_name(c.tag) == "AbbreviatedData"), None)
        box = _numbers(el.get("Boundary", ""))
        if not data or len(box) != 4:
            continue
        paths += 1
        path = _path_ops(data.split())
        commands += len(path)
        if paths > MAX_PATHS or commands > MAX_COMMANDS:
            return None
        ctm = _numbers(el.get("CTM", ""))
        ops.append("q")
        ops.append(f"1 0 0 1 {box[0]:.4f} {box[1]:.4f} cm")
        if len(ctm) == 6:
            ops.append(" ".join(f"{v:.6f}" for v in ctm) + " cm")
        ops.append(colours.get(el.get("DrawParam", ""), "0 0 0 rg"))
        ops.extend(path)
        ops.append("f*" if (el.get("Rule") or "").lower().startswith("even") else "f")
        ops.append("Q")
    return "\n".join(ops).encode("ascii") if paths else None


def _path_ops(tokens: list[str]) -> list[str]:
    """PDF path operators for OFD AbbreviatedData tokens; an unknown or
    short command ends the path there."""
    out: list[str] = []
    x = y = 0.0
    i = 0

    def take(n: int) -> list[float] | None:
        values = tokens[i + 1:i + 1 + n]
        if len(values) < n or not all(_NUMBER.fullmatch(v) for v in values):
            return None
        return [float(v) for v in values]

    while i < len(tokens):
        op = tokens[i]
        if op in ("M", "L"):
            p = take(2)
            if p is None:
                break
            x, y = p
            out.append(f"{x} {y} {'m' if op == 'M' else 'l'}")
            i += 3
        elif op == "Q":
            p = take(4)
            if p is None:
                break
            (qx, qy, ex, ey) = p
            # A quadratic Bézier as the cubic with the same curve.
            c1 = (x + 2 / 3 * (qx - x), y + 2 / 3 * (qy - y))
            c2 = (ex + 2 / 3 * (qx - ex), ey + 2 / 3 * (qy - ey))
            out.append(f"{c1[0]:.4f} {c1[1]:.4f} {c2[0]:.4f} {c2[1]:.4f} {ex} {ey} c")
            x, y = ex, ey
            i += 5
        elif op == "B":
            p = take(6)
            if p is None:
                break
            out.append(" ".join(str(v) for v in p) + " c")
            x, y = p[4], p[5]
            i += 7
        elif op == "C":
            out.append("h")
            i += 1
        else:  # A (arc), S ... : not used for glyph outlines
            break
    return out


def _pdf(width: float, height: float, content: bytes) -> bytes:
    return one_page_pdf(width * _POINTS_PER_MM, height * _POINTS_PER_MM, content)


def one_page_pdf(w: float, h: float, content: bytes) -> bytes:
    """A minimal, well-formed one-page PDF of `w` x `h` points whose page
    draws the content stream `content` (uncompressed, no resources)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w:.2f} {h:.2f}] /Contents 4 0 R >>".encode(),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    return pdf_file(objects)


def _render(pdf: bytes, width: float, height: float) -> Image.Image:
    import pypdfium2

    doc = pypdfium2.PdfDocument(pdf)
    try:
        page = doc[0]
        scale = _RENDER_LONG_SIDE / (max(width, height) * _POINTS_PER_MM)
        bitmap = page.render(scale=scale, grayscale=True, fill_color=(255, 255, 255, 255))
        image = bitmap.to_pil().convert("L")
        bitmap.close()
        page.close()
        return image
    finally:
        doc.close()


def _numbers(text: str) -> list[float]:
    parts = text.split()
    if not all(_NUMBER.fullmatch(p) for p in parts):
        return []
    return [float(p) for p in parts]
