"""`config init` where it cannot write: one `error:` line naming the path,
exit 1, never a traceback; and all or nothing: no half-written config, no
temporary file, no folder of its own left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.defaults import DEFAULT_CONFIG
from service.cli import main

REPO = Path(__file__).resolve().parents[2]


def unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI without the right to write anywhere (root drops
    CAP_DAC_OVERRIDE through setpriv)."""
    cmd = [sys.executable, "-m", "service", *args]
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", "--bounding-set", caps, "--inh-caps", caps, *cmd]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_folder_it_may_not_write_is_one_line_and_nothing_written(tmp_path):
    shut = tmp_path / "etc"
    shut.mkdir()
    shut.chmod(0o555)
    try:
        for target in (shut / "fapiao-agent" / "config.toml", shut / "config.toml"):
            r = unprivileged("config", "init", str(target), cwd=tmp_path)
            assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: cannot write ") and \
                "Permission denied; nothing written" in r.stderr, r.stderr
        assert everything_under(shut) == []
    finally:
        shut.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_a_path_in_proc_is_one_line():
    r = CliRunner().invoke(main, ["config", "init", "/proc/fapiao-x.toml"])
    assert r.exit_code == 1, r.output
    assert r.stderr == "error: cannot write /proc/fapiao-x.toml: No such file or directory; nothing written\n"


def test_a_folder_that_cannot_be_made_takes_back_the_config_and_folders_made(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "inbox").write_text("a file where inbox/ would be\n")
    r = CliRunner().invoke(main, ["config", "init", str(site / "agent.toml")])
    assert r.exit_code == 1, r.output
    assert r.stderr == f"error: cannot write folder {site / 'inbox'}: a file is there, not a folder; nothing written\n"
    assert everything_under(site) == ["inbox"]   # no config, no temporary file, no state/ made before


@pytest.mark.parametrize("force", [False, True])
def test_a_full_disk_leaves_no_half_config_and_keeps_the_old_one(tmp_path, monkeypatch, force):
    target = tmp_path / "new" / "deeper" / "agent.toml"
    if force:
        target.parent.mkdir(parents=True)
        target.write_text("# the operator's own config\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("service.commands.config.os.fsync", full)
    r = CliRunner().invoke(main, ["config", "init", *(["--force"] if force else []), str(target)])
    assert r.exit_code == 1, r.output
    assert r.stderr == f"error: cannot write {target}: No space left on device; nothing written\n"
    if force:
        assert everything_under(tmp_path) == ["new", "new/deeper", "new/deeper/agent.toml"]
        assert target.read_text() == "# the operator's own config\n"
    else:
        assert everything_under(tmp_path) == []   # the folders it made on the way are gone too


def test_init_still_writes_the_config_and_its_folders(tmp_path):
    target = tmp_path / "a" / "agent.toml"
    r = CliRunner().invoke(main, ["config", "init", str(target)])
    assert r.exit_code == 0, r.output
    assert target.read_text(encoding="utf-8") == DEFAULT_CONFIG and target.stat().st_mode & 0o777 == 0o640
    assert {"state", "inbox/scanner", "inbox/email", "outbox", "backup"} <= set(everything_under(target.parent))
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    again = CliRunner().invoke(main, ["config", "init", str(target)])
    assert again.exit_code == 1 and again.stderr == f"error: {target} exists; use --force to overwrite it\n"
