"""A target's verification: the objects the ledger says it holds re-read
(all of them, or a sample), each missing or changed one put again from the
vault and described again, the outcome recorded as the target's last
verification. One object at a time is agent/backup/verify.py's; this is the
round `backup verify` and the daemon's scheduled check run.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Callable

from agent.backup.base import BackupTarget, object_key
from agent.backup.descriptions import describe
from agent.backup.identity import check_identity
from agent.backup.verify import repair_object, reservoir_sample, sample_keys, verify_object
from agent.ledger import Ledger, utc
from agent.vault import Vault


@dataclass
class VerifyReport:
    """What one verification found; `problems` lists (sha256, verdict, action)."""

    checked: int = 0
    ok: int = 0
    missing: int = 0
    mismatch: int = 0
    repaired: int = 0
    full: bool = False
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form, as stored in the ledger and printed by `backup verify --json`."""
        return {"checked": self.checked, "ok": self.ok, "missing": self.missing,
                "mismatch": self.mismatch, "repaired": self.repaired, "full": self.full,
                "problems": [{"sha256": s, "verdict": v, "action": a} for s, v, a in self.problems]}


def verify_step(ledger: Ledger, vault: Vault, target: BackupTarget, *, now: dt.datetime,
                rng: random.Random, full: bool = False, fraction: float = 0.01, minimum: int = 20,
                progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Re-read every object the ledger says `target` holds (`full`), or a random
    sample (`fraction`, at least `minimum`), and compare SHA-256 values.

    A missing or mismatching object is re-uploaded from the vault (with its
    sidecar) and re-read; one the vault cannot supply is requeued and
    reported. One that reads back wrong after the re-upload is requeued and
    remembered as not kept (`Ledger.mark_unverified`): not counted as held,
    and the target not ok in `status`, until a read-back of it succeeds.
    `progress(done, total)` is called after each object. The result is
    recorded as the target's last verification. Nothing is checked or
    repaired on a target without the identity marker the ledger remembers
    (`TargetUnrecognised`: an empty mount point is not filled). Target
    errors (`Transient`, `Permanent`) propagate; nothing is recorded then.
    """
    check_identity(ledger, target, now=now)
    total = ledger.backup_target(target.name)["objects"]
    if full:
        keys, size = ledger.done_backups(target.name), total
    else:
        keys = reservoir_sample(ledger.done_backups(target.name), _sample_size(total, fraction, minimum), rng)
        size = len(keys)
    report = VerifyReport(full=full)
    for i, sha in enumerate(keys, 1):
        key = object_key(sha)
        verdict = verify_object(target, key, sha)
        report.checked += 1
        if verdict == "ok":
            report.ok += 1
        else:
            setattr(report, verdict, getattr(report, verdict) + 1)
            report.problems.append((sha, verdict, _repair(ledger, vault, target, sha, now)))
            if report.problems[-1][2] == "repaired":
                report.repaired += 1
            elif report.problems[-1][2] == _NOT_KEPT:
                ledger.mark_unverified(target.name, sha, verdict, now=utc(now))
        if progress:
            progress(i, max(size, i))
    ledger.record_backup_verify(target.name, report.to_dict(), now=utc(now))
    return report


def _sample_size(total: int, fraction: float, minimum: int) -> int:
    # The size `verify.sample_keys` draws (which also validates the settings).
    sample_keys([], fraction, minimum)
    return min(total, max(minimum, math.ceil(fraction * total)))


_NOT_KEPT = "re-uploaded but still wrong; requeued"


def _repair(ledger: Ledger, vault: Vault, target: BackupTarget, sha: str, now: dt.datetime) -> str:
    if not vault.verify(sha):
        ledger.requeue_backup(target.name, sha, now=utc(now))
        return "vault copy missing or corrupt; requeued"
    if repair_object(target, object_key(sha), vault.path(sha), sha) != "ok":
        ledger.requeue_backup(target.name, sha, now=utc(now))
        return _NOT_KEPT
    describe(ledger, vault, target, [sha], now=now)
    return "repaired"
