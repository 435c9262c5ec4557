"""OCR on generated scans (crooked, blurred, speckled, JPEG-compressed, a
page fed sideways) against the generator's full truth: what OCR adds is
never wrong, and nearly all of it is read. The two real image samples are
checked field by field in test_samples_pdf_image.py.

bench/extract.py runs the same comparison on more scans and prints it.
"""

from __future__ import annotations

import datetime as dt
import random
from functools import lru_cache

import pytest
from click.testing import CliRunner

from agent.extract import extract_bytes
from service.cli import main as cli
from tests.corpus.compare import EXPECTED_KEYS
from tests.corpus.generate import make_invoice

TODAY = dt.date(2026, 11, 29)
STYLES = ("scan-jpg", "scan-png", "scan-pdf")
COUNT = 12   # four of each style: every field class on jpg, png and pdf scans


@lru_cache(maxsize=None)
def scans():
    out = []
    for i in range(COUNT):
        g = make_invoice(random.Random(1000 + i), STYLES[i % 3], TODAY)
        out.append((f"{i:02d}-{g.style}.{g.ext}", g, extract_bytes(g.data, name=g.style)))
    return tuple(out)


# The first test reads all the scans (cached for the others): ~100 s of OCR
# on an idle 2-core machine, twice that beside another pytest worker.
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_no_field_ocr_adds_is_ever_wrong_and_nearly_all_are_read():
    wrong, read, by_ocr, printed_only = [], 0, 0, 0
    for name, g, invoices in scans():
        (invoice,) = invoices
        record = invoice.to_dict()
        for key in EXPECTED_KEYS:
            truth = g.truth.get(key)
            if truth is None or g.expected.get(key) is not None:
                continue  # the QR's fields are checked by the corpus accuracy test
            printed_only += 1
            if record[key] is None:
                continue  # refused by a check (see the next test) or not found
            read += 1
            by_ocr += record["sources"][key] == "ocr"
            if record[key] != truth:
                wrong.append(f"{name} {key}: {record[key]!r} != {truth!r}")
    assert not wrong, "\n".join(wrong)
    assert printed_only > COUNT * 5
    assert read / printed_only >= 0.95, f"read {read} of {printed_only} printed-only fields"
    assert by_ocr >= 0.8 * printed_only  # titles may come from the QR's 代码; the rest is OCR's


@pytest.mark.timeout(1200)
def test_every_refused_ocr_value_says_why_in_a_warning():
    for name, g, invoices in scans():
        for problem in invoices[0].problems:
            assert problem.severity == "warning", (name, problem)
            assert problem.code in {"ocr-unverified", "ocr-disagrees"}, (name, problem)


def test_a_scanner_batch_gets_ocr_on_every_invoice_page():
    g = make_invoice(random.Random(5), "scan-batch", TODAY)
    invoices = extract_bytes(g.data)
    assert len(invoices) == len(g.pages) >= 2
    assert invoices[0].get("seller_name") == g.truth["seller_name"]
    for invoice in invoices:
        assert invoice.fields["seller_name"].source == "ocr"


def test_ocr_off_reads_the_qr_only(tmp_path):
    g = make_invoice(random.Random(1000), "scan-jpg", TODAY)
    (invoice,) = extract_bytes(g.data, ocr=False)
    assert {f.source for f in invoice.fields.values()} == {"qr"}
    assert invoice.get("buyer_name") is None


@pytest.mark.parametrize("flag,source", [("--ocr", "ocr"), ("--no-ocr", None)])
def test_extract_cli_ocr_switch(tmp_path, flag, source):
    import json

    g = make_invoice(random.Random(1001), "scan-png", TODAY)
    path = tmp_path / f"scan.{g.ext}"
    path.write_bytes(g.data)
    result = CliRunner().invoke(cli, ["extract", "--json", flag, str(path)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.splitlines()[0])
    assert record["sources"].get("seller_name") == source
    assert record["number"] == g.truth["number"]
