"""The ledger's state machine, audit log, counts and migrations."""

from __future__ import annotations

import sqlite3

import pytest

from agent.errors import IllegalTransition, NotFoundInLedger
from agent.ledger import Ledger
from agent.ledger.documents import Step
from agent.ledger.schema import LATEST, MIGRATIONS
from agent.ledger.trail import TrailReader
from agent.model import TRANSITIONS, State
from agent.trail import verify_chain

T0 = "2026-01-01T00:00:00.000000Z"
T1 = "2026-01-01T00:00:01.000000Z"


def add(ledger: Ledger, sha: str = "a" * 64, name: str = "x.pdf") -> int:
    doc_id, _ = ledger.add_document(sha256=sha, size=10, media_type="pdf", source_kind="ingest",
                                    source="/in", original_name=name, original_path=f"/in/{name}",
                                    now=T0, actor="test")
    return doc_id


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as led:
        yield led


def test_same_bytes_give_one_document_with_two_sources(ledger):
    first = ledger.add_document(sha256="b" * 64, size=1, media_type="pdf", source_kind="scanner",
                                source="/scan", original_name="a.pdf", original_path="/scan/a.pdf",
                                now=T0, actor="t")
    second = ledger.add_document(sha256="b" * 64, size=1, media_type="pdf", source_kind="email",
                                 source="mail", original_name="b.pdf", original_path=None, now=T1, actor="t")
    assert first == (1, True) and second == (1, False)
    assert [s.source_kind for s in ledger.sources(1)] == ["scanner", "email"]
    assert ledger.counts()["captured"] == 1


def test_transition_writes_state_and_event_together(ledger):
    doc = add(ledger)
    ledger.transition(doc, State.EXTRACTED, now=T1, actor="worker", reason="read", fields={"number": "1"})
    got = ledger.get(doc)
    assert got.state == "extracted" and got.fields == {"number": "1"} and got.updated_at == T1
    events = ledger.events(doc)
    assert [(e.from_state, e.to_state, e.actor) for e in events] == [
        (None, "captured", "test"), ("captured", "extracted", "worker")]


@pytest.mark.parametrize("old,new", [(o, n) for o in State for n in State if n not in TRANSITIONS[o]][:40])
def test_illegal_transitions_raise_and_change_nothing(tmp_path, old, new):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        doc = add(ledger)
        ledger.conn.execute("UPDATE documents SET state = ? WHERE id = ?", (old.value, doc))
        before = len(ledger.events(doc))
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            ledger.transition(doc, new, now=T1, actor="t")
        assert ledger.get(doc).state == old.value
        assert len(ledger.events(doc)) == before


def test_expect_guards_against_a_concurrent_change(ledger):
    doc = add(ledger)
    ledger.transition(doc, State.EXTRACTED, now=T1, actor="t")
    with pytest.raises(IllegalTransition, match="is extracted, not captured"):
        ledger.transition(doc, State.QUARANTINED, now=T1, actor="t", expect=State.CAPTURED)


def test_advance_writes_each_step_as_its_own_event_and_the_row_once(ledger):
    doc = add(ledger)
    other = add(ledger, sha="c" * 64)
    ledger.advance(doc, [Step(State.EXTRACTED, "read", columns={"fields": {"number": "1"}, "invoice_number": "1"}),
                         Step(State.VALID, "valid", {"why": "ok"}, {"problems": [{"code": "w"}]}),
                         Step(State.QUEUED, "queued", columns={"invoice_number": "2"})],
                   now=T1, actor="worker", expect=State.CAPTURED)
    ledger.transition(other, State.QUARANTINED, now=T1, actor="t")
    got = ledger.get(doc)
    # The later step's value of a column wins; the others are all written.
    assert (got.state, got.fields, got.problems, got.invoice_number) == (
        "queued", {"number": "1"}, [{"code": "w"}], "2")
    assert [(e.from_state, e.to_state, e.reason, e.details) for e in ledger.events(doc)][1:] == [
        ("captured", "extracted", "read", None), ("extracted", "valid", "valid", {"why": "ok"}),
        ("valid", "queued", "queued", None)]
    assert ledger.counts()["queued"] == 1 and ledger.counts()["captured"] == 0
    # Chained as if written one by one: the trail verifies whole, the event
    # written after the batch links onto its last one.
    reader = TrailReader(ledger)
    assert list(verify_chain(reader.chain(), reader.head())) == []


