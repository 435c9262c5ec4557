"""No silent path for whole folders or names: files in subfolders named
processed/, tmp/ or cur/, dotfiles and *.tmp names are all either taken or
refused with a reason. Only the agent's own processed/DATE folders of an
after = "move" watch are skipped, and our own Maildir new/ -> cur/ move is
not taken twice."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from service.watch import FolderWatcher

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
TODAY = dt.date(2026, 12, 3)
NOW = "2026-12-03T10:00:00.000000Z"
GRACE = 600.0


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def mail(invoice: bytes, n: int) -> bytes:
    body = base64.encodebytes(invoice)
    return (b"From: a@example.cn\r\nTo: ap@example.cn\r\nSubject: inv\r\nMessage-ID: <m%d@example.cn>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n"
            b"Content-Type: text/xml\r\nContent-Disposition: attachment; filename=\"inv.xml\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" % n + body + b"\r\n--B--\r\n")


def plant(root: Path, rels: list[str], data: bytes) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


NORMAL = ["processed/inv1.pdf", "tmp/inv2.pdf", "cur/inv5.pdf", "processed/2026-01-01/inv6.pdf"]
TEMPORARY = [".inv3.pdf", "inv4.pdf.tmp", "dl.crdownload", "~$x.pdf"]


def test_every_file_of_a_keep_watch_is_noticed_and_handed_out(tmp_path):
    plant(tmp_path, NORMAL + TEMPORARY, b"%PDF" * 100)
    clock = Clock()
    w = FolderWatcher([WatchConfig(path=tmp_path, after="keep", settle_seconds=2)], wake=lambda: None,
                      clock=clock, temp_grace_s=GRACE)
    assert w.scan() == len(NORMAL + TEMPORARY)
    assert w.ready() == []
    clock.t = 3
    got = {p.relative_to(tmp_path).as_posix() for p in w.ready()}
    assert got == set(NORMAL), "temporary-looking names wait their grace period"
    for p in got:
        w.done(tmp_path / p)
    for rel in TEMPORARY:
        w.note(tmp_path / rel, closed=True)  # closing a temporary file does not make it complete
    clock.t = GRACE / 2
    assert w.ready() == []
    clock.t = GRACE + 1
    assert {p.relative_to(tmp_path).as_posix() for p in w.ready()} == set(TEMPORARY)


def test_only_the_agents_own_dated_processed_folders_of_a_move_watch_are_skipped(tmp_path):
    plant(tmp_path, NORMAL, b"%PDF" * 100)
    clock = Clock()
    watch = WatchConfig(path=tmp_path, after="move", settle_seconds=2)
    w = FolderWatcher([watch], wake=lambda: None, clock=clock)
    w.scan()
    w.note(tmp_path / "processed/2026-01-01/inv6.pdf")  # its own move's event
    assert w.ready() == []
    clock.t = 3
    assert {p.relative_to(tmp_path).as_posix() for p in w.ready()} == set(NORMAL) - {
        "processed/2026-01-01/inv6.pdf"}


def test_maildir_tmp_waits_while_fresh(tmp_path):
    plant(tmp_path, ["tmp/1.M1.host", "new/2.M2.host"], b"From: a\r\n\r\nx" * 10)
    clock = Clock()
    w = FolderWatcher([WatchConfig(path=tmp_path, kind="email", settle_seconds=2)], wake=lambda: None,
                      clock=clock, temp_grace_s=GRACE)
    w.scan()
    assert w.ready() == []
    clock.t = 3
    assert [p.name for p in w.ready()] == ["2.M2.host"]
    w.done(tmp_path / "new/2.M2.host")
    clock.t = GRACE + 1
    assert [p.name for p in w.ready()] == ["1.M1.host"], "an abandoned delivery is taken in the end"


@pytest.fixture
def intake(tmp_path):
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite3")
    return Intake(ledger, Vault(tmp_path / "state" / "vault"), max_bytes=10 << 20, mail_limits=MailLimits(),
                  actor="t")


THUMBS_DB = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)   # an OLE compound file, as Windows writes it


@pytest.mark.parametrize("name,why", [(".inv3.pdf", "temporary-looking name left unchanged for 10 minutes"),
                                      ("inv4.pdf.tmp", "rename it to have it taken"),
                                      ("Thumbs.db", "operating-system file")])
def test_a_temporary_or_system_name_is_refused_with_its_reason(tmp_path, intake, samples_dir, name, why):
    scan = tmp_path / "scan"
    plant(scan, [name], THUMBS_DB if name == "Thumbs.db" else (samples_dir / SAMPLE).read_bytes())
    watch = WatchConfig(path=scan, after="move")
    result = intake.take(scan / name, watch, now=NOW, today=TODAY)
    assert result.documents == []
    (refusal,) = intake.ledger.refusals()
    assert why in refusal["reason"]
    assert (scan / name).exists(), "left where it is"


@pytest.mark.parametrize("name", ["Thumbs.db", "desktop.ini", ".DS_Store"])
def test_an_invoice_under_an_operating_system_files_name_is_taken(tmp_path, intake, samples_dir, name):
    # A name is no proof of what a file holds: its first bytes decide.
    scan = tmp_path / "scan"
    plant(scan, [name], (samples_dir / SAMPLE).read_bytes())
    result = intake.take(scan / name, WatchConfig(path=scan, after="keep"), now=NOW, today=TODAY)
    assert len(result.documents) == 1 and intake.ledger.refusals() == []


def test_maildir_cur_is_taken_and_our_own_move_is_not_taken_twice(tmp_path, intake, samples_dir):
    box = tmp_path / "mail"
    invoice = (samples_dir / SAMPLE).read_bytes()
    plant(box, ["cur/1701.M1.host:2,S"], mail(invoice, 1))
    plant(box, ["new/1702.M2.host"], mail(invoice.replace(b"00008006", b"00009999"), 2))
    watch = WatchConfig(path=box, kind="email", after="keep")

    assert intake.take(box / "cur/1701.M1.host:2,S", watch, now=NOW, today=TODAY).documents
    assert intake.take(box / "new/1702.M2.host", watch, now=NOW, today=TODAY).documents
    (moved,) = (box / "cur").glob("1702.M2.host*")
    again = intake.take(moved, watch, now=NOW, today=TODAY)
    assert again.skipped and again.documents == []
    assert intake.ledger.mail_seen(__import__("hashlib").sha256(moved.read_bytes()).hexdigest()) == 1
    # An IMAP client re-flags a message by renaming it: the same bytes, not taken again.
    flagged = moved.with_name(moved.name.split(":")[0] + ":2,RS")
    moved.rename(flagged)
    assert intake.take(flagged, watch, now=NOW, today=TODAY).documents == []
    assert len(intake.ledger.list_documents(limit=0)) == 2


def test_a_maildir_message_that_cannot_go_to_cur_is_kept_not_taken_at_every_rescan(tmp_path, intake, samples_dir):
    # cur/ is not a folder, so new/ -> cur/ fails: the message stays in
    # new/, remembered as kept, with the reason on the document it brought.
    # Not remembered, each rescan took it again: one more arrival each time.
    box = tmp_path / "mail"
    plant(box, ["new/1703.M3.host"], mail((samples_dir / SAMPLE).read_bytes(), 3))
    (box / "cur").write_bytes(b"not a folder")
    watch = WatchConfig(path=box, kind="email", after="keep")
    (doc_id,) = intake.take(box / "new/1703.M3.host", watch, now=NOW, today=TODAY).documents
    for _ in range(3):
        again = intake.take(box / "new/1703.M3.host", watch, now=NOW, today=TODAY)
        assert again.skipped and again.documents == []
    assert (box / "new/1703.M3.host").exists()
    assert intake.ledger.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 1
    kept = [e.reason for e in intake.ledger.events(doc_id) if (e.reason or "").startswith("source kept: ")]
    assert len(kept) == 1 and "'cur'" in kept[0], kept
    assert [r[0] for r in intake.ledger.conn.execute("SELECT outcome FROM seen_files")] == ["kept"]


def test_a_maildir_without_cur_keeps_its_message_and_says_the_folder_is_missing(tmp_path, intake, samples_dir):
    # The move to a missing cur/ fails with "no such file": the file was
    # there all along. Read as "gone", it was forgotten and taken again at
    # every rescan, one more arrival each time.
    box = tmp_path / "mail"
    plant(box, ["new/1704.M4.host"], mail((samples_dir / SAMPLE).read_bytes(), 4))
    watch = WatchConfig(path=box, kind="email", after="keep")
    (doc_id,) = intake.take(box / "new/1704.M4.host", watch, now=NOW, today=TODAY).documents
    again = intake.take(box / "new/1704.M4.host", watch, now=NOW, today=TODAY)
    assert again.skipped and again.documents == [] and (box / "new/1704.M4.host").exists()
    kept = [e.reason for e in intake.ledger.events(doc_id) if (e.reason or "").startswith("source kept: ")]
    assert kept == [f"source kept: could not move it: the folder {box / 'cur'} is missing"], kept
    assert intake.ledger.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 1


def test_the_audit_reports_a_file_never_taken_but_not_one_still_settling(tmp_path, intake, samples_dir):
    from agent.audit import audit_ledger
    from agent.audit_rules import AuditSettings

    scan = tmp_path / "scan"
    plant(scan, ["taken.xml", "dept/never.xml", "processed/2026-01-01/moved.xml"], (samples_dir / SAMPLE).read_bytes())
    watch = WatchConfig(path=scan, after="move")
    intake.take(scan / "taken.xml", watch, now=NOW, today=TODAY)
    settings = AuditSettings(watched=((str(scan), "move"),), unhandled_after_s=1200, hash_objects=False)

    def not_taken(now):
        return [v.message for v in audit_ledger(intake.ledger, intake.vault.root, settings, now=now)
                if v.code == "file-not-taken"]

    real_now = dt.datetime.now(dt.timezone.utc)
    assert not_taken(real_now) == [], "a file that just landed may still be settling"
    later = real_now + dt.timedelta(seconds=1300)
    assert not_taken(later) == [f"{scan / 'dept/never.xml'}: in a watched folder, never taken nor refused"]
    intake.take(scan / "dept/never.xml", watch, now=NOW, today=TODAY)
    assert not_taken(later) == []
