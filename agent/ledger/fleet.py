"""Fleet claims in the ledger: what this site knows of each document's claim
on its invoice key in the shared store (agent/fleet/claims.py decides; here
the rows, written with the document's move and its event in one transaction)."""

from __future__ import annotations

import json
from typing import Any

from agent.states import State

FLEET_CLAIM_STATES = ("won", "waiting", "lost", "held", "unclaimed", "delivered", "released", "reopened")
# How a claim row's reason begins when this site knew the key was claimed and
# the store then held no claim at all for it (an expiry rule, a bucket made
# anew, `claims/` wiped, another fleet prefix): counted by fleet_summary for
# the WARNING of `status --check` and `fleet status`.
VANISHED = "the fleet store lost the claims of "
# kv key of the last publish's same-name warning ("" when there was none).
_SAME_NAME = "fleet.same_name"
# kv keys of the fleet store's epoch this site joined (agent/fleet/epoch.py), and
# of its doubt that the store still holds its claims ("" when it has none).
_EPOCH, _DOUBT = "fleet.epoch", "fleet.doubt"
# Claim rows whose generation this site wrote or read in the store (a mark):
# the store must still hold it (claims are never deleted, only followed).
_MARK_STATES = ("won", "delivered", "released")
# Rows a lost key must never deliver: everything not already at a destination.
_OPEN_ROW_STATES = ("queued", "delivering", "failed", "missing", "quarantined")


