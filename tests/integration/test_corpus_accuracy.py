"""The readers get every field of 200 mixed synthetic invoices exactly right.

200 is the fast slice of the 1,000-invoice acceptance run (bench/extract.py
runs the full 1,000 and prints the accuracy). Every mismatch is listed in one
assertion message, with the seed and index that regenerate the file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from agent.errors import ExtractError
from agent.extract import extract_bytes
from tests.corpus import make_corpus
from tests.corpus.compare import mismatches

REPO = Path(__file__).resolve().parents[2]
SEED = 20261129
COUNT = 200

pytestmark = pytest.mark.skipif(
    not (REPO / "agent" / "extract" / "pdf.py").exists(),
    reason="agent/extract/pdf.py (the PDF/image reader) is not written yet",
)


def test_every_expected_field_of_200_mixed_invoices_is_extracted_exactly():
    # A fixed `today` keeps the corpus identical run to run; the dates only
    # need to be plausible for the readers, which do not judge age.
    corpus = make_corpus(SEED, COUNT, today=dt.date(2026, 11, 29), workers=2)
    failures = []
    for i, inv in enumerate(corpus):
        name = f"{i:04d}-{inv.style}.{inv.ext}"
        try:
            # Scans are held to their QR's fields here; what OCR adds is
            # checked against the full truth in test_ocr_scans.py.
            problems = mismatches(inv.records, extract_bytes(inv.data, name=name, ocr=False))
        except ExtractError as e:
            problems = [f"ExtractError {e.reason}: {e.message}"]
        failures += [f"{name}: {p}" for p in problems]
    styles = {inv.style for inv in corpus}
    assert len(styles) >= 8, styles  # the mix really covers the layouts
    assert not failures, (f"{len(failures)} field mismatches (make_corpus({SEED}, {COUNT})):\n"
                          + "\n".join(failures))
