"""What each backed-up object is, written one batch at a time.

An original's JSON sidecar (its documents as the ledger knows them) used to
be a second object beside it, `objects/ab/cd/<sha256>.json`: two PUTs per
file, and S3 requests are what bound the backup. Now the mirror puts the
originals of a batch, then ONE batch object that describes all of them:

    sidecars/<YYYYmmddTHHMMSS.ffffffZ>-<random>.json
    {"format": "fapiao-agent sidecar batch 1", "written_at": "...",
     "objects": [{"sha256": ..., "size": ..., "sidecar": {...} or null}, ...]}

Only after that object is stored does the ledger say its originals are
backed up, so the target alone always says what each object is. A sidecar
that changes later is described again in a later batch: the newest batch
naming an object wins (keys sort by the UTC time they were written; within
one key the last entry). Sidecars of the older layout (per object, `.json`
beside the original) are still read, and a batch overrides them. Under
[fleet], `sites.SiteTarget` puts batches under `sites/<site>/sidecars/`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from typing import Callable, Iterable

from agent.backup.base import (OBJECTS_PREFIX, BackupTarget, CorruptObject, check_sha256, sha256_of_object_key,
                               sidecar_key)
from agent.errors import NotFound

SIDECARS_PREFIX = "sidecars/"
FORMAT = "fapiao-agent sidecar batch 1"
MAX_BATCH_BYTES = 256 << 20     # a batch is at most a few MB; a giant one is not ours
_KEY_RE = re.compile(r"sidecars/\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8,32}\.json")


class BatchUnreadable(ValueError):
    """A batch object that is not a sidecar batch this code wrote (the reason is the message)."""


def batch_key(now: dt.datetime) -> str:
    """A new batch's key: `sidecars/<UTC time to the µs>-<random>.json`, so
    keys sort in the order they were written and two writers never collide."""
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{SIDECARS_PREFIX}{stamp}-{secrets.token_hex(8)}.json"


def is_batch_key(key: str) -> bool:
    """True for a key `batch_key` makes."""
    return _KEY_RE.fullmatch(key) is not None


def batch_bytes(entries: Iterable[tuple[str, int | None, dict | None]], *, now: dt.datetime) -> bytes:
    """The JSON body of a batch describing each (sha256, size, sidecar or None)."""
    objects = [{"sha256": check_sha256(sha), "size": size, "sidecar": side} for sha, size, side in entries]
    body = {"format": FORMAT, "written_at": now.astimezone(dt.timezone.utc).isoformat(), "objects": objects}
    return json.dumps(body, ensure_ascii=False, indent=None, sort_keys=True, default=str).encode("utf-8")


def put_batch(target: BackupTarget, entries: list[tuple[str, int | None, dict | None]], *,
              now: dt.datetime) -> str:
    """Put one batch describing `entries` on `target`; returns its key.
    Durable on the target when this returns (errors as in `put`)."""
    key = batch_key(now)
    body = batch_bytes(entries, now=now)
    target.put(key, body, hashlib.sha256(body).hexdigest())
    return key


def parse_batch(data: bytes) -> dict[str, dict]:
    """{sha256: {"size", "sidecar"}} from a batch body (the last entry of an
    object wins). Raises `BatchUnreadable` for anything else: the bytes come
    from the target and are not trusted."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise BatchUnreadable(f"not JSON: {str(e)[:120]}") from e
    if not isinstance(body, dict) or body.get("format") != FORMAT or not isinstance(body.get("objects"), list):
        raise BatchUnreadable("not a sidecar batch")
    out: dict[str, dict] = {}
    for entry in body["objects"]:
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise BatchUnreadable("an entry names no SHA-256")
        side = entry.get("sidecar")
        if side is not None and (not isinstance(side, dict) or side.get("sha256") != sha):
            raise BatchUnreadable(f"the sidecar of {sha} describes another object")
        out[sha] = {"size": entry.get("size"), "sidecar": side}
    return out


