"""A real scan (imethanlee__OCR/invoice.png) whose QR code an attacker
covered with another: the QR is the authority for what it carries, but
the print read by OCR must not be joined to it when the two are not one
invoice, nor a forged QR amount pass where the print confirms its own.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from functools import lru_cache

import segno
from PIL import Image

from agent.extract import extract_bytes
from agent.validate.settings import ValidationSettings
from agent.validate.validator import has_errors, validate
from tests.conftest import SAMPLES

SCAN = "imethanlee__OCR/invoice.png"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
TODAY = dt.date(2020, 8, 1)


@lru_cache(maxsize=None)
def _scan() -> Image.Image:
    return Image.open(SAMPLES / SCAN).convert("RGB")


def _with_qr(payload: str) -> bytes:
    """The scan with a QR of `payload` printed over its own (top left)."""
    buf = io.BytesIO()
    segno.make(payload, error="m").save(buf, kind="png", scale=10, border=2)
    page = _scan().copy()
    page.paste(Image.open(buf).convert("RGB").resize((130, 130), Image.Resampling.NEAREST), (20, 15))
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


def test_another_invoices_qr_over_the_print_keeps_nothing_of_the_print():
    other = EXPECTED["theJinFei__Distributed-Storage-Paper/发票.pdf"]
    (invoice,) = extract_bytes(_with_qr(other["qr"]), ocr=True)
    truth = EXPECTED[SCAN]
    assert invoice.get("number") == other["number"]  # the QR is still read as it is
    conflicts = {c.field: c.values for c in invoice.conflicts}
    assert conflicts["number"] == {"qr": other["number"], "ocr": truth["number"]}
    assert conflicts["code"] == {"qr": other["code"], "ocr": truth["code"]}
    # The print's names, ids and totals are another invoice's: none joins this key.
    for name in ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "tax", "total"):
        assert invoice.get(name) is None, name
    (problem,) = [p for p in invoice.problems if p.code == "ocr-other-invoice"]
    assert problem.severity == "error" and problem.message_zh
    problems = validate(invoice, ValidationSettings(), today=TODAY)
    assert has_errors(problems)
    assert {"qr-mismatch", "ocr-other-invoice"} <= {p.code for p in problems}


def test_a_forged_qr_amount_against_a_print_that_adds_up_is_a_conflict():
    truth = EXPECTED[SCAN]
    forged = truth["qr"].replace(",37990.57,", ",47990.57,")
    (invoice,) = extract_bytes(_with_qr(forged), ocr=True)
    # 37990.57 + 2279.43 = 40270.00 = 肆万零贰佰柒拾圆整 on the paper: no misread.
    (conflict,) = [c for c in invoice.conflicts if c.field == "amount"]
    assert conflict.values == {"qr": Decimal("47990.57"), "ocr": Decimal("37990.57")}
    assert invoice.get("number") == truth["number"]  # the same invoice: its print is kept
    assert invoice.get("seller_tax_id") == truth["seller_tax_id"]
    problems = validate(invoice, ValidationSettings(), today=TODAY)
    assert "qr-mismatch" in {p.code for p in problems if p.severity == "error"}
