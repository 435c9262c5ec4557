"""Whether a backup target still is what the ledger believes it holds.

Two records, written by agent/backup/identity.py and agent/backup/mirror.py:
each target's identity (the id in the marker object put on it at first use,
`backup_targets.identity`), and the objects a verification found missing or
with other bytes and could not repair (`backup_unverified`), which keep the
target from being reported `ok` until a read-back of each succeeds.
"""

from __future__ import annotations

import json
from typing import Sequence


class BackupTrustMixin:
    """Part of `Ledger`: a target's identity, and the objects it failed to keep."""

    # -- identity ------------------------------------------------------------------

    def ledger_id(self, *, now: str) -> str:
        """This ledger's own id, written into every backup target's marker and
        every ledger snapshot's name: made once at random and kept (a
        restored ledger keeps it), so two agents writing to one target (a
        copied config: one site name, one bucket) tell each other's marker
        and snapshots from their own. Concurrent first calls agree on one value."""
        return self.kept_random_id("ledger.id", now=now)

    def target_identity(self, target: str) -> tuple[str | None, str | None]:
        """(the identity remembered for `target` or None, its pause error or None)."""
        row = self.conn.execute("SELECT identity, paused_error FROM backup_targets WHERE name = ?",
                                (target,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def remember_target_identity(self, target: str, identity: str, *, now: str) -> str:
        """Record `identity` for `target` unless one is already recorded;
        returns the one recorded (so two callers racing at first use agree)."""
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO backup_targets (name, updated_at) VALUES (?, ?)", (target, now))
            c.execute("UPDATE backup_targets SET identity = ?, updated_at = ? WHERE name = ? AND identity IS NULL",
                      (identity, now, target))
            return c.execute("SELECT identity FROM backup_targets WHERE name = ?", (target,)).fetchone()[0]

    def forget_target_identity(self, target: str, *, now: str) -> None:
        """Forget `target`'s identity (its key layout changed, so its marker
        is elsewhere); the next check adopts a target that holds our objects."""
        with self.transaction() as c:
            c.execute("UPDATE backup_targets SET identity = NULL, updated_at = ? WHERE name = ?", (now, target))

    def target_holds_anything(self, target: str) -> bool:
        """True when the ledger counts an object or a snapshot as held by `target`."""
        return bool(self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM backups WHERE target = ? AND state = 'done') OR EXISTS "
            "(SELECT 1 FROM backup_targets WHERE name = ? AND last_snapshot IS NOT NULL)",
            (target, target)).fetchone()[0])

    def resume_unrecognised_target(self, target: str, phrase: str, *, now: str) -> bool:
        """Lift `target`'s pause when its error contains `phrase` (the
        identity check's own wording: other pauses lift on their own
        success). True when it was lifted."""
        with self.transaction() as c:
            # Its error goes with the pause: it described the target's state, not a past event.
            return c.execute("UPDATE backup_targets SET paused_error = NULL, paused_at = NULL, last_error = NULL, "
                             "last_error_at = NULL, updated_at = ? "
                             "WHERE name = ? AND instr(paused_error, ?) > 0", (now, target, phrase)).rowcount > 0

    def accept_target(self, target: str, identity: str, *, now: str) -> int:
        """An operator accepts what `target` now points at (a new empty disk)
        as the target, under `identity`, in one commit: every object counted
        as held is due again (puts skip what is already there), no snapshot
        counts as held (one is due at once), every day's manifest is stale,
        the pause and the unverified objects are forgotten. Returns how many
        objects are due again."""
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO backup_targets (name, updated_at) VALUES (?, ?)", (target, now))
            days = [r[0] for r in c.execute("SELECT DISTINCT substr(done_at, 1, 10) FROM backups "
                                            "WHERE target = ? AND state = 'done' AND done_at IS NOT NULL",
                                            (target,))]
            n = c.execute("UPDATE backups SET state = 'pending', next_attempt_at = ?, attempts = 0, "
                          "done_at = NULL, queued_at = ?, updated_at = ? WHERE target = ? AND state = 'done'",
                          (now, now, now, target)).rowcount
            c.execute("UPDATE backup_targets SET identity = ?, paused_error = NULL, paused_at = NULL, "
                      "last_snapshot_at = NULL, last_snapshot = NULL, last_snapshot_sha256 = NULL, "
                      "snapshot_event_id = 0, manifest_days = ?, updated_at = ? WHERE name = ?",
                      (identity, _days_json(days), now, target))
            c.execute("DELETE FROM backup_unverified WHERE target = ?", (target,))
            return n

    # -- objects a verification could not repair -------------------------------------

    def mark_unverified(self, target: str, sha256: str, verdict: str, *, now: str) -> None:
        """Remember that `target` did not keep `sha256` (`verdict`: missing or
        mismatch) and a repair did not help; the first finding's time stays."""
        with self.transaction() as c:
            c.execute("INSERT INTO backup_unverified (target, sha256, verdict, found_at) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT(target, sha256) DO UPDATE SET verdict = excluded.verdict",
                      (target, sha256, verdict, now))

    def clear_unverified(self, target: str, shas: Sequence[str]) -> None:
        """Forget `shas` as unverified on `target`: a read-back found them whole."""
        if not shas:
            return
        with self.transaction() as c:
            c.executemany("DELETE FROM backup_unverified WHERE target = ? AND sha256 = ?",
                          [(target, sha) for sha in shas])

    def unverified_among(self, target: str, shas: Sequence[str]) -> set[str]:
        """Those of `shas` that `target` is known not to have kept."""
        found: set[str] = set()
        if not shas or not self.conn.execute("SELECT 1 FROM backup_unverified WHERE target = ? LIMIT 1",
                                             (target,)).fetchone():
            return found   # the usual case: one look, not one per object
        for sha in shas:
            if self.conn.execute("SELECT 1 FROM backup_unverified WHERE target = ? AND sha256 = ?",
                                 (target, sha)).fetchone():
                found.add(sha)
        return found

    def unverified_counts(self, target: str) -> dict:
        """{"missing": n, "mismatch": n, "since": first found or None} for
        `target`; zeros on a ledger older than the table (read-only status)."""
        out = {"missing": 0, "mismatch": 0, "since": None}
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'backup_unverified'").fetchone():
            return out
        for verdict, n, since in self.conn.execute("SELECT verdict, count(*), min(found_at) FROM backup_unverified "
                                                   "WHERE target = ? GROUP BY verdict", (target,)):
            out[verdict] = n
            out["since"] = min(filter(None, (out["since"], since)), default=None)
        return out


def _days_json(days: list[str]) -> str | None:
    return json.dumps(sorted(days)) if days else None
