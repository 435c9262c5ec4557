"""Migration 36 (held_keys) on ledgers the older code left, and the audit's
check of it.

Such a ledger knows a destination's old key only where a row still says so
(`superseded`, or requeued after its delivery), or where the amend's event
named the row superseded under it (the row has since gone out under the
new key): both are kept, unless reconciliation found the old copy gone
(the row missing under it, an `absent` attempt under that old key). A
read-only command on a ledger not yet upgraded reads it as before; opened
for writing (the daemon, any write command), it is upgraded and the old key
is named at once; `audit ledger` is sound before and after.
"""

from __future__ import annotations

import json
import sqlite3

from agent.ledger import Ledger
from agent.ledger.held_keys import HELD_KEYS_SCHEMA
from agent.ledger.schema import LATEST
from tests.integration.test_amend_after_delivery import archive, site  # noqa: F401  (fixtures)
from tests.integration.test_old_keys_held import NEW, amended_requeued_delivered, old_keys
from tests.support.audit import assert_ledger_sound, audit_ledger
from tests.support.http_destination import http_destination  # noqa: F401  (fixture)
from tests.support.judged import NUMBER, number
from tests.support.old_ledger import ledger_before

T0, T1, T2, T3 = (f"2026-11-0{d}T08:00:00.000000Z" for d in (1, 2, 3, 4))


def _doc(conn: sqlite3.Connection, doc_id: int, state: str, key: str) -> None:
    conn.execute("INSERT INTO documents (id, sha256, size, source_kind, received_at, updated_at, state, invoice_key, "
                 "invoice_number) VALUES (?, ?, 1, 'ingest', ?, ?, ?, ?, ?)",
                 (doc_id, f"{doc_id:064x}", T0, T3, state, key, key))


