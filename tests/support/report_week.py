"""A realistic week in a real ledger, for the weekly report's tests.

The week is Monday 2026-11-23 to Sunday 2026-11-29 in Asia/Shanghai; the
report is made at Monday 2026-11-30 08:00 there (NOW). Each document goes
through the ledger's own transitions (capture, extraction, validation,
delivery claims and receipts, reconciliation lookups) at the moments of its
life, so every figure the report prints is counted from real rows. EXPECTED
holds the figures the timeline below adds up to, worked out by hand.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path

from agent.config import load_config
from agent.ledger import Ledger, utc
from agent.model import Invoice, Problem, State
from agent.pipeline import invoice_columns

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI)
SINCE = dt.datetime(2026, 11, 23, 0, 0, tzinfo=SHANGHAI)
UNTIL = dt.datetime(2026, 11, 30, 0, 0, tzinfo=SHANGHAI)
TODAY = dt.date(2026, 11, 30)
SCRIPT_SELLER = "<script>alert('x')</script>恶意公司"
FORMULA_NAME = '=cmd|"/c calc"!A1.pdf'
HOUR = 3600.0

# Figures of the week below, by hand (see each document's comment).
EXPECTED = {
    "days": {  # Shanghai day -> outcome -> count
        "2026-11-23": {"delivered": 2, "quarantined": 1, "total": 3},
        "2026-11-24": {"delivered": 2, "ended": 1, "total": 3},
        "2026-11-25": {"delivered": 1, "in_progress": 1, "quarantined": 1, "total": 3},
        "2026-11-26": {"delivered": 1, "failed": 1, "total": 2},
        "2026-11-27": {"duplicate": 1, "total": 1},
        "2026-11-28": {"quarantined": 1, "total": 1},
        "2026-11-29": {"in_progress": 1, "refused": 2, "total": 3},
    },
    "totals": {"delivered": 6, "in_progress": 2, "quarantined": 3, "failed": 1, "duplicate": 1, "ended": 1,
               "refused": 2, "total": 16},
    "repeat_arrivals": 1,
    # confirmed: 1 h, 2 h, 3 h, 10 h and the re-sent one (arrived 11-24 12:00, confirmed 11-28 12:00: 96 h)
    "confirmed": {"count": 5, "p50_s": 3 * HOUR, "p95_s": 96 * HOUR},
    # delivered: 0.5 h x 4, 1 h, the re-sent one's last delivery (11-24 12:00 -> 11-27 09:05: 69 h 5 min)
    "delivered": {"count": 6, "p50_s": 0.5 * HOUR, "p95_s": 69 * HOUR + 300},
    "quarantine_total": 4,
    "quarantine_by_code": {"tax-id-check-digit": 2, "amount-sum": 1, "expired": 1, "unreadable": 1},
    "duplicates": 1,
    "missing": 2, "resent": 1,
    "expiry": 2,            # the queued one dated 340 days ago (20 left), the quarantined one 370 (-10)
}


def at(day: int, hour: float) -> str:
    """The ledger timestamp of `hour` o'clock on the week's `day` (0: Monday 11-23), Shanghai time."""
    return utc(SINCE + dt.timedelta(days=day, hours=hour))


class Week:
    """Builds the week into `ledger`; `ids` names the documents."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.n = 0
        self.ids: dict[str, int] = {}

    def doc(self, label: str, when: str, *, seller: str = "北京某某科技有限公司", issued: dt.date | None = None,
            name: str | None = None, read: bool = True) -> int:
        self.n += 1
        doc_id, _ = self.ledger.add_document(sha256=f"{self.n:064x}", size=2048, media_type="pdf",
                                             source_kind="scanner", source="/srv/scans",
                                             original_name=name or f"发票{self.n}.pdf", original_path=None,
                                             now=when, actor="test")
        if read:
            inv = Invoice()
            inv.offer("kind", "32", "xml")
            inv.offer("number", f"2644200000000000{self.n:04d}", "xml")
            inv.offer("date", issued or TODAY - dt.timedelta(days=20), "xml")
            inv.offer("total", Decimal("113.00"), "xml")
            inv.offer("seller_name", seller, "xml")
            self.ledger.transition(doc_id, State.EXTRACTED, now=when, actor="test", **invoice_columns(inv))
        self.ids[label] = doc_id
        return doc_id

    def quarantine(self, doc_id: int, when: str, *codes: str) -> None:
        problems = [Problem(c, "error", f"{c} failed").to_dict() for c in codes]
        self.ledger.transition(doc_id, State.QUARANTINED, now=when, actor="test", problems=problems)

    def queue(self, doc_id: int, when: str) -> int:
        self.ledger.transition(doc_id, State.VALID, now=when, actor="test", problems=[])
        self.ledger.queue_deliveries(doc_id, ["erp"], now=when, actor="test")
        return self.ledger.deliveries_of(doc_id)[0]["id"]

    def send(self, doc_id: int, when: str, *, state: str = "delivered") -> int:
        lease = utc(dt.datetime.fromisoformat(when.replace("Z", "+00:00")) + dt.timedelta(minutes=5))
        rows = self.ledger.claim_deliveries("erp", now=when, lease_until=lease, token="tk", actor="test")
        assert [r["document_id"] for r in rows] == [doc_id], rows
        row = rows[0]["delivery_id"]
        ok = self.ledger.finish_delivery(row, "tk", state=state, now=when, actor="test",
                                         outcome="delivered" if state == "delivered" else "permanent",
                                         error=None if state == "delivered" else "HTTP 500 three days running",
                                         receipt={"key": str(doc_id)} if state == "delivered" else None)
        assert ok
        return row

    def lookup(self, row: int, when: str, *, found: bool, requeue: bool = True) -> None:
        self.ledger.record_lookup(row, found={"key": "k"} if found else None, now=when, actor="test",
                                  requeue_missing=requeue, expect_state="delivered")


