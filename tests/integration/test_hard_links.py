"""A hard link in a watched folder to a file outside it (a config holding a
token, a payroll sheet): refused at capture with its reason and left in
place; its shared inode is never read, chmod'ed, moved or deleted."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from agent import beneath
from agent.beneath import Changed, Identity
from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
TODAY = dt.date(2026, 12, 3)
NOW = "2026-12-03T10:00:00.000000Z"


@pytest.mark.parametrize("kind", ["scanner", "email"])
@pytest.mark.parametrize("after", ["keep", "move", "delete"])
def test_a_hard_link_to_an_outside_file_is_refused(tmp_path, samples_dir, kind, after):
    scan = tmp_path / "scan"
    scan.mkdir()
    outside = tmp_path / "c.toml"
    outside.write_bytes((samples_dir / SAMPLE).read_bytes() + b"<!-- token HARDLINKSECRET -->")
    os.chmod(outside, 0o604)
    os.link(outside, scan / "linked.xml")
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite3")
    vault = Vault(tmp_path / "state" / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    watch = WatchConfig(path=scan, kind=kind, after=after)

    result = intake.take(scan / "linked.xml", watch, now=NOW, today=TODAY)
    intake.finish_sources([watch], now=NOW, today=TODAY)

    assert result.documents == []
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in set(vault.iter_objects())
    (refusal,) = ledger.refusals()
    assert "hard link" in refusal["reason"] and "not taken" in refusal["reason"]
    assert (scan / "linked.xml").exists() and os.stat(outside).st_nlink == 2
    assert os.stat(outside).st_mode & 0o777 == 0o604
    again = intake.take(scan / "linked.xml", watch, now=NOW, today=TODAY)
    assert again.skipped and len(ledger.refusals()) == 1, "refused once, not at every rescan"


def test_a_file_linked_after_capture_is_neither_moved_nor_chmodded(tmp_path):
    """A name added after capture changes ctime, and is checked for as such:
    the shared inode keeps its mode and both names."""
    root = tmp_path / "scan"
    root.mkdir()
    f = root / "inv.pdf"
    f.write_bytes(b"%PDF-1.7 invoice")
    os.chmod(f, 0o604)
    ident = Identity.of(os.lstat(f))
    os.link(f, tmp_path / "outside.pdf")
    ident = Identity(ident.dev, ident.ino, ident.size, ident.mtime_ns, os.lstat(f).st_ctime_ns)  # ctime forged
    with pytest.raises(Changed, match="hard link"):
        beneath.move_if_same(root, f, ident, root / "processed", dir_mode=0o750, file_mode=0o640)
    with pytest.raises(Changed, match="hard link"):
        beneath.unlink_if_same(root, f, ident)
    assert f.exists() and os.stat(tmp_path / "outside.pdf").st_mode & 0o777 == 0o604
