"""Restore drills' rows: each drill of a backup target, and the latest per target.

Written by `agent/backup/drill.py` through `record_restore_drill`; read by
`status`, `status --check`, the metrics and the weekly report through
`last_restore_drills`. A drill is a note about a target, not a document's
state change, so like the other backup records (`record_backup_verify`,
`record_backup_snapshot`) it writes no trail event.
"""

from __future__ import annotations

import json
from typing import Sequence

_COLUMNS = ("target", "started_at", "finished_at", "ok", "sampled", "failed", "mismatch", "seed",
            "snapshot", "snapshot_ok", "actor", "reason", "detail")


class RestoreDrillsMixin:
    """Part of `Ledger` (through BackupsMixin): the restore drills' record."""

    def record_restore_drill(self, drill: dict, *, actor: str) -> int:
        """Store one finished drill (`DrillReport.to_row()`: target, started_at,
        finished_at, ok, sampled, failed, mismatch, seed, snapshot,
        snapshot_ok, reason, detail) in one commit; returns its id."""
        row = {**drill, "actor": actor, "detail": json.dumps(drill.get("detail") or {}, ensure_ascii=False,
                                                             sort_keys=True, default=str)}
        for flag in ("ok", "mismatch", "snapshot_ok"):
            if row.get(flag) is not None:
                row[flag] = int(bool(row[flag]))
        with self.transaction() as c:
            return c.execute(f"INSERT INTO restore_drills ({', '.join(_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_COLUMNS))})", [row.get(k) for k in _COLUMNS]).lastrowid

    def last_restore_drills(self, targets: Sequence[str] | None = None) -> list[dict]:
        """One dict per target that was ever drilled (only `targets` when
        given), by target name: its latest drill (ok, mismatch and
        snapshot_ok as booleans, detail parsed) plus `last_ok_at`, when its
        latest successful drill finished (None: never)."""
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'restore_drills'").fetchone():
            return []   # read-only, before the daemon migrated this ledger
        rows = self.conn.execute(
            f"SELECT {', '.join(_COLUMNS)}, (SELECT max(finished_at) FROM restore_drills o "
            "WHERE o.target = d.target AND o.ok = 1) AS last_ok_at FROM restore_drills d "
            "WHERE d.id = (SELECT max(id) FROM restore_drills l WHERE l.target = d.target) ORDER BY target")
        out = []
        for r in rows:
            if targets is not None and r["target"] not in targets:
                continue
            d = dict(r)
            for flag in ("ok", "mismatch", "snapshot_ok"):
                d[flag] = None if d[flag] is None else bool(d[flag])
            try:
                d["detail"] = json.loads(d["detail"])
            except ValueError:
                d["detail"] = {}
            out.append(d)
        return out

    def first_backup_at(self, target: str) -> str | None:
        """When the oldest object `target` still holds was put there (None:
        it holds none): how long its backups have gone untested."""
        return self.conn.execute("SELECT min(done_at) FROM backups WHERE target = ? AND state = 'done'",
                                 (target,)).fetchone()[0]

    def sidecar_batches(self, target: str, shas: Sequence[str]) -> dict[str, str | None]:
        """The key of the sidecar batch describing each of `shas` that `target`
        holds (`done`); None for one described by its own `.json` sidecar."""
        out: dict[str, str | None] = {}
        for sha in shas:
            row = self.conn.execute("SELECT sidecar_batch FROM backups WHERE target = ? AND sha256 = ? "
                                    "AND state = 'done'", (target, sha)).fetchone()
            if row:
                out[sha] = row[0]
        return out

    def backup_sizes(self, target: str, shas: Sequence[str]) -> dict[str, int]:
        """The recorded size of each of `shas` that `target` holds (`done`), by SHA-256."""
        out: dict[str, int] = {}
        for sha in shas:
            row = self.conn.execute("SELECT size FROM backups WHERE target = ? AND sha256 = ? AND state = 'done'",
                                    (target, sha)).fetchone()
            if row and row[0] is not None:
                out[sha] = row[0]
        return out
