"""Forged 价税合计 on a real scan, read by the real engine: the sample
imethanlee__OCR/invoice.png (QR 金额 37990.57, one line at 6 %, 税额
2279.43, 价税合计 40270.00, 肆万零贰佰柒拾圆整) with its 小写 and 大写
redrawn together, in the sample's font size, as a forger would. Its 大写
then spells the forged 小写, and only the 税额 that 价税合计 − the QR's 金额
implies tells the forgery from a misread (`agent/extract/ocr_tax.py`)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from PIL import Image, ImageDraw, ImageFont

from agent.extract import extract_bytes
from agent.extract.ocr import read_page
from tests.conftest import SAMPLES

SCAN = "imethanlee__OCR/invoice.png"
TRUTH = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))[SCAN]
WQY = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
# Boxes in the scan's pixels: the line's 税率 and 税额, the 合计 row's 税额,
# the 价税合计 小写 and its 大写 (after the ⊗ mark).
LINE_RATE, LINE_TAX = (1040, 353, 1080, 379), (1150, 353, 1238, 379)
SUM_TAX, TOTAL, WORDS = (1140, 547, 1238, 575), (1100, 594, 1238, 624), (406, 594, 760, 626)
# 402700.00: ten times the 价税合计; 42929.34: the QR's 金额 at 13 %, not 6 %.
TEN_TIMES = ((TOTAL, "¥ 402700.00"), (WORDS, "肆拾万贰仟柒佰圆整"))
AT_13 = ((TOTAL, "¥ 42929.34"), (WORDS, "肆万贰仟玖佰贰拾玖圆叁角肆分"))

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(WQY),
                                reason="needs the WenQuanYi font (make test installs fonts-wqy-microhei)")


def _scan(*edits: tuple[tuple[int, int, int, int], str]) -> Image.Image:
    """The sample with each box painted white and its text (if any) drawn
    in: digits right-aligned in a bold face of the print's height, the 大写
    in a CJK face of its size."""
    page = Image.open(SAMPLES / SCAN).convert("RGB")
    draw = ImageDraw.Draw(page)
    digits, words = ImageFont.truetype("DejaVuSans-Bold.ttf", 16), ImageFont.truetype(WQY, 19)
    for box, text in edits:
        draw.rectangle(box, fill="white")
        if any("\u4e00" <= c <= "\u9fff" for c in text):
            draw.text((box[0] + 2, box[1] + 4), text, font=words, fill=(30, 30, 30))
        elif text:
            draw.text((box[2] - 6 - draw.textlength(text, font=digits), box[1] + 5), text, font=digits,
                      fill=(30, 30, 30))
    return page


def _read(page: Image.Image):
    out = io.BytesIO()
    page.save(out, "PNG")
    (invoice,) = extract_bytes(out.getvalue(), ocr=True)
    return invoice


def _money(invoice) -> list:
    return [invoice.get(n) for n in ("amount", "tax", "total", "total_in_words")]


def _refused(invoice) -> str:
    (problem,) = [p for p in invoice.problems if p.code == "ocr-unverified" and p.field == "total"]
    return problem.message


QR_ONLY = [Decimal(TRUTH["amount"]), None, None, None]  # the QR's 金额, and nothing the paper forged


def test_a_total_and_its_words_forged_with_the_tax_unread_are_left_empty_an_honest_one_stays():
    # The forger scrapes off both 税额 (line and 合计) and writes ten times the 价税合计.
    forged = _read(_scan((LINE_TAX, ""), (SUM_TAX, ""), *TEN_TIMES))
    assert _money(forged) == QR_ONLY
    assert "364709.43" in _refused(forged)  # 402700.00 − 37990.57: a tax of that 金额 at no rate
    # The 合计 row's 税额 unread, nothing forged: the line's 6 % and 税额 confirm 40270.00.
    honest = _read(_scan((SUM_TAX, "")))
    assert honest.get("total") == Decimal(TRUTH["total"])
    assert honest.get("total_in_words") == TRUTH["total_in_words"]


def test_a_total_forged_with_a_tax_of_another_amount_is_left_empty_lines_and_all():
    # 22794.34 is 6 % of 379905.66, and 379905.66 + 22794.34 = 402700.00: the
    # paper adds up if one believes a 金额 its QR does not say.
    forged = _read(_scan((LINE_TAX, "22794.34"), (SUM_TAX, "¥ 22794.34"), *TEN_TIMES))
    assert _money(forged) == QR_ONLY
    assert "364709.43" in _refused(forged)
    assert forged.items == []  # the forged line's 税额 is not kept either
    # The same boxes redrawn with what they printed: the redrawing is not what is refused.
    redrawn = _read(_scan((SUM_TAX, "¥ 2279.43"), (TOTAL, "¥ 40270.00"), (WORDS, TRUTH["total_in_words"])))
    assert _money(redrawn) == [Decimal(TRUTH[n]) for n in ("amount", "tax", "total")] + [TRUTH["total_in_words"]]


def test_a_total_forged_at_another_valid_rate_is_denied_by_the_lines_or_the_tax_read_twice():
    # 4938.77 is 13 % of the QR's 金额: a valid tax, but the line prints 6 %.
    by_lines = _read(_scan((SUM_TAX, "¥ 4938.77"), *AT_13))
    assert _money(by_lines) == QR_ONLY
    assert "the rates its lines print" in _refused(by_lines)
    # The line's 税率 and 税额 scraped off and the 税额 left: the page pass
    # does not place the 合计 row's 税额, a closer look reads it twice alike.
    page = _scan((LINE_RATE, ""), (LINE_TAX, ""), *AT_13)
    assert read_page(page).taxes_again == (Decimal(TRUTH["tax"]),) * 2
    by_tax = _read(page)
    assert _money(by_tax) == QR_ONLY
    assert "the 税额 reads 2279.43" in _refused(by_tax)
