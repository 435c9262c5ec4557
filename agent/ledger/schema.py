"""Ledger schema as an ordered list of migrations; PRAGMA user_version is the
number of migrations applied. Never edit a released migration: add one."""

from __future__ import annotations

import sqlite3
from typing import Callable

from agent.ledger.trail import TRAIL_SCHEMA, chain_existing_events
from agent.textchars import SEARCH_IGNORED


# replace() calls nested in one expression: SQLite's parser stack (some 100
# entries) overflows near 20 of them, inside a trigger sooner.
_NESTED = 8


def _searchable(column: str) -> str:
    """SQL: `column` without the characters search looks through
    (textchars.SEARCH_IGNORED), by replace(), _NESTED at a time in a chain
    of subqueries: plain SQL every sqlite3 client runs (other tools write
    to this ledger; a function of ours would make their writes fail)."""
    query = None
    for i in range(0, len(SEARCH_IGNORED), _NESTED):
        expr = "v" if query else column
        for ch in SEARCH_IGNORED[i:i + _NESTED]:
            expr = f"replace({expr}, char({ord(ch)}), '')"
        query = f"SELECT {expr} AS v" + (f" FROM ({query})" if query else "")
    return f"({query})"


def _strip_search_text(where: str) -> str:
    """SQL: the search_text rows matching `where` that hold a character of
    SEARCH_IGNORED rewritten without them (search_text_au reindexes each);
    the rows that hold none (nearly all) are only looked at."""
    columns = ("parties", "items", "files", "mail")
    chars = ", ".join(str(ord(ch)) for ch in SEARCH_IGNORED)
    holds = " OR ".join(f"{c} GLOB '*[' || char({chars}) || ']*'" for c in columns)
    return (f"UPDATE search_text SET {', '.join(f'{c} = {_searchable(c)}' for c in columns)}\n"
            f"        WHERE {where}({holds});")


