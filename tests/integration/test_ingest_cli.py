"""`fapiao-agent ingest`: idempotent, and one clear line per bad file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.config import load_config
from agent.defaults import DEFAULT_CONFIG
from agent.ledger import Ledger
from service.cli import main


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return path


def run(cfg: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)


def status(cfg: Path) -> dict:
    return json.loads(run(cfg, "status", "--json").output)


def test_ingest_twice_gives_one_document_per_content(cfg, tmp_path, samples_dir):
    src = tmp_path / "scans"
    src.mkdir()
    xml = (samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes()
    (src / "a.xml").write_bytes(xml)
    (src / "copy-of-a.xml").write_bytes(xml)
    (src / "sub").mkdir()
    (src / "sub" / "b.xml").write_bytes((samples_dir / "kaihu8766-netizen__invoice-precheck/official-gd-special.xml").read_bytes())
    first = run(cfg, "ingest", str(src))
    assert first.exit_code == 0, first.output
    assert "2 new, 1 already known, 0 failed" in first.output
    second = run(cfg, "ingest", str(src))
    assert "0 new, 3 already known, 0 failed" in second.output
    counts = status(cfg)["states"]
    assert sum(counts.values()) == 2
    shown = json.loads(run(cfg, "show", "1", "--json").output)
    assert [Path(s["original_path"]).name for s in shown["sources"]] == ["a.xml", "copy-of-a.xml", "a.xml", "copy-of-a.xml"]
    assert shown["fields"]["number"] == "00008006"
    assert shown["events"][0]["to_state"] == "captured"


def test_special_files_each_get_a_line_and_the_batch_goes_on(cfg, tmp_path, samples_dir):
    src = tmp_path / "drop"
    src.mkdir()
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    (src / "dangling").symlink_to(tmp_path / "nowhere")
    (src / "loop").symlink_to(src / "loop")
    (src / "good.xml").write_bytes((samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes())
    try:
        result = run(cfg, "ingest", str(src), str(tmp_path / "absent.pdf"))
    finally:
        sock.close()
    assert result.exit_code == 1
    out = result.output
    assert "pipe: is a FIFO (named pipe), not a regular file" in out
    assert "sock: is a socket, not a regular file" in out
    assert "dangling: broken symlink" in out
    assert "loop: a symlink loop (it leads back to itself)" in out
    assert "absent.pdf: no such file or folder" in out
    assert "1 new, 0 already known, 5 failed" in out
    assert sum(status(cfg)["states"].values()) == 1


def test_symlink_inside_a_folder_is_not_followed(cfg, tmp_path, samples_dir):
    outside = tmp_path / "secret.xml"
    outside.write_bytes((samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes())
    src = tmp_path / "drop"
    src.mkdir()
    (src / "link.xml").symlink_to(outside)
    result = run(cfg, "ingest", str(src))
    assert "link.xml: is a symlink; symlinks in watched folders are not followed" in result.output
    assert sum(status(cfg)["states"].values()) == 0


def without_dac_override() -> list[str]:
    """A command prefix that drops the capabilities that let root read anything."""
    if os.geteuid() != 0:
        return []  # an ordinary user is already bound by file permissions
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) is needed to drop root's DAC override")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps]


def test_unreadable_file_and_folder_each_get_a_line(tmp_path, samples_dir, cfg):
    src = tmp_path / "drop"
    (src / "locked").mkdir(parents=True)
    (src / "locked" / "x.xml").write_text("<x/>")
    (src / "secret.xml").write_text("<x/>")
    (src / "ok.xml").write_bytes((samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes())
    os.chmod(src / "secret.xml", 0o000)
    os.chmod(src / "locked", 0o000)
    r = subprocess.run([*without_dac_override(), sys.executable, "-m", "service", "--config", str(cfg),
                        "ingest", str(src)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "secret.xml: permission denied" in r.stderr
    assert "locked: Permission denied (folder skipped)" in r.stderr
    assert "1 new, 0 already known, 2 failed" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_is_refused_without_being_opened(cfg, tmp_path):
    src = tmp_path / "drop"
    src.mkdir()
    try:
        os.mknod(src / "dev", 0o600 | __import__("stat").S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("this container may not create device nodes")
    result = run(cfg, "ingest", str(src))
    assert "dev: is a character device, not a regular file" in result.output
    assert result.exit_code == 1


def test_config_may_follow_the_command(cfg):
    Ledger(load_config(cfg).ledger_path).close()  # `status` reads a ledger, it never creates one
    before = CliRunner().invoke(main, ["--config", str(cfg), "status", "--json"])
    after = CliRunner().invoke(main, ["status", "--json", "--config", str(cfg)])
    assert after.exit_code == 0, after.output
    assert json.loads(after.output)["ledger"] == json.loads(before.output)["ledger"]