def test_advance_with_one_forbidden_step_changes_nothing(ledger):
    doc = add(ledger)
    before = ledger.conn.execute("SELECT * FROM trail_head").fetchall()
    with pytest.raises(IllegalTransition, match="extracted -> delivered"):
        ledger.advance(doc, [Step(State.EXTRACTED, columns={"fields": {"number": "1"}}), Step(State.DELIVERED)],
                       now=T1, actor="t")
    with pytest.raises(IllegalTransition, match="is captured, not extracted"):
        ledger.advance(doc, [Step(State.VALID)], now=T1, actor="t", expect=State.EXTRACTED)
    with pytest.raises(ValueError, match="not updatable"):
        ledger.advance(doc, [Step(State.EXTRACTED, columns={"state": "queued"})], now=T1, actor="t")
    got = ledger.get(doc)
    assert (got.state, got.fields, len(ledger.events(doc))) == ("captured", None, 1)
    assert ledger.conn.execute("SELECT * FROM trail_head").fetchall() == before


def test_failed_transaction_rolls_back_state_and_event(ledger):
    doc = add(ledger)
    with pytest.raises(RuntimeError):
        with ledger.transaction():
            ledger.transition(doc, State.EXTRACTED, now=T1, actor="t")
            raise RuntimeError("crash between two steps")
    assert ledger.get(doc).state == "captured"
    assert len(ledger.events(doc)) == 1


def test_counts_include_every_state_and_follow_transitions(ledger):
    for i in range(3):
        add(ledger, sha=str(i) * 64)
    ledger.transition(2, State.QUARANTINED, now=T1, actor="t")
    counts = ledger.counts()
    assert set(counts) == {s.value for s in State}
    assert counts["captured"] == 2 and counts["quarantined"] == 1 and counts["failed"] == 0


def test_find_by_id_sha_prefix_and_invoice_number(ledger):
    doc = add(ledger, sha="c0ffee" + "0" * 58)
    ledger.transition(doc, State.EXTRACTED, now=T1, actor="t", invoice_number="24112000000048542163")
    assert [d.id for d in ledger.find(str(doc))] == [doc]
    assert [d.id for d in ledger.find("c0ffee")] == [doc]
    assert [d.id for d in ledger.find("24112000000048542163")] == [doc]
    with pytest.raises(NotFoundInLedger):
        ledger.find("deadbeef")


def test_list_filters_and_sorts(ledger):
    for i, (cents, date) in enumerate([(500, "2026-01-03"), (90000, "2026-01-01"), (100, "2026-01-02")]):
        d = add(ledger, sha=str(i) * 64)
        ledger.transition(d, State.EXTRACTED, now=T1, actor="t", total_cents=cents, invoice_date=date)
    assert [d.total_cents for d in ledger.list_documents(sort="amount")] == [90000, 500, 100]
    assert [d.invoice_date for d in ledger.list_documents(sort="date")][0] == "2026-01-03"
    assert ledger.list_documents(state="failed") == []
    assert len(ledger.list_documents(limit=2)) == 2


