"""Re-read backed-up objects and compare their SHA-256 with the vault's.

A target's `head` reports the checksum recorded at upload; only reading the
bytes back proves the store still holds them. These helpers do one object
at a time; the scheduled job and `backup verify` own the loop and progress.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Iterable, Literal

from agent.backup.base import BackupTarget, CorruptObject, Source, check_sha256
from agent.errors import ConfigError, NotFound

Verdict = Literal["ok", "missing", "mismatch"]


def sample_keys(keys: Iterable[str], fraction: float = 0.01, minimum: int = 20,
                rng: random.Random | None = None) -> list[str]:
    """A uniform random sample of `keys` without repeats, in random order.

    Size: ceil(fraction * n), at least `minimum`, at most n (all of them when
    there are fewer). Pass a seeded `rng` for a repeatable draw. Raises
    `ConfigError` when fraction is outside [0, 1] or minimum is negative.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"verify fraction must be between 0 and 1, not {fraction}")
    if minimum < 0:
        raise ConfigError(f"verify minimum must not be negative, not {minimum}")
    pool = list(dict.fromkeys(keys))
    size = min(len(pool), max(minimum, math.ceil(fraction * len(pool))))
    return (rng or random.Random()).sample(pool, size)


def reservoir_sample(items: Iterable[str], k: int, rng: random.Random) -> list[str]:
    """A uniform random sample of `k` of `items` (all of them when fewer), in
    random order, drawn in one pass (algorithm R): a list of millions of
    hashes streamed from the ledger is never held in memory. The draw is
    the same for the same `rng` state."""
    chosen: list[str] = []
    for n, item in enumerate(items):
        if n < k:
            chosen.append(item)
        elif (j := rng.randrange(n + 1)) < k:
            chosen[j] = item
    rng.shuffle(chosen)
    return chosen


def verify_object(target: BackupTarget, key: str, expected_sha256: str) -> Verdict:
    """"ok" when the bytes stored at `key` hash to `expected_sha256`,
    "missing" when there is no object, "mismatch" otherwise (including a
    store whose own checksum fails on read).

    Reads the whole object back. `Transient` and `Permanent` errors (target
    down, wrong keys) propagate: they say nothing about the object.
    """
    check_sha256(expected_sha256)
    try:
        data = target.get(key)
    except NotFound:
        return "missing"
    except CorruptObject:
        return "mismatch"
    return "ok" if hashlib.sha256(data).hexdigest() == expected_sha256 else "mismatch"


def repair_object(target: BackupTarget, key: str, path_or_bytes: Source, sha256: str) -> Verdict:
    """Replace a missing or corrupt object with the vault's copy, then re-read it.

    `put` alone may skip the upload: it trusts the checksum recorded at
    upload, which bit rot in the store does not change. So a mismatching
    object is deleted first; this is the only delete of an object outside
    ledger-snapshot retention. Returns the verdict after the repair ("ok"
    unless the store corrupts it again). Errors as in `put`.
    """
    check_sha256(sha256)
    if verify_object(target, key, sha256) == "mismatch":
        target.delete(key)
    target.put(key, path_or_bytes, sha256)
    return verify_object(target, key, sha256)
