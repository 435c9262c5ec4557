"""A PDF whose labels are a background image and whose values are text (a
template scanned once, filled in by software): the page is read from its
text and, having no text label, by OCR too. Its line items are counted once."""

from __future__ import annotations

import datetime as dt
import io
import random

import pytest
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from agent.extract import extract_bytes
from agent.extract.ocr import engine_installed
from tests.corpus.content import make_content
from tests.corpus.face import Ellipse, Face, Line, Stamp, Text
from tests.corpus.layouts import Variant, digital_face
from tests.corpus.render_pdf import draw_face
from tests.corpus.scan import rasterise

pytestmark = pytest.mark.skipif(not engine_installed(), reason="OCR is not installed (pip install '.[ocr]')")


def labels_as_image(face: Face) -> bytes:
    def printed(op) -> bool:
        return (isinstance(op, Text) and op.role == "label") or isinstance(op, (Line, Ellipse, Stamp))

    template = rasterise(Face(face.width, face.height, [o for o in face.ops if printed(o)]), 200)
    values = Face(face.width, face.height, [o for o in face.ops if not printed(o)])
    png = io.BytesIO()
    template.save(png, "PNG")
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=(face.width, face.height), invariant=1)
    c.drawImage(ImageReader(io.BytesIO(png.getvalue())), 0, 0, face.width, face.height)
    draw_face(c, values, False)
    c.showPage()
    c.save()
    return out.getvalue()


@pytest.mark.parametrize("seed", [3, 11])  # 11: a 个人 buyer, whose page OCR reads fully
def test_line_items_read_from_text_and_by_ocr_are_counted_once(seed):
    content = make_content(random.Random(seed), "32", dt.date(2026, 12, 1))
    (inv,) = extract_bytes(labels_as_image(digital_face(content, Variant(False, "：", True, False))), ocr=True)
    assert len(inv.items) == len(content.items)
    assert sum(i.amount for i in inv.items) == sum(i.amount for i in content.items)
