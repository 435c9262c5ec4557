"""With after = "keep" the files stay in the watched folder, where a
touch, chmod or chown (a backup tool, an admin's chown -R) changes their
times: that is no arrival. A changed file, the same bytes under another name,
or a file deleted and dropped again (another inode) still is."""

from __future__ import annotations

import datetime as dt
import os

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake

TODAY = dt.date(2026, 12, 3)


def at(minute: int) -> str:
    return f"2026-12-03T10:{minute:02d}:00.000000Z"


def test_a_touched_kept_file_records_no_second_arrival(tmp_path, samples_dir):
    scan = tmp_path / "scan"
    scan.mkdir()
    ledger, vault = Ledger(tmp_path / "ledger.sqlite3"), Vault(tmp_path / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    watch = WatchConfig(path=scan, after="keep")
    f = scan / "inv.xml"
    f.write_bytes((samples_dir / "renoyuan__easyofd" / "original_invoice.xml").read_bytes())
    (doc,) = intake.take(f, watch, now=at(0), today=TODAY).documents
    events = len(ledger.events(doc))
    os.utime(f, (1_700_000_000, 1_700_000_000))   # touch
    os.chmod(f, 0o640)                             # chmod: ctime
    st = f.stat()
    assert not ledger.seen_file(str(f), st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns)
    assert intake.take(f, watch, now=at(1), today=TODAY).documents == []
    assert len(ledger.sources(doc)) == 1 and len(ledger.events(doc)) == events
    st = f.stat()
    assert ledger.seen_file(str(f), st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns)  # anew
    # Deleted and dropped again (a second claim of the same download): a new
    # inode, so an arrival, recorded.
    data = f.read_bytes()
    # The old inode held by a second name outside the watched folder, so the
    # new file cannot be given its number (a freed one can be, at once).
    held = tmp_path / "held"
    os.link(f, held)
    f.unlink()
    f.write_bytes(data)
    assert f.stat().st_ino != held.stat().st_ino
    assert intake.take(f, watch, now=at(1), today=TODAY).documents == []
    assert len(ledger.sources(doc)) == 2
    held.unlink()
    # The same bytes under another name are another arrival, recorded.
    g = scan / "copy.xml"
    g.write_bytes(f.read_bytes())
    assert intake.take(g, watch, now=at(2), today=TODAY).documents == []
    assert len(ledger.sources(doc)) == 3
    # Changed content at the same path is a new document.
    f.write_bytes(f.read_bytes().replace(b"00008006", b"00008007"))
    assert len(intake.take(f, watch, now=at(3), today=TODAY).documents) == 1
    ledger.close()
