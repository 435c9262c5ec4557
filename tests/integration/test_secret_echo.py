"""A finance system that echoes the Authorization header back (issue 12,
item 10): a real daemon delivers to the real loopback server
(tests/support/http_destination.py) which repeats the header in its 401 and
500 bodies, and backs its ledger up to a file target. Neither the secrets
nor their Basic/base64 forms may reach the log, the CLI, the ledger, its
WAL or the ledger snapshot on the target."""

from __future__ import annotations

import base64
import gzip
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.http_destination import FaultyFinanceServer

RIGHT_TOKEN = "tok-RIGHT-5d0c8a7e19b2"       # accepted: the 500s echo it
WRONG_TOKEN = "tok-WRONG-93e1f0b6c4d7"       # refused: the 401 echoes it
PASSWORD = "pw-ECHOED-71b2c9d4"
USER = "ap-clerk"
VALID = ("renoyuan__easyofd/original_invoice.xml", "ofdrw__ofdrw/1.ofd")


def leaked_forms() -> dict[str, bytes]:
    """Every spelling of the secrets a careless server or a careless agent could store."""
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    forms = {"right token": RIGHT_TOKEN, "wrong token": WRONG_TOKEN, "password": PASSWORD,
             "basic header": basic, "basic header, first half": basic[:16],
             "basic header, second half": basic[16:]}
    return {name: value.encode() for name, value in forms.items()}


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=config.parent)


def config_for(server: FaultyFinanceServer, backup: Path) -> str:
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            "[backup_policy]\nsnapshot_interval_s = 1\n\n"
            f'[[destination]]\nname = "good"\nurl = "{server.url}"\ntoken = "{RIGHT_TOKEN}"\n'
            "probe_interval_s = 0.3\nbase_delay_s = 0.2\nmax_delay_s = 0.5\nconcurrency = 1\n\n"
            f'[[destination]]\nname = "stale"\nurl = "{server.url}"\ntoken = "{WRONG_TOKEN}"\n'
            "probe_interval_s = 0.3\n\n"
            f'[[destination]]\nname = "basic"\nurl = "{server.url}"\nusername = "{USER}"\n'
            f'password = "{PASSWORD}"\nprobe_interval_s = 0.3\n\n'
            f'[[backup]]\nname = "disk"\nurl = "file://{backup}"\n')


def snapshot_bytes(backup: Path) -> list[bytes]:
    return [gzip.decompress(p.read_bytes()) for p in sorted((backup / "ledger").glob("*.sqlite.gz"))]


def test_an_echoed_authorization_header_is_never_logged_stored_or_backed_up(tmp_path, samples_dir):
    backup = tmp_path / "backup"
    backup.mkdir()
    with FaultyFinanceServer(token=RIGHT_TOKEN, echo_auth=True) as server:
        server.inject("500", times=3, on="post")      # the accepted token, echoed in a 500 body
        d = DaemonUnderTest(tmp_path, extra=config_for(server, backup))
        d.config.chmod(0o600)
        d.start()
        try:
            for rel in VALID:
                shutil.copy(samples_dir / rel, tmp_path / "scan" / rel.replace("/", "__"))
            d.wait_documents(2, settled=True, timeout=60)
            d.wait_for_line("check token", timeout=30)       # a 401 was answered and recorded
            deadline = time.monotonic() + 60
            while server.faults_served["500"] < 3 or len(server.held) < 2:
                assert time.monotonic() < deadline, f"{server.stats()}\n" + "\n".join(d.lines[-30:])
                time.sleep(0.2)
            # The errors are in the ledger now; wait for a snapshot that holds them.
            deadline = time.monotonic() + 60
            while not any(b"internal error" in s and b"invalid credentials" in s for s in snapshot_bytes(backup)):
                assert time.monotonic() < deadline, "no snapshot with the delivery errors:\n" + "\n".join(d.lines[-30:])
                time.sleep(0.5)
            live = {p.name: p.read_bytes() for p in (tmp_path / "state").glob("ledger.sqlite3*")}
            outputs = [cli(d.config, *args) for args in (
                ("status",), ("status", "--json"), ("list",), ("list", "--json"), ("show", "1"),
                ("show", "1", "--json"), ("show", "2"), ("show", "2", "--json"), ("quarantine", "list"),
                ("backup", "status"), ("backup", "status", "--json"))]
        finally:
            d.stop()
    stored = {"ledger (live)": b"".join(live.values()),
              "ledger (after stop)": b"".join(p.read_bytes() for p in (tmp_path / "state").glob("ledger.sqlite3*")),
              "snapshots": b"".join(snapshot_bytes(backup)),
              "log": "\n".join(d.lines).encode(),
              "cli": "\n".join(o.stdout + o.stderr for o in outputs).encode()}
    assert "ledger.sqlite3-wal" in live, "the WAL was not looked at"
    # The errors were recorded (the test would prove nothing otherwise) ...
    assert b"invalid credentials (request had Authorization:" in stored["ledger (live)"]
    assert b"internal error (request had Authorization:" in stored["snapshots"]
    # ... and nowhere does a secret appear, in any spelling.
    for where, data in stored.items():
        for name, form in leaked_forms().items():
            assert form not in data, f"the {name} leaked into the {where}"
    assert b"invalid credentials (request had Authorization: Bearer ***)" in stored["ledger (live)"]
    assert b"internal error (request had Authorization: Bearer ***)" in stored["cli"]
