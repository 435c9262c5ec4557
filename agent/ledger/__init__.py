"""The ledger: every document, its state, its history and its retry columns.

All SQL of the project lives in this package. Everything else calls its
methods. Guarantees:
- WAL mode with a busy timeout: readers never block the writer and never
  see "database is locked"; `synchronous=FULL` makes every state change
  durable when its method returns (inside a caller's `transaction()`,
  when that one commits).
- A state change and its audit event are written in one transaction; the
  event is hash-chained there (agent/ledger/trail.py).
- Illegal transitions raise `IllegalTransition` and change nothing.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import stat
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from agent.filenames import storable_value
from agent.fsutil import storable_ns
from agent.ledger.schema import LATEST, MIGRATIONS, STEPS
from agent.ledger.documents import DocumentsMixin
from agent.ledger.deliveries import DeliveriesMixin
from agent.ledger.delivery_operators import DeliveryOperatorsMixin
from agent.ledger.rejections import RejectionsMixin
from agent.ledger.held_values import HeldValuesMixin
from agent.ledger.delivery_added import DeliveryAddedMixin
from agent.ledger.backups import BackupsMixin
from agent.ledger.backup_trust import BackupTrustMixin
from agent.ledger.source_actions import SourceActionsMixin
from agent.ledger.trail import TrailMixin
from agent.ledger.applications import ApplicationsMixin
from agent.ledger.report_rows import ReportRowsMixin
from agent.ledger.notifications import NotificationsMixin
from agent.ledger.fleet import FleetMixin
from agent.ledger.search import SearchMixin, fold_case
from agent.ledger.rows import Document, Event, Source, utc

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["Ledger", "Document", "Event", "Source", "utc"]

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 8192  # per connection


class Ledger(DocumentsMixin, DeliveriesMixin, DeliveryOperatorsMixin, RejectionsMixin, HeldValuesMixin,
             DeliveryAddedMixin, BackupsMixin, BackupTrustMixin, SourceActionsMixin, TrailMixin, ApplicationsMixin,
             ReportRowsMixin, NotificationsMixin, FleetMixin, SearchMixin):
    """One connection to the ledger file. Not shared between threads: open
    one Ledger per thread or process (they coordinate through SQLite)."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if not readonly:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            # Created 0640 before SQLite sees it: its -wal and -shm take this mode.
            _create_empty(self.path, 0o640)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                    timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        # `search`'s LIKE folds case as its trigram index does (every cased
        # letter, not ASCII alone) with this (agent/ledger/search.py).
        self.conn.create_function("fold_case", 1, fold_case, deterministic=True)
        self._lock = threading.RLock()
        self._depth = 0  # savepoints open inside the current transaction
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # What sqlite_utils.Database() set on this connection when every
        # ledger was wrapped at open (it still is, on first use of `db`):
        # with it, a REPLACE that deletes a row fires that row's delete triggers.
        self.conn.execute("PRAGMA recursive_triggers = ON")
        if not readonly:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.path.chmod(0o640)
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        # SQLite's default page cache is 2 MB: past ~20,000 documents a
        # capture's or a result's writes touch a dozen indexes whose pages
        # no longer fit, and each statement reads them again (capture and
        # recording ~15-25 % slower, bench/watch.py). Grown only as used.
        self.conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        if not readonly:
            self.migrate()
            # Also at exit for a ledger never closed (a CLI command's).
            self._closer = weakref.finalize(self, _close_writer, self.conn, self.path)

    @functools.cached_property
    def db(self) -> "sqlite_utils.Database":
        """This ledger's connection wrapped in sqlite_utils.Database (the
        same connection, so the same transactions), made on first use.

        Not at open: importing sqlite_utils.db imports numpy when installed
        (~90 ms) and Database() loads its plugins by scanning every installed
        distribution (~50 ms), which every CLI command paid before it read a
        row. No plugin hook runs on the connection before this is used."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        """Close the connection; the ledger stays consistent on disk, and a
        writer leaves -wal and -shm in place for readers (`_keep_wal_files`)."""
        if self.readonly:
            self.conn.close()
        else:
            self._closer()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The number of migrations applied to this file."""
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self, target: int = LATEST) -> int:
        """Apply pending migrations up to `target`, each in its own
        transaction; safe when several processes open a new file at once.
        Returns the resulting schema version."""
        while True:
            with self.transaction():
                version = self.schema_version
                if version >= target:
                    return version
                for statement in _statements(MIGRATIONS[version]):
                    self.conn.execute(statement)
                if version + 1 in STEPS:
                    STEPS[version + 1](self.conn)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def transaction(self, *, memory_journals: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error). IMMEDIATE takes the
        write lock up front, so two writers queue on the busy timeout instead
        of deadlocking. Nested use is a SAVEPOINT of the outer transaction:
        durable only with the outer COMMIT, and undone alone on an error (the
        error propagates), so a group of many files' writes committed at once
        (`service/intake.py`) never keeps half of one file's writes. When
        SQLite itself rolled the whole transaction back meanwhile (out of
        memory, an I/O error), a nested part's error is raised as the
        ledger's (sqlite3.OperationalError): what the outer transaction had
        written is gone too, and no caller may go on as if only this part were.

        `memory_journals` (outermost only): the savepoints' journals stay in
        memory for this transaction (PRAGMA temp_store = MEMORY, back to the
        default after it). For a transaction that nests a savepoint a file
        (a capture group, a chunk of readings): past 64 KiB SQLite moves them
        into a temporary file and writes every page it journals there, two
        write calls a page, ~80 pages a file in a burst. A journal is
        emptied when its savepoint is released, so it holds one file's
        pages; only this transaction's temporary tables are held in memory
        too, never those of a whole-ledger query (a report, an audit)."""
        with self._lock:
            if self.conn.in_transaction:
                name = f"nested{self._depth}"
                self._depth += 1
                try:
                    self.conn.execute(f"SAVEPOINT {name}")
                    try:
                        yield self.conn
                    except BaseException as e:
                        if not self.conn.in_transaction:
                            raise sqlite3.OperationalError(
                                f"the ledger rolled back the whole transaction: {type(e).__name__}: {e}") from e
                        _quietly(self.conn, f"ROLLBACK TO {name}", f"RELEASE {name}")
                        raise
                    self.conn.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1
                return
            if memory_journals:
                self.conn.execute("PRAGMA temp_store = MEMORY")  # never inside a transaction
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    _quietly(self.conn, "ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            finally:
                if memory_journals and not self.conn.in_transaction:
                    self.conn.execute("PRAGMA temp_store = DEFAULT")

    def integrity_check(self) -> str:
        """SQLite's own verdict: "ok" when the file is sound."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- heartbeat, refusals, small key/values ---------------------------------

    def beat(self, *, pid: int, now: str, activity: str, details: str | None = None) -> None:
        """Record that the daemon `pid` is alive and what it is doing."""
        with self.transaction() as c:
            c.execute("INSERT INTO heartbeat (id, pid, at, activity, details) VALUES (1, ?, ?, ?, ?) "
                      "ON CONFLICT(id) DO UPDATE SET pid=excluded.pid, at=excluded.at, "
                      "activity=excluded.activity, details=excluded.details",
                      (pid, now, activity, details))

    def root_pin(self, path: str) -> dict | None:
        """The identity (dev, ino, real, pinned_at) recorded for the watched
        folder `path`, or None when it was never watched."""
        row = self.conn.execute("SELECT dev, ino, real, pinned_at FROM watched_roots WHERE path = ?",
                                (storable_value(path),)).fetchone()
        return dict(row) if row else None

    def pin_root(self, path: str, *, dev: int, ino: int, real: str, now: str) -> None:
        """Record which folder the watched `path` leads to; durable on return.
        A path (or the folder it leads to) holding bytes that are no UTF-8 (a
        config in a GBK-named folder) is kept \\xNN, as `root_pin` and
        `unpin_root` look it up: never refused by SQLite at start-up."""
        path, real = storable_value(path), storable_value(real)
        with self.transaction() as c:
            c.execute("INSERT INTO watched_roots (path, dev, ino, real, pinned_at) VALUES (?, ?, ?, ?, ?) "
                      "ON CONFLICT(path) DO UPDATE SET dev=excluded.dev, ino=excluded.ino, "
                      "real=excluded.real, pinned_at=excluded.pinned_at", (path, dev, ino, real, now))

    def unpin_root(self, path: str) -> bool:
        """Forget the watched folder `path`'s identity (the next start or
        reload pins what it leads to then); False when none was recorded."""
        with self.transaction() as c:
            return c.execute("DELETE FROM watched_roots WHERE path = ?", (storable_value(path),)).rowcount > 0

    def heartbeat(self) -> dict | None:
        """The last heartbeat (pid, at, activity, details), or None."""
        row = self.conn.execute("SELECT pid, at, activity, details FROM heartbeat WHERE id = 1").fetchone()
        return dict(row) if row else None

    def record_refusal(self, *, source: str | None, name: str | None, reason: str, now: str,
                       sha256: str | None = None, once: bool = False) -> int:
        """Remember a file or attachment that was refused, with its reason.
        `sha256` names the vault object it came in (an e-mail message), which
        backups then mirror like any original. With `once`, a refusal of the
        same object, source, name and reason already recorded is kept as it
        is (its id is returned): the same bytes taken again. Texts holding a
        file name's bytes that are no UTF-8 are stored \\xNN
        (`filenames.storable_value`): a refusal is never itself refused."""
        source, name, reason = storable_value((source, name, reason))
        with self.transaction() as c:
            if once and sha256 is not None and (row := c.execute(
                    "SELECT id FROM refusals WHERE sha256 = ? AND source IS ? AND name IS ? AND reason = ? LIMIT 1",
                    (sha256, source, name, reason)).fetchone()):
                return row[0]
            return c.execute("INSERT INTO refusals (at, source, name, reason, sha256) VALUES (?, ?, ?, ?, ?)",
                             (now, source, name, reason, sha256)).lastrowid

    def refusals(self, limit: int = 100) -> list[dict]:
        """The most recent refusals, newest first (`limit` -1: all)."""
        rows = self.conn.execute("SELECT * FROM refusals ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def refusal_summary(self) -> dict:
        """How many files and attachments were refused, and when the last
        one was: for `status`, so refused junk is never out of sight."""
        n, last = self.conn.execute("SELECT count(*), max(at) FROM refusals").fetchone()
        return {"count": n, "last_at": last}

    def mail_seen(self, message_sha256: str) -> int:
        """How many times the e-mail whose raw bytes hash to `message_sha256`
        was taken before (0: never). Only the bytes make two messages the
        same: a reused Message-ID does not."""
        row = self.conn.execute("SELECT times FROM mail_taken WHERE sha256 = ?", (message_sha256,)).fetchone()
        return row[0] if row else 0

    def mark_mail_seen(self, message_sha256: str, *, message_id: str | None, now: str,
                       document_count: int) -> int:
        """Count one more taking of the e-mail `message_sha256`; returns how
        many times it has now been taken."""
        with self.transaction() as c:
            c.execute("INSERT INTO mail_taken (sha256, message_id, first_at, last_at, times, document_count) "
                      "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT(sha256) DO UPDATE SET times = times + 1, "
                      "last_at = excluded.last_at", (message_sha256, message_id, now, now, document_count))
            return c.execute("SELECT times FROM mail_taken WHERE sha256 = ?", (message_sha256,)).fetchone()[0]

    def seen_file(self, path: str, size: int, mtime_ns: int, *, ino: int, ctime_ns: int) -> str | None:
        """The outcome recorded for this path holding this very file (size,
        mtime, inode and ctime all equal), if any. A file replaced with the
        same size and mtime (`cp -p` rewrites in place: new ctime; `rsync -t`
        renames over: new inode) is not the one seen."""
        row = self.conn.execute("SELECT outcome FROM seen_files WHERE path = ? AND size = ? AND mtime_ns = ? "
                                "AND ino = ? AND ctime_ns = ?",
                                (path, size, storable_ns(mtime_ns), ino, storable_ns(ctime_ns))).fetchone()
        return row[0] if row else None

    def remember_file(self, path: str, size: int, mtime_ns: int, *, ino: int, ctime_ns: int, outcome: str,
                      now: str) -> None:
        """Note that a watched file was handled, so rescans skip it until it
        changes or is replaced (see `seen_file`). `path` is the caller's
        `exact_path` spelling; one holding surrogate escapes still is stored
        (\\xNN), never refused by SQLite."""
        path = storable_value(path)
        with self.transaction() as c:
            c.execute("INSERT INTO seen_files (path, size, mtime_ns, ino, ctime_ns, outcome, at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size=excluded.size, "
                      "mtime_ns=excluded.mtime_ns, ino=excluded.ino, ctime_ns=excluded.ctime_ns, "
                      "outcome=excluded.outcome, at=excluded.at",
                      (path, size, storable_ns(mtime_ns), ino, storable_ns(ctime_ns), outcome, now))

    def get_value(self, key: str) -> str | None:
        """A small persistent value (last snapshot time, last verify result...)."""
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def kept_random_id(self, key: str, *, now: str) -> str:
        """The value under `key`, made once at random (16 hex digits) the
        first time it is asked for and kept from then on, a restored ledger
        included. Concurrent first calls agree on one value."""
        known = self.get_value(key)
        if known:
            return known
        import secrets   # here: it loads OpenSSL (through hmac), which reading the ledger never needs

        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO kv (key, value, updated_at) VALUES (?, ?, ?)",
                      (key, secrets.token_hex(8), now))
            return c.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()[0]

    def set_value(self, key: str, value: str, *, now: str) -> None:
        """Store a small persistent value."""
        with self.transaction() as c:
            c.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) "
                      "DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
                      (key, value, now))


