"""Operators' actions survive a restore: a real daemon backs up to a
file:// target with hourly snapshots; an amend and a reject made through the
CLI reach the target in a snapshot of their own within a minute; after the
state is lost and restored, `audit export` is what it was, byte for byte,
and the chain verifies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from agent.ledger import Ledger, utc
from service.context import now_dt
from tests.e2e.daemon_harness import DaemonUnderTest

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
REPO = Path(__file__).resolve().parent.parent.parent


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args], capture_output=True,
                       text=True, timeout=120, cwd=config.parent)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_amend_and_reject_survive_a_restore_from_a_file_target(tmp_path, samples_dir):
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
    xml = (samples_dir / SAMPLE).read_bytes()
    d.start()
    try:
        for n, variant in enumerate(("first", "second", "third")):
            # No invoice number: quarantined, for a person to amend or reject.
            data = (xml.replace(b"00008006", b"") if n < 2 else xml) + f"<!-- {variant} -->".encode()
            tmp = site / f".{variant}.xml"
            tmp.write_bytes(data)
            tmp.rename(site / "scan" / f"{variant}.xml")
        docs = d.wait_documents(3, timeout=60, settled=True)
        held = sorted(doc.id for doc in docs if doc.state == "quarantined")
        assert len(held) == 2, [(doc.id, doc.state, doc.problems) for doc in docs]

        cli(d.config, "amend", str(held[0]), "--set", "number=00008006", "--reason", "补录：号码见纸质发票")
        cli(d.config, "reject", str(held[1]), "--reason", "作废发票，供应商已重开", "--yes")
        acted = utc(now_dt())

        def snapshot_after_the_actions():
            with Ledger(site / "state" / "ledger.sqlite3") as ledger:
                return (ledger.backup_target("nas")["last_snapshot_at"] or "") > acted

        d.wait_until(snapshot_after_the_actions, 90, "a snapshot holding the operators' actions")
    finally:
        d.stop()
    before = cli(d.config, "audit", "export", "--since", "2000-01-01", "--json").stdout
    events = json.loads(before)["events"]
    assert any(e["to_state"] == "rejected" and "作废发票" in (e["reason"] or "") for e in events)
    assert any("补录" in (e["reason"] or "") for e in events)
    shutil.rmtree(site / "state")

    dest = tmp_path / "restored"
    cli(d.config, "backup", "restore", "--from", "nas", "--to", str(dest), "--json")
    restored = dest / "restored.toml"
    after = cli(restored, "audit", "export", "--since", "2000-01-01", "--json").stdout
    assert after == before
    assert json.loads(cli(restored, "audit", "verify", "--json").stdout)["breaks"] == []
