"""An e-mail file taken while its writer was still at it (paused longer than
the settle time, the file open): its move or delete waits until what it
brought was read, so a cut-short attachment keeps the file in place, and a
message that brought nothing yet stays; either is taken again, whole, once
the writer is done, and only then moved or deleted. Moved or deleted at
once, the rest of the message was lost (after = delete) or never read
(after = move: its bytes only in processed/)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.support.intake_site import NOW, TODAY, IntakeSite

PDF = "mxvc__invoice/发票2.pdf"


class Site(IntakeSite):
    def __init__(self, tmp: Path, after: str):
        (tmp / "mail").mkdir()
        self.watch = WatchConfig(path=tmp / "mail", kind="email", after=after)
        self.ledger, self.vault = Ledger(tmp / "ledger.sqlite3"), Vault(tmp / "vault")
        self.intake = Intake(self.ledger, self.vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")

    def step(self, path: Path):
        """Take `path`, read what was captured, and carry out what is owed to sources."""
        got = self.take(path)
        self.read_all()
        self.intake.finish_sources([self.watch], now=NOW, today=TODAY)
        return got

    def kept_reasons(self) -> list[str]:
        return [e.reason for doc_id in self.ledger.ids_in_state("quarantined")
                for e in self.ledger.events(doc_id) if (e.reason or "").startswith("source kept: ")]


def single_part(pdf: bytes) -> bytes:
    """A message whose whole body is the PDF, base64: no close delimiter
    tells that it was cut short."""
    return (b"From: a@example.cn\r\nTo: ap@example.cn\r\nSubject: inv\r\nMessage-ID: <s1@example.cn>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: application/pdf; name=\"inv.pdf\"\r\n"
            b"Content-Disposition: attachment; filename=\"inv.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(pdf))


def multipart(pdf: bytes) -> bytes:
    body = base64.encodebytes(pdf)
    return (b"From: a@example.cn\r\nTo: ap@example.cn\r\nSubject: inv\r\nMessage-ID: <m1@example.cn>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n"
            b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"inv.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"\r\n--B--\r\n")


@pytest.mark.parametrize("after", ["delete", "move"])
def test_a_message_cut_short_in_its_attachment_is_kept_until_whole(tmp_path, samples_dir, after):
    site = Site(tmp_path, after)
    whole = single_part((samples_dir / PDF).read_bytes())
    path = site.watch.path / "inv.eml"
    path.write_bytes(whole[: len(whole) // 2])  # the writer pauses here, the file open
    site.step(path)
    assert path.exists(), "the source of an unreadable capture was moved or deleted"
    assert any("could not be read" in r for r in site.kept_reasons()), site.kept_reasons()
    with open(path, "ab") as f:  # the writer comes back with the rest
        f.write(whole[len(whole) // 2:])
    got = site.step(path)
    assert len(got.documents) == 1
    doc = site.ledger.get(got.documents[0])
    assert doc.invoice_number == "78837327", doc  # read whole this time (expected.json's number)
    assert not path.exists()  # whole and read: now moved or deleted
    if after == "move":
        (moved,) = (site.watch.path / "processed").rglob("inv.eml")
        assert moved.read_bytes() == whole
    assert site.vault.exists(__import__("hashlib").sha256(whole).hexdigest())


@pytest.mark.parametrize("after", ["delete", "move"])
def test_a_message_cut_before_its_attachments_stays_until_whole(tmp_path, samples_dir, after):
    # Cut in its headers, it reads as a message with no attachment: nothing
    # taken, so it stays (refused "no-attachment"), and is taken whole later.
    site = Site(tmp_path, after)
    whole = multipart((samples_dir / PDF).read_bytes())
    path = site.watch.path / "inv.eml"
    cut = whole.index(b"MIME-Version")
    path.write_bytes(whole[:cut])
    assert not site.step(path).documents
    assert path.exists()
    assert [r["reason"].split(":")[0] for r in site.ledger.refusals()] == ["no-attachment"]
    with open(path, "ab") as f:
        f.write(whole[cut:])
    assert len(site.step(path).documents) == 1
    assert not path.exists()
    assert os.listdir(site.watch.path) == (["processed"] if after == "move" else [])


def test_one_message_in_two_folders_of_one_group_is_deleted_from_both(tmp_path, samples_dir):
    # The same e-mail CC'd to two mailboxes, both after = delete, taken in
    # one group, its invoice known already: both files owe a delete to one
    # document. Keyed by document, the second folder's step replaced the
    # first's, which was then closed as "no longer watched": kept forever.
    site = Site(tmp_path, "delete")
    other = WatchConfig(path=tmp_path / "mail2", kind="email", after="delete")
    other.path.mkdir()
    message = multipart((samples_dir / PDF).read_bytes())
    (site.watch.path / "known.eml").write_bytes(message.replace(b"<m1@", b"<m0@"))
    site.step(site.watch.path / "known.eml")   # the invoice is known from an earlier e-mail
    paths = [site.watch.path / "cc.eml", other.path / "cc.eml"]
    for path in paths:
        path.write_bytes(message)
    with site.intake.group(now=NOW, today=TODAY):
        for path, watch in zip(paths, (site.watch, other)):
            site.intake.take(path, watch, now=NOW, today=TODAY)
    assert [p.exists() for p in paths] == [False, False]
    reasons = [e.reason for e in site.ledger.events(1) if (e.reason or "").startswith("source")]
    assert len(reasons) == 3 and not any("no longer watched" in r for r in reasons), reasons


def stamp(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("after", ["delete", "move"])
def test_an_mbox_gaining_its_next_message_after_a_pause_loses_nothing(tmp_path, samples_dir, after):
    # The first message is whole and read at once; its writer, the file
    # open, comes back with the next one after a pause longer than the
    # settle time. Deleted as soon as read, the file took the next message
    # with it. The step now waits until the file was quiet for the folder's
    # quiet_seconds, sees the change, keeps it; the file is taken again,
    # whole, and only then, quiet, moved or deleted.
    import time

    site = Site(tmp_path, after)
    site.watch = WatchConfig(path=site.watch.path, kind="email", after=after, quiet_seconds=30)
    pdfs = [(samples_dir / p).read_bytes() for p in (PDF, "mxvc__invoice/发票.pdf")]
    first = b"From a@example.cn Thu Dec  3 10:00:00 2026\n" + multipart(pdfs[0]) + b"\n"
    second = b"From a@example.cn Thu Dec  3 10:00:09 2026\n" + multipart(pdfs[1]).replace(b"<m1@", b"<m2@")
    path = site.watch.path / "inbox.mbox"
    path.write_bytes(first)
    assert len(site.take(path).documents) == 1
    site.read_all()
    now = time.time()
    assert site.intake.finish_sources([site.watch], now=stamp(now + 5), today=TODAY) == 0
    assert path.exists()  # read, but not quiet yet: waits
    with open(path, "ab") as f:
        f.write(second)
    assert site.intake.finish_sources([site.watch], now=stamp(now + 40), today=TODAY) == 1
    assert path.exists()  # changed since its capture: kept, taken again
    again = site.take(path)
    assert len(again.documents) == 1, again  # the second message's invoice; the first is known already
    site.read_all()
    assert site.intake.finish_sources([site.watch], now=stamp(time.time() + 5), today=TODAY) == 0
    assert site.intake.finish_sources([site.watch], now=stamp(time.time() + 40), today=TODAY) == 1
    assert not path.exists()
    numbers = [r[0] for r in site.ledger.conn.execute("SELECT invoice_number FROM documents ORDER BY id")]
    assert len(set(numbers)) == 2 and all(numbers), numbers


def test_a_file_whose_writer_set_its_mtime_ahead_is_not_held_for_it(tmp_path, samples_dir):
    # A scanner whose clock runs a year ahead sets its files' mtimes there:
    # the quiet time counts from the ctime, which the server sets.
    import time

    site = Site(tmp_path, "delete")
    site.watch = WatchConfig(path=site.watch.path, kind="email", after="delete", quiet_seconds=30)
    path = site.watch.path / "inv.eml"
    path.write_bytes(multipart((samples_dir / PDF).read_bytes()))
    ahead = time.time() + 365 * 86400
    os.utime(path, (ahead, ahead))
    assert len(site.take(path).documents) == 1
    site.read_all()
    assert site.intake.finish_sources([site.watch], now=stamp(time.time() + 40), today=TODAY) == 1
    assert not path.exists()
