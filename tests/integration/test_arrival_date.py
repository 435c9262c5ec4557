"""A date read from the page that is after the file arrived is not stored
(agent/extract/plausible.py `drop_dates_after`, applied where the pipeline
records an analysis). Real SQLite, real vault."""

from __future__ import annotations

import datetime as dt

from agent.ledger import Ledger
from agent.ledger.rows import utc
from agent.pipeline import Analysis, apply
from agent.validate import ValidationSettings
from agent.vault import Vault

SETTINGS = ValidationSettings(max_age_days=100000)


def _record(tmp_path, arrived: dt.datetime, fields: dict, sources: dict) -> tuple[dict, list[str]]:
    ledger, vault = Ledger(tmp_path / "l.sqlite3"), Vault(tmp_path / "v")
    stored = vault.put_bytes(repr(fields).encode())
    doc_id, _ = ledger.add_document(sha256=stored.sha256, size=stored.size, media_type=None, source_kind="ingest",
                                    source="test", original_name="f.pdf", original_path=None, now=utc(arrived),
                                    actor="test")
    later = arrived + dt.timedelta(days=3)
    apply(ledger, doc_id, Analysis(invoices=[{"is_invoice": True, **fields, "sources": sources}]),
          settings=SETTINGS, destinations=[], today=later.date(), now=utc(later), actor="test")
    doc = ledger.get(doc_id)
    return doc.fields or {}, [p["code"] for p in doc.problems]


def test_a_page_date_after_the_arrival_day_in_china_is_left_empty(tmp_path):
    # Arrived 2026-12-01 17:00 in China; the page "says" 2026-12-02 (another box's date).
    fields, codes = _record(tmp_path, dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc),
                            {"number": "26442000000123456789", "date": "2026-12-02"},
                            {"number": "pdf-text", "date": "pdf-text"})
    assert fields["date"] is None and "implausible-date" in codes


def test_the_arrival_day_is_chinas_and_a_qr_date_is_kept(tmp_path):
    # 2026-11-30 17:00 UTC is already 2026-12-01 in China: that date is sound.
    fields, codes = _record(tmp_path / "a", dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.timezone.utc),
                            {"number": "26442000000123456789", "date": "2026-12-01"},
                            {"number": "pdf-text", "date": "ocr"})
    assert fields["date"] == "2026-12-01" and "implausible-date" not in codes
    fields, codes = _record(tmp_path / "b", dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc),
                            {"number": "26442000000123456789", "date": "2026-12-05"},
                            {"number": "qr", "date": "qr"})
    assert fields["date"] == "2026-12-05" and "implausible-date" not in codes