def test_migration_from_the_first_schema_keeps_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO documents (sha256, size, source_kind, received_at, updated_at, state) "
                 "VALUES (?, 1, 'ingest', ?, ?, 'quarantined')", ("d" * 64, T0, T0))
    conn.commit()
    conn.close()
    with Ledger(path) as ledger:
        assert ledger.schema_version == LATEST
        assert ledger.counts()["quarantined"] == 1  # counts table seeded from old rows
        doc = ledger.get(1)
        assert doc.invoice_key is None
        ledger.transition(1, State.REJECTED, now=T1, actor="t")
        assert ledger.counts()["quarantined"] == 0 and ledger.counts()["rejected"] == 1


def test_reopening_is_idempotent(tmp_path):
    Ledger(tmp_path / "l.sqlite3").close()
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        assert ledger.schema_version == LATEST
        assert ledger.integrity_check() == "ok"


def test_a_nested_transaction_that_fails_is_undone_alone(ledger):
    # A group of files commits at once (service/intake.py): one file's
    # failed writes must not ride along with the others'.
    with ledger.transaction():
        first = add(ledger, "a" * 64, "a.pdf")
        with pytest.raises(RuntimeError):
            with ledger.transaction():
                add(ledger, "b" * 64, "b.pdf")
                raise RuntimeError("this file's recording failed")
        third = add(ledger, "c" * 64, "c.pdf")
    names = sorted(d.original_name for d in ledger.list_documents())
    assert names == ["a.pdf", "c.pdf"]
    assert [e.reason for e in ledger.events(first)] == ["captured"]
    assert [e.reason for e in ledger.events(third)] == ["captured"]


def test_a_nested_failure_after_sqlite_undid_everything_is_the_ledgers(ledger):
    # Out of memory or an I/O error inside a savepoint: SQLite may roll the
    # whole transaction back itself. The group's earlier files are gone
    # then, so the error must stop the group (the ledger's), not pass for
    # one file's while the rest carries on outside any transaction.
    with pytest.raises(sqlite3.OperationalError, match="rolled back the whole transaction: MemoryError"):
        with ledger.transaction():
            add(ledger, "a" * 64, "a.pdf")
            with ledger.transaction():
                add(ledger, "b" * 64, "b.pdf")
                ledger.conn.execute("ROLLBACK")   # what SQLite does itself on SQLITE_NOMEM
                raise MemoryError()
    assert not ledger.conn.in_transaction
    assert ledger.list_documents() == []


def test_memory_journals_last_as_long_as_their_transaction(ledger):
    def temp_store() -> int:
        return ledger.conn.execute("PRAGMA temp_store").fetchone()[0]

    default = temp_store()
    with ledger.transaction(memory_journals=True):
        assert temp_store() == 2   # MEMORY
        with ledger.transaction():
            add(ledger, "a" * 64, "a.pdf")
    assert temp_store() == default
    with pytest.raises(RuntimeError):
        with ledger.transaction(memory_journals=True):
            raise RuntimeError("a failed group")
    assert temp_store() == default   # a whole-ledger query after it spills to disk again
    assert [d.original_name for d in ledger.list_documents()] == ["a.pdf"]


def test_backed_up_count_one_target_or_several_counts_each_original_once(ledger):
    # One target's held count is read from its done rows (one per original:
    # UNIQUE (sha256, target)); several targets' from the originals held by
    # at least min_copies of them. Pending rows and other targets' rows never count.
    shas = [c * 64 for c in "abcde"]
    for i, sha in enumerate(shas):
        add(ledger, sha, f"{i}.pdf")
    now = "2026-12-04T00:00:00.000000Z"
    for target in ("nas", "s3"):
        ledger.enqueue_backups(target, now=now)
    ledger.backups_done("nas", [(s, 1) for s in shas[:3]], now=now, day="2026-12-04")
    ledger.backups_done("s3", [(s, 1) for s in shas[2:4]], now=now, day="2026-12-04")
    counts = {(tuple(t), n): ledger.backed_up_count(t, n)["backed_up"]
              for t, n in ((["nas"], 1), (["nas"], 0), (["s3"], 1), (["nas", "s3"], 1), (["nas", "s3"], 0),
                           (["nas", "s3"], 2))}
    assert counts == {(("nas",), 1): 3, (("nas",), 0): 3, (("s3",), 1): 2, (("nas", "s3"), 1): 4,
                      (("nas", "s3"), 0): 1, (("nas", "s3"), 2): 1}
    assert ledger.backed_up_count(["nas"], 1) == {"objects": 5, "backed_up": 3, "documents": 5,
                                                  "documents_backed_up": 3}


