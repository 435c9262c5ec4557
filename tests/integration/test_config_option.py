"""--config is judged by the config loader, never by click: a folder, an
empty name, a file or folder this user cannot read give one `error:` line
naming it and the command's usual exit (2), and `status --check` says
UNKNOWN (3) on stdout, as docs/monitoring.md promises; never click's usage
text and exit 2, which a monitor reads as CRITICAL. Real accounts:
tests/integration/test_access_accounts.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main
from tests.support.cli import default_config

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


def _where_the_path_goes(path: str) -> list[list[str]]:
    # the global option, the option after the command, the environment
    return [["--config", path, "status", "--check"], ["status", "--check", "--config", path]]


@pytest.mark.parametrize("how", ["folder", "empty"])
def test_status_check_is_unknown_for_a_config_that_is_not_a_file(tmp_path, how):
    path = str(tmp_path) if how == "folder" else ""
    for args in _where_the_path_goes(path):
        r = invoke(*args)
        assert r.exit_code == 3, (args, r.output)
        assert r.stdout.startswith("UNKNOWN: ") and "Usage:" not in r.output, (args, r.output)
        # an empty name is refused as one, never taken for "search" (which could find another config)
        assert how == "folder" or "the config file named is empty" in r.stdout, r.output
    if how == "folder":
        r = invoke("status", "--check", env={"FAPIAO_AGENT_CONFIG": path})
        assert r.exit_code == 3 and r.stdout.startswith("UNKNOWN: ") and path in r.stdout, r.output


@pytest.mark.parametrize("args", [["status"], ["list"], ["show", "1"], ["config", "check"], ["audit", "ledger"],
                                  ["report", "--since", "1d"], ["check", "x.pdf"], ["run"]])
def test_every_command_names_a_config_folder_in_one_line(tmp_path, args):
    r = invoke("--config", str(tmp_path), *args)
    assert r.exit_code == 2, r.output
    assert r.stderr == f"error: config file {tmp_path} is not a regular file (a folder, device or pipe)\n", r.stderr
    assert "Usage:" not in r.output


def test_a_config_in_a_folder_this_user_cannot_search_is_named_not_a_traceback(tmp_path):
    """Run as a user without CAP_DAC_OVERRIDE (root drops it through
    setpriv): the config's folder is 0700 of another owner."""
    if os.geteuid() == 0 and not _has_setpriv():
        pytest.skip("as root, setpriv is needed to drop the right to search any folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    cfg = default_config(locked)
    locked.chmod(0o000)
    try:
        for args in _where_the_path_goes(str(cfg)):
            r = _run_unprivileged(args, cwd=tmp_path)
            assert r.returncode == 3 and r.stdout.startswith("UNKNOWN: "), r
            assert str(cfg) in r.stdout and "Permission denied" in r.stdout and "Traceback" not in r.stderr, r
        # The search path: a var/ above this folder that cannot be looked into is named, never passed over
        # for another config (say /etc's).
        (tmp_path / "var").mkdir()
        (tmp_path / "var").chmod(0o000)
        r = _run_unprivileged(["list"], cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r
        assert r.stderr.startswith(f"error: {tmp_path / 'var' / 'fapiao-agent.toml'}: cannot read: "), r.stderr
    finally:
        locked.chmod(0o700)
        if (tmp_path / "var").exists():
            (tmp_path / "var").chmod(0o700)


def _has_setpriv() -> bool:
    import shutil
    return shutil.which("setpriv") is not None


def _run_unprivileged(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "service", *args]
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", "--bounding-set", caps, "--inh-caps", caps, *cmd]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