class FleetMixin:
    """Part of `Ledger`: the fleet_claims table."""

    def fleet_holder(self, *, now: str) -> str:
        """This ledger's fleet identity, written into every claim it makes:
        made once at random and kept (a restored ledger keeps it), so an
        agent never takes a claim of another agent configured with the same
        site name for its own. Concurrent first calls agree on one value."""
        return self.kept_random_id("fleet.holder", now=now)

    def fleet_claim(self, doc_id: int) -> dict[str, Any] | None:
        """The document's claim row as a dict, or None when it never met the fleet."""
        row = self.conn.execute("SELECT * FROM fleet_claims WHERE document_id = ?", (doc_id,)).fetchone()
        return dict(row) if row else None

    def set_fleet_claim(self, doc_id: int, *, invoice_key: str, state: str, now: str, actor: str,
                        generation: int | None = None, lease_until: str | None = None,
                        remote_site: str | None = None, remote_at: str | None = None,
                        reason: str | None = None) -> None:
        """Write the document's claim row; when its state changes, an event
        saying so, in the same transaction (a renewed lease writes no event).
        A `lost` row of a document that is a duplicate changes only to
        `reopened` (fleet_reopen): another destination's worker that judged
        the key a moment before it was lost (waiting on the other site's live
        claim) must not write its older verdict over it."""
        if state not in FLEET_CLAIM_STATES:
            raise ValueError(f"unknown fleet claim state {state!r}")
        with self.transaction() as c:
            old = self.fleet_claim(doc_id)
            if (old is not None and old["state"] == "lost" and state not in ("lost", "reopened")
                    and self.get(doc_id).state == State.DUPLICATE.value):
                return
            c.execute("INSERT INTO fleet_claims (document_id, invoice_key, state, generation, lease_until, "
                      "remote_site, remote_at, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT(document_id) DO UPDATE SET invoice_key = excluded.invoice_key, "
                      "state = excluded.state, generation = excluded.generation, "
                      "lease_until = excluded.lease_until, remote_site = excluded.remote_site, "
                      "remote_at = excluded.remote_at, reason = excluded.reason, updated_at = excluded.updated_at",
                      (doc_id, invoice_key, state, generation, lease_until, remote_site, remote_at, reason, now))
            if old is None or old["state"] != state or old["invoice_key"] != invoice_key:
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"fleet claim on {invoice_key}: {state}" + (f" ({reason})" if reason else ""),
                            details={"fleet_claim": state, "invoice_key": invoice_key, "generation": generation,
                                     "remote_site": remote_site, "remote_at": remote_at})

    def fleet_lose(self, doc_id: int, *, invoice_key: str, remote_site: str, remote_at: str,
                   generation: int, now: str, actor: str, reason: str | None = None) -> bool:
        """Another site holds the key: in one transaction, the claim row
        `lost`, every open delivery row of the document `superseded` (an
        attempts line names the site; no loop sends it), and the document a
        `duplicate` of the remote claim (duplicate_of stays NULL: its
        original is at `remote_site`). False, changing nothing, when the
        document is no longer queued, delivering or failed (a person moved it)."""
        # No time in the stored text: the claim's time is remote_at (the claim
        # row, the event's details), which `show` gives in local time and
        # --json and `audit export` in UTC; a stamp here would be raw UTC.
        why = f"site {remote_site} claimed invoice {invoice_key} first; delivered from there, never from here"
        marks = ",".join("?" * len(_OPEN_ROW_STATES))
        with self.transaction() as c:
            doc = self.get(doc_id)
            if doc.state not in (State.QUEUED.value, State.DELIVERING.value, State.FAILED.value):
                return False
            self.set_fleet_claim(doc_id, invoice_key=invoice_key, state="lost", now=now, actor=actor,
                                 generation=generation, remote_site=remote_site, remote_at=remote_at,
                                 reason=reason)
            rows = c.execute(f"SELECT id FROM deliveries WHERE document_id = ? AND state IN ({marks})",
                             (doc_id, *_OPEN_ROW_STATES)).fetchall()
            for r in rows:
                c.execute("UPDATE deliveries SET state = 'superseded', lease_until = NULL, lease_token = NULL, "
                          "next_attempt_at = NULL, last_error = ?, updated_at = ? WHERE id = ?",
                          (f"fleet-duplicate: {why}", now, r["id"]))
                self._attempt(r["id"], now=now, outcome="fleet-duplicate", error=why, next_attempt_at=None)
            # Local duplicates of this copy follow it: their original is now remote too.
            for d in c.execute("SELECT id FROM documents WHERE duplicate_of = ? AND state = 'duplicate'",
                               (doc_id,)).fetchall():
                c.execute("UPDATE documents SET duplicate_of = NULL, updated_at = ? WHERE id = ?", (now, d["id"]))
                self.set_fleet_claim(d["id"], invoice_key=invoice_key, state="lost", now=now, actor=actor,
                                     generation=generation, remote_site=remote_site, remote_at=remote_at,
                                     reason=f"its copy, document {doc_id}, lost the key")
            self.transition(doc_id, State.DUPLICATE, now=now, actor=actor,
                            reason=f"duplicate of the copy at site {remote_site}, which claimed it first",
                            details={"fleet_duplicate": {"site": remote_site, "at": remote_at,
                                                         "invoice_key": invoice_key, "generation": generation}},
                            duplicate_of=None)
            return True

    def fleet_lost_to_recheck(self, *, checked_before: str, limit: int = 20) -> list[dict[str, Any]]:
        """`lost` claims last looked at before `checked_before`, oldest first,
        of documents still fleet duplicates under the claimed key. One a
        person decided since (rejected it, amended it to another key) is not
        listed: it is no duplicate to reopen, and reopening it failed (it was
        first in line at every pass, so no duplicate behind it was reopened)."""
        rows = self.conn.execute(
            "SELECT f.* FROM fleet_claims f JOIN documents d ON d.id = f.document_id "
            "WHERE f.state = 'lost' AND f.updated_at < ? AND d.state = 'duplicate' "
            "AND d.invoice_key IS f.invoice_key ORDER BY f.updated_at LIMIT ?", (checked_before, limit))
        return [dict(r) for r in rows]

    def touch_fleet_claim(self, doc_id: int, *, now: str) -> None:
        """Note that the claim was looked at `now` (no event: nothing changed)."""
        with self.transaction() as c:
            c.execute("UPDATE fleet_claims SET updated_at = ? WHERE document_id = ?", (now, doc_id))

    def note_fleet_claim(self, doc_id: int, *, reason: str | None, now: str, actor: str) -> None:
        """Set the claim row's reason (its state unchanged) and note it looked
        at `now`; an event saying so when the reason changes, in the same
        transaction."""
        with self.transaction() as c:
            row = self.fleet_claim(doc_id)
            c.execute("UPDATE fleet_claims SET reason = ?, updated_at = ? WHERE document_id = ?",
                      (reason, now, doc_id))
            if row is not None and row["reason"] != reason:
                said = reason or f"no longer: {row['reason']}"
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"fleet claim on {row['invoice_key']}: {row['state']} ({said})",
                            details={"fleet_claim": row["state"], "invoice_key": row["invoice_key"],
                                     "generation": row["generation"], "remote_site": row["remote_site"],
                                     "remote_at": row["remote_at"]})

    def fleet_reopen(self, doc_id: int, *, now: str, actor: str, reason: str) -> None:
        """The other site let the key go: the claim row `reopened`, the rows
        `fleet_lose` superseded queued again, and the document back to
        `extracted` for `judgement.judge` (call it in the same transaction),
        with events saying why."""
        with self.transaction() as c:
            row = self.fleet_claim(doc_id)
            self.set_fleet_claim(doc_id, invoice_key=row["invoice_key"], state="reopened", now=now, actor=actor,
                                 reason=reason)
            c.execute("UPDATE deliveries SET state = 'queued', next_attempt_at = ?, updated_at = ? "
                      "WHERE document_id = ? AND state = 'superseded' AND delivered_key IS NULL "
                      "AND last_error LIKE 'fleet-duplicate:%'", (now, now, doc_id))
            self.transition(doc_id, State.EXTRACTED, now=now, actor=actor, expect=State.DUPLICATE,
                            reason=f"re-judged: {reason}", details={"rejudged": reason})

    def fleet_claims_to_settle(self, limit: int = 200) -> list[dict[str, Any]]:
        """Claims whose store object lags the ledger, with the document's
        state, key and sha256: won ones of documents now delivered,
        confirmed, rejected, re-keyed or duplicate (to mark delivered or
        release), delivered ones of documents amended to another key (to
        release the old key), and unclaimed ones (to claim after the fact)."""
        rows = self.conn.execute(
            "SELECT f.*, d.state AS doc_state, d.invoice_key AS doc_key, d.sha256 FROM fleet_claims f "
            "JOIN documents d ON d.id = f.document_id WHERE f.state = 'unclaimed' "
            "OR (f.state = 'won' AND (d.state IN ('delivered', 'confirmed', 'rejected', 'duplicate', "
            "'superseded', 'not_invoice', 'quarantined', 'extracted') OR d.invoice_key IS NOT f.invoice_key)) "
            "OR (f.state = 'delivered' AND d.invoice_key IS NOT f.invoice_key) "
            "ORDER BY f.updated_at LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def fleet_claims_to_renew(self, *, lease_before: str, limit: int = 200) -> list[dict[str, Any]]:
        """This site's live claims (`won`, lease ending before `lease_before`)
        of documents still on their way (queued or delivering, under the
        claimed key), with the document's sha256, soonest lease first. A
        failed document's claim is not listed: a person must act on it, and
        meanwhile another site's copy may go."""
        rows = self.conn.execute(
            "SELECT f.*, d.sha256 FROM fleet_claims f JOIN documents d ON d.id = f.document_id "
            "WHERE f.state = 'won' AND f.lease_until IS NOT NULL AND f.lease_until < ? "
            "AND d.state IN ('queued', 'delivering') AND d.invoice_key = f.invoice_key "
            "ORDER BY f.lease_until LIMIT ?", (lease_before, limit))
        return [dict(r) for r in rows]

    def fleet_summary(self) -> dict[str, Any]:
        """Claim rows by state, how many of the held ones are held because
        their key's claim is invalid (`invalid`), how many keys this site
        knew claimed have no claim left in the store (`vanished`), the
        latest reason a delivery is held (None when none is), the
        warning of the last status publish that met another agent under this
        site's name (`same_name`, None when the last one did not), the
        store's epoch this site trusts (`epoch`, how it is named) and its
        doubt that the store still holds the claims (`doubt`, why, and
        `doubt_since`; None while it trusts it)."""
        counts = {s: 0 for s in FLEET_CLAIM_STATES}
        for state, n in self.conn.execute("SELECT state, count(*) FROM fleet_claims GROUP BY state"):
            counts[state] = n
        held = self.conn.execute("SELECT reason, updated_at FROM fleet_claims WHERE state = 'held' "
                                 "ORDER BY updated_at DESC LIMIT 1").fetchone()
        since = self.conn.execute("SELECT min(updated_at) FROM fleet_claims WHERE state = 'held'").fetchone()[0]
        invalid = self.conn.execute("SELECT count(*) FROM fleet_claims WHERE state = 'held' "
                                    "AND reason LIKE 'fleet claim invalid%'").fetchone()[0]
        vanished = self.conn.execute("SELECT count(*) FROM fleet_claims WHERE substr(reason, 1, ?) = ?",
                                     (len(VANISHED), VANISHED)).fetchone()[0]
        doubt, epoch = self.fleet_doubt(), self.fleet_epoch()
        return {"claims": counts, "invalid": invalid, "held_reason": held["reason"] if held else None,
                "held_since": since, "vanished": vanished, "same_name": self.get_value(_SAME_NAME) or None,
                "epoch": epoch["named"] if epoch else None,
                "doubt": doubt["why"] if doubt else None, "doubt_since": doubt["since"] if doubt else None}

    def note_same_name(self, warning: str | None, *, now: str) -> None:
        """Remember what this site's last status publish found: `warning`
        when another live agent publishes under this site's name (what
        `fleet status` shows as SAME NAME), None when none does. Read back
        in `fleet_summary`, so `status --check` says it at this site too."""
        if (self.get_value(_SAME_NAME) or None) != (warning or None):
            self.set_value(_SAME_NAME, warning or "", now=now)

    def fleet_epoch(self) -> dict[str, Any] | None:
        """The fleet store's epoch this site joined ({generation, epoch,
        etag, named, kind, made_by, joined_at}), or None before its first."""
        value = self.get_value(_EPOCH)
        return json.loads(value) if value else None

    def fleet_doubt(self) -> dict[str, Any] | None:
        """This site's doubt that the store still holds the fleet's claims
        ({since, why}), or None while it trusts it."""
        value = self.get_value(_DOUBT)
        return json.loads(value) if value else None

    def join_fleet_epoch(self, epoch: dict[str, Any], *, now: str, actor: str, reason: str) -> bool:
        """Record `epoch` ({generation, epoch, etag, named, kind, made_by})
        as the one this site trusts, its doubt (if any) ended, in one
        transaction; a document-less event saying so (with `reason`) when
        the epoch or the doubt changes. An ETag alone changing (a copy of
        the same object) writes no event. True when the epoch changed."""
        with self.transaction():
            old, doubt = self.fleet_epoch(), self.fleet_doubt()
            changed = old is None or (old["generation"], old["epoch"]) != (epoch["generation"], epoch["epoch"])
            kept = {**epoch, "joined_at": now if changed else old.get("joined_at") or now}
            if changed or old != kept:
                self.set_value(_EPOCH, json.dumps(kept, ensure_ascii=False, sort_keys=True), now=now)
            if doubt:
                self.set_value(_DOUBT, "", now=now)
            if changed or doubt:
                self._event(None, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"fleet store epoch {epoch['named']} trusted: {reason}"
                                   + (f" (the doubt ends: {doubt['why']})" if doubt else ""),
                            details={"fleet_epoch": {k: epoch.get(k) for k in ("generation", "epoch", "kind",
                                                                                 "made_by")},
                                     "doubt_ended": doubt})
            return changed

    def doubt_fleet_store(self, why: str, *, now: str, actor: str) -> bool:
        """Record that this site doubts the store still holds the fleet's
        claims, and `why` (kept since its first `now`); a document-less
        event when the doubt begins or its reason changes, in the same
        transaction. True when it began now."""
        with self.transaction():
            old = self.fleet_doubt()
            if old is not None and old["why"] == why:
                return False
            since = old["since"] if old else now
            self.set_value(_DOUBT, json.dumps({"since": since, "why": why}, ensure_ascii=False), now=now)
            self._event(None, now=now, actor=actor, from_state=None, to_state=None,
                        reason=f"fleet store in doubt: {why}; every new claim here looks every destination up "
                               "before any put until an operator runs `fapiao-agent fleet acknowledge`",
                        details={"fleet_doubt": why, "since": since})
            return old is None

    def fleet_marks(self, *, since: str, oldest: bool = True) -> list[dict[str, Any]]:
        """The newest (and with `oldest` the oldest) claim generation this
        site recorded in the store since `since` (won, delivered or released
        rows): {invoice_key, generation, updated_at}; none before its first.
        One indexed look per state (fleet_claims_state)."""
        found = []
        for order in ("DESC", "ASC") if oldest else ("DESC",):
            rows = [r for state in _MARK_STATES for r in self.conn.execute(
                "SELECT invoice_key, generation, updated_at FROM fleet_claims WHERE state = ? "
                f"AND updated_at >= ? AND generation IS NOT NULL ORDER BY updated_at {order} LIMIT 1",
                (state, since))]
            if rows:
                pick = (max if order == "DESC" else min)(rows, key=lambda r: r["updated_at"])
                found.append({"invoice_key": pick["invoice_key"], "generation": pick["generation"],
                              "updated_at": pick["updated_at"]})
        return [m for i, m in enumerate(found) if m not in found[:i]]

    def find_by_number(self, number: str) -> list[dict[str, Any]]:
        """Documents whose invoice number (or key) is `number`: id, state, key, received_at."""
        rows = self.conn.execute(
            "SELECT id, state, invoice_key, invoice_number, received_at, updated_at FROM documents "
            "WHERE invoice_number = ? OR invoice_key = ? ORDER BY id", (number, number))
        return [dict(r) for r in rows]