def read_batch(target: BackupTarget, key: str) -> dict[str, dict]:
    """`parse_batch` of the object at `key`; `BatchUnreadable` when it is too
    big or unreadable, `NotFound` when missing, target errors as in `get`."""
    listed = [info.size for info in target.list(key) if info.key == key]
    if listed and listed[0] > MAX_BATCH_BYTES:
        raise BatchUnreadable(f"listed as {listed[0]} bytes, not a sidecar batch (not fetched)")
    data = target.get(key)
    if data is None:
        raise NotFound(f"no sidecar batch {key}")
    return parse_batch(data)


def batch_time(key: str) -> dt.datetime | None:
    """The UTC time a batch key (`batch_key`) carries; None for another key."""
    if not is_batch_key(key):
        return None
    try:
        return dt.datetime.strptime(key[len(SIDECARS_PREFIX):][:23], "%Y%m%dT%H%M%S.%fZ").replace(
            tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def sidecar_index(target: BackupTarget, problems: list[str] | None = None, *,
                  now: dt.datetime | None = None, slack: dt.timedelta = dt.timedelta(hours=1)) -> dict[str, str]:
    """{sha256: key of the newest batch describing it} over every batch on
    `target`. A batch that cannot be read is skipped and named in `problems`
    (its objects then count as described only by an older batch or sidecar).
    With `now`, a batch whose key is dated more than `slack` after it is
    skipped and named too: keys rank by their date, so one named for 2099
    (a forged or clock-skewed write) would outrank every genuine batch."""
    index: dict[str, str] = {}
    keys = sorted(info.key for info in target.list(SIDECARS_PREFIX) if is_batch_key(info.key))
    if now is not None:
        limit = now.astimezone(dt.timezone.utc) + slack
        future = [k for k in keys if (t := batch_time(k)) is None or t > limit]
        if future and problems is not None:
            problems += [f"{k}: sidecar batch dated after now; ignored (it would outrank every genuine "
                         "batch)" for k in future]
        keys = [k for k in keys if k not in future]
    for key in keys:
        try:
            for sha in read_batch(target, key):
                index[sha] = key
        except (BatchUnreadable, NotFound) as e:
            if problems is not None:
                problems.append(f"{key}: unreadable sidecar batch ({e}); its objects are restored "
                                "from older descriptions, or read again")
    return index


def sidecars_on(target: BackupTarget) -> dict[str, dict | None]:
    """{sha256: its newest sidecar (None: described as having none)} from the
    batches and the older per-object sidecars on `target`, batches winning.
    Reads every description: for tests and small targets (restore streams them)."""
    out: dict[str, dict | None] = {}
    for info in target.list(OBJECTS_PREFIX):
        sha = sha256_of_object_key(info.key)
        if sha and info.key.endswith(".json"):
            out[sha] = json.loads(target.get(sidecar_key(sha)))
    for key in sorted(info.key for info in target.list(SIDECARS_PREFIX) if is_batch_key(info.key)):
        for sha, entry in read_batch(target, key).items():
            out[sha] = entry["sidecar"]
    return out


def batch_problem(target: BackupTarget, sha: str, key: str | None, fetched: dict,
                  known: Callable[[], dict | None]) -> tuple[str, str] | None:
    """For the restore drill: None when batch `key` (the one the ledger says
    describes `sha`; None: none does) came back and describes it, with a
    sidecar when `known()` (the ledger's) has one; else (verdict, reason).
    `fetched` caches each batch read (its entries, or (verdict, why not))."""
    if key is None:
        return None
    if key not in fetched:
        try:
            fetched[key] = read_batch(target, key)
        except NotFound:
            fetched[key] = ("missing", "is missing on the target")
        except CorruptObject as e:
            fetched[key] = ("mismatch", f"fails the store's own checksum: {e}")
        except BatchUnreadable as e:
            fetched[key] = ("unreadable", f"cannot be read: {str(e)[:160]}")
    got = fetched[key]
    if isinstance(got, tuple):
        return got[0], f"its sidecar batch {key} {got[1]}"
    if sha not in got:
        return "missing", f"its sidecar batch {key} does not describe it"
    if got[sha]["sidecar"] is None and known() is not None:
        return "missing", f"its sidecar batch {key} describes it with no documents"
    return None