def _row(conn: sqlite3.Connection, doc_id: int, destination: str, state: str, key: str | None,
         delivered_at: str | None = T0) -> int:
    return conn.execute("INSERT INTO deliveries (document_id, destination, state, delivered_key, queued_at, "
                        "updated_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (doc_id, destination, state, key, T0, T3, delivered_at)).lastrowid


def _amended(conn: sqlite3.Connection, doc_id: int, old: str, new: str, destination: str = "erp") -> None:
    # The event supersede_deliveries wrote (agent/ledger/delivery_operators.py).
    details = {"old_key": old, "new_key": new, "deliveries": [{"destination": destination, "key": old,
                                                               "state": "superseded"}]}
    conn.execute("INSERT INTO events (document_id, at, actor, reason, details) VALUES (?, ?, 'cli:ann', ?, ?)",
                 (doc_id, T1, f"deliveries under the old invoice key: {destination} ({old}): superseded",
                  json.dumps(details)))


def test_the_migration_keeps_the_keys_rows_and_amends_name_and_not_those_found_gone(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    conn = ledger_before(path, HELD_KEYS_SCHEMA - 1)
    k = {i: (number(f"1000000{i}"), number(f"2000000{i}")) for i in range(1, 8)}   # (old, new) per document
    # 1: the silent path: amended, `requeue --destination erp`, delivered under the new key.
    _doc(conn, 1, "confirmed", k[1][1])
    _row(conn, 1, "erp", "delivered", k[1][1], delivered_at=T2)
    _row(conn, 1, "archive", "confirmed", k[1][1])
    _amended(conn, 1, *k[1])
    # 2: amended, rejected, and reconciliation found erp's old copy gone: the row missing under it.
    _doc(conn, 2, "rejected", k[2][1])
    _row(conn, 2, "erp", "missing", k[2][0])
    _amended(conn, 2, *k[2])
    # 3: amended, nothing requeued: the row is superseded under the old key.
    _doc(conn, 3, "delivered", k[3][1])
    _row(conn, 3, "erp", "superseded", k[3][0])
    _amended(conn, 3, *k[3])
    # 4: its old copy found gone (an absent attempt under it), then reopened, queued and delivered again.
    _doc(conn, 4, "delivered", k[4][1])
    row = _row(conn, 4, "erp", "delivered", k[4][1], delivered_at=T3)
    conn.execute("INSERT INTO attempts (delivery_id, at, outcome, error) VALUES (?, ?, 'absent', ?)",
                 (row, T2, f"erp does not hold it under its old key {k[4][0]}"))
    _amended(conn, 4, *k[4])
    # 5: delivered to erp; archive found it missing under its own key.
    _doc(conn, 5, "missing", k[5][1])
    _row(conn, 5, "erp", "confirmed", k[5][1])
    _row(conn, 5, "archive", "missing", k[5][1])
    # 6: a fleet duplicate's row, superseded with no key; and a queued row never sent.
    _doc(conn, 6, "duplicate", k[6][1])
    _row(conn, 6, "erp", "superseded", None, delivered_at=None)
    _row(conn, 6, "archive", "queued", None, delivered_at=None)
    # 7: requeued after its delivery, then amended and requeued by name, not yet sent: the row keeps the old key.
    _doc(conn, 7, "queued", k[7][1])
    _row(conn, 7, "erp", "queued", k[7][0])
    _amended(conn, 7, *k[7])
    # Events no amend wrote, or that do not parse, are passed over.
    conn.execute("INSERT INTO events (document_id, at, actor, reason, details) VALUES (5, ?, 'x', 'note', ?)",
                 (T2, '{"old_key": "broken'))
    conn.execute("INSERT INTO events (document_id, at, actor, reason, details) VALUES (5, ?, 'x', 'note', ?)",
                 (T2, json.dumps({"old_key": None, "deliveries": "erp"})))
    conn.execute("COMMIT")
    conn.close()

    with Ledger(path) as ledger:
        assert ledger.schema_version == LATEST
        held = {(r["document_id"], r["destination"], r["key"], r["old"], r["since"]) for r in ledger.conn.execute(
            "SELECT document_id, destination, key, old, since FROM held_keys")}
        assert held == {(1, "erp", k[1][1], 0, T2), (1, "archive", k[1][1], 0, T0), (1, "erp", k[1][0], 1, T1),
                        (3, "erp", k[3][0], 1, T0), (4, "erp", k[4][1], 0, T3), (5, "erp", k[5][1], 0, T0),
                        (7, "erp", k[7][0], 1, T0)}
        listed = ledger.old_keys_held()
        assert [(d["document_id"], [(a["destination"], a["key"]) for a in d["at"]]) for d in listed["documents"]] == [
            (1, [("erp", k[1][0])]), (3, [("erp", k[3][0])]), (7, [("erp", k[7][0])])]
        assert (listed["count"], listed["by_destination"]) == (3, {"erp": 3})
        # The triggers run on the upgraded file: an amend back to the old key is no old key any more.
        ledger.conn.execute("UPDATE documents SET invoice_key = ? WHERE id = 3", (k[3][0],))
        assert [d["document_id"] for d in ledger.old_keys_held()["documents"]] == [1, 7]


def test_a_ledger_the_old_code_left_names_its_old_key_once_upgraded(site, http_destination, archive):
    doc = amended_requeued_delivered(site, archive)
    assert_ledger_sound(site.config_path)
    path = site.cfg.ledger_path
    site.ledger.close()
    # The very file the older code leaves after that path: the same rows and
    # events, without held_keys (what the older code wrote no differently).
    conn = sqlite3.connect(path, isolation_level=None)
    for trigger in ("deliveries_key_held", "deliveries_key_held_insert", "documents_key_old"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE held_keys")
    conn.execute(f"PRAGMA user_version = {HELD_KEYS_SCHEMA - 1}")
    conn.close()

    # Read-only commands never upgrade a ledger: they read it as before.
    assert old_keys(site) == {"count": 0, "by_destination": {}, "documents": []}
    shown = json.loads(site.cli("show", str(doc), "--json").stdout)
    assert shown["held_keys"] == [] and shown["state"] == "delivered"
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == HELD_KEYS_SCHEMA - 1

    site.ledger = Ledger(path)                  # as the daemon opens it at its start: upgraded
    assert site.ledger.schema_version == LATEST
    assert [(h["destination"], h["key"], h["old"]) for h in site.ledger.held_keys(doc)] == [
        ("archive", NEW, False), ("erp", NUMBER, True), ("erp", NEW, False)]
    assert f"OLD KEYS  1 held at a destination under an old key: document {doc} at erp ({NUMBER})" in (
        site.cli("status").stdout)
    assert_ledger_sound(site.config_path)
    http_destination._forget(NUMBER)
    report = json.loads(site.cli("reconcile", "--json").stdout)
    assert ("erp", NUMBER, "forgotten") in [(c["destination"], c["key"], c["result"]) for c in report["checks"]]
    assert old_keys(site)["count"] == 0
    assert_ledger_sound(site.config_path)


def test_audit_ledger_finds_a_key_a_row_stands_for_that_is_not_held(site, http_destination, archive):
    doc = amended_requeued_delivered(site, archive)
    conn = site.ledger.conn
    # A writer that forgot erp's key under which its row is delivered, and
    # marked the old one as the document's own.
    conn.execute("DELETE FROM held_keys WHERE document_id = ? AND destination = 'erp' AND key = ?", (doc, NEW))
    conn.execute("UPDATE held_keys SET old = 0 WHERE document_id = ? AND key = ?", (doc, NUMBER))
    code, report, _ = audit_ledger(site.config_path)
    found = sorted((v["code"], v["document"], v["message"]) for v in report["violations"])
    assert code == 1 and found == [
        ("held-keys-disagree", doc, f"erp holds it under key {NUMBER}, marked its own, but its key is {NEW}"),
        ("held-keys-disagree", doc, f"erp is delivered under key {NEW}, but the keys it holds it under do not "
                                    "list that key")], found
