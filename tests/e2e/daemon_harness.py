"""A real `fapiao-agent run` subprocess on temp folders, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.ledger import Ledger

CONFIG = """
[agent]
state_dir = "state"
stop_timeout_s = 10
rescan_interval_s = 300

[validation]
max_age_days = 100000

[[watch]]
path = "scan"
kind = "scanner"
settle_seconds = {settle}
quiet_seconds = {quiet}
{scan_extra}

[[watch]]
path = "mail"
kind = "email"
settle_seconds = {settle}
quiet_seconds = {quiet}

{extra}
"""


# A folder destination "out" (tmp_path/out) and a backup target "nas"
# (tmp_path/nas) probed every second: a test that leaves tmp_path/nas out has
# its backup disk "not mounted".
OUT_AND_NAS = """
[backup_policy]
probe_interval_s = 1
retry_max_s = 1

[[destination]]
name = "out"
url = "folder://out"

[[backup]]
name = "nas"
url = "file://nas"
"""



def last_snapshot_at(ledger_path: Path, target: str) -> str | None:
    """When backup target `target` last stored a ledger snapshot (None: never)."""
    with Ledger(ledger_path) as ledger:
        return ledger.backup_target(target)["last_snapshot_at"]

class DaemonUnderTest:
    """Writes a config under `root`, starts/stops the daemon, reads its ledger."""

    def __init__(self, root: Path, *, settle: float = 0.5, scan_extra: str = "", extra: str = "",
                 quiet: float = 0.0):
        self.root = root
        for d in ("scan", "mail", "state"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.config = root / "agent.toml"
        self.write_config(settle=settle, scan_extra=scan_extra, extra=extra, quiet=quiet)
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        # Put before the daemon's command line (e.g. setpriv, to run it
        # without some capability).
        self.command_prefix: list[str] = []

    def write_config(self, *, settle: float = 0.5, scan_extra: str = "", extra: str = "", quiet: float = 0.0) -> None:
        # quiet_seconds 0: a test's source is moved or deleted once read, not 30 s later (the default).
        self.config.write_text(CONFIG.format(settle=settle, scan_extra=scan_extra, extra=extra, quiet=quiet),
                               encoding="utf-8")

    def start(self, wait_ready: bool = True) -> subprocess.Popen:
        """Start the daemon; with `wait_ready`, return once *this* run logged
        `started` (its signal handlers are in place by then): a restart must
        not be taken for ready on an earlier run's line, or a SIGTERM sent
        next can land before the handlers and kill it with -15."""
        first_line = len(self.lines)
        self.proc = subprocess.Popen([*self.command_prefix, sys.executable, "-m", "service", "--config",
                                      str(self.config), "run"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     cwd=self.root)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if wait_ready:
            self.wait_for_line("msg=started", timeout=30, start=first_line)
        return self.proc

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 20, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if text in line:
                    return line
            if self.proc and self.proc.poll() is not None and not any(text in l for l in self.lines):
                time.sleep(0.2)
                if not any(text in l for l in self.lines):
                    raise AssertionError(f"daemon exited ({self.proc.returncode}) before {text!r}:\n"
                                         + "\n".join(self.lines[-30:]))
            time.sleep(0.05)
        raise AssertionError(f"no log line with {text!r} within {timeout}s:\n" + "\n".join(self.lines[-30:]))

    def wait_until(self, predicate, timeout: float, what: str):
        """`predicate()`'s first truthy value, polled until `timeout` seconds;
        an AssertionError naming `what`, with the daemon's last log lines, when
        it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n" + "\n".join(self.lines[-30:]))

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def ensure_gone(self) -> None:
        """SIGKILL the daemon if it still runs (a test's `finally`: a test
        that failed midway leaves no process behind)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def ledger(self) -> Ledger:
        return Ledger(self.root / "state" / "ledger.sqlite3")

    def documents(self) -> list:
        with self.ledger() as led:
            return led.list_documents(limit=0, sort="id")

    def wait_documents(self, n: int, timeout: float = 30, settled: bool = False) -> list:
        deadline = time.monotonic() + timeout
        docs: list = []
        while time.monotonic() < deadline:
            docs = self.documents()
            if len(docs) >= n and (not settled or all(d.state != "captured" for d in docs)):
                return docs
            time.sleep(0.1)
        raise AssertionError(f"expected {n} documents, have {len(docs)}:\n" + "\n".join(self.lines[-30:]))
