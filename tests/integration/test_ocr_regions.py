"""Second looks at a photo's print (agent/extract/ocr_regions.py), on phone
photos of paper invoices whose QR is damaged (tests/corpus/photo.py):
- a date printed faint (worn ribbon, thermal print) is read from the strip
  beside its label, or left empty with a warning, never wrong;
- a title printed red under a heavy red seal is read and mapped to its
  known title, or left empty, never wrong;
- a date label with nothing readable beside it leaves the date empty with
  an `ocr-unverified` warning that says so;
- with a whole QR the date is the QR's, and no second look is spent on it.

bench/extract.py --photos-only times a whole-page OCR with these looks.
"""

from __future__ import annotations

import datetime as dt
import random
from functools import lru_cache

import pytest

from agent.extract import extract_bytes
from tests.corpus.photo import make_photo

# Long (OCR of 8 photos, ~70 s): started first, so it never runs alone at the end (tests/conftest.py).
pytestmark = pytest.mark.slow

TODAY = dt.date(2026, 11, 29)
FIELDS = ("title", "code", "number", "date", "check_code", "amount", "tax", "total", "total_in_words",
          "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")
COUNT = 8


@lru_cache(maxsize=None)
def faded_photos():
    out = []
    for i in range(COUNT):
        photo = make_photo(random.Random(1000 + i), TODAY, damage_qr=True, faint_date=True, red_title=True)
        out.append((i, photo, extract_bytes(photo.data, name=f"faded-{i}")))
    return tuple(out)


# A whole-page OCR and a few strips per photo: ~1.5 min on an idle 2-core
# machine, far more on a loaded one.
@pytest.mark.timeout(1200)
def test_a_faint_date_and_a_red_title_are_read_right_or_left_empty():
    wrong, dates, titles = [], 0, 0
    for i, photo, invoices in faded_photos():
        (invoice,) = invoices
        record = invoice.to_dict()
        wrong += [f"photo {i} {k}: {record[k]!r} != {photo.truth[k]!r}" for k in FIELDS
                  if record[k] is not None and record[k] != photo.truth[k]]
        dates += record["date"] is not None
        titles += record["title"] is not None
        for name in ("date", "title"):
            if record[name] is None:
                # Left for 补录 with a reason, never silently.
                assert any(p.code == "ocr-unverified" and p.field == name for p in invoice.problems), (i, name)
            else:
                assert record["sources"][name] == "ocr"
    assert not wrong, "\n".join(wrong)
    # The whole-page pass alone read 5 of 8 dates and 6 of 8 titles here.
    assert dates >= COUNT - 1, f"read {dates} of {COUNT} faint dates"
    assert titles >= COUNT - 1, f"read {titles} of {COUNT} red titles"


@pytest.mark.timeout(600)
def test_a_date_worn_away_is_left_empty_with_a_warning():
    photo = make_photo(random.Random(1003), TODAY, damage_qr=True, faint_date=1.0)
    (invoice,) = extract_bytes(photo.data)
    assert invoice.get("date") is None
    (problem,) = [p for p in invoice.problems if p.field == "date"]
    assert (problem.code, problem.severity) == ("ocr-unverified", "warning")
    assert "date label" in problem.message
    assert invoice.get("number") == photo.truth["number"]


@pytest.mark.timeout(600)
def test_with_a_whole_qr_the_date_is_the_qrs_and_not_looked_for_again():
    photo = make_photo(random.Random(1004), TODAY, faint_date=True)
    (invoice,) = extract_bytes(photo.data)
    assert invoice.to_dict()["qr"] == photo.truth["qr"]
    assert invoice.fields["date"].source == "qr"
    assert not [p for p in invoice.problems if p.field == "date"]
