"""Intake with a real ledger, vault and files: which source files are
skipped, captured again, moved or deleted, and when."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.support.intake_site import NOW, TODAY, IntakeSite

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


class Site(IntakeSite):
    def __init__(self, tmp: Path, after: str):
        self.tmp = tmp
        self.scan = tmp / "scan"
        self.scan.mkdir()
        self.watch = WatchConfig(path=self.scan, kind="scanner", after=after)
        self.open()

    def open(self) -> None:
        """A fresh process: new ledger connection and intake, nothing kept in memory."""
        self.ledger = Ledger(self.tmp / "state" / "ledger.sqlite3")
        self.vault = Vault(self.tmp / "state" / "vault")
        self.intake = Intake(self.ledger, self.vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")

    def finish(self, watch: WatchConfig | None = None) -> int:
        return self.intake.finish_sources([watch or self.watch], now=NOW, today=TODAY)


@pytest.fixture
def invoice(samples_dir) -> bytes:
    return (samples_dir / SAMPLE).read_bytes()


@pytest.fixture
def make_site(tmp_path):
    sites = []

    def make(after: str) -> Site:
        sites.append(Site(tmp_path, after))
        return sites[-1]

    yield make
    for s in sites:
        s.ledger.close()


def other_invoice(invoice: bytes, n: int) -> bytes:
    return invoice.replace(b"00008006", f"{n:08d}".encode())


# -- item 9: the seen-file cache knows the inode and ctime ------------------------

def test_a_kept_file_rewritten_in_place_with_same_size_and_mtime_is_captured_again(make_site, invoice):
    """cp -p over a kept file: same inode, size and mtime; new content and ctime."""
    site = make_site("keep")
    path = site.scan / "inv.xml"
    path.write_bytes(other_invoice(invoice, 1))
    first = site.take(path).documents
    assert site.take(path).skipped  # unchanged: skipped, not hashed again
    st = path.stat()
    time.sleep(0.05)  # a later change, past the filesystem's coarse clock tick
    with open(path, "r+b") as f:  # what cp -p does to an existing file
        f.write(other_invoice(invoice, 2))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    second = site.take(path).documents
    assert len(first) == 1 and len(second) == 1 and second != first


def test_a_kept_file_replaced_by_rename_with_same_size_and_mtime_is_captured_again(make_site, invoice):
    """rsync -t: a temp file with the old mtime renamed over the kept one."""
    site = make_site("keep")
    path = site.scan / "inv.xml"
    path.write_bytes(other_invoice(invoice, 1))
    first = site.take(path).documents
    st = path.stat()
    tmp = site.scan / ".inv.xml.XXXX"
    tmp.write_bytes(other_invoice(invoice, 2))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    tmp.rename(path)
    second = site.take(path).documents
    assert len(first) == 1 and len(second) == 1 and second != first
    assert site.take(path).skipped


# -- item 8: move/delete only what was read, unchanged -------------------------------

@pytest.mark.parametrize("after", ["move", "delete"])
def test_an_unreadable_capture_is_never_moved_or_deleted_and_a_fuller_one_supersedes_it(make_site, invoice, after):
    site = make_site(after)
    path = site.scan / "inv.xml"
    path.write_bytes(invoice[: len(invoice) // 2])  # a slow writer's first half
    (partial,) = site.take(path).documents
    site.read_all()
    assert site.ledger.get(partial).state == "quarantined"
    site.finish()
    assert path.read_bytes() == invoice[: len(invoice) // 2], "the half file stays for its writer"
    assert site.ledger.source_actions(partial)[0]["state"] == "kept"
    assert site.take(path).skipped  # a rescan does not capture the unchanged half again
    with open(path, "ab") as f:  # the writer comes back
        f.write(invoice[len(invoice) // 2:])
    (whole,) = site.take(path).documents
    doc = site.ledger.get(partial)
    assert doc.state == "superseded"
    (ended,) = [e for e in site.ledger.events(partial) if e.to_state == "superseded"]
    assert ended.reason.startswith(f"superseded by document {whole}: ") and ended.from_state == "quarantined"
    site.read_all()
    assert site.ledger.get(whole).state in ("valid", "quarantined")  # read (its problems are validation ones)
    assert site.ledger.get(whole).fields
    site.finish()
    assert not path.exists()
    if after == "move":
        assert (site.scan / "processed" / TODAY.isoformat() / "inv.xml").read_bytes() == invoice


def test_an_earlier_capture_that_is_not_the_beginning_stays_in_quarantine(make_site, invoice):
    """Another file reusing the name (a scanner writing scan.pdf each time) is
    not a partial: the earlier unreadable capture is not hidden."""
    site = make_site("keep")
    path = site.scan / "scan.xml"
    path.write_bytes(b"<broken")
    (first,) = site.take(path).documents
    site.read_all()
    path.write_bytes(invoice)
    site.take(path)
    assert site.ledger.get(first).state == "quarantined"


@pytest.mark.parametrize("after", ["move", "delete"])
def test_a_file_changed_in_place_after_capture_is_not_acted_on(make_site, invoice, after):
    site = make_site(after)
    path = site.scan / "inv.xml"
    path.write_bytes(invoice)
    (doc,) = site.take(path).documents
    st = path.stat()
    time.sleep(0.05)  # a later change, past the filesystem's coarse clock tick
    with open(path, "r+b") as f:  # same inode, size and mtime; other bytes
        f.write(other_invoice(invoice, 7))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    site.read_all()
    site.finish()
    assert path.read_bytes() == other_invoice(invoice, 7)
    (action,) = site.ledger.source_actions(doc)
    assert action["state"] == "kept" and "ctime" in action["outcome"]
    assert len(site.take(path).documents) == 1  # and the new bytes are captured


@pytest.mark.parametrize("after", ["move", "delete"])
def test_a_waiting_action_survives_a_restart(make_site, invoice, after):
    site = make_site(after)
    path = site.scan / "inv.xml"
    path.write_bytes(invoice)
    (doc,) = site.take(path).documents
    site.ledger.close()  # the process dies before the document is read
    site.open()
    assert site.take(path).skipped  # the start-up scan does not capture it twice
    site.read_all()
    assert site.finish() == 1
    assert not path.exists()
    assert [a["state"] for a in site.ledger.source_actions(doc)] == ["done"]
    assert len(site.ledger.sources(doc)) == 1


def test_a_second_copy_of_a_read_document_goes_at_once(make_site, invoice):
    site = make_site("delete")
    a, b = site.scan / "a.xml", site.scan / "b.xml"
    a.write_bytes(invoice)
    (doc,) = site.take(a).documents
    site.read_all()
    site.finish()
    b.write_bytes(invoice)
    assert site.take(b).documents == []  # same bytes: another source of the same document
    assert not a.exists() and not b.exists()
    assert [x["state"] for x in site.ledger.source_actions(doc)] == ["done", "done"]


def test_a_second_copy_of_an_unreadable_document_stays(make_site):
    site = make_site("delete")
    a, b = site.scan / "a.xml", site.scan / "b.xml"
    a.write_bytes(b"<not an invoice")
    (doc,) = site.take(a).documents
    site.read_all()
    site.finish()
    b.write_bytes(b"<not an invoice")
    site.take(b)
    assert a.exists() and b.exists()
    assert [x["state"] for x in site.ledger.source_actions(doc)] == ["kept", "kept"]


def test_the_operator_switching_to_keep_stops_waiting_deletes(make_site, invoice):
    site = make_site("delete")
    path = site.scan / "inv.xml"
    path.write_bytes(invoice)
    (doc,) = site.take(path).documents
    site.read_all()
    site.finish(WatchConfig(path=site.scan, kind="scanner", after="keep"))
    assert path.exists()
    (action,) = site.ledger.source_actions(doc)
    assert action["state"] == "kept" and "no longer watched" in action["outcome"]
    assert site.take(path).skipped


def test_a_file_put_by_hand_into_processed_is_named_by_the_audit(make_site, invoice):
    """processed/DATE is the agent's: the watcher never looks there. A file
    someone files there by hand was never taken, and `audit ledger` says
    so; the agent's own moves and copies of bytes it holds are not named."""
    import datetime as dt

    from agent.audit import audit_ledger
    from agent.audit_rules import AuditSettings

    site = make_site("move")
    (site.scan / "inv.xml").write_bytes(invoice)
    assert site.take(site.scan / "inv.xml").documents
    site.read_all()
    assert site.finish() == 1
    dated = site.scan / "processed" / TODAY.isoformat()
    assert (dated / "inv.xml").read_bytes() == invoice           # moved by the agent
    (dated / "copy-of-inv.xml").write_bytes(invoice)              # bytes the ledger holds
    (dated / "sub").mkdir()
    (dated / "sub" / "filed-by-hand.xml").write_bytes(other_invoice(invoice, 41_000_001))
    (dated / "filed-by-hand.pdf").write_bytes(b"%PDF-1.7 never taken")
    (site.scan / "processed" / "2026-11-30").mkdir()               # another day's folder
    (site.scan / "processed" / "2026-11-30" / "old.xml").write_bytes(other_invoice(invoice, 41_000_002))
    settings = AuditSettings(watched=((str(site.scan), "move"),), unhandled_after_s=0)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    found = list(audit_ledger(site.ledger, site.vault.root, settings, now=later))
    named = sorted(v.message.split(":")[0] for v in found)
    assert named == sorted(str(p) for p in (dated / "sub" / "filed-by-hand.xml", dated / "filed-by-hand.pdf",
                                             site.scan / "processed" / "2026-11-30" / "old.xml")), found
    assert all(v.code == "file-not-taken" and "put there by hand" in v.message for v in found), found
    # The agent's own file touched (no longer its move by mtime): its bytes
    # are the ledger's, so it is not named.
    moved = dated / "inv.xml"
    os.utime(moved, ns=(moved.stat().st_atime_ns, moved.stat().st_mtime_ns + 10**9))
    assert str(moved) not in {v.message.split(":")[0] for v in
                              audit_ledger(site.ledger, site.vault.root, settings, now=later)}
    # Its inode now holding other bytes of the same size (as an inode freed
    # and given to a new file is): no longer the agent's, and named.
    other = other_invoice(invoice, 41_000_003)
    assert len(other) == len(invoice)
    with open(moved, "r+b") as f:
        f.write(other)
    found = list(audit_ledger(site.ledger, site.vault.root, settings, now=later))
    assert str(moved) in {v.message.split(":")[0] for v in found}, found
    # Moved into the watched folder, it is taken like any other file.
    os.rename(dated / "sub" / "filed-by-hand.xml", site.scan / "filed-by-hand.xml")
    assert len(site.take(site.scan / "filed-by-hand.xml").documents) == 1
