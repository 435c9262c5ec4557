"""Issue 17 attacked from outside: migration 28's counts (backup_counts,
backup_copies, ledger_counts) on a ledger that already held documents and
backups when it was upgraded. `status` and `backup status` read only the
counts, so the backfill must give what the rows say."""

from __future__ import annotations

from agent.ledger import Ledger
from agent.ledger.schema import MIGRATIONS
from tests.support.old_ledger import ledger_before

BEFORE_COUNTS = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE backup_counts" in m)
T = "2026-11-01T00:00:00.000000Z"


def _old_ledger(path) -> None:
    conn = ledger_before(path, BEFORE_COUNTS)
    shas = [f"{i:064x}" for i in range(1, 8)]
    # 7 originals, one of them in two documents (a file of two invoices).
    for i, sha in enumerate(shas + [shas[0]]):
        conn.execute("INSERT INTO documents (sha256, size, source_kind, received_at, updated_at, state, part) "
                     "VALUES (?, ?, 'scanner', ?, ?, 'queued', ?)", (sha, 100 + i, T, T, 2 if i == 7 else 1))
    rows = [(shas[0], "nas", "done", 10), (shas[1], "nas", "done", 20), (shas[2], "nas", "pending", 30),
            (shas[3], "nas", "failed", 40), (shas[0], "s3", "done", 10), (shas[4], "s3", "done", 50),
            (shas[1], "gone", "done", 20)]
    for sha, target, state, size in rows:
        conn.execute("INSERT INTO backups (sha256, target, state, size, updated_at) VALUES (?, ?, ?, ?, ?)",
                     (sha, target, state, size, T))
    conn.execute("COMMIT")
    conn.close()


def test_an_upgraded_ledger_counts_what_its_rows_hold(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    _old_ledger(path)
    with Ledger(path) as led:
        assert led.schema_version == len(MIGRATIONS)
        nas = led.backup_target("nas")
        assert (nas["objects"], nas["bytes"], nas["failed"]) == (2, 30, 1)
        assert nas["backlog"] >= 1
        s3 = led.backup_target("s3")
        assert (s3["objects"], s3["bytes"]) == (2, 60)
        both = led.backed_up_count(["nas", "s3"], 0)
        assert both["documents"] == 7
        assert both["backed_up"] == 1                 # only shas[0] on both
        assert led.backed_up_count(["nas", "s3"], 1)["backed_up"] == 3
        assert led.backed_up_count(["nas"], 0)["backed_up"] == 2
        # and they stay true through a change after the upgrade
        led.conn.execute("UPDATE backups SET state = 'done' WHERE target = 'nas' AND state = 'pending'")
        assert led.backup_target("nas")["objects"] == 3
        assert led.backed_up_count(["nas", "s3"], 1)["backed_up"] == 4
