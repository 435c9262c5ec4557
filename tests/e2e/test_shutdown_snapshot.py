"""A clean stop puts a last ledger snapshot on every backup target: an
operator's action made moments before SIGTERM (too soon for the snapshot
that follows an action, which waits out [backup_policy]
action_snapshot_gap_s after the last one) is in what `backup restore` brings back. A target that hangs
cannot hold the stop beyond [backup_policy] shutdown_snapshot_s, and says
so in an error line; the other targets get their snapshot all the same."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from agent.config import load_config
from agent.ledger.rows import parse_utc
from service.context import now_dt
from tests.e2e.daemon_harness import DaemonUnderTest, last_snapshot_at
from tests.support.audit import assert_ledger_sound

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
REASON = "作废发票，停机前刚处理"


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args], capture_output=True,
                       text=True, timeout=120, cwd=config.parent)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def drop_unnumbered(samples_dir: Path, folder: Path) -> None:
    # No invoice number: quarantined, for a person to act on.
    data = (samples_dir / SAMPLE).read_bytes().replace(b"00008006", b"")
    (folder.parent / ".held.xml").write_bytes(data)
    (folder.parent / ".held.xml").rename(folder / "held.xml")


def test_an_action_just_before_sigterm_is_in_the_restored_ledger(tmp_path, samples_dir):
    nas = tmp_path / "nas"
    nas.mkdir()
    site = tmp_path / "site"
    d = DaemonUnderTest(site, extra=f"""
[backup_policy]
snapshot_interval_s = 3600
probe_interval_s = 1.0

[[backup]]
name = "nas"
url = "file://{nas}"
""")
    drop_unnumbered(samples_dir, site / "scan")
    ledger_path = site / "state" / "ledger.sqlite3"
    d.start()
    try:
        held = d.wait_documents(1, timeout=60, settled=True)[0]
        assert held.state == "quarantined", (held.state, held.problems)
        first = d.wait_until(lambda: last_snapshot_at(ledger_path, "nas"), 30, "the snapshot taken at start")
        cli(d.config, "reject", str(held.id), "--reason", REASON, "--yes")
        # The premise: the snapshot that follows an action is not due yet.
        gap = load_config(d.config).backup_policy["action_snapshot_gap_s"]  # the default, 30 s
        assert (now_dt() - parse_utc(first)).total_seconds() < gap - 5
        assert last_snapshot_at(ledger_path, "nas") == first
    finally:
        assert d.stop() == 0
    before = cli(d.config, "audit", "export", "--since", "2000-01-01", "--json").stdout

    dest = tmp_path / "restored"
    cli(d.config, "backup", "restore", "--from", "nas", "--to", str(dest), "--json")
    after = cli(dest / "restored.toml", "audit", "export", "--since", "2000-01-01", "--json").stdout
    rejected = [e for e in json.loads(after)["events"] if e["to_state"] == "rejected"]
    assert [(e["document"], REASON in e["reason"]) for e in rejected] == [(held.id, True)]
    assert after == before
    assert_ledger_sound(dest / "restored.toml")
    assert any("ledger snapshot stored at shutdown" in line and "target=nas" in line for line in d.lines), d.lines[-10:]


def test_a_hanging_target_cannot_hold_the_stop_and_the_others_get_their_snapshot(tmp_path, samples_dir):
    # A real S3 endpoint that accepts connections and never answers: each
    # request waits out boto3's read timeout (60 s), again for each retry.
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(64)
    nas = tmp_path / "nas"
    nas.mkdir()
    site = tmp_path / "site"
    d = DaemonUnderTest(site, extra=f"""
[backup_policy]
snapshot_interval_s = 3600
probe_interval_s = 1.0
shutdown_snapshot_s = 3

[[backup]]
name = "nas"
url = "file://{nas}"

[[backup]]
name = "stuck"
url = "s3://bucket"
endpoint_url = "http://127.0.0.1:{black_hole.getsockname()[1]}"
access_key_id = "AKIDEXAMPLE"
secret_access_key = "not-a-real-secret"
""")
    d.config.chmod(0o600)
    drop_unnumbered(samples_dir, site / "scan")
    try:
        d.start()
        try:
            held = d.wait_documents(1, timeout=60, settled=True)[0]
            d.wait_until(lambda: last_snapshot_at(site / "state" / "ledger.sqlite3", "nas"), 30,
                         "the file target's first snapshot")
            cli(d.config, "reject", str(held.id), "--reason", REASON, "--yes")
            d.signal(15)
            # stop_timeout_s (10: the harness) for the threads stuck on the
            # black hole, then at most shutdown_snapshot_s (3): the exit comes
            # before the unit's TimeoutStopSec (30) would SIGKILL it.
            assert d.proc.wait(timeout=25) == 0
        finally:
            d.stop()
    finally:
        black_hole.close()
    errors = [line for line in d.lines if "no ledger snapshot at shutdown" in line]
    assert len(errors) == 1 and "target=stuck" in errors[0] and "shutdown_snapshot_s" in errors[0], errors
    assert any("ledger snapshot stored at shutdown" in line and "target=nas" in line for line in d.lines)
    dest = tmp_path / "restored"
    cli(d.config, "backup", "restore", "--from", "nas", "--to", str(dest), "--json")
    events = json.loads(cli(dest / "restored.toml", "audit", "export", "--since", "2000-01-01",
                            "--json").stdout)["events"]
    assert [(e["document"], REASON in e["reason"]) for e in events if e["to_state"] == "rejected"] == [(held.id, True)]
