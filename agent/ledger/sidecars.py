"""What a backup sidecar says of a vault object: each document made from
it, with its sources, or, for a raw e-mail or a zip archive (no document
itself), the documents that came out of it and its refusals. Part of the
Ledger (agent/ledger/backups.py restores from these)."""

from __future__ import annotations

import json

from agent.ledger.rows import CONTAINER_SHA256, CONTAINER_SOURCES

# The document columns a sidecar carries, enough to rebuild the row.
_SIDECAR_COLUMNS = ("id", "part", "size", "media_type", "source_kind", "source", "original_name",
                    "original_path", "received_at", "updated_at", "state", "fields", "problems",
                    "invoice_key", "invoice_number", "invoice_date", "total_cents")
_SOURCE_COLUMNS = ("at", "source_kind", "source", "original_name", "original_path", "details")


class SidecarsMixin:
    """Sidecar contents, read from the ledger (no writes)."""

    def sidecar(self, sha256: str) -> dict | None:
        """What the ledger knows of the object `sha256`, as a JSON-ready dict
        for its backup sidecar: each document made from it (id, fields,
        problems, state, arrival), with its sources. None when no document has it."""
        docs = self.conn.execute(f"SELECT {', '.join(_SIDECAR_COLUMNS)} FROM documents WHERE sha256 = ? "
                                 "ORDER BY part, id", (sha256,)).fetchall()
        if not docs:
            return self._message_sidecar(sha256)
        out = []
        for d in docs:
            doc = dict(d)
            for key in ("fields", "problems"):
                doc[key] = json.loads(doc[key]) if doc[key] else None
            doc["sources"] = [
                {**dict(s), "details": json.loads(s["details"]) if s["details"] else None}
                for s in self.conn.execute(f"SELECT {', '.join(_SOURCE_COLUMNS)} FROM sources "
                                           "WHERE document_id = ? ORDER BY id", (doc["id"],))]
            out.append(doc)
        return {"sha256": sha256, "size": out[0]["size"], "media_type": out[0]["media_type"],
                "documents": out}

    def _message_sidecar(self, sha256: str) -> dict | None:
        # A raw e-mail or a zip archive: not a document itself, but the
        # origin of some (CONTAINER_KINDS), or refused with its reasons.
        rows = self.conn.execute(f"SELECT document_id, details FROM sources WHERE {CONTAINER_SOURCES} AND "
                                 f"{CONTAINER_SHA256} = ? ORDER BY id", (sha256,)).fetchall()
        refused = [dict(r) for r in self.conn.execute(
            "SELECT at, source, name, reason FROM refusals WHERE sha256 = ? ORDER BY id", (sha256,))]
        if not rows:
            sources = [r["source"] or "" for r in refused]
            kind = ("zip-archive" if any(s.startswith("zip ") for s in sources) else
                    "email-message" if any(s.startswith("e-mail ") for s in sources) else "refused-file")
            return {"sha256": sha256, "kind": kind, "document_ids": [], "refusals": refused} if refused else None
        first = json.loads(rows[0]["details"])
        if first.get("archive_sha256") == sha256:
            return {"sha256": sha256, "kind": "zip-archive", "path": first.get("archive_path"),
                    "document_ids": sorted({r["document_id"] for r in rows}), "refusals": refused}
        return {"sha256": sha256, "kind": "email-message",
                **{k: first.get(k) for k in ("message_id", "from", "subject", "date")},
                "document_ids": sorted({r["document_id"] for r in rows}), "refusals": refused}
