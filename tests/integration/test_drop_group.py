"""The drop group drops, and reads nothing (issue 14): with real accounts
(useradd/groupadd, removed afterwards) and the modes the shipped files set
(tmpfiles.d for the watched folders, the unit's StateDirectoryMode, Group=
and UMask=, `config init` and docs/install.md for the config), a member of
the drop group can put a file in a watched folder, and can read neither the
vault, the ledger, the config, nor what the agent moved to processed/ -
not even another scanner's invoice."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.ledger import Ledger
from agent.vault import Vault
from tests.e2e.daemon_harness import DaemonUnderTest

REPO = Path(__file__).resolve().parents[2]
UNIT = (REPO / "systemd" / "fapiao-agent.service").read_text(encoding="utf-8")
TMPFILES = (REPO / "systemd" / "fapiao-agent.tmpfiles.conf").read_text(encoding="utf-8")
SAMPLE = "renoyuan__easyofd/original_invoice.xml"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("useradd", "groupadd", "userdel", "groupdel", "setpriv")),
    reason="creating real accounts needs root and useradd/groupadd/setpriv")


def unit_value(key: str) -> str:
    return re.search(rf"^{key}=(\S+)$", UNIT, re.MULTILINE).group(1)


def tmpfiles_entry(path: str) -> tuple[int, str, str]:
    """(mode, user, group) the shipped tmpfiles.d line gives `path`."""
    for line in TMPFILES.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == "d" and fields[1] == path:
            return int(fields[2], 8), fields[3], fields[4]
    raise AssertionError(f"{path} is not in the tmpfiles.d file")


@pytest.fixture
def people():
    """A drop group with two scanner accounts, a read group with a reader,
    the config's group, and the service account; all removed afterwards."""
    tag = secrets.token_hex(3)
    names = {"drop": f"fdrop{tag}", "read": f"fread{tag}", "conf": f"fconf{tag}",
             "svc": f"fsvc{tag}", "scanner_a": f"fsca{tag}", "scanner_b": f"fscb{tag}", "reader": f"frdr{tag}"}
    groups, users = [], []
    try:
        for g in ("drop", "read", "conf"):
            subprocess.run(["groupadd", names[g]], check=True)
            groups.append(names[g])
        for user, member_of in (("svc", "conf"), ("scanner_a", "drop"), ("scanner_b", "drop"), ("reader", "read")):
            subprocess.run(["useradd", "-M", "-N", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                            "-G", names[member_of], names[user]], check=True)
            users.append(names[user])
        yield names
    finally:
        for user in users:
            subprocess.run(["userdel", user], check=False)
        for g in groups:
            subprocess.run(["groupdel", g], check=False)


def as_user(user: str, *cmd: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    import pwd
    entry = pwd.getpwnam(user)
    return subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", *cmd],
                          input=stdin, capture_output=True, timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "C"})


def denied(user: str, *cmd: str) -> bool:
    r = as_user(user, *cmd)
    return r.returncode != 0 and b"Permission denied" in r.stderr


def test_a_drop_group_member_drops_files_but_reads_no_invoice_ledger_or_config(people, samples_dir):
    site = Path(tempfile.mkdtemp(prefix="fapiao-drop-"))
    site.chmod(0o755)
    shipped_user = {"fapiao": people["svc"], "fapiao-drop": people["drop"]}
    try:
        # `config init` writes the config 0640 (root's here: nobody else reads it).
        made = subprocess.run([sys.executable, "-m", "service", "config", "init", str(site / "init" / "agent.toml")],
                              capture_output=True, text=True, cwd=site, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert made.returncode == 0, made.stderr
        assert (site / "init" / "agent.toml").stat().st_mode & 0o777 == 0o640

        d = DaemonUnderTest(site, scan_extra='after = "move"', extra=(
            # The daemon runs as root here (this sandbox starts no worker
            # processes for another account); modes decide, not who owns.
            '[access]\nservice_user = "nosuchsvc"\n'
            '[[backup]]\nname = "nas"\nurl = "s3://bucket"\nendpoint_url = "http://127.0.0.1:9"\n'
            'access_key_id = "AKIDEXAMPLE"\nsecret_access_key = "the-secret-of-the-config"\n'))
        # The config as docs/install.md installs it: root:fapiao 0640.
        shutil.chown(d.config, "root", people["conf"])
        d.config.chmod(0o640)
        # Watched folders as tmpfiles.d makes /srv/fapiao/scanner and mail.
        for folder, shipped in (("scan", "/srv/fapiao/scanner"), ("mail", "/srv/fapiao/mail")):
            mode, user, group = tmpfiles_entry(shipped)
            shutil.chown(site / folder, shipped_user[user], shipped_user[group])
            (site / folder).chmod(mode)
        # The state folder as the unit makes it: StateDirectoryMode, User=, Group=.
        assert unit_value("Group") == "fapiao-read"
        shutil.chown(site / "state", people["svc"], people["read"])
        (site / "state").chmod(int(unit_value("StateDirectoryMode"), 8))
        old = os.umask(int(unit_value("UMask"), 8))
        try:
            d.start()
        finally:
            os.umask(old)
        try:
            invoice = (samples_dir / SAMPLE).read_bytes()
            # A scanner drops a file the way a Samba share with create mask 0660 does.
            scan = site / "scan"
            put = as_user(people["scanner_a"], "sh", "-c", f"umask 007 && cat > {scan}/.a.tmp && mv {scan}/.a.tmp {scan}/a.xml",
                          stdin=invoice)
            assert put.returncode == 0, put.stderr
            d.wait_until(lambda: list((site / "scan").glob("processed/*/a.xml")), 60, "the invoice moved aside")
            d.wait_documents(1, timeout=60, settled=True)
        finally:
            assert d.stop() == 0
        (moved,) = (site / "scan").glob("processed/*/a.xml")
        (sha,) = Vault(site / "state" / "vault").iter_objects()
        stored = Vault(site / "state" / "vault").path(sha)
        ledger = site / "state" / "ledger.sqlite3"
        with Ledger(ledger, readonly=True) as led:
            assert led.list_documents(limit=0)[0].sha256 == sha
        assert moved.read_bytes() == stored.read_bytes() == invoice

        for scanner in (people["scanner_a"], people["scanner_b"]):
            # Dropping works...
            drop = as_user(scanner, "sh", "-c", f"echo x > {site / 'scan' / scanner}.txt")
            assert drop.returncode == 0, drop.stderr
            # ...and nothing else does.
            assert denied(scanner, "cat", str(d.config)), scanner
            assert denied(scanner, "ls", str(site / "state")), scanner
            assert denied(scanner, "cat", str(ledger)), scanner
            assert denied(scanner, "cat", str(stored)), scanner
            assert denied(scanner, "ls", str(site / "scan" / "processed")), scanner
            assert denied(scanner, "cat", str(moved)), scanner
        # The read group reads the ledger and the vault, never the config's secrets.
        assert as_user(people["reader"], "cat", str(ledger)).returncode == 0
        assert as_user(people["reader"], "cat", str(stored)).stdout == invoice
        assert denied(people["reader"], "cat", str(d.config))
    finally:
        shutil.rmtree(site, ignore_errors=True)
