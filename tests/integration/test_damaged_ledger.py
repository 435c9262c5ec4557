"""A ledger file cut short (a copy that stopped, a full disk) is named as
such by readers, with the way out, never blamed on a daemon not running:
the daemon refuses such a ledger too."""

from __future__ import annotations

import os

from agent.ledger import Ledger
from agent.ledger.damage import file_damage
from tests.support.cli import default_config, run


def _ledger_with_rows(path):
    with Ledger(path) as led:
        for i in range(400):
            led.record_refusal(source="/in", name=f"f{i}.bin", reason="unknown: " + "x" * 200,
                               now="2026-12-01T00:00:00.000000Z")


def test_a_ledger_cut_short_is_named_so_with_the_way_out(tmp_path):
    cfg = default_config(tmp_path)
    path = tmp_path / "state" / "ledger.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    _ledger_with_rows(path)
    assert file_damage(path) is None
    for side in ("-wal", "-shm"):   # as after a writing command's clean close
        path.with_name(path.name + side).unlink(missing_ok=True)
    os.truncate(path, path.stat().st_size // 2 + 100)
    assert "cut short" in file_damage(path)
    out = run(cfg, "status")
    assert out.exit_code == 2
    assert "cut short" in out.stderr and "backup restore" in out.stderr, out.stderr
    assert "start the daemon" not in out.stderr


def test_header_checks(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"")
    assert file_damage(p) == "it is empty"
    p.write_bytes(b"hello, not a database" * 10)
    assert "not an SQLite database" in file_damage(p)
    assert file_damage(tmp_path / "missing") is None
