"""Plain records read from the ledger, the one timestamp format, and the
one way a total in cents is written as yuan."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

# The heartbeat activity of a restored, never-run ledger (written by
# agent/backup/restore.py). Here, not there, so `status` and agent/health.py
# can name it without importing the restore machinery.
RESTORED_ACTIVITY = "restored"

# The vault object an arrival came out of, in SQL over `sources`: the raw
# e-mail of an attachment, or the zip archive of a member (service/
# intake_zip.py). Neither is a document; each is an original all the same,
# backed up, described in its sidecar and known to the audit. NULL for a
# file that came as itself. Use with CONTAINER_SOURCES in the WHERE.
CONTAINER_SHA256 = ("coalesce(json_extract(details, '$.message_sha256'), "
                    "json_extract(details, '$.archive_sha256'))")
CONTAINER_SOURCES = "details IS NOT NULL AND json_valid(details)"
# Backup sidecars' `kind` of objects that are no document (those, and a
# refused file's bytes): restored as originals, never as documents.
CONTAINER_KINDS = ("email-message", "zip-archive", "refused-file")


class SnapshotReader:
    """Read-only queries over one open Ledger connection; inside
    `snapshot()` every query sees the same commit, even beside a writer."""

    def __init__(self, ledger):
        self.conn: sqlite3.Connection = ledger.conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same commit."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("ROLLBACK")


def utc(moment: dt.datetime) -> str:
    """The ledger's timestamp text: ISO 8601 UTC with microseconds and Z,
    so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# How agent/ writes a stored time into text a person reads (a refusal, an
# audit violation, a health reason, a notification): the caller's choice.
# A command passes service.display.local_time (local, with the offset: what
# the project shows people); agent/ never reads the host's zone itself, and
# without a caller's choice writes the stored UTC text (`as_stored`).
TimeText = Callable[[str | None], str | None]


def as_stored(stamp: str | None) -> str | None:
    """`stamp` unchanged (the ledger's UTC text): the TimeText of a caller
    that names no other."""
    return stamp


# The first and last ledger texts: every timestamp sorts between them.
UTC_FIRST = "0001-01-01T00:00:00.000000Z"
UTC_LAST = "9999-12-31T23:59:59.999999Z"


def utc_bound(moment: dt.datetime) -> str:
    """`utc(moment)`, or UTC_FIRST / UTC_LAST when the moment in UTC falls
    before year 1 or after year 9999 (0001-01-01T00:00+08:00, a day after
    9999-12-31): a bound typed by a person compares as "before / after
    everything" instead of raising."""
    try:
        return utc(moment)
    except (OverflowError, ValueError):
        if moment.tzinfo is None:
            raise
        return UTC_FIRST if moment.year < 5000 else UTC_LAST


def parse_utc(text: str) -> dt.datetime:
    """Inverse of `utc`; raises ValueError for text strptime's
    "%Y-%m-%dT%H:%M:%S.%fZ" does not accept."""
    # `utc`'s own fixed-width form is read by slicing: strptime's first call
    # imports _strptime and compiles its patterns, ~5 ms of every CLI command.
    # Any other text takes strptime, so what is accepted is unchanged.
    if len(text) == 27 and text[4] + text[7] + text[10] + text[13] + text[16] + text[19] + text[26] == "--T::.Z":
        digits = text[:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19] + text[20:26]
        if digits.isascii() and digits.isdigit():
            return dt.datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                               int(text[17:19]), int(text[20:26]), tzinfo=dt.timezone.utc)
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def yuan(cents: int | None) -> str | None:
    """A total in cents (the ledger's total_cents) as yuan text, exactly:
    113.00, -5.30; None stays None. Integer arithmetic only: `cents / 100`
    is a float, which past 2**53 cents is a different number
    (9007199254740993 cents printed as ...409.94, not .93)."""
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass
class Document:
    """One row of `documents`: a file (or one invoice of a batch file)."""

    id: int
    sha256: str
    part: int
    parent_id: int | None
    size: int
    media_type: str | None
    source_kind: str
    source: str | None
    original_name: str | None
    original_path: str | None
    received_at: str
    updated_at: str
    state: str
    fields: dict[str, Any] | None
    problems: list[dict[str, Any]]
    invoice_key: str | None
    invoice_number: str | None
    invoice_date: str | None
    total_cents: int | None
    duplicate_of: int | None

    @classmethod
    def from_row(cls, row) -> "Document":
        """A Document from a `documents` row, JSON columns decoded."""
        d = _decoded(row, "fields", "problems")
        d["problems"] = d["problems"] or []
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json` output."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Event:
    """One line of a document's audit history."""

    id: int
    document_id: int | None
    at: str
    actor: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    details: Any

    @classmethod
    def from_row(cls, row) -> "Event":
        """An Event from an `events` row, details decoded (its chain hashes
        are for `audit verify`, not part of the history shown)."""
        d = _decoded(row, "details")
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


@dataclass
class Source:
    """One arrival of a document's bytes (the same file may arrive twice)."""

    id: int
    document_id: int
    at: str
    source_kind: str
    source: str | None
    original_name: str | None
    original_path: str | None
    details: Any

    @classmethod
    def from_row(cls, row) -> "Source":
        """A Source from a `sources` row, details decoded."""
        return cls(**_decoded(row, "details"))


def _decoded(row, *json_columns: str) -> dict[str, Any]:
    """A row as a dict with its JSON text columns decoded (empty -> None)."""
    d = dict(row)
    for column in json_columns:
        d[column] = json.loads(d[column]) if d.get(column) else None
    return d
