"""A file nested deeper than PATH_MAX (4,096 bytes of path) in a watched
folder is taken like any other: it cannot be reached by its full name, and
the folder walk used to skip it without a word (outside review B, 5)."""

from __future__ import annotations

import os

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound


def test_a_file_deeper_than_path_max_is_captured_and_its_source_deleted(tmp_path, samples_dir):
    d = DaemonUnderTest(tmp_path, scan_extra='after = "delete"')
    invoice = (samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes()
    fd = os.open(d.root / "scan", os.O_RDONLY)
    try:
        for i in range(25):  # 25 folders of 203 bytes: ~5,100 bytes of path, made by folder fd
            name = f"d{i:02d}" + "x" * 200
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("deep.xml", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, invoice)
        os.close(out)
        assert not os.path.exists(d.root / "scan" / "/".join(f"d{i:02d}" + "x" * 200 for i in range(25)))
        d.start()  # the start-up scan finds it
        (doc,) = d.wait_documents(1, timeout=60, settled=True)
        assert doc.original_name == "deep.xml" and doc.sha256
        d.wait_for_line("outcome=deleted", timeout=30)
        assert "deep.xml" not in os.listdir(fd)
        assert not any("level=error" in line for line in d.lines), "\n".join(d.lines[-20:])
        assert d.stop() == 0
    finally:
        os.close(fd)
        d.stop()
    assert_ledger_sound(d.config)
