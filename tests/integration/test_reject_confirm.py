"""`reject` asks on a terminal: a real pseudo-terminal as stdin, the real
CLI process; "n" leaves the document as it was, "y" rejects it. Without a
terminal and without --yes it refuses at once (never hangs)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.integration.test_amend_e2e import FAKE_SELLER, write_config

REPO = Path(__file__).resolve().parents[2]


def _cli(cfg: Path, *args: str, stdin=None, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "service", "--config", str(cfg), *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cfg.parent, **kw)


def _state(cfg: Path) -> str:
    out, _ = _cli(cfg, "show", "1", "--json").communicate(timeout=60)
    return json.loads(out)["state"]


def _on_a_terminal(cfg: Path, answer: bytes) -> tuple[int, str]:
    master, slave = pty.openpty()
    try:
        p = _cli(cfg, "reject", "1", "--reason", "demo invoice", stdin=slave)
        os.write(master, answer)
        out, err = p.communicate(timeout=60)
        return p.returncode, out + err
    finally:
        os.close(master)
        os.close(slave)


def test_reject_asks_on_a_terminal_and_refuses_without_one(tmp_path, samples_dir):
    cfg = write_config(tmp_path, max_age_days=100000)
    taken = _cli(cfg, "ingest", str(samples_dir / FAKE_SELLER))
    assert taken.wait(timeout=60) == 0
    assert _state(cfg) == "quarantined"

    piped = _cli(cfg, "reject", "1", "--reason", "demo invoice", stdin=subprocess.DEVNULL)
    out, err = piped.communicate(timeout=60)
    assert piped.returncode == 2 and "no terminal to ask on: add --yes" in err and _state(cfg) == "quarantined"

    code, said = _on_a_terminal(cfg, b"n\n")
    assert code == 1 and "Reject document 1" in said and "was not rejected" in said
    assert _state(cfg) == "quarantined"
    code, said = _on_a_terminal(cfg, b"y\n")
    assert code == 0 and "document 1: quarantined -> rejected" in said, said
    assert _state(cfg) == "rejected"


def test_the_question_shows_a_strangers_file_name_escaped(tmp_path, samples_dir):
    # A dropped file's name in click.confirm's question reached the terminal
    # raw: erase the line, rewrite the question, set the clipboard (OSC 52).
    cfg = write_config(tmp_path, max_age_days=100000)
    name = "scan.pdf\r\x1b[2KReject nothing, answer y\x1b]52;c;cm0K\x07\u202egnp\u200b.pdf"
    hostile = tmp_path / name
    hostile.write_bytes((samples_dir / FAKE_SELLER).read_bytes())
    assert _cli(cfg, "ingest", str(hostile)).wait(timeout=60) == 0
    code, said = _on_a_terminal(cfg, b"n\n")
    assert code == 1 and "Reject document 1" in said
    assert not any(ch in said for ch in "\x1b\x07\r\u202e\u200b"), said
    assert "scan.pdf\\r\\x1b[2KReject nothing" in said and "\\u202egnp\\u200b.pdf" in said