def _quietly(conn: sqlite3.Connection, *statements: str) -> None:
    # Undo after an error, keeping that error: SQLite may have rolled the
    # transaction back itself (disk full, I/O error), and then there is
    # nothing left to undo.
    for statement in statements:
        if not conn.in_transaction:
            return
        try:
            conn.execute(statement)
        except sqlite3.Error:
            return


def _close_writer(conn: sqlite3.Connection, path: Path) -> None:
    conn.close()
    _keep_wal_files(path)


def _keep_wal_files(path: Path) -> None:
    # A read-only connection can open a WAL ledger only when its -wal and
    # -shm exist (it may not create them: the read group cannot write the
    # state folder), and SQLite deletes both when the last writer closes.
    # Empty ones are valid: no frames, and a writer re-initialises the -shm.
    try:
        st = path.stat()
    except OSError:
        return
    for suffix in ("-wal", "-shm"):
        _create_empty(path.with_name(path.name + suffix), st.st_mode & 0o660, owner=(st.st_uid, st.st_gid))


def _create_empty(path: Path, mode: int, owner: tuple[int, int] | None = None) -> None:
    # mknod, chmod and chown by name, never open(): closing any descriptor
    # of a SQLite file drops every POSIX lock this process holds on it,
    # including those of the other connections. Root gives the file to the
    # ledger's owner, so a root process never leaves one of its own.
    try:
        os.mknod(path, 0o600 | stat.S_IFREG)
    except OSError:
        return  # it exists (or cannot be made): leave it as it is
    try:
        os.chmod(path, mode)
        if owner and os.geteuid() == 0:
            os.chown(path, *owner, follow_symlinks=False)
    except OSError:
        pass


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT first; split instead, keeping trigger
    # bodies (which contain semicolons) whole.
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()
