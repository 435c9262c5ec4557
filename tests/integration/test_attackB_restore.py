"""Attack B, findings 3, 4 and 6, on real folders: what `backup restore` (and
the drill) make of a target that lost originals, holds a snapshot from a
clock that was ahead, or holds a forged sidecar batch."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from agent.backup.base import object_key, open_target
from agent.backup.drill import restore_drill
from agent.backup.mirror import snapshot_step
from agent.backup.restore import restore
from agent.backup.snapshot import snapshots_to_delete
from agent.config import load_config
from agent.ledger import Ledger
from agent.vault import Vault
from tests.integration.test_backup_ledger import cli, drain, ingest, write_config

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
LATER = T0 + dt.timedelta(hours=1)


@pytest.fixture
def site(tmp_path, samples_dir):
    """A file target holding 3 originals the last snapshot knows and 2
    captured after it (described only by their sidecar batches)."""
    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}])
    cfg = load_config(config)
    nas = open_target(cfg.backups[0])
    ingest(config, samples_dir, range(1, 4), tmp_path / "in1")
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), nas)
        snapshot_step(ledger, nas, now=T0)
        old = {d.sha256 for d in ledger.list_documents(limit=0)}
    ingest(config, samples_dir, range(4, 6), tmp_path / "in2")
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), nas, now=T0 + dt.timedelta(minutes=5))
        new = sorted({d.sha256 for d in ledger.list_documents(limit=0)} - old)
    return {"config": config, "cfg": cfg, "nas": nas, "root": tmp_path, "old": sorted(old), "new": new}


def _object_file(site, sha: str) -> Path:
    return site["root"] / "nas" / object_key(sha)


def _audit(config: Path) -> tuple[int, str]:
    result = cli(config, "audit", "ledger")
    return result.exit_code, result.output


# -- finding 3: originals that did not come back -------------------------------------


def test_originals_after_the_snapshot_missing_or_corrupt_are_named_kept_and_fail_the_restore(site):
    gone, corrupt = site["new"]
    _object_file(site, gone).unlink()
    _object_file(site, corrupt).write_bytes(b"garbage")
    out = site["root"] / "r1"
    result = cli(site["config"], "backup", "restore", "--from", "nas", "--to", str(out))
    assert result.exit_code == 1, result.output
    problems = [line for line in result.output.splitlines() if "problem:" in line]
    assert any(gone in p and "not on the target" in p for p in problems), result.output
    assert any(corrupt in p and "do not match" in p for p in problems), result.output
    with Ledger(out / "state" / "ledger.sqlite3") as ledger:
        kept = {d.sha256: d for d in ledger.list_documents(limit=0)}
        for sha in (gone, corrupt):
            assert kept[sha].state == "quarantined"
            assert [p["code"] for p in kept[sha].problems] == ["original-missing"]
        assert ledger.backup_target("nas")["objects"] == 3     # not counted as held
        ids = {kept[gone].id, kept[corrupt].id}
    code, text = _audit(out / "restored.toml")
    assert code != 0 and "2 violations: object-missing 2" in text, text
    assert all(f"object-missing  document {i}:" in text for i in ids), text


def test_an_original_the_snapshot_knows_but_the_target_lost_is_named_and_fails_the_restore(site):
    lost = site["old"][0]
    _object_file(site, lost).unlink()
    out = site["root"] / "r2"
    result = cli(site["config"], "backup", "restore", "--from", "nas", "--to", str(out), "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["missing"] == 1 and len(report["problems"]) == 1 and lost in report["problems"][0]
    with Ledger(out / "state" / "ledger.sqlite3") as ledger:
        doc = next(d for d in ledger.list_documents(limit=0) if d.sha256 == lost)
    code, text = _audit(out / "restored.toml")
    assert code != 0 and f"object-missing  document {doc.id}:" in text, text


def test_a_whole_restore_exits_0(site):
    result = cli(site["config"], "backup", "restore", "--from", "nas", "--to", str(site["root"] / "r3"))
    assert result.exit_code == 0, result.output
    assert "problem" not in result.output


# -- finding 4: a snapshot from a clock that was ahead -------------------------------


def test_a_snapshot_dated_in_the_future_is_passed_over_by_restore_and_fails_the_drill(site):
    cfg, nas = site["cfg"], site["nas"]
    ahead = T0 + dt.timedelta(days=4 * 365)
    with Ledger(cfg.ledger_path) as ledger:
        future = snapshot_step(ledger, nas, now=ahead)              # the clock was 4 years ahead, once
        genuine = snapshot_step(ledger, nas, now=T0 + dt.timedelta(minutes=30))
    report = restore(nas, site["root"] / "r4" / "state", now=LATER, actor="test")
    assert report.snapshot == genuine and report.future_snapshots == [future]
    result = cli(site["config"], "backup", "restore", "--from", "nas", "--to", str(site["root"] / "r6"))
    assert "passed over ledger snapshot " + future in result.output, result.output
    # Asked for by time, it is still there to be had.
    report = restore(nas, site["root"] / "r5" / "state", now=LATER, actor="test", at=ahead)
    assert report.snapshot == future
    with Ledger(cfg.ledger_path) as ledger:
        drill = restore_drill(ledger, nas, now=lambda: LATER, work_parent=site["root"], seed=1)
    assert drill.snapshot == genuine and not drill.ok
    assert any(future in r and "dated after now" in r for r in drill.reasons), drill.reasons
    # Retention cannot tell it from the genuine snapshot of a clock now
    # behind: it keeps it, but names it.
    from agent.backup.snapshot import future_snapshots
    names = [i.key for i in nas.list("ledger/")]
    assert future in names and future not in snapshots_to_delete(names, LATER)
    assert future_snapshots(names, LATER) == [future]


def test_the_mirror_names_a_future_dated_snapshot_it_keeps_once_a_run(site, caplog):
    import logging
    import threading

    from service.backup import TargetRunner

    cfg, nas = site["cfg"], site["nas"]
    with Ledger(cfg.ledger_path) as ledger:
        ahead = snapshot_step(ledger, nas, now=T0 + dt.timedelta(days=400))   # the clock was ahead, once
        seen: list[str] = []
        snapshot_step(ledger, nas, now=T0 + dt.timedelta(minutes=30), future=seen)
    assert seen == [ahead]
    runner = TargetRunner(cfg, nas, threading.Event())
    with caplog.at_level(logging.WARNING, logger="fapiao.backup"):
        runner._name_future(seen)
        runner._name_future(seen)          # the next snapshot of the run: said once
    said = [r for r in caplog.records if "dated in the future" in r.getMessage()]
    assert len(said) == 1 and said[0].snapshots == [ahead], caplog.text


# -- finding 6: a forged sidecar batch -----------------------------------------------


def _forge(site, stamp: str, states: list[str]) -> str:
    batches = sorted((site["root"] / "nas" / "sidecars").glob("*.json"))
    body = json.loads(batches[-1].read_text())
    assert sorted(o["sha256"] for o in body["objects"]) == site["new"]
    for o, state in zip(sorted(body["objects"], key=lambda o: o["sha256"]), states):
        for d in o["sidecar"]["documents"]:
            d.update(state=state, fields={"note": "forged"}, invoice_number="99999999",
                     invoice_key="forged-key")
    key = f"sidecars/{stamp}-deadbeefdeadbeef.json"
    (site["root"] / "nas" / key).write_text(json.dumps(body))
    return key


def test_a_batch_dated_after_now_is_ignored_and_named(site):
    key = _forge(site, "20991231T000000.000000Z", ["rejected", "bogus-state"])
    report = restore(site["nas"], site["root"] / "r7" / "state", now=LATER, actor="test")
    assert any(key in p and "dated after now" in p for p in report.problems), report.problems
    with Ledger(site["root"] / "r7" / "state" / "ledger.sqlite3") as ledger:
        docs = {d.sha256: d for d in ledger.list_documents(limit=0)}
    assert {docs[s].state for s in site["new"]} == {"captured"}
    assert {docs[s].invoice_number for s in site["new"]} == {None}


def test_a_forged_batch_sets_no_state_outside_the_model_no_rejection_and_no_invoice(site):
    # Dated among the genuine ones (now is after it): read, but not believed.
    _forge(site, "20260501T081000.000000Z", ["rejected", "bogus-state"])
    rejected, bogus = site["new"]
    out = site["root"] / "r8"
    result = cli(site["config"], "backup", "restore", "--from", "nas", "--to", str(out), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert any(bogus in p and "'bogus-state'" in p for p in report["problems"]), report["problems"]
    assert any(rejected in p and "rejected" in p for p in report["problems"]), report["problems"]
    with Ledger(out / "state" / "ledger.sqlite3") as ledger:
        docs = {d.sha256: d for d in ledger.list_documents(limit=0)}
        assert docs[bogus].state == "captured"             # the daemon reads it again
        assert docs[rejected].state == "quarantined"       # held for a person, never delivered
        assert [p["code"] for p in docs[rejected].problems] == ["restored-rejection"]
        for sha in site["new"]:
            assert (docs[sha].invoice_number, docs[sha].invoice_key, docs[sha].fields) == (None, None, None)
    code, text = _audit(out / "restored.toml")
    assert code == 0, text
