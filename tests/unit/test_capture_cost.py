"""A capture's ledger work does not grow with the documents already waiting
to be read: in a burst of thousands, each file costs what the first did."""

from __future__ import annotations

from agent.ledger import Ledger

NOW = "2026-12-01T08:00:00.000000Z"


def steps(ledger: Ledger, fn) -> int:
    # SQLite virtual-machine steps (the progress handler every 1): work, not time.
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0
    ledger.conn.set_progress_handler(tick, 1)
    try:
        fn()
    finally:
        ledger.conn.set_progress_handler(None, 1)
    return count[0]


def add_scans(ledger: Ledger, start: int, n: int) -> None:
    with ledger.transaction():
        for i in range(start, start + n):
            ledger.add_document(sha256=f"{i:064x}", size=100, media_type="pdf", source_kind="scanner",
                                source="/scan", original_name=f"s{i}.pdf", original_path=f"/scan/s{i}.pdf",
                                now=NOW, actor="test")


def test_earlier_captures_of_a_path_cost_the_same_whatever_waits_to_be_read(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    add_scans(ledger, 0, 100)
    small = steps(ledger, lambda: ledger.earlier_captures("/scan/s5.pdf", exclude_id=0))
    add_scans(ledger, 100, 2000)  # a burst: 2,000 more documents `captured`
    large = steps(ledger, lambda: ledger.earlier_captures("/scan/s5.pdf", exclude_id=0))
    assert [d.original_path for d in ledger.earlier_captures("/scan/s5.pdf", exclude_id=0)] == ["/scan/s5.pdf"]
    assert large <= small * 2, (small, large)
