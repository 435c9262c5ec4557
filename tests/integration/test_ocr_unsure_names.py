"""A name has no check character: OCR that misreads one (深训市骏台 for
深圳市骏合) must leave it empty, with a warning, not store it. The scan is
a real sample (imethanlee__OCR/invoice.png) as a bad office copy would
give it: its QR covered by a stamp, shrunk and saved as a JPEG at quality
20, so names come from OCR of the print alone."""

from __future__ import annotations

import io
import json

from PIL import Image, ImageDraw

from agent.extract import extract_bytes
from agent.extract.ocr_layout import TextBox
from agent.extract.ocr_parties import NAME_CHAR_MIN_SCORE, unsure_names
from tests.conftest import SAMPLES

SCAN = "imethanlee__OCR/invoice.png"
TRUTH = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))[SCAN]


def _poor_copy() -> bytes:
    page = Image.open(SAMPLES / SCAN).convert("RGB")
    ImageDraw.Draw(page).rectangle([10, 5, 170, 160], fill=(200, 30, 30))  # a stamp over the QR
    page = page.resize((page.width * 70 // 100, page.height * 70 // 100))
    out = io.BytesIO()
    page.save(out, "JPEG", quality=20)
    return out.getvalue()


def test_a_name_read_with_doubt_is_left_empty_never_misread():
    (invoice,) = extract_bytes(_poor_copy(), ocr=True)
    assert invoice.get("number") == TRUTH["number"]  # read from the print: the rest is judged
    for name in ("buyer_name", "seller_name"):
        assert invoice.get(name) in (None, TRUTH[name]), name
    assert invoice.get("buyer_name") is None  # read 深训市骏台商贸有限公司, 训 at 0.19
    (why,) = [p for p in invoice.problems if p.code == "ocr-unverified" and p.field == "buyer_name"]
    assert why.severity == "warning" and "unsure" in why.message and why.message_zh


def test_only_a_doubtful_character_drops_a_name():
    line = "称:深训市骏台商贸有限公司"
    doubtful = TextBox(line, 0, 0, 300, 20, scores=(0.94, 0.86, 0.37, 0.19) + (0.99,) * 9)
    sure = TextBox(line, 0, 0, 300, 20, scores=(NAME_CHAR_MIN_SCORE,) * len(line))
    fields = {"buyer_name": "深训市骏台商贸有限公司", "buyer_tax_id": "914403003597744087"}
    kept, notes = unsure_names([doubtful], fields)
    assert kept == {"buyer_tax_id": "914403003597744087"}
    assert "训 (0.19)" in notes["buyer_name"] and "深 (0.37)" in notes["buyer_name"]
    assert unsure_names([sure], fields) == (fields, {})
    assert unsure_names([TextBox(line, 0, 0, 300, 20)], fields) == (fields, {})  # no scores: no doubt
    bracketed = {"buyer_name": "中粮工科迎春农牧机械(山东)有限公司"}
    widths = TextBox("购买方名称:" + bracketed["buyer_name"], 0, 0, 400, 20,
                     scores=(0.99,) * 16 + (0.58,) + (0.99,) * 2 + (0.97,) + (0.99,) * 4)
    assert unsure_names([widths], bracketed) == (bracketed, {})  # ( or （: the ink decides, not the score
