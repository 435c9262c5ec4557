"""Every non-null expected.json field of every real .pdf and .jpg sample,
extracted exactly (compared through Invoice.to_dict(): money as 2-decimal
strings, dates ISO)."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

from agent.extract import extract_bytes
from tests.conftest import SAMPLES

# Long (every sample, OCR included, ~60 s): started first, so it never runs alone at the end (tests/conftest.py).
pytestmark = pytest.mark.slow

EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
# Every sample that is not structured data (XML/OFD: test_samples_structured.py).
KEYS = sorted(k for k in EXPECTED if not k.endswith((".xml", ".ofd")))
FIELDS = ("is_invoice", "kind", "title", "code", "number", "date", "check_code", "amount", "tax",
          "total", "total_in_words", "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "qr")

# The two JPGs have no text layer: what is printed but not in the QR is read
# by OCR (the `ocr` extra, which `make test` installs).
NEEDS_OCR = {
    ("GitHub1he__QrToInvoice/S2.jpg", f) for f in ("buyer_name", "buyer_tax_id")
} | {
    ("renoyuan__easyofd/fc87372-test_img0.jpg", f)
    for f in ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "tax", "total",
              "total_in_words")
} | {
    # No QR at all: the 代码 and 号码 of a paper taxi invoice, by their
    # structure; its faint date and red title by a second look (ocr_regions).
    ("aymanajal__picture-bed/发票2.jpg", f) for f in ("code", "number", "date", "title")
} | {
    ("imethanlee__OCR/invoice.png", f)
    for f in ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "tax", "total", "total_in_words")
}

# (sample, field) that only issue 13's larger mechanisms can read. Each is
# empty today, never wrong (test_one_record_without_conflicts_or_invented_values),
# and its strict xfail turns into a failure the day it is read.
NOT_YET_READ: dict[tuple[str, str], str] = {}
# Files that give no record at all yet.
NO_RECORD_YET: dict[str, str] = {}


@lru_cache(maxsize=None)
def records(key: str) -> tuple[dict, ...]:
    return tuple(i.to_dict() for i in extract_bytes((SAMPLES / key).read_bytes(), name=key))


def _cases():
    for key in KEYS:
        for field in FIELDS:
            if EXPECTED[key].get(field) is None:
                continue
            marks = [pytest.mark.xfail(strict=True, reason=NOT_YET_READ[key, field])] \
                if (key, field) in NOT_YET_READ else []
            yield pytest.param(key, field, id=f"{key.split('/')[-1][:40]}:{field}", marks=marks)


@pytest.mark.parametrize("key,field", list(_cases()))
def test_expected_field(key, field):
    (record,) = records(key)
    assert record[field] == EXPECTED[key][field]
    if (key, field) in NEEDS_OCR:
        assert record["sources"][field] == "ocr"


def test_the_ocr_engine_is_installed():
    # Without it the OCR fields above fail one by one; this says why at once.
    from agent.extract.ocr import unavailable_reason

    assert unavailable_reason() is None


def test_without_ocr_a_scan_gives_its_qr_fields_and_nothing_printed():
    key = "renoyuan__easyofd/fc87372-test_img0.jpg"
    (invoice,) = extract_bytes((SAMPLES / key).read_bytes(), name=key, ocr=False)
    record = invoice.to_dict()
    assert set(record["sources"].values()) == {"qr"}
    assert record["number"] == EXPECTED[key]["number"]
    assert all(record[field] is None for k, field in NEEDS_OCR if k == key)


@pytest.mark.parametrize("key", [
    pytest.param(key, marks=[pytest.mark.xfail(strict=True, reason=NO_RECORD_YET[key])]
                 if key in NO_RECORD_YET else [])
    for key in KEYS
])
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
    assert set(KEYS) == {k for k in EXPECTED if k.endswith((".pdf", ".jpg", ".png"))}
    assert len(KEYS) >= 20
    for key, field in NEEDS_OCR | set(NOT_YET_READ):
        assert key in KEYS and EXPECTED[key][field] is not None, (key, field)
    assert set(NO_RECORD_YET) <= set(KEYS)
