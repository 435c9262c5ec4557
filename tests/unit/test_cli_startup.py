"""A CLI that answers at once (issue 17): the read commands and `--version`
load only what they use, so they start in about the time of `import click`
(bench/cli.py measures it; tests are never timed). Checked here by what a
real `fapiao-agent` process has imported when it exits, and that lazy
loading loses no command: `--help` lists each one, each one loads with
`--config` and its access guard."""

from __future__ import annotations

import datetime as dt
import grp
import importlib
import json
import os
import pkgutil
import pwd
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import service.commands
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.cli import COMMANDS, main
from tests.support.queued import queue_invoice

REPO = Path(__file__).resolve().parents[2]

# Libraries only some commands need (S3 backups, PDF and image reading, QR,
# OCR, HTTP delivery, metrics, the folder watcher) and sqlite-utils, whose
# import probes for numpy and whose Database() loads plugins in each process.
HEAVY = ("boto3", "botocore", "numpy", "pypdf", "pypdfium2", "PIL", "zxingcpp", "rapidocr_onnxruntime",
         "onnxruntime", "cv2", "urllib3", "prometheus_client", "watchdog", "schedule", "defusedxml",
         "sqlite_utils", "pluggy")
# Our own modules that none of these commands runs: the backup mirror and
# restore, extraction and OCR, validation and judging, the daemon.
UNUSED = ("agent.backup.mirror", "agent.backup.restore", "agent.vault", "agent.extract", "agent.pipeline",
          "agent.judgement", "agent.validate", "service.daemon", "service.backup")

