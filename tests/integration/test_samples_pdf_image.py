"""Every non-null expected.json field of every real .pdf and .jpg sample,
extracted exactly (compared through Invoice.to_dict(): money as 2-decimal
strings, dates ISO)."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

from agent.extract import extract_bytes
from tests.conftest import SAMPLES

EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
KEYS = sorted(k for k in EXPECTED if k.endswith((".pdf", ".jpg")))
FIELDS = ("is_invoice", "kind", "title", "code", "number", "date", "check_code", "amount", "tax",
          "total", "total_in_words", "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "qr")

# The two JPGs have no text layer: what is printed but not in the QR needs OCR,
# which is not among the dependencies (see the report in issue 3).
NEEDS_OCR = {
    ("GitHub1he__QrToInvoice/S2.jpg", f) for f in ("buyer_name", "buyer_tax_id")
} | {
    ("renoyuan__easyofd/fc87372-test_img0.jpg", f)
    for f in ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "tax", "total",
              "total_in_words")
}


@lru_cache(maxsize=None)
def records(key: str) -> tuple[dict, ...]:
    return tuple(i.to_dict() for i in extract_bytes((SAMPLES / key).read_bytes(), name=key))


def _cases():
    for key in KEYS:
        for field in FIELDS:
            if EXPECTED[key].get(field) is None:
                continue
            marks = ()
            if (key, field) in NEEDS_OCR:
                marks = pytest.mark.xfail(strict=True, reason="printed only; reading it needs OCR")
            yield pytest.param(key, field, id=f"{key.split('/')[-1][:40]}:{field}", marks=marks)


@pytest.mark.parametrize("key,field", list(_cases()))
def test_expected_field(key, field):
    (record,) = records(key)
    assert record[field] == EXPECTED[key][field]


@pytest.mark.parametrize("key", KEYS)
def test_one_record_without_conflicts_or_invented_values(key):
    got = records(key)
    assert len(got) == 1
    record = got[0]
    assert record["conflicts"] == []
    for field in FIELDS:
        want = EXPECTED[key].get(field)
        if want is not None and record[field] is not None:
            assert record[field] == want, field


def test_didi_trip_list_is_not_an_invoice():
    (record,) = records("kudeerliu48-web__fapiaohezi/3c45c82f_滴滴出行行程报销单.pdf")
    assert record["is_invoice"] is False
    assert record["number"] is None
    assert "not an invoice QR" in record["not_invoice_reason"]


def test_every_pdf_and_jpg_sample_is_covered():
    assert len(KEYS) == 10
    assert len(NEEDS_OCR) == 9
