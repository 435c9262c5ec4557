"""A file another program holds locked (a kernel write lease, as Samba's
kernel oplocks take): opening it fails with EAGAIN for now. That is this
file's trouble, not the vault's: the others are taken and delivered
meanwhile, intake is not paused, nothing blames the vault's disk, `status`
names the file and why; once the lease is gone it is taken too."""

from __future__ import annotations

import fcntl
import json
import os
import signal

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.e2e.test_extract_limits import drop, good_invoice
from tests.e2e.test_status_check import cli
from tests.support.audit import assert_ledger_sound

F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)


def held(d: DaemonUnderTest) -> dict:
    r = cli(d, "status", "--json")
    return json.loads(json.loads(r.stdout)["daemon"]["details"] or "{}").get("files_held") or {}


def test_a_locked_file_waits_alone_and_is_taken_once_released(tmp_path, samples_dir):
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d = DaemonUnderTest(tmp_path, extra=OUT_AND_NAS)
    locked = tmp_path / "scan" / "locked.xml"
    locked.write_bytes(good_invoice(samples_dir, 7401))
    # The lease's holder is told of each open by SIGIO; the kernel breaks
    # the lease itself only after lease-break-time (45 s here).
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    lease_fd = os.open(locked, os.O_RDONLY)
    fcntl.fcntl(lease_fd, F_SETLEASE, fcntl.F_WRLCK)
    d.start()
    try:
        for i in range(3):
            drop(tmp_path / "scan", f"free{i}.xml", good_invoice(samples_dir, 7410 + i))
        d.wait_until(lambda: len(list((tmp_path / "out").rglob("*.xml"))) >= 3, 30,
                     "the other files delivered while one is locked")
        why = d.wait_until(lambda: held(d).get(str(locked)), 20, "status naming the locked file")
        assert why.startswith("cannot be read just now: cannot open: Resource temporarily unavailable; "
                              "tried again in "), why
        status = cli(d, "status").stdout
        assert f"held:              {locked}: cannot be read just now" in status, status
        assert "intake paused" not in status and not any("intake paused" in line for line in d.lines)
        assert not any("vault" in line and "cannot take" in line for line in d.lines)
        assert [doc.original_name for doc in d.documents() if doc.original_name == "locked.xml"] == []

        fcntl.fcntl(lease_fd, F_SETLEASE, fcntl.F_UNLCK)
        os.close(lease_fd)
        lease_fd = -1
        # Tried again once its hold (30 s) is over: taken now.
        d.wait_until(lambda: any(doc.original_name == "locked.xml" and doc.state not in ("captured",)
                                 for doc in d.documents()), 45, "the released file taken at its next try")
        d.wait_until(lambda: len(list((tmp_path / "out").rglob("*.xml"))) >= 4, 30, "all four delivered")
        d.wait_until(lambda: held(d) == {}, 15, "the next heartbeat clear of it")
    finally:
        if lease_fd >= 0:
            os.close(lease_fd)
        signal.signal(signal.SIGIO, previous)
        assert d.stop() == 0
    assert_ledger_sound(d.config)
