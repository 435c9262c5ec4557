"""What the backup says each original is: its sidecar (its documents as the
ledger knows them), kept beside it in the vault and put on a target in a
sidecar batch (agent/backup/sidecars.py). The mirror step keeps the vault's
copies of the originals it puts (and puts their batch itself); a
verification's repair describes the object it put again.
"""

from __future__ import annotations

import datetime as dt
import json

from agent.backup.base import BackupTarget
from agent.backup.sidecars import put_batch
from agent.ledger import Ledger, utc
from agent.vault import Vault


def sidecar_body(data: dict) -> bytes:
    """A sidecar as the vault stores it (as `Vault.write_sidecar` writes it)."""
    return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True, default=str).encode("utf-8")


def local_sidecars(vault: Vault, sidecars: dict[str, dict | None]) -> None:
    """Bring the vault's own sidecars up to `sidecars` ({sha256: data}; None:
    none to write), rewriting only those that differ, all made durable at
    once: the vault alone still says what each object is. A local
    convenience copy: an error here is ignored (the target's copy matters)."""
    changed = {}
    try:
        for sha, data in sidecars.items():
            if data is None:
                continue
            body, path = sidecar_body(data), vault.sidecar_path(sha)
            if not path.is_file() or path.read_bytes() != body:
                changed[sha] = body
        vault.write_sidecars(changed)
    except OSError:
        pass


def describe(ledger: Ledger, vault: Vault, target: BackupTarget, shas: list[str], *,
             now: dt.datetime) -> str:
    """Put one sidecar batch describing `shas` (held by `target`) as the
    ledger knows them now, and record it as theirs; returns its key. Target
    errors propagate; nothing is recorded then."""
    entries = []
    for sha in shas:
        side = ledger.sidecar(sha)
        local_sidecars(vault, {sha: side})
        entries.append((sha, ledger.backup_sizes(target.name, [sha]).get(sha), side))
    key = put_batch(target, entries, now=now)
    ledger.backups_done(target.name, [], now=utc(now), batch=key, refreshed=shas,
                        day=now.astimezone(dt.timezone.utc).date().isoformat())
    return key