def test_looking_up_a_refusal_of_an_object_does_not_read_all_its_refusals(tmp_path):
    # A zip of 2,000 junk members dropped under 50 names leaves 100,000
    # refusals naming one object; recording one more "once", or restoring
    # one from a sidecar, must find its match by the index, not by reading
    # them all (46 s a drop before the index covered name and source).
    sha = "cd" * 32
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        with ledger.transaction() as c:
            c.executemany("INSERT INTO refusals (at, source, name, reason, sha256) VALUES (?, ?, ?, ?, ?)",
                          [("2026-12-01T08:00:00.000000Z", "zip /scan/a.zip", f"a.zip/{i}.txt", "junk", sha)
                           for i in range(5000)])
        steps = []
        ledger.conn.set_progress_handler(lambda: steps.append(1), 100)   # every 100 VM instructions
        ledger.record_refusal(source="zip /scan/a.zip", name="a.zip/4999.txt", reason="junk", sha256=sha,
                              now="2026-12-02T08:00:00.000000Z", once=True)
        ledger.restore_documents(sha, 1, {"kind": "zip-archive", "refusals": [
            {"source": "zip /scan/a.zip", "name": "a.zip/17.txt", "reason": "junk"}]},
            target="nas", now="2026-12-02T08:00:00.000000Z", actor="t")
        ledger.conn.set_progress_handler(None, 0)
        assert len(steps) < 100, f"{len(steps) * 100} VM instructions for two lookups among 5,000 rows"
        assert ledger.conn.execute("SELECT count(*) FROM refusals").fetchone()[0] == 5000


def test_a_reference_that_reads_as_an_id_and_as_a_hash_prefix_names_both(ledger):
    # "123456" is document 123456's id and the first characters of another's
    # hash: both are returned (amend.resolve then refuses, listing them),
    # never one picked silently; "#123456" is the id alone. A leading zero
    # is never an id: "012345" is a hash prefix only.
    ledger.conn.execute("INSERT INTO documents (id, sha256, size, source_kind, received_at, updated_at, state) "
                        "VALUES (123455, ?, 1, 'ingest', ?, ?, 'captured')", ("f" * 64, T0, T0))
    by_id = add(ledger, sha="e" * 64)
    assert by_id == 123456
    by_hash = add(ledger, sha="123456" + "0" * 58)
    zero = add(ledger, sha="012345" + "0" * 58)
    assert [d.id for d in ledger.find("123456")] == [by_id, by_hash]
    assert [d.id for d in ledger.find("#123456")] == [by_id]
    assert [d.id for d in ledger.find("012345")] == [zero]
    with pytest.raises(NotFoundInLedger):
        ledger.find("#999999")

    from agent.amend import AmbiguousReference, resolve

    with pytest.raises(AmbiguousReference, match="as #ID"):
        resolve(ledger, "123456")
    assert resolve(ledger, "#123456").id == by_id


@pytest.mark.parametrize("ref", ["０１", "١", "²", "#²", "#01", "#99999999999999999999", "𝟙", "#"])
def test_a_reference_in_digits_of_other_scripts_or_out_of_range_names_nothing(ledger, ref):
    # int() reads full-width, Arabic-Indic and mathematical digits: "０１"
    # named document 1 although "01" is never an id; "²" and a 20-digit id
    # raised from inside the lookup (a traceback instead of a message).
    add(ledger)
    with pytest.raises(NotFoundInLedger):
        ledger.find(ref)
