"""What a destination holds of an invoice's values (a mixin of the one Ledger class).

A destination keeps one copy per invoice key and never changes it: a put of
a key it holds is answered "already there" (HTTP 200/409, S3 412, a folder's
existing file; docs/destination-api.md). So when an amend changes fields but
not the key of an invoice a destination already holds, that destination
keeps the earlier values, and sending it again changes nothing there. The
ledger says so instead of letting a second "delivered" read as if the new
values had arrived: each delivered row's receipt keeps `held_values_sha256`,
the digest of the values its destination holds (`finish_delivery`), and an
amend names the destinations holding earlier values (`note_values_held`).
"""

from __future__ import annotations

import json
from typing import Any

# Rows whose destination holds the invoice (or may: a put in flight), as
# long as their delivered_key (if any) is the invoice's key.
_HOLDING = ("delivering", "delivered", "confirmed")


# What a fields dict (Invoice.to_dict) says of how its values were read, not
# what they are: the sources, problems, conflicts and the readings an
# operator's value replaced.
_HOW_READ = frozenset({"sources", "problems", "conflicts", "replaced"})


def values_digest(fields: dict) -> str:
    """SHA-256 of an invoice's values as a parcel carries them (its fields
    dict without how they were read): equal digests, equal values."""
    import hashlib   # here: every command loads the ledger, the read ones need no hashing (issue 17)

    values = {k: v for k, v in fields.items() if k not in _HOW_READ}
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
                          .encode("utf-8")).hexdigest()


def _held_digest(receipt: str | None) -> str | None:
    try:
        held = (json.loads(receipt) or {}).get("held_values_sha256") if receipt else None
    except (ValueError, AttributeError):
        return None
    return held if isinstance(held, str) else None


class HeldValuesMixin:
    """Part of `Ledger`: the values a destination holds, kept and told."""

    def _held_values(self, row, receipt: dict, sent: str) -> tuple[dict, str | None]:
        # For finish_delivery: the receipt with the digest of what the
        # destination holds, and a note when that is not what was sent.
        # `row`: the delivery before this attempt is recorded.
        key = receipt.get("key") or self.conn.execute(
            "SELECT invoice_key FROM documents WHERE id = ?", (row["document_id"],)).fetchone()[0]
        if row["delivered_key"] is None or row["delivered_key"] != key:
            return {**receipt, "held_values_sha256": sent}, None
        held = _held_digest(row["receipt"])
        if held is None:   # delivered before digests were kept: what it holds is not known
            return receipt, None
        receipt = {**receipt, "held_values_sha256": held}
        if held == sent:
            return receipt, None
        return receipt, (f"{row['destination']} already held invoice {key} and answered so: it keeps the values "
                         "it was first delivered with, not the ones amended since; correct them there by hand "
                         "(the amend's event names them)")

    def note_values_held(self, doc_id: int, *, key: str | None, values: dict, changes: dict[str, dict],
                         now: str, actor: str, application: str | None = None) -> list[dict]:
        """After an amend changed `changes` ({field: {old, new}}) of the
        document but not its invoice key `key`: the rows whose destination
        holds (or may hold: a put in flight) the invoice under `key` with
        other values than `values` (the fields now; unknown counts as
        other), each named in one event on the document, in the caller's
        transaction (details: values_held [{destination, key, state}],
        fields). Nothing changes on the rows: sending again under the same
        key would change nothing there. Returns those rows."""
        if not key or not changes:
            return []
        now_digest = values_digest(values)
        held = ",".join("?" * len(_HOLDING))
        rows = [dict(r) for r in self.conn.execute(
            "SELECT destination, state, receipt FROM deliveries WHERE document_id = ? "
            "AND state NOT IN ('missing', 'superseded', 'dropped') "
            f"AND (state IN ({held}) OR delivered_key IS NOT NULL) AND COALESCE(delivered_key, ?) = ? ORDER BY id",
            (doc_id, *_HOLDING, key, key))]
        rows = [{"destination": r["destination"], "key": key, "state": r["state"]} for r in rows
                if _held_digest(r["receipt"]) != now_digest]
        if rows:
            fields = ", ".join(changes)
            change = "; ".join(f"{n} {_shown(c.get('old'))} -> {_shown(c.get('new'))}" for n, c in changes.items())
            where = ", ".join(r["destination"] for r in rows)
            details: dict[str, Any] = {"values_held": rows, "fields": list(changes)}
            if application:
                details["application"] = application
            self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None, details=details,
                        reason=(f"{application + ': ' if application else ''}changed after delivery "
                                f"({change}): {where} hold{'s' if len(rows) == 1 else ''} invoice {key} as "
                                "delivered there, without this change; sending it again under the same key "
                                f"changes nothing there: correct {fields} there by hand"))
        return rows


def _shown(value: Any) -> str:
    return "(none)" if value is None else str(value)
