"""Ledger schema as an ordered list of migrations; PRAGMA user_version is the
number of migrations applied. Never edit a released migration: add one."""

from __future__ import annotations

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
    # 12: extraction retry state as columns, so a document whose reading or
    # recording fails waits out its backoff across restarts instead of being
    # re-read in a spin, and is quarantined after a bounded number of tries.
    """
    ALTER TABLE documents ADD COLUMN extract_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE documents ADD COLUMN extract_next_at TEXT;
    ALTER TABLE documents ADD COLUMN extract_error TEXT;
    """,
]

LATEST = len(MIGRATIONS)
