"""A ledger file as an older version left it: the migrations before `version`
applied (with their Python steps), in an open transaction the caller fills
with rows and commits; opening it with `Ledger` then upgrades it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.ledger import _statements
from agent.ledger.schema import MIGRATIONS, STEPS


def ledger_before(path: Path, version: int) -> sqlite3.Connection:
    """A connection to a new ledger at schema `version` (migrations
    0..version-1), inside BEGIN: insert rows, then COMMIT and close."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for v in range(version):
        for statement in _statements(MIGRATIONS[v]):
            conn.execute(statement)
        if v + 1 in STEPS:
            STEPS[v + 1](conn)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn
