"""The security review's checks (docs/security.md), on real parts: a real
daemon and CLI, a loopback finance server that rejects the credentials, a
real state folder on disk."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.mail import parse_message
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.http_destination import FaultyFinanceServer

SECRETS = {"file_token": "tok-FILE-4f1d9c2e7a", "env_token": "tok-ENV-88b3e01f5c",
           "s3_secret": "s3SECRET-0c9e4b7d2a1f", "password": "pw-HUNTER2-e7c1"}
VALID = ("renoyuan__easyofd/original_invoice.xml", "ofdrw__ofdrw/1.ofd")


def cli(config: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=config.parent, env=env)


def secret_config(server: FaultyFinanceServer) -> str:
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            f'[[destination]]\nname = "erp"\nurl = "{server.url}"\ntoken = "{SECRETS["file_token"]}"\n'
            "probe_interval_s = 0.3\nconcurrency = 1\n\n"
            f'[[destination]]\nname = "erp2"\nurl = "{server.url}"\nprobe_interval_s = 0.3\n\n'
            f'[[destination]]\nname = "basic"\nurl = "{server.url}"\nusername = "ap"\n'
            f'password = "{SECRETS["password"]}"\nprobe_interval_s = 0.3\n\n'
            '[[destination]]\nname = "insecure"\nurl = "https://127.0.0.1:9/api"\ntls_verify = false\n\n'
            '[[backup]]\nname = "offsite"\nurl = "s3://fapiao-backup"\nendpoint_url = "http://127.0.0.1:9"\n'
            f'access_key_id = "AKIDSECURITYTEST"\nsecret_access_key = "{SECRETS["s3_secret"]}"\n')


def test_secrets_never_appear_in_logs_status_show_or_the_ledger(tmp_path, samples_dir, monkeypatch):
    monkeypatch.setenv("FAPIAO_AGENT__DESTINATION__ERP2__TOKEN", SECRETS["env_token"])
    with FaultyFinanceServer(token="the-right-token") as server:
        d = DaemonUnderTest(tmp_path, extra=secret_config(server))
        d.config.chmod(0o600)
        d.start()
        try:
            for rel in VALID:
                shutil.copy(samples_dir / rel, tmp_path / "scan" / rel.replace("/", "__"))
            d.wait_documents(2, settled=True, timeout=60)
            d.wait_for_line("check token", timeout=30)  # the credentials were sent and rejected
            outputs = [cli(d.config, *args) for args in (
                ("status",), ("status", "--json"), ("list",), ("show", "1"), ("show", "1", "--json"),
                ("show", "2"), ("config", "check"), ("quarantine", "list"), ("backup", "status"))]
            time.sleep(1)
        finally:
            d.stop()
    captured = "\n".join(d.lines + [o.stdout + o.stderr for o in outputs])
    assert "TLS certificate checks are OFF" in captured  # the insecure destination was warned about
    assert any(o.returncode == 0 and "erp" in o.stdout for o in outputs)
    for name, secret in SECRETS.items():
        assert secret not in captured, f"the {name} leaked into logs or CLI output"
        assert base64.b64encode(f"ap:{secret}".encode()).decode() not in captured
    ledger_bytes = b"".join(p.read_bytes() for p in (tmp_path / "state").glob("ledger.sqlite3*"))
    for name, secret in SECRETS.items():
        assert secret.encode() not in ledger_bytes, f"the {name} was written to the ledger"


def test_files_the_agent_creates_are_not_world_readable(tmp_path, samples_dir):
    old = os.umask(0o022)  # a permissive umask: the agent must not rely on systemd's UMask=0027
    try:
        d = DaemonUnderTest(tmp_path)
        (tmp_path / "state").rmdir()  # the harness made it; let the agent create its own
        d.start()
        shutil.copy(samples_dir / VALID[0], tmp_path / "scan" / "a.xml")
        d.wait_documents(1, settled=True)
        d.stop()
    finally:
        os.umask(old)
    state = tmp_path / "state"
    seen = {"file": 0, "dir": 0}
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert not mode & 0o007, f"{path} is {mode:o}: readable by every user"
        if path.is_file():
            assert not mode & 0o020 and not mode & 0o111, f"{path} is {mode:o}, not 0640"
        seen["dir" if path.is_dir() else "file"] += 1
    assert seen["file"] >= 3 and seen["dir"] >= 3
    assert stat.S_IMODE((state / "ledger.sqlite3").stat().st_mode) == 0o640
    objects = [p for p in (state / "vault" / "objects").rglob("*") if p.is_file()]
    assert objects and all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in objects)


def _config_with(tmp_path: Path, body: str, mode: int) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(body, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_world_readable_config_holding_secrets_is_refused(tmp_path):
    body = f'[[destination]]\nname = "erp"\nurl = "https://erp.example/api"\ntoken = "{SECRETS["file_token"]}"\n'
    path = _config_with(tmp_path, body, 0o644)
    with pytest.raises(ConfigError, match=r"holds secrets \(destination\[0\]\.token\) but is readable by every "
                                          r"user \(mode 644\); run `chmod 640"):
        load_config(path, env={})
    r = cli(path, "config", "check")
    assert r.returncode == 2 and "readable by every user" in r.stderr and SECRETS["file_token"] not in r.stderr
    r = cli(path, "run")
    assert r.returncode == 2 and "readable by every user" in r.stderr
    path.chmod(0o640)
    assert load_config(path, env={}).destinations[0]["token"] == SECRETS["file_token"]
    # No secret in the file (it comes from the environment): a readable file is fine.
    path = _config_with(tmp_path, '[[destination]]\nname = "erp"\nurl = "https://erp.example/api"\n', 0o644)
    cfg = load_config(path, env={"FAPIAO_AGENT__DESTINATION__ERP__TOKEN": "from-env"})
    assert cfg.destinations[0]["token"] == "from-env"


def test_a_mistyped_secret_is_not_echoed_in_the_config_error(tmp_path):
    path = _config_with(tmp_path, '[[destination]]\nname = "erp"\nurl = "https://erp.example/api"\n'
                                  "password = 918273645546\n", 0o600)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert "destination[0].password: must be a string" in str(err.value)
    assert "918273645546" not in str(err.value)


def test_names_from_mail_and_zips_never_leave_the_target_folder(tmp_path, samples_dir):
    """A valid invoice attached as ../../ names and inside a zip with ../
    members, delivered to a folder destination: every file the agent writes
    stays inside that folder."""
    import io
    import zipfile

    xml = (samples_dir / VALID[0]).read_bytes()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("../../../../escaped-from-zip.xml", xml)
        z.writestr("ok/../../escaped2.xml", xml + b" ")
    ofd = (samples_dir / VALID[1]).read_bytes()
    parts = [("../../../escaped-from-mail.xml", xml + b"\n"), ("/tmp/absolute.ofd", ofd), ("x.zip", zbuf.getvalue())]
    lines = ["From: a@example.cn", "Message-ID: <escape@test>", "MIME-Version: 1.0",
             'Content-Type: multipart/mixed; boundary="B"', "", "--B", "Content-Type: text/plain", "", "hi"]
    for name, body in parts:
        lines += ["--B", "Content-Type: application/octet-stream", f'Content-Disposition: attachment; filename="{name}"',
                  "Content-Transfer-Encoding: base64", "", base64.b64encode(body).decode()]
    message = ("\r\n".join(lines + ["--B--"]) + "\r\n").encode()
    parsed = parse_message(message)
    assert parsed.attachments and all("/" not in a.filename and ".." != a.filename for a in parsed.attachments)

    out = tmp_path / "finance" / "import"
    out.mkdir(parents=True)
    d = DaemonUnderTest(tmp_path, extra=f'[[destination]]\nname = "drop"\nurl = "folder://{out}"\n')
    before = set(tmp_path.rglob("*"))
    d.start()
    try:
        (tmp_path / "mail" / "escape.eml").write_bytes(message)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(doc.state == "delivered" for doc in d.documents()):
            time.sleep(0.2)
        assert any(doc.state == "delivered" for doc in d.documents()), "\n".join(d.lines[-20:])
    finally:
        d.stop()
    created = set(tmp_path.rglob("*")) - before
    allowed = (tmp_path / "state", out, tmp_path / "mail")
    for path in created:
        assert any(path == a or a in path.parents for a in allowed), f"{path} is outside the target folders"
    assert not list(tmp_path.parent.glob("escaped*")) and not Path("/tmp/absolute.ofd").exists()
    assert list(out.iterdir())
