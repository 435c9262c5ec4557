"""Sidecar batches (issue 17, "Backup at rclone's speed inside the daemon").

An original's sidecar is no longer a second object beside it: one batch
object per mirror step describes every original the step put, and the
ledger says "backed up" only once that batch is on the target. Restores
read batches, and still read the per-object sidecars of older buckets. A
backup process SIGKILLed between the originals and their batch leaves no
row saying "backed up" for an object the target cannot describe.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.backup.base import object_key, open_target, sidecar_key
from agent.backup.identity import check_identity
from agent.backup.mirror import mirror_step
from agent.backup.restore import restore
from agent.backup.sidecars import SIDECARS_PREFIX, put_batch, sidecars_on
from agent.config import load_config
from agent.ledger import Ledger
from agent.model import State
from agent.vault import Vault
from tests.integration.test_backup_ledger import T0, drain, ingest, write_config


@pytest.fixture
def site(tmp_path, samples_dir):
    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}])
    ingest(config, samples_dir, range(1, 7), tmp_path / "in")
    cfg = load_config(config)
    return {"config": config, "cfg": cfg, "nas": tmp_path / "nas", "target": open_target(cfg.backups[0])}


def originals_and_descriptions(nas: Path) -> tuple[list[str], list[str]]:
    keys = sorted(str(p.relative_to(nas)) for p in nas.rglob("*") if p.is_file())
    return ([k for k in keys if k.startswith("objects/") and not k.endswith(".json")],
            [k for k in keys if k.endswith(".json") and not k.startswith("manifests/")])


def test_one_batch_describes_a_step_instead_of_a_sidecar_per_original(site):
    with Ledger(site["cfg"].ledger_path) as ledger:
        vault = Vault(site["cfg"].vault_dir)
        shas = sorted(vault.iter_objects())
        out = mirror_step(ledger, vault, site["target"], now=T0, rng=random.Random(1), limit=64)
        assert out.put == len(shas) == 6 and not out.more
        originals, descriptions = originals_and_descriptions(site["nas"])
        # 6 originals and ONE description: 7 puts, not 12.
        assert originals == sorted(object_key(s) for s in shas)
        assert len(descriptions) == 1 and descriptions[0].startswith(SIDECARS_PREFIX), descriptions
        described = sidecars_on(site["target"])
        for sha in shas:
            assert described[sha] == json.loads(json.dumps(ledger.sidecar(sha), default=str))
            assert described[sha]["documents"][0]["state"] == "valid"
        # The ledger names the batch that describes each row.
        assert set(ledger.sidecar_batches("nas", shas).values()) == set(descriptions)


def test_a_step_writes_the_ledger_in_a_fixed_number_of_transactions(site):
    # However many objects a step puts (here from a real thread pool), the
    # ledger is written once to queue, once to record them, once for the manifests.
    with Ledger(site["cfg"].ledger_path) as ledger:
        check_identity(ledger, site["target"], now=T0)   # a target's first use records its identity, once
        begins = []
        ledger.conn.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None)
        with ThreadPoolExecutor(4) as pool:
            out = mirror_step(ledger, Vault(site["cfg"].vault_dir), site["target"], now=T0,
                              rng=random.Random(1), limit=64, transfer=pool.map)
        ledger.conn.set_trace_callback(None)
        assert out.put == 6
        assert len(begins) <= 3, begins


def test_a_changed_document_is_described_again_by_a_newer_batch_and_restored_so(site, tmp_path):
    with Ledger(site["cfg"].ledger_path) as ledger:
        vault = Vault(site["cfg"].vault_dir)
        drain(ledger, vault, site["target"])
        doc = ledger.list_documents(limit=0)[0]
        ledger.transition(doc.id, State.QUARANTINED, now="2026-05-01T08:01:00.000000Z", actor="test",
                          reason="held by a person")
        out = mirror_step(ledger, vault, site["target"], now=T0 + dt.timedelta(minutes=2), rng=random.Random(1))
        assert out.put == 0 and ledger.backup_target("nas")["stale_sidecars"] == 0
    originals, descriptions = originals_and_descriptions(site["nas"])
    assert len(originals) == 6 and len(descriptions) == 2   # the original is not put again
    assert sidecars_on(site["target"])[doc.sha256]["documents"][0]["state"] == "quarantined"
    # No snapshot: restore rebuilds every document from the batches, the newest winning.
    report = restore(site["target"], tmp_path / "restored" / "state", now=T0, actor="t")
    assert report.objects == 6 and report.recovered_documents == 6 and report.sidecars == 6, report
    with Ledger(tmp_path / "restored" / "state" / "ledger.sqlite3") as ledger:
        docs = {d.sha256: d for d in ledger.list_documents(limit=0)}
        # Read again (a sidecar is not ledger truth), but from the newest description.
        assert {d.state for d in docs.values()} == {State.CAPTURED}
        assert "its sidecar said quarantined" in ledger.events(docs[doc.sha256].id)[-1].reason
        assert len(set(ledger.sidecar_batches("nas", list(docs)).values())) == 2


def test_an_old_bucket_with_a_sidecar_beside_each_original_still_restores(site, tmp_path):
    # The layout before batches, written as that code wrote it: the original,
    # then its JSON sidecar beside it. One object is described again later
    # by a batch (the daemon upgraded): the batch wins.
    target = site["target"]
    with Ledger(site["cfg"].ledger_path) as ledger:
        vault = Vault(site["cfg"].vault_dir)
        shas = sorted(vault.iter_objects())
        for sha in shas:
            target.put(object_key(sha), vault.path(sha), sha)
            side = json.dumps(ledger.sidecar(sha), ensure_ascii=False, indent=1, sort_keys=True,
                              default=str).encode()
            target.put(sidecar_key(sha), side, hashlib.sha256(side).hexdigest())
        newer = json.loads(json.dumps(ledger.sidecar(shas[0]), default=str))
    newer["documents"][0]["state"] = "quarantined"
    put_batch(target, [(shas[0], None, newer)], now=T0 + dt.timedelta(days=1))
    report = restore(target, tmp_path / "restored" / "state", now=T0 + dt.timedelta(days=2), actor="t")
    assert report.objects == 6 and report.recovered_documents == 6 and not report.problems, report
    with Ledger(tmp_path / "restored" / "state" / "ledger.sqlite3") as ledger:
        docs = {d.sha256: d for d in ledger.list_documents(limit=0)}
        assert sorted(docs) == shas
        assert {d.state for d in docs.values()} == {State.CAPTURED}   # read again, from their descriptions
        assert "its sidecar said quarantined" in ledger.events(docs[shas[0]].id)[-1].reason
        assert "its sidecar said valid" in ledger.events(docs[shas[1]].id)[-1].reason


KILLER = textwrap.dedent("""
    import os, random, signal, sys, datetime as dt
    from agent.backup.base import open_target
    from agent.backup.mirror import mirror_step
    from agent.backup.sites import is_original
    from agent.ledger import Ledger
    from agent.vault import Vault

    state, nas, when = sys.argv[1:4]

    class KilledAt:
        # A real file target; this process is SIGKILLed at the first put
        # that describes originals (a sidecar of any layout), before or after it.
        def __init__(self, inner):
            self.inner, self.name, self.url = inner, inner.name, inner.url
        def put(self, key, data, sha256):
            if not is_original(key) and key != ".fapiao-agent-target" and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            self.inner.put(key, data, sha256)
            if not is_original(key) and key != ".fapiao-agent-target" and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
        def __getattr__(self, name):
            return getattr(self.inner, name)

    target = KilledAt(open_target({"name": "nas", "url": "file://" + nas}))
    with Ledger(os.path.join(state, "ledger.sqlite3")) as ledger:
        mirror_step(ledger, Vault(os.path.join(state, "vault")), target,
                    now=dt.datetime(2026, 5, 1, 8, tzinfo=dt.timezone.utc), rng=random.Random(1), limit=64)
    sys.exit(3)   # never reached: the kill comes first
""")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_backup_killed_between_originals_and_their_batch_never_says_backed_up_undescribed(site, when):
    cfg = site["cfg"]
    proc = subprocess.run([sys.executable, "-c", KILLER, str(cfg.state_dir), str(site["nas"]), when],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    target = site["target"]
    originals, _ = originals_and_descriptions(site["nas"])
    assert len(originals) == 6                    # the originals did reach the target
    with Ledger(cfg.ledger_path) as ledger:
        described = sidecars_on(target)
        held = list(ledger.done_backups("nas"))
        assert held == []                         # killed before the ledger heard of the batch
        assert len(described) == (6 if when == "after" else 0)
        # The next pass puts (idempotently) and describes them, then says so.
        drain(ledger, Vault(cfg.vault_dir), target)
        described = sidecars_on(target)
        held = sorted(ledger.done_backups("nas"))
        assert len(held) == 6 and set(held) <= set(described)
        for sha in held:
            assert target.head(object_key(sha)).sha256 == sha
            assert described[sha]["sha256"] == sha and described[sha]["documents"]