def build_week(ledger: Ledger) -> Week:
    """The week of EXPECTED, into `ledger` (every moment explicit)."""
    w = Week(ledger)
    # Open since before the window: counted as open quarantine, not as an arrival.
    old = w.doc("old-unreadable", utc(dt.datetime(2026, 11, 10, 9, tzinfo=SHANGHAI)), read=False)
    ledger.transition(old, State.QUARANTINED, now=utc(dt.datetime(2026, 11, 10, 9, 1, tzinfo=SHANGHAI)),
                      actor="test", problems=[Problem("unreadable", "error", "no invoice found").to_dict()])
    # Monday: two confirmed (1 h and 2 h), one quarantined with a hostile seller and file name.
    for label, hour, confirm_h in (("c1", 10, 1), ("c2", 11, 2)):
        d = w.doc(label, at(0, hour))
        w.queue(d, at(0, hour))
        row = w.send(d, at(0, hour + 0.5))
        w.lookup(row, at(0, hour + confirm_h), found=True)
    q1 = w.doc("q-script", at(0, 9), seller=SCRIPT_SELLER, name=FORMULA_NAME)
    w.quarantine(q1, at(0, 9), "tax-id-check-digit")
    # Tuesday: confirmed in 3 h; one missing at reconciliation and re-sent; one not an invoice.
    d = w.doc("c3", at(1, 9))
    w.queue(d, at(1, 9))
    w.lookup(w.send(d, at(1, 9.5)), at(1, 12), found=True)
    d = w.doc("resent", at(1, 12))
    w.queue(d, at(1, 12))
    row = w.send(d, at(1, 12 + 1 / 6))
    w.lookup(row, at(4, 9), found=False, requeue=True)            # missing, queued again
    w.send(d, at(4, 9 + 1 / 12))                                   # re-sent 09:05
    w.lookup(row, at(5, 12), found=True)                           # confirmed 96 h after arrival
    trip = w.doc("not-invoice", at(1, 15), read=False)
    ledger.transition(trip, State.NOT_INVOICE, now=at(1, 15), actor="test")
    # Wednesday: confirmed in 10 h; missing and left missing; quarantined with two codes.
    d = w.doc("c4", at(2, 14))
    w.queue(d, at(2, 14))
    w.lookup(w.send(d, at(2, 14.5)), at(2, 24), found=True)
    d = w.doc("missing", at(2, 9))
    w.queue(d, at(2, 9))
    w.lookup(w.send(d, at(2, 9.5)), at(4, 10), found=False, requeue=False)
    q2 = w.doc("q-two", at(2, 13))
    w.quarantine(q2, at(2, 13), "amount-sum", "tax-id-check-digit")
    # Thursday: delivered in 1 h, not confirmed yet; one failed; c1's file arrives again.
    d = w.doc("delivered", at(3, 10))
    w.queue(d, at(3, 10))
    w.send(d, at(3, 11))
    d = w.doc("failed", at(3, 11))
    w.queue(d, at(3, 11))
    w.send(d, at(3, 12), state="failed")
    ledger.add_document(sha256=f"{w.ids['c1']:064x}", size=2048, media_type="pdf", source_kind="email",
                        source="/srv/mail", original_name="again.pdf", original_path=None, now=at(3, 16),
                        actor="test")
    # Friday: a duplicate of c1. Saturday: quarantined as expired (issued 370 days ago).
    dup = w.doc("dup", at(4, 11))
    ledger.transition(dup, State.DUPLICATE, now=at(4, 11), actor="test", duplicate_of=w.ids["c1"])
    q3 = w.doc("q-expired", at(5, 10), issued=TODAY - dt.timedelta(days=370))
    w.quarantine(q3, at(5, 10), "expired")
    # Sunday: two files refused; one queued, issued 340 days ago (20 days left).
    ledger.record_refusal(source="/srv/scans", name="empty.pdf", reason="empty file", now=at(6, 8))
    ledger.record_refusal(source="/srv/scans", name="=1+2.txt", reason="no invoice format", now=at(6, 9))
    d = w.doc("queued-old", at(6, 15), issued=TODAY - dt.timedelta(days=340))
    w.queue(d, at(6, 15))
    # Monday 00:00 on the dot: the next week's (the window is half-open).
    w.doc("next-week", utc(UNTIL), read=False)
    # Backups: nas took everything on Sunday; offsite has not answered since Saturday.
    ledger.enqueue_backups("nas", now=at(6, 20))
    shas = [r[0] for r in ledger.conn.execute("SELECT sha256 FROM backups WHERE target = 'nas'")]
    ledger.backups_done("nas", [(s, 2048) for s in shas], now=at(6, 21), day="2026-11-29")
    ledger.backup_unreachable("offsite", "connection refused", now=at(5, 3))
    return w


DRILLS = {"nas": {"at": at(6, 22), "ok": True, "detail": "20 objects and the ledger snapshot restored, "
                                                       "hashes equal, integrity_check ok"}}


def week_config(tmp_path: Path):
    """A config with destination erp and backup targets nas (file) and offsite (file)."""
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent("""\
        [agent]
        state_dir = "state"
        [report]
        time_zone = "Asia/Shanghai"
        [[destination]]
        name = "erp"
        url = "folder://outbox"
        [[backup]]
        name = "nas"
        url = "file://nas"
        [[backup]]
        name = "offsite"
        url = "file://offsite"
        """))
    path.chmod(0o600)
    return load_config(path)
