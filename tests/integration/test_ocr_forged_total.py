"""A scan's 价税合计 is printed twice (小写 and 大写) and, under a QR that
carries the 金额, tied to it by the 税额. A paper altered in its 税额 and
小写 (the QR left alone) must not give its altered 价税合计: the real
sample imethanlee__OCR/invoice.png with 2279.43 made 2279.48 and
40270.00 made 40270.05 (37990.57 + 2279.48 = 40270.05 still adds up; its
大写 肆万零贰佰柒拾圆整 still spells 40270.00)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

from PIL import Image, ImageDraw, ImageFont

from agent.extract import extract_bytes
from agent.extract.ocr import OcrReading, apply_reading
from agent.extract.qr import apply_qr, parse_qr
from agent.model import Invoice
from tests.conftest import SAMPLES

SCAN = "imethanlee__OCR/invoice.png"
TRUTH = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))[SCAN]
# (box in the scan's pixels, what is printed there instead)
EDITS = (((1164, 354, 1236, 378), "2279.48"),       # the line's 税额
         ((1152, 548, 1236, 573), "¥ 2279.48"),     # 合计 税额
         ((1140, 596, 1234, 622), "¥ 40270.05"))    # 价税合计 (小写)


def _altered() -> bytes:
    page = Image.open(SAMPLES / SCAN).convert("RGB")
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype("DejaVuSans.ttf", 17)
    for box, text in EDITS:
        draw.rectangle(box, fill="white")
        draw.text((box[0] + 2, box[1] + 3), text, font=font, fill=(30, 30, 30))
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


def test_an_altered_tax_and_total_under_the_qr_are_left_empty():
    (invoice,) = extract_bytes(_altered(), ocr=True)
    assert invoice.get("amount") == Decimal(TRUTH["amount"])  # the QR's
    record = invoice.to_dict()
    for name in ("tax", "total", "total_in_words"):
        assert record[name] in (None, TRUTH[name]), name  # never the altered 2279.48 / 40270.05
    assert invoice.get("total") is None
    assert {p.field for p in invoice.problems if p.code == "ocr-unverified"} >= {"total", "tax"}


def _under_qr(fields: dict) -> Invoice:
    invoice = Invoice()
    apply_qr(invoice, parse_qr(TRUTH["qr"]))
    apply_reading(invoice, OcrReading(fields, says_invoice=True))
    return invoice


def test_a_total_its_own_words_deny_is_not_kept_though_it_adds_up():
    # 37990.57 + 2279.48 = 40270.05, but the 大写 spells 40270.00.
    invoice = _under_qr({"amount": Decimal("37990.57"), "tax": Decimal("2279.48"), "total": Decimal("40270.05"),
                         "total_in_words": "肆万零贰佰柒拾圆整"})
    assert [invoice.get(n) for n in ("tax", "total", "total_in_words")] == [None, None, None]
    assert invoice.get("amount") == Decimal("37990.57")  # the QR's
    # Words that spell nothing (a smudge) deny nothing: the sum with the QR keeps them.
    smudged = _under_qr({"tax": Decimal("2279.43"), "total": Decimal("40270.00"), "total_in_words": "肆万零贰佰柒拾圆銮"})
    assert (smudged.get("tax"), smudged.get("total")) == (Decimal("2279.43"), Decimal("40270.00"))
