"""A writer killed mid-copy never leaves a partial object under its final name."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agent.vault import Vault

WRITER = textwrap.dedent("""
    import sys, time
    from agent.vault import Vault

    class Slow:
        # 64 chunks of 64 KiB with a pause each: the kill lands mid-copy.
        def __init__(self):
            self.left = 64
        def read(self, n):
            if not self.left:
                return b""
            self.left -= 1
            time.sleep(0.01)
            if self.left == 60:
                print("writing", flush=True)
            return bytes([self.left]) * 65536

    Vault(sys.argv[1]).put_stream(Slow())
    print("done", flush=True)
""")


def test_killed_writer_leaves_no_partial_object(tmp_path):
    root = tmp_path / "vault"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
    vault = Vault(root)
    assert list(vault.iter_objects()) == []
    # A temp file may remain; it is never visible as an object.
    assert all(p.name.startswith("in-") for p in vault.tmp.iterdir())


def test_completed_write_is_whole_and_named_by_its_hash(tmp_path):
    vault = Vault(tmp_path / "vault")
    stored = vault.put_bytes(b"%PDF-1.7 hello")
    again = vault.put_bytes(b"%PDF-1.7 hello")
    assert stored.created and not again.created and stored.sha256 == again.sha256
    assert vault.verify(stored.sha256)
    assert list(vault.iter_objects()) == [stored.sha256]
    assert oct(vault.path(stored.sha256).stat().st_mode & 0o777) == "0o640"
    assert list(vault.tmp.iterdir()) == []


def test_a_source_that_fails_to_read_is_its_own_error_not_the_vaults(tmp_path):
    # An I/O error reading the file copied in (its disk, a share gone) is
    # that file's: SourceUnavailable, which sets back only it; a failure
    # writing the vault stays a transient CaptureError, which pauses intake.
    import errno

    from agent.errors import CaptureError, SourceUnavailable

    class FailingSource(io.BytesIO):
        def read(self, *args):
            raise OSError(errno.EIO, "Input/output error")

    vault = Vault(tmp_path / "vault")
    for copy in (vault.stage_stream, vault.put_stream):
        with pytest.raises(SourceUnavailable, match="read failed: Input/output error"):
            copy(FailingSource())
    assert list((tmp_path / "vault" / "tmp").iterdir()) == []   # nothing left behind
    # The vault's own folder gone (its disk unmounted under it): the vault's error.
    os.rmdir(tmp_path / "vault" / "tmp")
    with pytest.raises(CaptureError, match="vault write failed") as failed:
        vault.put_stream(io.BytesIO(b"bytes"))
    assert failed.value.transient and not isinstance(failed.value, SourceUnavailable)