# Runs `fapiao-agent ARGS...` in this process and writes the names of every
# module imported by then to OUT (the first argument), whatever the exit.
WRAPPER = """
import json, runpy, sys
out = sys.argv[1]
sys.argv = ["fapiao-agent", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("service", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
finally:
    with open(out, "w") as f:
        json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


@pytest.fixture(scope="module")
def agent_config(tmp_path_factory) -> Path:
    """A config whose [access] names this account, and a ledger with one
    delivered-to-be invoice (document 1) and one quarantined document."""
    root = tmp_path_factory.mktemp("cli")
    group, user = grp.getgrgid(os.getgid()).gr_name, pwd.getpwuid(os.geteuid()).pw_name
    path = root / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "state"\n\n[[destination]]\nname = "erp"\nurl = "folder://out"\n\n'
                    f'[[backup]]\nname = "nas"\nurl = "file://nas"\n\n'
                    f'[access]\nread_group = "{group}"\namend_group = "{group}"\napprove_group = "{group}"\n'
                    f'service_user = "{user}"\n', encoding="utf-8")
    now = utc(dt.datetime.now(dt.timezone.utc))
    with Ledger(root / "state" / "ledger.sqlite3") as ledger:
        queue_invoice(ledger, Vault(root / "state" / "vault"), 1, destinations=["erp"], now=now)
        doc_id, _ = ledger.add_document(sha256="ab" * 32, size=3, media_type="application/pdf",
                                        source_kind="ingest", source="test", original_name="坏.pdf",
                                        original_path=None, now=now, actor="test")
        ledger.transition(doc_id, "quarantined", now=now, actor="test", problems=[
            {"code": "unreadable", "severity": "error", "field": None, "message": "no text"}])
    return path


def run_cli(config: Path, tmp_path: Path, *args: str) -> set[str]:
    """The modules a real `fapiao-agent --config CONFIG ARGS` process had
    imported when it exited (which must be with status 0)."""
    out = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("FAPIAO_AGENT_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", WRAPPER, str(out), "--config", str(config), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.exists(), done.stderr
    report = json.loads(out.read_text())
    assert report["code"] in (0, None), done.stdout + done.stderr
    return set(report["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize("args", [("--version",), ("status",), ("status", "--json"), ("list",), ("show", "1"),
                                  ("quarantine",)])
def test_read_commands_load_no_heavy_library(agent_config, tmp_path, args):
    modules = run_cli(agent_config, tmp_path, *args)
    assert "service.cli" in modules          # the wrapper really ran the CLI
    assert loaded(modules, HEAVY) == []
    assert loaded(modules, UNUSED) == []


@pytest.mark.parametrize("args", [("list",), ("show", "1"), ("quarantine",)])
def test_listing_commands_load_no_delivery_code(agent_config, tmp_path, args):
    # Only `status` judges the destinations (breaker, maintenance): the
    # delivery machinery is not loaded to list or show documents.
    modules = run_cli(agent_config, tmp_path, *args)
    assert loaded(modules, ("agent.deliver", "agent.reconcile")) == []


def test_version_loads_no_command(agent_config, tmp_path):
    modules = run_cli(agent_config, tmp_path, "--version")
    assert sorted(m for m in modules if m.startswith("service.commands.")) == []
    assert loaded(modules, ("agent.ledger", "agent.config")) == []


def test_a_command_loads_only_its_own_module(agent_config, tmp_path):
    modules = run_cli(agent_config, tmp_path, "quarantine")
    commands = {m for m in modules if m.startswith("service.commands.")}
    assert commands == {"service.commands.quarantine"}


def _defined_commands() -> dict[str, str]:
    # What the modules of service/commands define: `command` and `extra_commands`.
    found = {}
    for info in pkgutil.iter_modules(service.commands.__path__):
        module = importlib.import_module(f"service.commands.{info.name}")
        for attribute, value in vars(module).items():
            listed = value is getattr(module, "command", None) or value in getattr(module, "extra_commands", ())
            if isinstance(value, click.Command) and listed:
                found[value.name] = f"{info.name}:{attribute}"
    return found


def test_commands_names_every_command_of_service_commands():
    # A command module added without its line in COMMANDS would be invisible.
    assert COMMANDS == _defined_commands()


def test_every_command_loads_with_config_and_guard():
    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        assert isinstance(cmd, click.Command) and cmd.name == name
        leaves = [cmd.get_command(ctx, n) for n in cmd.list_commands(ctx)] if isinstance(cmd, click.Group) else [cmd]
        for leaf in leaves:
            assert any("--config" in p.opts for p in leaf.params), f"{name} {leaf.name}: no --config"
            assert getattr(leaf.callback, "__guarded__", False), f"{name} {leaf.name}: no access guard"
    assert main.get_command(ctx, "no-such-command") is None


def test_help_lists_every_command_with_its_short_help():
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    section = result.output.split("Commands:\n", 1)[1]
    listed = {}
    for line in section.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            name, _, text = line.strip().partition(" ")
            listed[name] = text.strip()
    assert sorted(listed) == sorted(COMMANDS)
    assert [n for n, text in listed.items() if not text] == []
    assert listed["status"].startswith("How many documents are in each state")


def test_an_unknown_command_is_still_refused():
    result = CliRunner().invoke(main, ["stauts"])
    assert result.exit_code == 2 and "No such command 'stauts'" in result.output


def test_the_ledger_wraps_sqlite_utils_only_when_asked(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        # As when sqlite_utils.Database() wrapped it at open: a REPLACE that
        # deletes a row fires that row's delete triggers.
        assert ledger.conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 1
        assert "db" not in vars(ledger)
        assert ledger.db.conn is ledger.conn
        assert ledger.db["search_text"].detect_fts() == "search_text_fts"
        assert ledger.db is ledger.db
    with Ledger(tmp_path / "l.sqlite3", readonly=True) as ledger:
        assert ledger.conn.execute("PRAGMA recursive_triggers").fetchone()[0] == 1


# Modules a command need not load (issue 17, start-up): the delivery loop,
# the adapters' base, the invoice model's dataclasses and Decimal, the
# trail's check, the watcher's identities, zoneinfo without a
# maintenance_tz; for the listings also the health verdict and csv; for
# `quarantine` the 补录 machinery (hashlib); for `--version` the package
# metadata reader (email, zipfile...).
NOT_FOR_READING = ("agent.deliver.loop", "agent.deliver.base", "agent.model", "agent.trail", "agent.beneath",
                   "zoneinfo", "shlex", "random")
NOT_FOR = {
    ("status",): NOT_FOR_READING + ("csv",),
    ("status", "--json"): NOT_FOR_READING + ("csv",),
    ("list",): NOT_FOR_READING + ("agent.health", "csv"),
    ("show", "1"): NOT_FOR_READING + ("agent.health", "csv"),
    ("quarantine",): tuple(n for n in NOT_FOR_READING if n != "agent.model") + (
        "agent.applications", "agent.application_rules", "hashlib", "agent.health", "csv"),
    ("--version",): ("importlib.metadata", "email", "csv", "zipfile"),
}


@pytest.mark.parametrize("args", list(NOT_FOR))
def test_read_commands_load_only_what_they_print(agent_config, tmp_path, args):
    modules = run_cli(agent_config, tmp_path, *args)
    assert "service.cli" in modules
    assert loaded(modules, NOT_FOR[args]) == []


def test_status_still_reports_each_destination_breaker_and_maintenance(agent_config, tmp_path):
    # The gate status rebuilds (agent/deliver/gate.py) is the one the loop keeps.
    from agent.deliver import gate, loop

    assert loop.Gate is gate.Gate and loop.Decision is gate.Decision
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "service", "--config", str(agent_config), "status", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (erp,) = json.loads(done.stdout)["delivery"]["destinations"]
    assert erp["name"] == "erp" and erp["health"] == "ok" and erp["breaker"]["state"] == "closed"
    assert erp["maintenance_until"] is None


def test_version_is_the_installed_distributions():
    import importlib.metadata

    from service.cli import installed_version

    for name in ("fapiao-agent", "fapiao_agent", "click", "pytest", "sqlite-utils"):
        assert installed_version(name) == importlib.metadata.version(name)
    result = CliRunner().invoke(main, ["--version"], prog_name="fapiao-agent")
    assert result.exit_code == 0
    assert result.output == f"fapiao-agent, version {importlib.metadata.version('fapiao-agent')}\n"


def test_version_of_a_distribution_not_installed_is_an_error():
    from service.cli import installed_version

    with pytest.raises(RuntimeError, match="not installed"):
        installed_version("no-such-distribution-fapiao")


# Runs `python -m service ARGS` as the wrapper above does and writes whether
# the collector is enabled at exit and how many objects start-up froze.
GC_WRAPPER = """
import gc, json, runpy, sys
out = sys.argv[1]
sys.argv = ["fapiao-agent", *sys.argv[2:]]
try:
    runpy.run_module("service", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    with open(out, "w") as f:
        json.dump({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}, f)
"""


def test_the_collector_pauses_for_start_up_and_collects_while_the_command_runs(agent_config, tmp_path):
    # `run` and `ingest` are long: whatever start-up paused must be collecting
    # again when the command runs, with start-up's own objects set aside.
    out = tmp_path / "gc.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", GC_WRAPPER, str(out), "--config", str(agent_config), "list"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.exists(), done.stderr
    state = json.loads(out.read_text())
    assert state["enabled"] is True
    assert state["frozen"] > 1000


def test_importing_the_cli_leaves_the_collector_alone():
    # Only the program pauses it: a test or a tool importing service.cli does not.
    code = "import gc, service.cli; print(gc.isenabled(), gc.get_freeze_count())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "0"], done.stderr
