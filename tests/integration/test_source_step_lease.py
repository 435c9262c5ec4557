"""A file another program holds (a kernel write lease, as Samba's oplocks
take) when its after-action comes: the move waits for the next try
instead of leaving the file in the watched folder for good. (A delete
opens nothing, so a lease does not stop it.)"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
from pathlib import Path

from agent.beneath import Identity
from service.source_steps import act, processed_folder

F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)


def test_a_leased_source_waits_and_is_moved_once_let_go(tmp_path: Path):
    after = "move"
    root = tmp_path / "scan"
    root.mkdir()
    path = root / "a.xml"
    path.write_bytes(b"<invoice/>")
    identity = Identity.of(os.lstat(path))
    target = processed_folder(path, dt.date(2026, 12, 5))
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
        state, outcome = act(root, path, identity, after, target)
        assert (state, path.exists()) == ("wait", True), outcome
        assert outcome == f"could not {after} it just now: Resource temporarily unavailable"
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
    finally:
        os.close(fd)
        signal.signal(signal.SIGIO, previous)
    state, outcome = act(root, path, identity, after, target)
    assert state == "done" and not path.exists(), outcome
    assert (target / "a.xml").read_bytes() == b"<invoice/>"
