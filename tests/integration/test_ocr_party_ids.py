"""A 数电 face's two party boxes stand side by side; when OCR misses one
party's 纳税人识别号 line (a stamp, a fold, a blur over it), the other's
id is alone on its row and must stay that party's, never become the
missing one's. The face is a real sample (ruitang-git__Autonomous-Driving/
电子发票.pdf) rendered as a scan, with one id line covered."""

from __future__ import annotations

import io
import json

import pypdfium2 as pdfium
import pytest
from PIL import ImageDraw

from agent.extract import extract_bytes
from tests.conftest import SAMPLES

SAMPLE = "ruitang-git__Autonomous-Driving/电子发票.pdf"
TRUTH = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))[SAMPLE]
DPI = 200
# Each party's 统一社会信用代码/纳税人识别号 line, in pt on the face.
ID_LINES = {"buyer": (20, 122, 284, 143), "seller": (316, 122, 576, 143)}


def _scan_without(role: str) -> bytes:
    page = pdfium.PdfDocument(str(SAMPLES / SAMPLE))[0]
    img = page.render(scale=DPI / 72).to_pil().convert("RGB")
    ImageDraw.Draw(img).rectangle([v * DPI / 72 for v in ID_LINES[role]], fill="white")
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("covered,shown", [("seller", "buyer"), ("buyer", "seller")])
def test_a_lone_tax_id_stays_with_the_party_that_prints_it(covered, shown):
    (invoice,) = extract_bytes(_scan_without(covered), ocr=True)
    assert invoice.get(f"{shown}_tax_id") == TRUTH[f"{shown}_tax_id"]
    assert invoice.get(f"{covered}_tax_id") is None
    assert invoice.get("seller_name") == TRUTH["seller_name"]
