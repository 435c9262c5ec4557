"""No wrong values: every name, tax id, amount, 代码, 号码, 校验码 and date a
reader stores is the true one, or it is empty (issue 13's acceptance).

An empty field sends the invoice to 补录; a wrong one could be paid. So this
counts only wrong values, over the real samples (../shared/samples) and over
generated files: the mixed corpus and the layouts that lost or garbled fields
on real invoices (tests/corpus/layouts_extra.py: portrait, 代开, no ¥, a 密码区
glued to the buyer, OFDs with page text only). Accuracy (how many are read at
all) is test_corpus_accuracy's and test_samples_*'s business.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from types import SimpleNamespace

import pytest

from agent.errors import ExtractError
from agent.extract import extract_bytes
from agent.model import Invoice
from tests.conftest import SAMPLES
from tests.corpus import make_corpus
from tests.corpus.layouts_extra import EXTRA_STYLES, make_extra_corpus
from tests.integration.test_samples_pdf_image import records as sample_records

from tests.corpus import pdf_variants

CHECKED = ("code", "number", "date", "check_code", "amount", "tax", "total",
           "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")
TODAY = dt.date(2026, 11, 29)
SEED = 20261203


def wrong_values(truths: list[dict], invoices: list[Invoice]) -> list[str]:
    """Every stored value that differs from its truth (a null truth is not
    determinable and checks nothing), one line each. A file that gives a
    different number of invoices than it holds is wrong as a whole."""
    if len(invoices) != len(truths):
        return [f"{len(invoices)} invoice record(s) for {len(truths)} invoice(s)"]
    out = []
    for n, (truth, invoice) in enumerate(zip(truths, invoices), 1):
        got = invoice.to_dict()
        for name in CHECKED:
            want, have = truth.get(name), got.get(name)
            if want is not None and have is not None and have != want:
                source = got["sources"].get(name)
                out.append(f"{'page %d ' % n if len(truths) > 1 else ''}{name}: stored {have!r} "
                           f"({source}), truth {want!r}")
    return out


def _read(data: bytes, name: str, ocr: bool) -> list[Invoice]:
    try:
        return extract_bytes(data, name=name, ocr=ocr)
    except ExtractError:
        return []  # nothing read is nothing wrong; the accuracy tests count it


def _check(corpus, ocr: bool) -> list[str]:
    failures = []
    for i, g in enumerate(corpus):
        name = f"{i:03d}-{g.style}.{g.ext}"
        truths = list(g.pages) if g.pages else [g.truth]
        invoices = _read(g.data, name, ocr)
        if not invoices:
            continue
        failures += [f"{name}: {line}" for line in wrong_values(truths, invoices)]
    return failures


def test_no_sample_gets_a_wrong_value():
    expected = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
    failures = []
    for key, truth in expected.items():
        if not truth.get("is_invoice"):
            continue
        if key.endswith((".xml", ".ofd")):
            invoices = _read((SAMPLES / key).read_bytes(), key, ocr=False)
        else:
            # PDFs and images as test_samples_pdf_image reads them (OCR on),
            # from its cache: OCR of a photo costs seconds.
            try:
                invoices = [Invoice.from_dict(d) for d in sample_records(key)]
            except ExtractError:
                invoices = []
        if invoices:
            failures += [f"{key}: {line}" for line in wrong_values([truth], invoices[:1])]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("style", EXTRA_STYLES)
def test_no_wrong_value_in_the_layouts_that_garbled_real_invoices(style):
    corpus = make_extra_corpus(SEED, 8, TODAY, styles=(style,))
    failures = _check(corpus, ocr=False)
    assert not failures, f"{len(failures)} wrong values (make_extra_corpus({SEED}, 8, {style!r})):\n" + "\n".join(failures)


def test_no_wrong_value_in_the_mixed_corpus():
    corpus = make_corpus(SEED, 60, today=TODAY, workers=2)
    failures = _check(corpus, ocr=False)
    assert not failures, f"{len(failures)} wrong values (make_corpus({SEED}, 60)):\n" + "\n".join(failures)


def test_a_daikai_qr_total_is_never_stored_as_the_amount():
    # The case issue 13 met: the QR of a type-10/20 invoice carries the 价税合计.
    for g in make_extra_corpus(SEED + 1, 4, TODAY, styles=("daikai",)):
        [invoice] = extract_bytes(g.data, ocr=False)
        assert invoice.to_dict()["amount"] in (g.truth["amount"], None)
        assert "qr-amount-other" in [p.code for p in invoice.problems]


def _pdf_variant(rng: random.Random, variant: str) -> SimpleNamespace:
    data, _expected, truth = pdf_variants.make_variant(rng, variant, TODAY)
    return SimpleNamespace(style=variant, ext="pdf", data=data, truth=truth, pages=None)


def test_no_wrong_value_when_the_qr_or_the_text_layer_needs_the_render():
    # QR as 1-bit, mask, inline, CCITT, JBIG2 or vector modules; a garbled
    # text layer (its printed values are for OCR: read without it here,
    # nothing it garbled may come out as a value).
    rng = random.Random(SEED)
    corpus = [_pdf_variant(random.Random(rng.getrandbits(64)), variant)
              for variant in pdf_variants.VARIANTS for _ in range(3)]
    failures = _check(corpus, ocr=False)
    assert not failures, "\n".join(failures)