MIGRATIONS: list[str] = [
    # 1: documents, where each arrived from, and the append-only event log.
    """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        part INTEGER NOT NULL DEFAULT 1,      -- invoice number within a batch file
        parent_id INTEGER REFERENCES documents(id),
        size INTEGER NOT NULL,
        media_type TEXT,
        source_kind TEXT NOT NULL,            -- scanner | email | ingest
        source TEXT,                          -- watched folder or mailbox
        original_name TEXT,
        original_path TEXT,
        received_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state TEXT NOT NULL,
        fields TEXT,                          -- Invoice.to_dict() as JSON
        problems TEXT,                        -- list of Problem dicts as JSON
        UNIQUE (sha256, part)
    );
    CREATE INDEX documents_state ON documents(state, received_at);
    CREATE INDEX documents_received ON documents(received_at);
    CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id),
        at TEXT NOT NULL,
        source_kind TEXT NOT NULL,
        source TEXT,
        original_name TEXT,
        original_path TEXT,
        details TEXT                          -- JSON: e-mail Message-ID, From, Subject ...
    );
    CREATE INDEX sources_document ON sources(document_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        document_id INTEGER REFERENCES documents(id),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        reason TEXT,
        details TEXT
    );
    CREATE INDEX events_document ON events(document_id, id);
    """,
    # 2: invoice identity and sort keys as columns, so duplicates, `show
    # NUMBER` and sorting by date or amount use indexes, not JSON scans.
    """
    ALTER TABLE documents ADD COLUMN invoice_key TEXT;
    ALTER TABLE documents ADD COLUMN invoice_number TEXT;
    ALTER TABLE documents ADD COLUMN invoice_date TEXT;
    ALTER TABLE documents ADD COLUMN total_cents INTEGER;
    ALTER TABLE documents ADD COLUMN duplicate_of INTEGER REFERENCES documents(id);
    CREATE INDEX documents_invoice_key ON documents(invoice_key);
    CREATE INDEX documents_invoice_number ON documents(invoice_number);
    """,
    # 3: per-state counts kept by triggers: `status` stays O(1) at millions of rows.
    """
    CREATE TABLE state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO state_counts (state, n) SELECT state, count(*) FROM documents GROUP BY state;
    CREATE TRIGGER documents_count_insert AFTER INSERT ON documents BEGIN
        INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
            ON CONFLICT(state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER documents_count_update AFTER UPDATE OF state ON documents
        WHEN OLD.state IS NOT NEW.state BEGIN
        UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
        INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
            ON CONFLICT(state) DO UPDATE SET n = n + 1;
    END;
    """,
    # 4: delivery rows (one per document and destination) with retry columns,
    # their attempt history, backup rows, refusals, seen e-mails, heartbeat.
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id),
        destination TEXT NOT NULL,
        state TEXT NOT NULL,                  -- queued | delivering | delivered | confirmed | missing | failed | quarantined
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        lease_until TEXT,
        last_error TEXT,
        receipt TEXT,
        queued_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        delivered_at TEXT,
        confirmed_at TEXT,
        UNIQUE (document_id, destination)
    );
    CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
        at TEXT NOT NULL,
        outcome TEXT NOT NULL,                -- delivered | transient | permanent | found | absent
        error TEXT,
        next_attempt_at TEXT
    );
    CREATE INDEX attempts_delivery ON attempts(delivery_id);
    CREATE TABLE backups (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL,                  -- pending | done | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        updated_at TEXT NOT NULL,
        done_at TEXT,
        UNIQUE (sha256, target)
    );
    CREATE INDEX backups_due ON backups(target, state, next_attempt_at);
    CREATE TABLE refusals (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        source TEXT,
        name TEXT,
        reason TEXT NOT NULL
    );
    CREATE TABLE mail_seen (message_id TEXT PRIMARY KEY, at TEXT NOT NULL, document_count INTEGER);
    CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER, at TEXT, activity TEXT, details TEXT
    );
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT, updated_at TEXT);
    """,
    # 5: files already taken from watched folders (kept in place), so a
    # rescan skips them instead of re-hashing every kept file.
    """
    CREATE TABLE seen_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        outcome TEXT NOT NULL,                -- captured | refused
        at TEXT NOT NULL
    );
    """,
    # 6: delivery leases carry an owner token (a worker whose lease was taken
    # over cannot record), the SLA warning is logged once per row, claims and
    # reconciliation use indexes, and each destination's breaker and pause
    # survive a restart.
    """
    ALTER TABLE deliveries ADD COLUMN lease_token TEXT;
    ALTER TABLE deliveries ADD COLUMN sla_warned_at TEXT;
    CREATE INDEX deliveries_claim ON deliveries(destination, state, next_attempt_at);
    CREATE INDEX deliveries_delivered ON deliveries(state, delivered_at);
    CREATE TABLE destination_health (
        name TEXT PRIMARY KEY,
        breaker TEXT,                         -- Breaker.to_dict() as JSON
        paused_error TEXT,                    -- set while Misconfigured: what a person must fix
        paused_at TEXT,
        last_ok_at TEXT,
        last_error TEXT,
        last_error_at TEXT,
        updated_at TEXT NOT NULL
    );
    """,
    # 7: backup rows know their object's size and when they were queued (for
    # status: bytes held, oldest backlog); each target's pause, last put,
    # last verify and last ledger snapshot survive a restart.
    """
    ALTER TABLE backups ADD COLUMN size INTEGER;
    ALTER TABLE backups ADD COLUMN queued_at TEXT;
    CREATE INDEX backups_done ON backups(target, state, done_at);
    CREATE TABLE backup_targets (
        name TEXT PRIMARY KEY,
        paused_error TEXT,                    -- set while credentials or bucket are wrong
        paused_at TEXT,
        last_put_at TEXT,
        last_error TEXT,
        last_error_at TEXT,
        last_verify_at TEXT,
        last_verify TEXT,                     -- JSON: checked, ok, missing, mismatch, repaired
        last_snapshot_at TEXT,
        last_snapshot TEXT,                   -- snapshot key
        enqueued_doc_id INTEGER NOT NULL DEFAULT 0,
        manifest_days TEXT,                   -- JSON list of days whose manifest is stale
        updated_at TEXT NOT NULL
    );
    """,
    # 8: a document that changes after its object was backed up gets its
    # sidecar put again (a `done` row with next_attempt_at set); the target
    # remembers the last event it looked at, so finding them never rescans.
    """
    ALTER TABLE backup_targets ADD COLUMN enqueued_event_id INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: the raw e-mail a document's attachment came from is a vault original
    # too; the target remembers the last source row it looked at for them.
    """
    ALTER TABLE backup_targets ADD COLUMN enqueued_source_id INTEGER NOT NULL DEFAULT 0;
    """,
    # 10: an e-mail that gave no document (every attachment refused, or none
    # at all) is still a vault original: its refusal names it, and backups
    # pick it up from there.
    """
    ALTER TABLE refusals ADD COLUMN sha256 TEXT;
    ALTER TABLE backup_targets ADD COLUMN enqueued_refusal_id INTEGER NOT NULL DEFAULT 0;
    """,
    # 11: a kept file replaced in place (`cp -p`) or by rename (`rsync -t`)
    # with the same size and mtime is a new file: seen_files also knows the
    # inode and ctime. A source is moved or deleted only once its capture
    # was read, so the step waits in source_actions (root and path as the
    # raw bytes of the names), with the file's identity at capture, and
    # survives a restart. Earlier captures of a path are found by it.
    # seen_files.outcome gains: waiting (its move/delete waits) | kept.
    """
    ALTER TABLE seen_files ADD COLUMN ino INTEGER;
    ALTER TABLE seen_files ADD COLUMN ctime_ns INTEGER;
    CREATE TABLE source_actions (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id),
        root BLOB NOT NULL,                   -- the watched folder, os.fsencode()d
        path BLOB NOT NULL,                   -- the file, os.fsencode()d
        seen_key TEXT NOT NULL,               -- its seen_files path
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        state TEXT NOT NULL,                  -- waiting | done | gone | kept
        outcome TEXT,                         -- where it went, or why it was kept
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX source_actions_state ON source_actions(state, document_id);
    CREATE INDEX source_actions_document ON source_actions(document_id);
    CREATE INDEX sources_original_path ON sources(original_path);
    """,
    # 12: an e-mail is the same only when its bytes are: scan-to-mail copiers
    # restart their Message-ID counters and resent mail repeats the ID. Taken
    # messages are remembered by sha256 (mail_seen, keyed by Message-ID, is
    # no longer read), filled from the sources and refusals naming them.
    """
    CREATE TABLE mail_taken (
        sha256 TEXT PRIMARY KEY,
        message_id TEXT,
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        times INTEGER NOT NULL,               -- how often these exact bytes were taken
        document_count INTEGER
    );
    INSERT OR IGNORE INTO mail_taken (sha256, message_id, first_at, last_at, times, document_count)
        SELECT json_extract(details, '$.message_sha256'), json_extract(details, '$.message_id'),
               min(at), max(at), 1, count(DISTINCT document_id)
        FROM sources WHERE source_kind = 'email' AND json_extract(details, '$.message_sha256') IS NOT NULL
        GROUP BY json_extract(details, '$.message_sha256');
    INSERT OR IGNORE INTO mail_taken (sha256, message_id, first_at, last_at, times, document_count)
        SELECT sha256, NULL, min(at), max(at), 1, 0 FROM refusals WHERE sha256 IS NOT NULL GROUP BY sha256;
    """,
    # 13: a delivery row keeps the invoice key it was delivered under, so
    # reconciliation looks up what the destination really holds, and an amend
    # that changes the key marks the row `superseded` instead of delivering
    # the invoice there a second time under its new key. Rows delivered
    # before take the key from their receipt, else the document's. The
    # duplicate rule finds a key's live copy and its stray duplicates through
    # the index, however many copies of one invoice arrived.
    """
    ALTER TABLE deliveries ADD COLUMN delivered_key TEXT;
    UPDATE deliveries SET delivered_key = COALESCE(
        CASE WHEN json_valid(receipt) THEN json_extract(receipt, '$.key') END,
        (SELECT invoice_key FROM documents WHERE documents.id = deliveries.document_id))
        WHERE state IN ('delivered', 'confirmed', 'missing');
    DROP INDEX documents_invoice_key;
    CREATE INDEX documents_invoice_key ON documents(invoice_key, state, duplicate_of);
    """,
    # 14: a jump of the wall clock must neither fail a delivery nor stall it.
    # A row keeps the sum of the waits its schedule set since its attempts
    # were reset (waited_s: max_age_s counts these, not wall-clock age); rows
    # written "in the future" (the clock went back since) are found by index.
    """
    ALTER TABLE deliveries ADD COLUMN waited_s REAL NOT NULL DEFAULT 0;
    CREATE INDEX deliveries_written ON deliveries(destination, state, updated_at);
    """,
    # 15: extraction retry state as columns, so a document whose reading or
    # recording fails waits out its backoff across restarts instead of being
    # re-read in a spin, and is quarantined after a bounded number of tries.
    """
    ALTER TABLE documents ADD COLUMN extract_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE documents ADD COLUMN extract_next_at TEXT;
    ALTER TABLE documents ADD COLUMN extract_error TEXT;
    """,
    # 16: the audit events become a hash chain (agent/trail.py): each event
    # stores the hash of the one before it and its own, and `trail_head`
    # keeps the last one's, written in the same transaction, so an edited,
    # deleted, inserted or moved event and a cut tail are found by `audit
    # verify`. The events already there are chained in id order by the
    # step in STEPS, in this migration's transaction. `at` gets an index
    # for `audit export --since`. A backup target remembers the last event
    # its newest ledger snapshot holds, so an operator's action is snapshot
    # within a minute, not an hour.
    """
    ALTER TABLE events ADD COLUMN prev_hash TEXT;
    ALTER TABLE events ADD COLUMN hash TEXT;
    CREATE TABLE trail_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        event_id INTEGER NOT NULL,
        hash TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX events_at ON events(at);
    ALTER TABLE backup_targets ADD COLUMN snapshot_event_id INTEGER NOT NULL DEFAULT 0;
    """,
    # 17: likely invoices are read first. A flood of tiny junk captured ahead
    # of a real invoice must not make it wait its turn: documents of a format
    # an invoice comes in, and of at least 128 bytes (below that no invoice
    # fits), are due before the rest, then oldest first. The expression must
    # stay the very text of documents.EXTRACT_RANK, or the index is not used.
    """
    CREATE INDEX documents_extract_order ON documents(state, (CASE WHEN media_type IN ('pdf', 'ofd', 'xml', 'png', 'jpeg', 'tiff', 'bmp', 'gif', 'webp') AND size >= 128 THEN 0 ELSE 1 END), received_at, id, extract_next_at);
    """,
    # 18: each watched folder's identity (st_dev, st_ino of the folder its
    # configured path leads to), kept across reloads and restarts: a folder
    # swapped for another (a symlink to the outbox, the state folder, /etc)
    # while the daemon was down or before a SIGHUP is refused, not re-pinned,
    # until an operator says it was meant (`config repin`).
    """
    CREATE TABLE watched_roots (
        path TEXT PRIMARY KEY,                -- the configured path
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        real TEXT,                            -- where it led when pinned (for the message)
        pinned_at TEXT NOT NULL
    );
    """,
    # 19: 补录 applications (agent/applications.py): every amend, accept,
    # reject and reopen is an application with a number BL-YYYYMMDD-NNNN,
    # the sequence per filing day taken from these rows in the filing
    # transaction, so numbers stay unique and in order across processes and
    # a restored ledger goes on from its own rows. A pending one holds its
    # document (quarantined, or a duplicate of its key's live copy) until an
    # approver other than its filer decides it where four eyes are needed.
    """
    CREATE TABLE applications (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,          -- BL-YYYYMMDD-NNNN
        day TEXT NOT NULL,                    -- YYYYMMDD, the filing date (UTC+8)
        seq INTEGER NOT NULL,                 -- 1, 2, ... per day
        document_id INTEGER NOT NULL REFERENCES documents(id),
        kind TEXT NOT NULL,                   -- amend | accept | reject | reopen
        state TEXT NOT NULL,                  -- pending | approved | declined
        approval TEXT NOT NULL,               -- self (the filer decides) | other (four eyes)
        filed_at TEXT NOT NULL,
        filed_by TEXT NOT NULL,               -- the actor, as in events
        filer TEXT NOT NULL,                  -- the person (compared for four eyes)
        reason TEXT NOT NULL,
        doc_state TEXT NOT NULL,              -- the document's state when filed
        fields_sha256 TEXT NOT NULL,          -- its fields when filed: a change makes it stale
        changes TEXT,                         -- JSON {field: {old, old_source, new, kind, carried}}
        held_problems TEXT,                   -- JSON problems shown while it is pending
        decided_at TEXT,
        decided_by TEXT,
        decider TEXT,
        decision_reason TEXT,
        outcome TEXT,                         -- the document's state after the decision
        UNIQUE (day, seq)
    );
    CREATE INDEX applications_state ON applications(state, filed_at);
    CREATE INDEX applications_document ON applications(document_id, state);
    """,
    # 20: when a backup target stopped answering: the first failure to reach
    # it (a put, sidecar, snapshot or verify that met `Transient`) since it
    # last answered, cleared by the next success. `status` shows it as
    # UNREACHABLE since then and `status --check` measures the outage from it;
    # last_error_at (the latest error, of any kind) cannot say either.
    """
    ALTER TABLE backup_targets ADD COLUMN unreachable_since TEXT;
    """,
    # 21: notifications ([[notify]], agent/notify/): a durable outbox, one row
    # per message and entry, its retry state in columns (the sender thread
    # may die, the daemon restart: the row is still due); the faults each
    # entry was told about, so a fault sends one message when it opens and one
    # when it has stayed clear (kept across restarts: no repeat after one); and
    # each entry's quarantine digest cursor (the last event it reported).
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        entry TEXT NOT NULL,                  -- [[notify]] name
        event TEXT NOT NULL,                  -- quarantined | sla-breached | ... | weekly-report | test
        key TEXT NOT NULL,                    -- the fault or report it is about
        kind TEXT NOT NULL,                   -- opened | reminder | resolved | digest | report | test
        subject TEXT NOT NULL,
        body TEXT NOT NULL,                   -- plain text / markdown
        html TEXT,
        attachments TEXT,                     -- JSON [{filename, mimetype, data (base64)}]
        state TEXT NOT NULL,                  -- pending | sent | failed (given up)
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        last_error_at TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX notifications_due ON notifications(state, next_attempt_at);
    CREATE INDEX notifications_entry ON notifications(entry, id);
    CREATE TABLE notify_faults (
        entry TEXT NOT NULL,
        key TEXT NOT NULL,                    -- e.g. backup-failing:s3main
        event TEXT NOT NULL,
        subject TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        notified_at TEXT NOT NULL,            -- the opening message or the last reminder
        clear_since TEXT,                     -- not seen since; resolved once clear long enough
        PRIMARY KEY (entry, key)
    );
    CREATE TABLE notify_cursors (
        entry TEXT PRIMARY KEY,
        quarantine_event_id INTEGER NOT NULL, -- the last quarantine event a digest counted
        digest_at TEXT NOT NULL               -- the last digest (or when the entry was first seen)
    );
    """,
    # 22: restore drills (agent/backup/drill.py): each time a sample of a
    # target's objects and its newest ledger snapshot were brought back into
    # a temporary folder and checked, with the seed that drew the sample, so
    # `status`, the metrics and the weekly report say when the backups last
    # proved they restore, and a drill can be repeated exactly. A snapshot's
    # SHA-256 is remembered when it is put: the drill compares the bytes it
    # gets back with what we stored, not with what the target claims.
    """
    CREATE TABLE restore_drills (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        ok INTEGER NOT NULL,                  -- 1: every check passed
        sampled INTEGER NOT NULL,             -- originals drawn from what the ledger says the target holds
        failed INTEGER NOT NULL,              -- of them, missing, mismatching or unreadable
        mismatch INTEGER NOT NULL,            -- 1: bytes came back that are not what we stored
        seed INTEGER NOT NULL,                -- random.Random(seed) redraws the same sample
        snapshot TEXT,                        -- the snapshot key checked (None: none found)
        snapshot_ok INTEGER,                  -- 1: hash, gzip, integrity_check and tables all good
        actor TEXT NOT NULL,
        reason TEXT,                          -- the first failure, one line (None when ok)
        detail TEXT NOT NULL                  -- JSON: every failure, the snapshot's checks
    );
    CREATE INDEX restore_drills_target ON restore_drills(target, id);
    ALTER TABLE backup_targets ADD COLUMN last_snapshot_sha256 TEXT;
    """,
    # 23: the fleet (agent/fleet/, docs/fleet.md): per document, its claim on
    # its invoice key in the store several sites share. won (with the
    # generation and lease this site holds), lost (another site's claim:
    # the document is a duplicate of it; remote_site/remote_at say whose),
    # held (the store did not answer: deliveries wait, `reason` says why),
    # waiting (another site holds a live claim: for its delivery or its lease),
    # unclaimed (delivered while the store was down; claimed afterwards),
    # delivered (recorded on the claim), released (rejected or re-keyed),
    # reopened (a fleet duplicate judged again: the other site let it go).
    """
    CREATE TABLE fleet_claims (
        document_id INTEGER PRIMARY KEY REFERENCES documents(id),
        invoice_key TEXT NOT NULL,            -- the key claimed (claims/<key>/ in the store)
        state TEXT NOT NULL,                  -- won | waiting | lost | held | unclaimed | delivered | released | reopened
        generation INTEGER,                   -- the claim object this state is about
        lease_until TEXT,                     -- won: when another site may take it over
        remote_site TEXT,                     -- lost: the site holding the key
        remote_at TEXT,                       -- lost: when it claimed it
        reason TEXT,                          -- held/unclaimed: the store's error; else a note
        updated_at TEXT NOT NULL
    );
    CREATE INDEX fleet_claims_state ON fleet_claims(state, updated_at);
    """,
    # 24: shared backups (agent/backup/sites.py): the key layout each target's
    # rows were put under, "flat" (a lone agent's) or "site:<name>" (under
    # sites/<name>/ of a target the fleet shares). NULL: before this
    # migration, which only knew "flat". When [fleet] site changes, the
    # sidecars, manifests and the snapshot are put again under the new layout.
    """
    ALTER TABLE backup_targets ADD COLUMN layout TEXT;
    """,
    # 25: `search` (agent/ledger/search.py) finds an invoice by any part of a
    # name, line item, file name, e-mail subject or sender, and by the
    # beginning of its number, 发票代码 or a tax id, at a million documents.
    # search_text holds each document's searchable text (one row per
    # document, rowid = its id), kept by triggers on documents and sources,
    # so every writer keeps it in step without knowing of it. search_text_fts
    # indexes it with the trigram tokenizer (Chinese has no spaces: unicode61
    # makes 北京某某科技有限公司 one token, and 公司 would not find it), kept by
    # triggers of sqlite-utils' enable_fts shape (_ai, _ad, _au), so
    # `sqlite-utils rebuild-fts` works on it. Written out here, not made by
    # enable_fts: that runs executescript(), which COMMITs the migration's
    # open transaction. The code and tax ids get expression indexes (guarded
    # by json_valid, so a malformed row can never fail a write) for prefix
    # lookups (the number has its own since 2), the invoice date and total
    # indexes for range filters and sorts. Documents already in the ledger
    # are indexed here, so an upgraded ledger is searchable at once.
    """
    CREATE TABLE search_text (
        id INTEGER PRIMARY KEY REFERENCES documents(id),
        parties TEXT,                         -- buyer and seller names
        items TEXT,                           -- line item names
        files TEXT,                           -- file names of every arrival
        mail TEXT                             -- subject and sender of every e-mail arrival
    );
    INSERT INTO search_text (id, parties, items, files, mail)
        SELECT d.id,
            CASE WHEN json_valid(d.fields) THEN coalesce(json_extract(d.fields, '$.buyer_name'), '') || ' ' || coalesce(json_extract(d.fields, '$.seller_name'), '') END,
            (SELECT group_concat(json_extract(i.value, '$.name'), ' ') FROM json_each(CASE WHEN json_valid(d.fields)
                 AND json_type(d.fields, '$.items') = 'array' THEN d.fields END, '$.items') i WHERE i.type = 'object'),
            (SELECT group_concat(n, ' ') FROM (SELECT d.original_name AS n UNION SELECT s.original_name FROM sources s
                 WHERE s.document_id = d.id AND s.original_name IS NOT NULL)),
            (SELECT group_concat(m, ' ') FROM (SELECT DISTINCT coalesce(json_extract(s.details, '$.subject'), '') || ' ' ||
                 coalesce(json_extract(s.details, '$.from'), '') AS m FROM sources s WHERE s.document_id = d.id
                 AND s.source_kind = 'email' AND json_valid(s.details)))
        FROM documents d;
    CREATE VIRTUAL TABLE search_text_fts USING FTS5 (
        parties, items, files, mail,
        tokenize='trigram',
        content="search_text"
    );
    INSERT INTO search_text_fts (search_text_fts) VALUES ('rebuild');
    CREATE TRIGGER search_text_ai AFTER INSERT ON search_text BEGIN
      INSERT INTO search_text_fts (rowid, parties, items, files, mail)
        VALUES (new.rowid, new.parties, new.items, new.files, new.mail);
    END;
    CREATE TRIGGER search_text_ad AFTER DELETE ON search_text BEGIN
      INSERT INTO search_text_fts (search_text_fts, rowid, parties, items, files, mail)
        VALUES ('delete', old.rowid, old.parties, old.items, old.files, old.mail);
    END;
    CREATE TRIGGER search_text_au AFTER UPDATE ON search_text
        WHEN old.parties IS NOT new.parties OR old.items IS NOT new.items OR old.files IS NOT new.files
             OR old.mail IS NOT new.mail BEGIN
      INSERT INTO search_text_fts (search_text_fts, rowid, parties, items, files, mail)
        VALUES ('delete', old.rowid, old.parties, old.items, old.files, old.mail);
      INSERT INTO search_text_fts (rowid, parties, items, files, mail)
        VALUES (new.rowid, new.parties, new.items, new.files, new.mail);
    END;
    CREATE TRIGGER documents_search_insert AFTER INSERT ON documents BEGIN
        INSERT INTO search_text (id, parties, items, files, mail) VALUES (NEW.id,
            CASE WHEN json_valid(NEW.fields) THEN coalesce(json_extract(NEW.fields, '$.buyer_name'), '') || ' ' || coalesce(json_extract(NEW.fields, '$.seller_name'), '') END,
            (SELECT group_concat(json_extract(i.value, '$.name'), ' ') FROM json_each(CASE WHEN json_valid(NEW.fields)
                 AND json_type(NEW.fields, '$.items') = 'array' THEN NEW.fields END, '$.items') i WHERE i.type = 'object'),
            NEW.original_name, NULL);
    END;
    CREATE TRIGGER documents_search_update AFTER UPDATE OF fields, original_name ON documents
        WHEN OLD.fields IS NOT NEW.fields OR OLD.original_name IS NOT NEW.original_name BEGIN
        UPDATE search_text SET
            parties = CASE WHEN json_valid(NEW.fields) THEN coalesce(json_extract(NEW.fields, '$.buyer_name'), '') || ' ' || coalesce(json_extract(NEW.fields, '$.seller_name'), '') END,
            items = (SELECT group_concat(json_extract(i.value, '$.name'), ' ') FROM json_each(CASE WHEN json_valid(NEW.fields)
                 AND json_type(NEW.fields, '$.items') = 'array' THEN NEW.fields END, '$.items') i WHERE i.type = 'object'),
            files = (SELECT group_concat(n, ' ') FROM (SELECT NEW.original_name AS n UNION SELECT s.original_name FROM sources s
                 WHERE s.document_id = NEW.id AND s.original_name IS NOT NULL))
        WHERE id = NEW.id;
    END;
    CREATE TRIGGER documents_search_delete AFTER DELETE ON documents BEGIN
        DELETE FROM search_text WHERE id = OLD.id;
    END;
    CREATE TRIGGER sources_search_insert AFTER INSERT ON sources
        WHEN NEW.source_kind = 'email' OR NEW.original_name IS NOT (SELECT original_name FROM documents
             WHERE id = NEW.document_id) BEGIN
        UPDATE search_text SET
            files = (SELECT (SELECT group_concat(n, ' ') FROM (SELECT d.original_name AS n UNION SELECT s.original_name FROM sources s
                 WHERE s.document_id = NEW.document_id AND s.original_name IS NOT NULL)) FROM documents d WHERE d.id = NEW.document_id),
            mail = (SELECT group_concat(m, ' ') FROM (SELECT DISTINCT coalesce(json_extract(s.details, '$.subject'), '') || ' ' ||
                 coalesce(json_extract(s.details, '$.from'), '') AS m FROM sources s WHERE s.document_id = NEW.document_id
                 AND s.source_kind = 'email' AND json_valid(s.details)))
        WHERE id = NEW.document_id;
    END;
    CREATE INDEX documents_search_code ON documents((CASE WHEN json_valid(fields) THEN json_extract(fields, '$.code') END));
    CREATE INDEX documents_search_buyer_tax_id ON documents((CASE WHEN json_valid(fields) THEN json_extract(fields, '$.buyer_tax_id') END));
    CREATE INDEX documents_search_seller_tax_id ON documents((CASE WHEN json_valid(fields) THEN json_extract(fields, '$.seller_tax_id') END));
    CREATE INDEX documents_search_date ON documents(invoice_date, id);
    CREATE INDEX documents_search_total ON documents(total_cents, id);
    """,
    # 26: `search --state` walks one state's documents in the order asked
    # for. With only documents_state(state, received_at) SQLite read and
    # sorted every document of the state: 150-200 ms for a common word in
    # `confirmed` (80 % of a million-document ledger); the date/total walk
    # instead read rows of every state. (state, date|total, id) gives the
    # walk only rows of that state, already in order, and it stops at the
    # limit: 5-20 ms whatever the state's share.
    """
    CREATE INDEX documents_search_state_date ON documents(state, invoice_date, id);
    CREATE INDEX documents_search_state_total ON documents(state, total_cents, id);
    """,
    # 27: sidecar batches (agent/backup/sidecars.py): an original's sidecar
    # is no longer its own object beside it (two PUTs a file) but an entry
    # of one batch object per mirror step. Each row remembers the batch that
    # describes it, so the restore drill fetches that one and not every
    # batch. NULL: described the older way, by objects/ab/cd/<sha256>.json.
    """
    ALTER TABLE backups ADD COLUMN sidecar_batch TEXT;
    """,
    # 28: backup rows counted per target and state (and their bytes) by
    # triggers, as state_counts does for documents: the backup thread's
    # round and `backup status` read what a target holds without counting
    # a million rows each time. Likewise for min_copies: each original's
    # number of `done` copies (backup_copies), how many originals have each
    # number (backup_copies_count), and how many distinct originals the
    # documents have (ledger_counts 'originals').
    """
    CREATE TABLE backup_counts (
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (target, state)
    );
    INSERT INTO backup_counts (target, state, n, bytes)
        SELECT target, state, count(*), coalesce(sum(size), 0) FROM backups GROUP BY target, state;
    CREATE TRIGGER backups_count_insert AFTER INSERT ON backups BEGIN
        INSERT INTO backup_counts (target, state, n, bytes) VALUES (NEW.target, NEW.state, 1, coalesce(NEW.size, 0))
            ON CONFLICT(target, state) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER backups_count_update AFTER UPDATE OF target, state, size ON backups
        WHEN OLD.target IS NOT NEW.target OR OLD.state IS NOT NEW.state OR OLD.size IS NOT NEW.size BEGIN
        UPDATE backup_counts SET n = n - 1, bytes = bytes - coalesce(OLD.size, 0)
            WHERE target = OLD.target AND state = OLD.state;
        INSERT INTO backup_counts (target, state, n, bytes) VALUES (NEW.target, NEW.state, 1, coalesce(NEW.size, 0))
            ON CONFLICT(target, state) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER backups_count_delete AFTER DELETE ON backups BEGIN
        UPDATE backup_counts SET n = n - 1, bytes = bytes - coalesce(OLD.size, 0)
            WHERE target = OLD.target AND state = OLD.state;
    END;
    CREATE TABLE backup_copies (sha256 TEXT PRIMARY KEY, copies INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE backup_copies_count (copies INTEGER PRIMARY KEY, n INTEGER NOT NULL);
    CREATE TRIGGER backup_copies_insert AFTER INSERT ON backup_copies BEGIN
        INSERT INTO backup_copies_count (copies, n) VALUES (NEW.copies, 1)
            ON CONFLICT(copies) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER backup_copies_update AFTER UPDATE OF copies ON backup_copies
        WHEN OLD.copies IS NOT NEW.copies BEGIN
        UPDATE backup_copies_count SET n = n - 1 WHERE copies = OLD.copies;
        INSERT INTO backup_copies_count (copies, n) VALUES (NEW.copies, 1)
            ON CONFLICT(copies) DO UPDATE SET n = n + 1;
    END;
    INSERT INTO backup_copies (sha256, copies)
        SELECT sha256, count(*) FROM backups WHERE state = 'done' GROUP BY sha256;
    CREATE TRIGGER backups_copy_insert AFTER INSERT ON backups WHEN NEW.state = 'done' BEGIN
        INSERT INTO backup_copies (sha256, copies) VALUES (NEW.sha256, 1)
            ON CONFLICT(sha256) DO UPDATE SET copies = copies + 1;
    END;
    CREATE TRIGGER backups_copy_lost AFTER UPDATE OF state, sha256 ON backups
        WHEN OLD.state = 'done' AND (NEW.state IS NOT 'done' OR NEW.sha256 IS NOT OLD.sha256) BEGIN
        UPDATE backup_copies SET copies = copies - 1 WHERE sha256 = OLD.sha256;
    END;
    CREATE TRIGGER backups_copy_gained AFTER UPDATE OF state, sha256 ON backups
        WHEN NEW.state = 'done' AND (OLD.state IS NOT 'done' OR NEW.sha256 IS NOT OLD.sha256) BEGIN
        INSERT INTO backup_copies (sha256, copies) VALUES (NEW.sha256, 1)
            ON CONFLICT(sha256) DO UPDATE SET copies = copies + 1;
    END;
    CREATE TRIGGER backups_copy_delete AFTER DELETE ON backups WHEN OLD.state = 'done' BEGIN
        UPDATE backup_copies SET copies = copies - 1 WHERE sha256 = OLD.sha256;
    END;
    CREATE TABLE ledger_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO ledger_counts (name, n) SELECT 'originals', count(DISTINCT sha256) FROM documents;
    CREATE TRIGGER documents_original_insert AFTER INSERT ON documents
        WHEN NOT EXISTS (SELECT 1 FROM documents WHERE sha256 = NEW.sha256 AND id != NEW.id) BEGIN
        UPDATE ledger_counts SET n = n + 1 WHERE name = 'originals';
    END;
    """,
    # 29: a zip is read among the likely invoices. An OFD is a zip; capture
    # sniffs its first 4 KiB, so one whose first member is not OFD.xml (and
    # whose directory is at the end) is stored as "zip", and it waited behind
    # every likely invoice of a flood. The expression must stay the very text
    # of documents.EXTRACT_RANK, or the index is not used.
    """
    DROP INDEX documents_extract_order;
    CREATE INDEX documents_extract_order ON documents(state, (CASE WHEN media_type IN ('pdf', 'ofd', 'xml', 'zip', 'png', 'jpeg', 'tiff', 'bmp', 'gif', 'webp') AND size >= 128 THEN 0 ELSE 1 END), received_at, id, extract_next_at);
    """,
    # 30: refusals by the object they name, then where and what: a sidecar
    # of a refused file, a raw e-mail or a zip archive lists them, a restore
    # writes them back once, a zip taken again records each only once. Each
    # scanned the whole table (a restore beside 150,000 refusals: 20x
    # slower), and one object's refusals alone when they all share it (a
    # zip of 2,000 junk members dropped 50 times: 46 s for the next drop).
    """
    CREATE INDEX refusals_object ON refusals(sha256, name, source);
    """,
    # 31: files by their inode: `audit ledger` tells the ones the agent
    # moved into processed/DATE from ones put there by hand (never taken)
    # without hashing every file of years of processed folders; a kept file
    # renamed and then made unreadable is told to be the one captured
    # under its old name.
    """
    CREATE INDEX source_actions_inode ON source_actions(ino, dev);
    CREATE INDEX seen_files_inode ON seen_files(ino);
    """,
    # 32: an e-mail's move or delete waits, as a scanner file's does, until
    # the documents it brought were read: the action names the first, the
    # others are listed here (a JSON array of ids). Moved at once, a message
    # still being written lost the rest (after = delete) or left it unread
    # in processed/ (after = move).
    """
    ALTER TABLE source_actions ADD COLUMN with_documents TEXT;
    """,
    # 33: `show` finds the waiting step of an e-mail's other documents (listed
    # in with_documents) without reading every action.
    """
    CREATE INDEX source_actions_shared ON source_actions(id) WHERE with_documents IS NOT NULL;
    """,
    # 34: a backup target's identity and the objects a verification could
    # not make whole. `identity` is the id in the marker object the agent
    # wrote on the target at first use (agent/backup/identity.py): an empty
    # mount point or another disk under the same path lacks it, so nothing is
    # written there. `backup_unverified` holds each object a verification
    # found missing or with other bytes and could not repair (a store that
    # answers 200 and keeps nothing): status and `status --check` show the
    # target as not ok until a read-back of it succeeds.
    """
    ALTER TABLE backup_targets ADD COLUMN identity TEXT;
    CREATE TABLE backup_unverified (
        target TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        verdict TEXT NOT NULL,                -- missing | mismatch
        found_at TEXT NOT NULL,
        PRIMARY KEY (target, sha256)
    ) WITHOUT ROWID;
    """,
    # 35: `search` looks through the invisible characters of a name
    # (textchars.SEARCH_IGNORED: a zero-width space, a BOM, a bidi mark...):
    # 北京某某\u200b科技有限公司 is found by 某某科技. Names are kept as read;
    # search_text, what the index holds, is kept without them: migration 25's
    # triggers that write it are recreated as they were, each followed by
    # the rewrite of its row when it holds one (in the trigger, so every
    # writer's rows get it), and the rows already written are rewritten.
    # The query drops the same characters from what a person types
    # (agent/search.py).
    f"""
    DROP TRIGGER documents_search_insert;
    DROP TRIGGER documents_search_update;
    DROP TRIGGER sources_search_insert;
    CREATE TRIGGER documents_search_insert AFTER INSERT ON documents BEGIN
        INSERT INTO search_text (id, parties, items, files, mail) VALUES (NEW.id,
            CASE WHEN json_valid(NEW.fields) THEN coalesce(json_extract(NEW.fields, '$.buyer_name'), '') || ' ' || coalesce(json_extract(NEW.fields, '$.seller_name'), '') END,
            (SELECT group_concat(json_extract(i.value, '$.name'), ' ') FROM json_each(CASE WHEN json_valid(NEW.fields)
                 AND json_type(NEW.fields, '$.items') = 'array' THEN NEW.fields END, '$.items') i WHERE i.type = 'object'),
            NEW.original_name, NULL);
        {_strip_search_text("id = NEW.id AND ")}
    END;
    CREATE TRIGGER documents_search_update AFTER UPDATE OF fields, original_name ON documents
        WHEN OLD.fields IS NOT NEW.fields OR OLD.original_name IS NOT NEW.original_name BEGIN
        UPDATE search_text SET
            parties = CASE WHEN json_valid(NEW.fields) THEN coalesce(json_extract(NEW.fields, '$.buyer_name'), '') || ' ' || coalesce(json_extract(NEW.fields, '$.seller_name'), '') END,
            items = (SELECT group_concat(json_extract(i.value, '$.name'), ' ') FROM json_each(CASE WHEN json_valid(NEW.fields)
                 AND json_type(NEW.fields, '$.items') = 'array' THEN NEW.fields END, '$.items') i WHERE i.type = 'object'),
            files = (SELECT group_concat(n, ' ') FROM (SELECT NEW.original_name AS n UNION SELECT s.original_name FROM sources s
                 WHERE s.document_id = NEW.id AND s.original_name IS NOT NULL))
        WHERE id = NEW.id;
        {_strip_search_text("id = NEW.id AND ")}
    END;
    CREATE TRIGGER sources_search_insert AFTER INSERT ON sources
        WHEN NEW.source_kind = 'email' OR NEW.original_name IS NOT (SELECT original_name FROM documents
             WHERE id = NEW.document_id) BEGIN
        UPDATE search_text SET
            files = (SELECT (SELECT group_concat(n, ' ') FROM (SELECT d.original_name AS n UNION SELECT s.original_name FROM sources s
                 WHERE s.document_id = NEW.document_id AND s.original_name IS NOT NULL)) FROM documents d WHERE d.id = NEW.document_id),
            mail = (SELECT group_concat(m, ' ') FROM (SELECT DISTINCT coalesce(json_extract(s.details, '$.subject'), '') || ' ' ||
                 coalesce(json_extract(s.details, '$.from'), '') AS m FROM sources s WHERE s.document_id = NEW.document_id
                 AND s.source_kind = 'email' AND json_valid(s.details)))
        WHERE id = NEW.document_id;
        {_strip_search_text("id = NEW.document_id AND ")}
    END;
    {_strip_search_text("")}
    """,
    # 36: every key a destination was told it holds a document under, kept
    # per (document, destination) until reconciliation finds it gone there
    # or a person says so (`forget-key`): agent/ledger/held_keys.py. A row's
    # delivered_key is only the latest key: a row superseded by an amend
    # and sent again by `requeue --destination` went out under the new key,
    # and the old copy, still there, was named by nothing. Kept by triggers,
    # so every writer keeps it in step: a row delivered, confirmed or
    # superseded under a key holds it; `old` says the key is not the
    # document's (judged again when an amend changes that), so `status`
    # finds the few held under an old key by a partial index, not by
    # reading every key. Filled here from the rows holding a key now (as
    # rejections.HELD_THERE reads them), and from the amends' events naming
    # a row superseded under a key the row has left since (requeued by name
    # and delivered under the new one), unless reconciliation found it gone
    # there afterwards (the row missing under it, or an `absent` attempt
    # under that old key).
    """
    CREATE TABLE held_keys (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id),
        destination TEXT NOT NULL,
        key TEXT NOT NULL,
        since TEXT NOT NULL,                  -- first delivered (or found) there under it, as far as the ledger knows
        seen_at TEXT NOT NULL,                -- the last row that said so (delivered, confirmed, found there)
        old INTEGER NOT NULL,                 -- 1: not the document's invoice key (kept by documents_key_old)
        UNIQUE (document_id, destination, key)
    );
    CREATE INDEX held_keys_old ON held_keys(destination, id) WHERE old;
    INSERT INTO held_keys (document_id, destination, key, since, seen_at, old)
        SELECT d.document_id, d.destination, d.delivered_key, COALESCE(d.delivered_at, d.updated_at),
               COALESCE(max(d.confirmed_at, d.delivered_at), d.delivered_at, d.confirmed_at, d.updated_at),
               d.delivered_key IS NOT doc.invoice_key
        FROM deliveries d JOIN documents doc ON doc.id = d.document_id
        WHERE d.delivered_key IS NOT NULL AND d.state != 'missing' ORDER BY d.id;
    INSERT OR IGNORE INTO held_keys (document_id, destination, key, since, seen_at, old)
        SELECT e.document_id, json_extract(j.value, '$.destination') AS destination,
               json_extract(j.value, '$.key') AS key, e.at, e.at, json_extract(j.value, '$.key') IS NOT doc.invoice_key
        FROM events e JOIN documents doc ON doc.id = e.document_id,
             json_each(CASE WHEN json_valid(e.details) AND json_type(e.details, '$.deliveries') = 'array'
                       AND json_type(e.details, '$.old_key') IS NOT NULL THEN e.details END, '$.deliveries') j
        WHERE e.details LIKE '%"old_key"%' AND j.type = 'object'
          AND json_extract(j.value, '$.state') = 'superseded'
          AND json_type(j.value, '$.destination') = 'text' AND json_type(j.value, '$.key') = 'text'
          AND NOT EXISTS (SELECT 1 FROM deliveries r WHERE r.document_id = e.document_id
              AND r.destination = json_extract(j.value, '$.destination')
              AND ((r.state = 'missing' AND r.delivered_key IS json_extract(j.value, '$.key'))
                   OR EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = r.id AND a.outcome = 'absent'
                              AND a.at >= e.at AND a.error = r.destination || ' does not hold it under its old key '
                                                            || json_extract(j.value, '$.key'))))
        ORDER BY e.id;
    CREATE TRIGGER deliveries_key_held AFTER UPDATE OF state, delivered_key ON deliveries
        WHEN NEW.delivered_key IS NOT NULL AND NEW.state IN ('delivered', 'confirmed', 'superseded') BEGIN
        INSERT INTO held_keys (document_id, destination, key, since, seen_at, old)
            VALUES (NEW.document_id, NEW.destination, NEW.delivered_key, NEW.updated_at, NEW.updated_at,
                    NEW.delivered_key IS NOT (SELECT invoice_key FROM documents WHERE id = NEW.document_id))
            ON CONFLICT (document_id, destination, key) DO UPDATE SET seen_at = excluded.seen_at
            WHERE NEW.state != 'superseded';
    END;
    CREATE TRIGGER deliveries_key_held_insert AFTER INSERT ON deliveries
        WHEN NEW.delivered_key IS NOT NULL AND NEW.state IN ('delivered', 'confirmed', 'superseded') BEGIN
        INSERT INTO held_keys (document_id, destination, key, since, seen_at, old)
            VALUES (NEW.document_id, NEW.destination, NEW.delivered_key, NEW.updated_at, NEW.updated_at,
                    NEW.delivered_key IS NOT (SELECT invoice_key FROM documents WHERE id = NEW.document_id))
            ON CONFLICT (document_id, destination, key) DO UPDATE SET seen_at = excluded.seen_at;
    END;
    CREATE TRIGGER documents_key_old AFTER UPDATE OF invoice_key ON documents
        WHEN OLD.invoice_key IS NOT NEW.invoice_key BEGIN
        UPDATE held_keys SET old = key IS NOT NEW.invoice_key WHERE document_id = NEW.id;
    END;
    """,
]

# Python steps run after a migration's SQL, inside its transaction, keyed by
# the schema version the migration brings the file to.
STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {TRAIL_SCHEMA: chain_existing_events}

LATEST = len(MIGRATIONS)
