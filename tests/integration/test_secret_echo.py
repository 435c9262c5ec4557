"""A finance system that echoes the Authorization header back (issue 12,
item 10): a real daemon delivers to the real loopback server
(tests/support/http_destination.py) which repeats the header in its 401 and
500 bodies, and backs its ledger up to a file target. Neither the secrets
nor their Basic/base64 forms may reach the log, the CLI, the ledger, its
WAL or the ledger snapshot on the target."""

from __future__ import annotations

import base64
import gzip
import hashlib
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class _EchoingS3(BaseHTTPRequestHandler):
    """An S3-compatible store that quotes the request's Authorization header
    (SigV4: it names the access key id) in every error's Message."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        status, code = (500, "InternalError") if self.server.fail_with == 500 else (400, "InvalidRequest")
        body = (f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>cannot serve request with "
                f"Authorization: {self.headers.get('Authorization', '')}</Message></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer


def test_s3_adapters_redact_an_echoed_access_key(tmp_path):
    """Both S3 adapters against a real loopback server whose error messages
    repeat the SigV4 Authorization header, with the access key id in it."""
    from agent.backup.s3 import S3Target
    from agent.deliver.base import Parcel
    from agent.deliver.s3 import S3Destination
    from agent.errors import AdapterError

    key_id, secret = "AKIDECHOED7Q2W9E4R", "sk-ECHOED-0b7c1d9e2f3a4b5c6d7e8f90"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingS3)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    original = tmp_path / "a.xml"
    original.write_bytes(b"<invoice/>")
    sha = hashlib.sha256(b"<invoice/>").hexdigest()
    parcel = Parcel(key="12345678901234567890", number="12345678901234567890", filename="a.xml",
                    media_type="application/xml", sha256=sha, fields={}, path=original)
    messages = []
    try:
        for fail_with in (400, 500):
            server.fail_with = fail_with
            dest = S3Destination("inbox", "inbox", "in", endpoint_url=endpoint, access_key_id=key_id,
                                 secret_access_key=secret, addressing_style="path", timeout_s=5)
            target = S3Target("backup", name="off", endpoint_url=endpoint, access_key_id=key_id,
                              secret_access_key=secret, addressing_style="path", max_attempts=1)
            for call in (lambda: dest.put(parcel), lambda: target.put("manifests/x.json", b"{}",
                                                                        hashlib.sha256(b"{}").hexdigest()),
                         lambda: target.get("manifests/x.json")):
                try:
                    call()
                except AdapterError as e:
                    messages.append(str(e))
    finally:
        server.shutdown()
        server.server_close()
    assert len(messages) == 6, messages
    assert any("cannot serve request with Authorization" in m for m in messages), messages
    for m in messages:
        assert key_id not in m and secret not in m, m
