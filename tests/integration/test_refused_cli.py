"""`fapiao-agent refused`: which files were not taken, and why (status only counts them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import load_config
from agent.ledger import Ledger
from tests.support.cli import default_config, run


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return default_config(tmp_path)


def test_refused_lists_each_file_with_its_reason_newest_first(cfg):
    with Ledger(load_config(cfg).ledger_path) as ledger:
        for i, (name, reason) in enumerate([("empty.pdf", "empty: only blank bytes"),
                                            ("发票\x1b[2J.lnk", "a symlink; not taken"),
                                            ("big.pdf", "600 MB is larger than the limit")]):
            ledger.record_refusal(source="/srv/scan", name=name, reason=reason, now=f"2026-12-05T0{i}:00:00Z")
    shown = run(cfg, "refused")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "when", "(local)"]
    assert [line.split()[0] for line in lines[1:]] == ["3", "2", "1"]
    assert "larger than the limit" in lines[1] and "big.pdf" in lines[1]
    assert "\x1b" not in shown.stdout  # a hostile name cannot drive the terminal
    cut = run(cfg, "refused", "--limit", "2")
    assert len(cut.stdout.splitlines()) == 3 and "2 of 3 shown; --limit 0 for all" in cut.stderr
    rows = [json.loads(line) for line in run(cfg, "refused", "--json", "--limit", "0").stdout.splitlines()]
    assert [r["name"] for r in rows] == ["big.pdf", "发票\x1b[2J.lnk", "empty.pdf"]
    assert rows[2]["reason"] == "empty: only blank bytes" and rows[2]["at"] == "2026-12-05T00:00:00Z"


def test_nothing_refused_says_so(cfg):
    with Ledger(load_config(cfg).ledger_path):
        pass
    r = run(cfg, "refused")
    assert r.exit_code == 0 and r.stdout == "" and "nothing was refused" in r.stderr
