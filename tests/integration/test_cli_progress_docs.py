"""Issue 17, output people can act on: progress bars on a terminal only
(`ingest` through processing, `backup verify --full`, `backup restore`,
`reconcile`), the config found from a subfolder, and the docs that tell a
person how to reach the CLI and its completion. Real processes: the
terminal is a real pseudo-terminal, the pipe a real pipe."""

from __future__ import annotations

import json
import os
import pty
import random
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.backup.base import open_target
from agent.backup.mirror import mirror_step
from agent.config import find_config_path, load_config
from agent.ledger import Ledger
from agent.vault import Vault

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "renoyuan__easyofd/original_invoice.xml"


def _config(root: Path, extra: str = "") -> Path:
    path = root / "agent.toml"
    path.write_text('[agent]\nstate_dir = "state"\n[validation]\nmax_age_days = 100000\n' + extra, encoding="utf-8")
    path.chmod(0o600)
    return path


def _invoices(samples_dir: Path, folder: Path, n: int, first: int = 1) -> Path:
    """`n` distinct valid XML invoices (numbers from `first`) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (samples_dir / SAMPLE).read_bytes()
    for i in range(first, first + n):
        (folder / f"inv-{i}.xml").write_bytes(data.replace(b"00008006", f"{i:08d}".encode()))
    return folder


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}


def _on_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run with stdout and stderr on a real pseudo-terminal; (exit status, all it printed)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=cwd, env=_env())
    finally:
        os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                proc.kill()
                pytest.fail(f"no output for 120 s from {args}")
            try:
                chunk = os.read(master, 65536)
            except OSError:          # EIO: the process closed its end
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    return code, out.decode("utf-8", "replace")


def _piped(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=cwd, env=_env())


def _cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "service", "--config", str(config), *args]


def test_ingest_shows_processing_on_a_terminal_and_nothing_in_a_pipe(tmp_path, samples_dir):
    config = _config(tmp_path)
    code, shown = _on_terminal(_cli(config, "ingest", str(_invoices(samples_dir, tmp_path / "a", 3))), tmp_path)
    assert code == 0, shown
    # Three files: one `ok` line each while copying, then a bar through processing (the long part).
    assert shown.count("ok   ") == 3 and "processing" in shown and "3/3" in shown, shown
    assert "3 new, 0 already known, 0 failed; 3 valid" in shown
    piped = _piped(_cli(config, "ingest", str(_invoices(samples_dir, tmp_path / "b", 60, first=100))), tmp_path)
    assert piped.returncode == 0, piped.stderr
    # Sixty files into a pipe: no bar and no stray bar label, only the summary.
    assert piped.stderr == "" and piped.stdout.splitlines()[-1].startswith("60 new, 0 already known, 0 failed")
    assert len(piped.stdout.splitlines()) == 1


def test_backup_verify_and_restore_show_progress_on_a_terminal_only(tmp_path, samples_dir):
    (tmp_path / "nas").mkdir()
    config = _config(tmp_path, '[[backup]]\nname = "nas"\nurl = "file://nas"\n')
    assert _piped(_cli(config, "ingest", "-q", str(_invoices(samples_dir, tmp_path / "in", 3))),
                  tmp_path).returncode == 0
    cfg = load_config(config)
    with Ledger(cfg.ledger_path) as ledger:
        target, vault = open_target(cfg.backups[0]), Vault(cfg.vault_dir)
        import datetime as dt

        while mirror_step(ledger, vault, target, now=dt.datetime.now(dt.timezone.utc), rng=random.Random(1)).more:
            pass
    code, shown = _on_terminal(_cli(config, "backup", "verify", "--full", "--target", "nas"), tmp_path)
    assert code == 0 and "verifying nas" in shown and "nas: 3 checked, 3 ok" in shown, shown
    piped = _piped(_cli(config, "backup", "verify", "--full", "--target", "nas"), tmp_path)
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    code, as_json = _on_terminal(_cli(config, "backup", "verify", "--full", "--target", "nas", "--json"), tmp_path)
    assert code == 0 and "verifying" not in as_json and json.loads(as_json)["checked"] == 3   # --json: no bar
    code, shown = _on_terminal(_cli(config, "backup", "restore", "--from", "nas", "--to", str(tmp_path / "r1")),
                               tmp_path)
    assert code == 0 and "restoring from nas" in shown, shown
    piped = _piped(_cli(config, "backup", "restore", "--from", "nas", "--to", str(tmp_path / "r2")), tmp_path)
    assert piped.returncode == 0 and "restoring" not in piped.stderr, piped.stderr


def test_the_config_is_found_from_any_folder_below_it(tmp_path, monkeypatch):
    top = tmp_path / "checkout"
    (top / "var").mkdir(parents=True)
    config = _config(top / "var")
    config.rename(top / "var" / "fapiao-agent.toml")
    deep = top / "docs" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_config_path(None).resolve() == (top / "var" / "fapiao-agent.toml").resolve()
    env = {k: v for k, v in _env().items() if k != "FAPIAO_AGENT_CONFIG"}
    r = subprocess.run([sys.executable, "-m", "service", "config", "check"], capture_output=True, text=True,
                       timeout=60, cwd=deep, env=env)
    assert r.returncode == 0 and "var/fapiao-agent.toml" in r.stdout + r.stderr, (r.stdout, r.stderr)
    # A nearer one wins over one further up.
    (deep / "var").mkdir()
    shutil.copy(top / "var" / "fapiao-agent.toml", deep / "var" / "fapiao-agent.toml")
    assert find_config_path(None).resolve() == (deep / "var" / "fapiao-agent.toml").resolve()
    # Nothing anywhere above: the error says where it looked.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match=f"looked in {tmp_path} and every folder above it"):
        find_config_path(None)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_config_above_that_belongs_to_someone_else_is_refused_by_name(tmp_path, monkeypatch):
    from agent.errors import ConfigError

    (tmp_path / "var").mkdir()
    planted = _config(tmp_path / "var").rename(tmp_path / "var" / "fapiao-agent.toml")
    os.chown(planted, 65534, 65534)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(ConfigError, match=f"found {planted} .* belongs to uid 65534"):
        find_config_path(None)


def test_make_run_readme_and_help_say_how_to_reach_the_cli_and_complete_it():
    r = subprocess.run(["make", "--no-print-directory", "-n", "run"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    said = r.stdout
    assert ".venv/bin/fapiao-agent status" in said and "source .venv/bin/activate" in said, said
    assert "_FAPIAO_AGENT_COMPLETE=bash_source fapiao-agent" in said
    assert said.rstrip().endswith(".venv/bin/fapiao-agent --config var/fapiao-agent.toml run")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    install = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    for text in (readme, install):
        assert '_FAPIAO_AGENT_COMPLETE=bash_source fapiao-agent' in text
    assert "source .venv/bin/activate" in readme and ".venv/bin/fapiao-agent status" in readme
    assert "in each folder above" in readme
    from click.testing import CliRunner

    from service.cli import main

    help_text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert "_FAPIAO_AGENT_COMPLETE=bash_source fapiao-agent" in help_text
    assert "var/fapiao-agent.toml in this folder or any folder above it" in help_text
    # And what the docs say works: click completes a command name.
    done = CliRunner().invoke(main, [], prog_name="fapiao-agent", env={
        "_FAPIAO_AGENT_COMPLETE": "bash_complete", "COMP_WORDS": "fapiao-agent quaran", "COMP_CWORD": "1"})
    assert "plain,quarantine" in done.output


def _slow_clock(monkeypatch):
    # Every reading of audit's clock 3 s after the last: each progress call
    # is past its 2 s spacing, as on a ledger that takes minutes to check.
    import types

    import service.commands.audit as audit_command

    ticks = iter(range(0, 10 ** 6, 3))
    monkeypatch.setattr(audit_command, "time", types.SimpleNamespace(monotonic=lambda: float(next(ticks))))


def test_audit_ledger_and_report_write_progress_on_a_terminal_only(tmp_path, samples_dir, monkeypatch):
    # `audit ledger --json 2>err` wrote "audit: N vault objects checked" into
    # the file, and `report ... 2>log` "reading the ledger ...": no isatty check.
    from click.testing import CliRunner

    import service.progress
    from service.cli import main

    config = _config(tmp_path)
    assert _piped(_cli(config, "ingest", "-q", str(_invoices(samples_dir, tmp_path / "in", 3))),
                  tmp_path).returncode == 0
    _slow_clock(monkeypatch)
    runner = CliRunner()
    for args in (["audit", "ledger", "--json"], ["audit", "ledger"]):
        r = runner.invoke(main, ["--config", str(config), *args])      # stderr is no terminal here
        assert r.exit_code == 0, r.output
        assert "checked" not in r.stderr and "audit:" not in r.stderr, (args, r.stderr)
    for args in (["report", "--since", "7d", "--json"], ["report", "--since", "7d"]):
        r = runner.invoke(main, ["--config", str(config), *args, "--out", str(tmp_path / "reports")])
        assert r.exit_code == 0, r.output
        assert "reading the ledger" not in r.stderr, (args, r.stderr)
    piped = _piped(_cli(config, "report", "--since", "7d", "--out", str(tmp_path / "reports")), tmp_path)
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr                  # a real pipe
    # On a terminal (stderr said to be one), a person still sees them; --json never.
    import types

    monkeypatch.setattr(service.progress, "sys", types.SimpleNamespace(stderr=types.SimpleNamespace(
        isatty=lambda: True)))
    r = runner.invoke(main, ["--config", str(config), "audit", "ledger"])
    assert r.exit_code == 0 and "objects checked" in r.stderr, r.stderr
    r = runner.invoke(main, ["--config", str(config), "audit", "ledger", "--json"])
    assert r.exit_code == 0 and "checked" not in r.stderr, r.stderr
    r = runner.invoke(main, ["--config", str(config), "report", "--since", "7d", "--out", str(tmp_path / "reports")])
    assert r.exit_code == 0 and "reading the ledger ..." in r.stderr, r.stderr
