"""Watched subfolders whose names are not UTF-8, through a real daemon.

A Chinese Windows share without charset conversion passes a department
folder 财务部 through as its GBK bytes (b2 c6 ce f1 b2 bf). A file in such
a folder used to be stored in the vault and then never recorded: its
label (the folder's name, surrogate escapes) was refused by SQLite at
every rescan, with only a rate-limited log line. Now the folder is a
label people read (GBK as Chinese, other bytes as \\xNN), the file is
captured, delivered, moved into processed/DATE beside it (the real bytes
of the folder, not their escaped spelling) or deleted; and a file whose
rows cannot be written for any reason is held and named in `status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.e2e.test_daemon_mail import message, pdf
from tests.support.audit import assert_ledger_sound

GOOD_SAMPLE = "renoyuan__easyofd/original_invoice.xml"
DELIVER = '[delivery]\nreconcile_interval_s = 0\n\n[[destination]]\nname = "out"\nurl = "folder://out"\n'
GBK = "财务部".encode("gbk")                      # b2 c6 ce f1 b2 bf
LATIN1 = "März".encode("latin-1")                # M e4 rz: not GBK read as Chinese
NESTED = GBK + b"/" + "发票".encode("gbk")        # a GBK folder in a GBK folder
GBK_NAME = "一月.xml".encode("gbk")               # a GBK file name in the GBK folder


def invoice(samples_dir: Path, n: int) -> bytes:
    return (samples_dir / GOOD_SAMPLE).read_bytes().replace(b"00008006", b"%08d" % n)


def drop(folder: bytes, name: bytes, data: bytes) -> bytes:
    """Write `data` as folder/name (bytes paths), renamed in whole."""
    os.makedirs(folder, exist_ok=True)
    tmp = folder + b"/." + name + b".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, folder + b"/" + name)
    return folder + b"/" + name


def cli(d: DaemonUnderTest, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), *args],
                          capture_output=True, timeout=120, cwd=d.root)


def delivering(root: Path, after: str) -> DaemonUnderTest:
    (root / "out").mkdir()
    return DaemonUnderTest(root, scan_extra=f'after = "{after}"', extra=DELIVER)


def planted(d: DaemonUnderTest, samples_dir: Path) -> dict[bytes, tuple[bytes, str, bytes]]:
    """Four invoices in non-UTF-8 subfolders: their path -> (folder, label, bytes)."""
    scan = os.fsencode(d.root / "scan")
    files = {}
    for i, (sub, name, label) in enumerate([(GBK, b"a.xml", "财务部"), (LATIN1, b"b.xml", "M\\xe4rz"),
                                            (NESTED, b"c.xml", "财务部"), (GBK, GBK_NAME, "财务部")]):
        data = invoice(samples_dir, 41_000_000 + i)
        files[drop(scan + b"/" + sub, name, data)] = (scan + b"/" + sub, label, data)
    return files


def settled_delivered(d: DaemonUnderTest, n: int) -> list:
    return d.wait_until(lambda: (docs := d.documents()) and len(docs) == n
                        and all(doc.state == "delivered" for doc in docs) and docs, 60, f"{n} documents delivered")


def labels(d: DaemonUnderTest) -> dict[str, str]:
    with d.ledger() as led:
        return {doc.original_name: (led.sources(doc.id)[0].details or {}).get("label")
                for doc in led.list_documents(limit=0, sort="id")}


def test_files_in_non_utf8_subfolders_are_delivered_and_moved_beside_them(tmp_path, samples_dir):
    d = delivering(tmp_path, "move")
    d.start()
    try:
        files = planted(d, samples_dir)
        settled_delivered(d, 4)

        def moved() -> bool:
            return all(not os.path.exists(p) for p in files)
        d.wait_until(moved, 20, "every source moved")
        for path, (folder, _, data) in files.items():
            # processed/DATE beside the file, in its real folder (the GBK
            # bytes), not in a folder spelled "\xb2\xc6..."
            days = os.listdir(folder + b"/processed")
            assert len(days) == 1, days
            with open(folder + b"/processed/" + days[0] + b"/" + os.path.basename(path), "rb") as f:
                assert f.read() == data
        assert sorted(os.listdir(os.fsencode(tmp_path / "scan"))) == sorted([GBK, LATIN1])
        assert labels(d) == {"a.xml": "财务部", "b.xml": "M\\xe4rz", "c.xml": "财务部", "一月.xml": "财务部"}
        listed = [json.loads(line) for line in cli(d, "list", "--json").stdout.decode("utf-8").splitlines()]
        assert sorted(doc["label"] for doc in listed) == ["M\\xe4rz", "财务部", "财务部", "财务部"]
        # show: the folder as people read it, the exact spelling beside it
        c = next(doc for doc in listed if doc["original_name"] == "c.xml")
        out = cli(d, "show", str(c["id"])).stdout.decode("utf-8")   # strict: no raw byte printed
        assert "/scan/财务部/发票/c.xml" in out and "(exactly " in out and "\\xb2\\xc6" in out, out
        assert "moved to " in out and "/财务部/发票/processed/" in out, out
        b = next(doc for doc in listed if doc["original_name"] == "b.xml")
        assert "/scan/M\\xe4rz/b.xml" in cli(d, "show", str(b["id"])).stdout.decode("utf-8")
        assert not [line for line in d.lines if "could not record" in line or "Traceback" in line]
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_files_in_non_utf8_subfolders_are_delivered_and_deleted(tmp_path, samples_dir):
    d = delivering(tmp_path, "delete")
    d.start()
    try:
        files = planted(d, samples_dir)
        settled_delivered(d, 4)
        d.wait_until(lambda: all(not os.path.exists(p) for p in files), 20, "every source deleted")
        for folder, _, _ in files.values():
            assert not os.path.exists(folder + b"/processed")
        assert len(os.listdir(tmp_path / "out")) >= 4
        with d.ledger() as led:
            outcomes = [a["outcome"] for doc in led.list_documents(limit=0) for a in led.source_actions(doc.id)]
        assert outcomes == ["deleted"] * 4, outcomes
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_an_email_drop_folder_with_a_gbk_subfolder(tmp_path):
    d = DaemonUnderTest(tmp_path)
    d.start()
    try:
        mail = os.fsencode(tmp_path / "mail")
        drop(mail + b"/" + GBK, b"m.eml", message("g1@example.cn", [('filename="g1.pdf"', pdf("g1"))]))
        box = mail + b"/" + GBK + b"/box"   # a Maildir in the GBK folder: new/ -> cur/
        os.makedirs(box + b"/cur")
        drop(box + b"/new", b"1700000000.M1.host", message("g2@example.cn", [('filename="g2.pdf"', pdf("g2"))]))
        d.wait_documents(2)
        d.wait_until(lambda: os.listdir(box + b"/cur") == [b"1700000000.M1.host:2,"], 20, "the message in cur/")
        assert labels(d) == {"g1.pdf": "财务部", "g2.pdf": "财务部"}
        assert not [line for line in d.lines if "could not record" in line or "Traceback" in line]
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_file_whose_rows_cannot_be_written_is_held_and_named_in_status(tmp_path, samples_dir):
    # Any failure to record a file (here a trigger refusing its arrival) is
    # no longer only a rate-limited log line while the file is taken and
    # forgotten at every rescan: the file is held, `status` names it with
    # the reason (and after agent.health.WAITING_ALERT_S the intake-stuck
    # alert fires); once the cause is gone it is taken.
    d = DaemonUnderTest(tmp_path)
    with d.ledger() as led:
        led.conn.execute("CREATE TRIGGER refuse_poison BEFORE INSERT ON sources "
                         "WHEN NEW.original_name = 'poison.xml' "
                         "BEGIN SELECT RAISE(ABORT, 'injected: this arrival cannot be recorded'); END")
    d.start()
    try:
        poison = drop(os.fsencode(tmp_path / "scan") + b"/" + GBK, b"poison.xml", invoice(samples_dir, 42_000_001))
        drop(os.fsencode(tmp_path / "scan"), b"good.xml", invoice(samples_dir, 42_000_002))

        def held() -> dict:
            with d.ledger() as led:
                beat = led.heartbeat() or {}
            return json.loads(beat.get("details") or "{}").get("files_held") or {}
        named = d.wait_until(held, 30, "the unrecorded file held in the heartbeat")
        (path, why), = named.items()
        assert path.endswith("/poison.xml") and "could not be recorded" in why and "injected" in why, named
        out = cli(d, "status").stdout.decode("utf-8")
        assert "held:" in out and "\\xb2\\xc6\\xce\\xf1\\xb2\\xbf/poison.xml" in out and "could not be recorded" in out, out
        assert [doc.original_name for doc in d.documents()] == ["good.xml"]
        with d.ledger() as led:
            led.conn.execute("DROP TRIGGER refuse_poison")
        with open(poison, "rb") as f:
            data = f.read()
        with open(poison, "wb") as f:   # written again (the same bytes): settles anew, taken at once
            f.write(data)
        d.wait_until(lambda: len(d.documents()) == 2, 30, "the file taken once it can be recorded")
        d.wait_until(lambda: not held(), 30, "no file held any more")
        assert labels(d)["poison.xml"] == "财务部"
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_an_agent_whose_own_folder_is_not_utf8_starts_and_takes_files(tmp_path, samples_dir):
    # The config (and so the state folder and the watched folders, relative
    # to it) in a GBK-named folder: the watched roots' pins are written at
    # start, and their path used to stop the daemon with a traceback there.
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + GBK))
    d = DaemonUnderTest(root)
    d.start()
    try:
        drop(os.fsencode(root / "scan"), b"a.xml", invoice(samples_dir, 43_000_001))
        drop(os.fsencode(root / "scan") + b"/" + LATIN1, b"b.xml", invoice(samples_dir, 43_000_002))
        d.wait_documents(2, settled=True)
        assert labels(d) == {"a.xml": None, "b.xml": "M\\xe4rz"}
        assert d.proc.poll() is None
        assert not [line for line in d.lines if "could not record" in line or "Traceback" in line]
    finally:
        d.stop()
    assert_ledger_sound(d.config)
