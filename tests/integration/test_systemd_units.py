"""The systemd files, checked by systemd's own tools.

`systemd-analyze verify` exits 0 on warnings (an unknown key is silently
ignored at runtime), so these tests fail on any line it writes to stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SERVICE = UNITS / "fapiao-agent.service"
SYSUSERS = UNITS / "fapiao-agent.sysusers.conf"
TMPFILES = UNITS / "fapiao-agent.tmpfiles.conf"
INSTALLED_EXEC = "/opt/fapiao-agent/venv/bin/fapiao-agent"
MAX_EXPOSURE = 3.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (apt install systemd)")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def _existing_exec() -> str:
    # The checkout's own console script when the venv has it, else any real binary.
    script = Path(sys.executable).parent / "fapiao-agent"
    return str(script) if os.access(script, os.X_OK) else shutil.which("true") or "/bin/true"


def verifiable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointed at a binary that exists on this machine.

    verify checks that ExecStart is executable, and /opt/fapiao-agent is only
    there on an installed server. Everything else is verified unchanged.
    """
    original = SERVICE.read_text(encoding="utf-8") if text is None else text
    patched = original.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={_existing_exec()} ")
    changed = [a for a, b in zip(original.splitlines(), patched.splitlines()) if a != b]
    assert len(changed) == 1 and changed[0].startswith("ExecStart="), "ExecStart line not found"
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    copy = unit_dir / SERVICE.name
    copy.write_text(patched, encoding="utf-8")
    return copy


def verify(unit: Path) -> subprocess.CompletedProcess:
    return run("systemd-analyze", "verify", str(unit))


def test_unit_verifies_without_any_warning(tmp_path):
    result = verify(verifiable_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"systemd-analyze verify warned:\n{result.stderr}"


def test_verify_warnings_are_caught_even_though_rc_is_zero(tmp_path):
    # The reason for the stderr check: a misspelt key is only a warning.
    typo = SERVICE.read_text(encoding="utf-8").replace("\nProtectSystem=strict", "\nProtectSytem=strict")
    result = verify(verifiable_copy(tmp_path, typo))
    assert result.returncode == 0
    assert "ProtectSytem" in result.stderr


def test_unit_has_the_required_shape():
    text = SERVICE.read_text(encoding="utf-8")
    for line in ("Type=notify", "Restart=on-failure", "User=fapiao", "Group=fapiao-read",
                 "SupplementaryGroups=fapiao fapiao-drop",
                 "StateDirectory=fapiao-agent", "ConfigurationDirectory=fapiao-agent",
                 "ProtectSystem=strict", "ReadWritePaths=/srv/fapiao", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectHome=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "SystemCallFilter=@system-service", "ExecReload=/bin/kill -HUP $MAINPID",
                 "Environment=FAPIAO_AGENT_CONFIG=/etc/fapiao-agent/config.toml",
                 f"ExecStart={INSTALLED_EXEC} run"):
        assert line in text.splitlines(), line
    assert re.search(r"^WatchdogSec=\d+", text, re.MULTILINE)


def test_a_clean_stop_fits_in_timeout_stop_sec_with_the_default_config():
    # SIGTERM: in-flight work gets stop_timeout_s, then the last ledger
    # snapshot gets shutdown_snapshot_s; systemd SIGKILLs after TimeoutStopSec.
    from agent.config import _SCALAR_SCHEMAS
    from agent.defaults import DEFAULT_CONFIG

    stop_s = int(re.search(r"^TimeoutStopSec=(\d+)$", SERVICE.read_text(encoding="utf-8"), re.MULTILINE).group(1))
    drain = int(re.search(r"^stop_timeout_s = (\d+)", DEFAULT_CONFIG, re.MULTILINE).group(1))
    assert drain == _SCALAR_SCHEMAS["agent"]["stop_timeout_s"][1]
    snapshot = _SCALAR_SCHEMAS["backup_policy"]["shutdown_snapshot_s"][1]
    assert 0 < snapshot and drain + snapshot + 1 < stop_s, (drain, snapshot, stop_s)


def test_security_exposure_is_at_most_3(tmp_path):
    result = run("systemd-analyze", "security", "--offline=true", "--no-pager", str(SERVICE))
    match = re.search(r"Overall exposure level for fapiao-agent\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure line in:\n{result.stdout}\n{result.stderr}"
    score = float(match.group(1))
    print(f"systemd-analyze security --offline=true: exposure {score}")
    assert score <= MAX_EXPOSURE, result.stdout


def test_sysusers_creates_the_fapiao_user_and_group(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    result = run("systemd-sysusers", f"--root={root}", str(SYSUSERS))
    assert result.returncode == 0, result.stderr
    unexpected = [line for line in result.stderr.splitlines() if not line.startswith("Creating ")]
    assert unexpected == [], result.stderr
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    group = (root / "etc" / "group").read_text().splitlines()
    user = next(line.split(":") for line in passwd if line.startswith("fapiao:"))
    assert user[5] == "/var/lib/fapiao-agent"
    assert user[6].endswith("nologin")
    assert int(user[2]) < 1000, "must be a system user"
    assert any(line.startswith("fapiao:") for line in group)
    members = {line.split(":")[0]: line.split(":")[3].split(",") for line in group}
    assert "fapiao" in members["fapiao-drop"] and "fapiao" in members["fapiao-read"]
    assert {"fapiao-amend", "fapiao-approve"} <= set(members)


def test_tmpfiles_creates_the_default_folders_private_to_the_group(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles must chown to fapiao, which needs root")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    assert run("systemd-sysusers", f"--root={root}", str(SYSUSERS)).returncode == 0
    result = run("systemd-tmpfiles", f"--root={root}", "--create", str(TMPFILES))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    uid = next(int(line.split(":")[2]) for line in (root / "etc/passwd").read_text().splitlines()
               if line.startswith("fapiao:"))
    # The drop group, not the service's own group: dropping files grants no
    # read access to the vault (group fapiao-read) or the config (group fapiao).
    gid = next(int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()
               if line.startswith("fapiao-drop:"))
    for sub in ("", "scanner", "mail", "mail/new", "mail/cur", "mail/tmp"):
        st = (root / "srv/fapiao" / sub).stat()
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o2770, sub
        assert (st.st_uid, st.st_gid) == (uid, gid), sub
