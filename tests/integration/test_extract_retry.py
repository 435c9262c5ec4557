"""Recording an analysis: a compare-and-set on `captured`, absurd totals as a
rule not an exception, failures counted in ledger columns with backoff, and
the worker pool's time limit. Real SQLite, real vault, real worker processes."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

from agent.ledger import Ledger
from agent.ledger.rows import parse_utc, utc
from agent.model import State
from agent.pipeline import (EXTRACT_MAX_DELAY_S, Analysis, analyse, apply, due_for_extraction,
                            process_captured, record_failure, total_cents)
from agent.validate import ValidationSettings
from agent.vault import Vault
from service.workers import ExtractionPool

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
NOW = utc(T0)
SETTINGS = ValidationSettings(max_age_days=100000)
SHUDIAN = "kaihu8766-netizen__invoice-precheck/official-gd-special.xml"
GOOD = "renoyuan__easyofd/original_invoice.xml"


def capture(ledger: Ledger, vault: Vault, data: bytes, name: str = "f.xml") -> int:
    stored = vault.put_bytes(data)
    doc_id, _ = ledger.add_document(sha256=stored.sha256, size=stored.size, media_type=None, source_kind="ingest",
                                    source="test", original_name=name, original_path=None, now=NOW, actor="test")
    return doc_id


def due_ids(ledger: Ledger, now: str) -> list[int]:
    return [d.id for d in due_for_extraction(ledger, now=now, limit=10)]


def run(ledger: Ledger, vault: Vault, doc_id: int):
    return process_captured(ledger, vault, doc_id, settings=SETTINGS, destinations=[], today=T0.date(),
                            now=NOW, actor="test", ocr=False)


def test_an_18_digit_total_is_quarantined_amount_range_not_raised(tmp_path, samples_dir):
    # It overflowed the INTEGER cents column: OverflowError, document stuck.
    ledger, vault = Ledger(tmp_path / "l.sqlite3"), Vault(tmp_path / "v")
    for digits in (18, 19, 26):
        data = (samples_dir / SHUDIAN).read_bytes().replace(
            b"<TotalTax-includedAmount>2.12<", b"<TotalTax-includedAmount>" + b"9" * digits + b".12<").replace(
            b"23440000000000100001", b"234400000000001000%02d" % digits)
        doc_id = capture(ledger, vault, data)
        run(ledger, vault, doc_id)
        doc = ledger.get(doc_id)
        assert doc.state == "quarantined", digits
        assert "amount-range" in {p["code"] for p in doc.problems}, doc.problems
        assert doc.total_cents is None


def test_total_cents_holds_what_the_column_holds_and_nothing_else():
    assert total_cents(Decimal("25254.62")) == 2525462
    assert total_cents(Decimal("-526.00")) == -52600
    assert total_cents(Decimal("99999999999999999.12")) is None  # past 2^63 cents
    assert total_cents(Decimal("92233720368547758.07")) == 2 ** 63 - 1
    for bad in (Decimal("NaN"), Decimal("Infinity"), Decimal("1E+999999"), Decimal("1.005"), "abc", None):
        assert total_cents(bad) is None, bad


def test_the_second_reader_of_a_document_skips_and_sees_the_first_ones_state(tmp_path, samples_dir):
    # Two processes (the daemon and `ingest`) read one captured document;
    # the loser used to raise IllegalTransition.
    path = tmp_path / "l.sqlite3"
    first, second, vault = Ledger(path), Ledger(path), Vault(tmp_path / "v")
    doc_id = capture(first, vault, (samples_dir / GOOD).read_bytes())
    analysis = analyse(vault.read(first.get(doc_id).sha256), ocr=False)
    kw = dict(settings=SETTINGS, destinations=[], today=T0.date(), now=NOW, actor="test")
    assert apply(first, doc_id, analysis, **kw) == [doc_id]
    assert apply(second, doc_id, analysis, **kw) == []
    assert run(second, vault, doc_id).already == "valid"
    assert sum(e.from_state == "captured" for e in second.events(doc_id)) == 1


def test_failures_back_off_doubling_then_quarantine_extract_failed(tmp_path):
    ledger, vault = Ledger(tmp_path / "l.sqlite3"), Vault(tmp_path / "v")
    doc_id = capture(ledger, vault, b"%PDF-1.4 whatever")
    other = capture(ledger, vault, b"%PDF-1.4 another")
    clock = T0
    delays = []
    for attempt in range(1, 6):
        assert doc_id in due_ids(ledger, utc(clock))
        out = record_failure(ledger, doc_id, f"boom {attempt}", now=utc(clock), actor="test")
        assert out.failed == f"boom {attempt}"
        if attempt < 5:
            retry_at = parse_utc(out.retry_at)
            delays.append((retry_at - clock).total_seconds())
            # Not due before its time (no spin), due at it; others unaffected.
            assert due_ids(ledger, utc(retry_at - dt.timedelta(seconds=0.5))) == [other]
            assert ledger.get(doc_id).state == "captured"
            clock = retry_at
    assert delays == [2.0, 4.0, 8.0, 16.0]
    # Each failure's event says the wait, not a raw UTC moment (`show` prints it beside its local time).
    said = [e.reason for e in ledger.events(doc_id) if e.reason and e.reason.startswith("reading failed")]
    assert [r.split("; ")[1].split(")")[0] for r in said] == [
        "tried again in 2 s", "tried again in 4 s", "tried again in 8 s", "tried again in 16 s", "no more tries"]
    doc = ledger.get(doc_id)
    assert doc.state == "quarantined" and [p["code"] for p in doc.problems] == ["extract-failed"]
    assert "failed 5 times" in doc.problems[0]["message"] and "boom 5" in doc.problems[0]["message"]
    assert ledger.extraction_retry(doc_id) == {"attempts": 5, "next_at": None, "error": "boom 5"}
    # A further failure report for a document no longer captured changes nothing.
    assert record_failure(ledger, doc_id, "late", now=utc(clock), actor="test").already == "quarantined"


def test_a_retry_time_far_ahead_after_the_clock_went_back_is_due_now(tmp_path):
    ledger, vault = Ledger(tmp_path / "l.sqlite3"), Vault(tmp_path / "v")
    doc_id = capture(ledger, vault, b"%PDF-1.4 clock")
    record_failure(ledger, doc_id, "boom", now=NOW, actor="test")
    back = T0 - dt.timedelta(days=2)
    assert due_ids(ledger, utc(back)) == [doc_id]
    soon = T0 + dt.timedelta(seconds=1)
    assert due_ids(ledger, utc(soon)) == []
    assert EXTRACT_MAX_DELAY_S < 2 * 86400


def test_a_retryable_analysis_is_counted_not_quarantined_at_once(tmp_path):
    from agent.pipeline import record

    ledger, vault = Ledger(tmp_path / "l.sqlite3"), Vault(tmp_path / "v")
    doc_id = capture(ledger, vault, b"%PDF-1.4 crash")
    out = record(ledger, doc_id, Analysis(error_reason="internal", error_message="the reader process crashed"),
                 settings=SETTINGS, destinations=[], today=T0.date(), now=NOW, actor="test")
    assert out.retry_at and ledger.get(doc_id).state == "captured"
    out = record(ledger, doc_id, Analysis(error_reason="timeout", error_message="took too long"),
                 settings=SETTINGS, destinations=[], today=T0.date(), now=NOW, actor="test")
    doc = ledger.get(doc_id)
    assert doc.state == State.QUARANTINED.value and [p["code"] for p in doc.problems] == ["extract-timeout"]


def sleepy_reader(vault_root: str, sha256: str) -> Analysis:
    """Runs in a worker: 'slow' never finishes in time, anything else is quick."""
    if sha256 == "slow":
        time.sleep(3600)
    return Analysis(invoices=[{"is_invoice": True, "number": sha256}])


def test_the_pool_stops_a_document_past_its_time_and_replaces_only_that_worker(tmp_path: Path):
    pool = ExtractionPool(str(tmp_path), workers=2, reader=sleepy_reader, timeout_s=1.5)
    try:
        before = set(pool.worker_pids())
        assert pool.submit(1, "slow") and pool.submit(2, "a") and pool.submit(3, "b")
        got: dict[int, Analysis] = {}
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            got.update(pool.collect(0.2))
        assert got[1].error_reason == "timeout" and "1.5 s" in got[1].error_message
        assert got[2].invoices[0]["number"] == "a" and got[3].invoices[0]["number"] == "b"
        after = set(pool.worker_pids())
        assert len(before & after) == 1 and len(after) == 2  # one replaced, one kept
        assert pool.submit(4, "c")
        while 4 not in got and time.monotonic() < deadline:
            got.update(pool.collect(0.2))
        assert got[4].invoices[0]["number"] == "c"
    finally:
        pool.shutdown(1)


def test_one_document_that_cannot_be_judged_does_not_stop_the_resume(tmp_path):
    # At start the daemon judges documents left `extracted`; one whose stored
    # fields do not rebuild used to raise out of resume_stranded, and with it
    # out of the daemon's start, every start.
    from agent.pipeline import resume_stranded

    ledger, vault = Ledger(tmp_path / "l.sqlite3"), Vault(tmp_path / "v")
    broken = capture(ledger, vault, b"%PDF-1.4 broken")
    fine = capture(ledger, vault, b"%PDF-1.4 fine")
    ledger.transition(broken, State.EXTRACTED, now=NOW, actor="test", fields={"number": "1", "total": "abc"})
    ledger.transition(fine, State.EXTRACTED, now=NOW, actor="test", fields={"number": "2", "total": "1.00"})
    failures: list = []
    moved = resume_stranded(ledger, settings=SETTINGS, destinations=[], today=T0.date(), now=NOW, actor="test",
                            failures=failures)
    assert moved == 1 and ledger.get(fine).state == "quarantined"  # judged: its fields fail rules
    assert ledger.get(broken).state == "extracted"
    assert [doc_id for doc_id, _ in failures] == [broken] and "InvalidOperation" in failures[0][1]


def slot_reader(vault_root: str, job: str) -> Analysis:
    """Runs in a worker: hold the OCR slot as a page's OCR would ('hog': far too long)."""
    from agent.extract import ocr

    with ocr._gate():
        time.sleep(3600 if job == "hog" else 1.0)
    return Analysis(invoices=[{"is_invoice": True, "number": job}])


def test_waiting_for_an_ocr_slot_held_by_a_hostile_file_does_not_count_against_the_waiter(tmp_path: Path):
    # One OCR slot: 'hog' holds it until its own time runs out; 'next' waits
    # that long for the slot and then needs 1 s. Only 'hog' is stopped.
    pool = ExtractionPool(str(tmp_path), workers=2, reader=slot_reader, ocr_slots=1, slot_dir=str(tmp_path),
                          timeout_s=2.5)
    try:
        assert pool.submit(1, "hog")
        time.sleep(0.5)  # 'hog' has the slot
        assert pool.submit(2, "next")
        got: dict[int, Analysis] = {}
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            got.update(pool.collect(0.2))
        assert got[1].error_reason == "timeout"
        assert got[2].error_reason is None and got[2].invoices[0]["number"] == "next", got[2]
    finally:
        pool.shutdown(1)
