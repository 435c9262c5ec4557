"""The backup thread's round costs what changed, not what the target holds
(issue 17, "Backup at rclone's speed inside the daemon").

In an intake burst the daemon's backup thread runs a round every few new
files. Each round used to count, list or rewrite every row the target held
(the day's manifest rebuilt and re-encoded, the held/backlog counts, the
search for stale sidecars, the operators' actions since the snapshot): the
burst went quadratic and took a core from capture. Measured here in SQLite
VM instructions (deterministic, not timed): a round over 10x the held rows
must cost about the same. Plus the guarantees the cheaper round keeps: the
day's manifest is rewritten at most every MANIFEST_GAP_S during a burst and
is complete after a clean stop; the counts kept by triggers match the rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading
import time

from agent.backup.base import manifest_key, open_target
from agent.backup.identity import write_marker
from agent.capture import capture_bytes
from agent.config import load_config
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.backup import MANIFEST_GAP_S, BackupService, PutPool
from service.context import now_dt
from tests.integration.test_backup_ledger import write_config

POLICY = 'drill_weekday = "off"\nverify_interval_s = 86400\naction_snapshot_gap_s = 30\n'


def held_site(root, held: int):
    """A config with one file:// target "nas" and a ledger holding `held`
    documents (each with its event), all backed up today; the last ledger
    snapshot 60 s old and older than every event, so each round asks
    whether an operator acted since (none did: the events are the daemon's)."""
    (root / "nas").mkdir(parents=True)
    cfg = load_config(write_config(root, [{"name": "nas", "url": "file://nas"}], policy=POLICY))
    now = now_dt()
    with Ledger(cfg.ledger_path) as ledger, ledger.transaction() as c:
        stamp = utc(now - dt.timedelta(seconds=120))
        c.executemany("INSERT INTO documents (id, sha256, size, media_type, source_kind, received_at, "
                      "updated_at, state) VALUES (?, ?, 1000, 'pdf', 'scanner', ?, ?, 'delivered')",
                      [(i + 1, f"{i:064x}", stamp, stamp) for i in range(held)])
        c.executemany("INSERT INTO events (document_id, at, actor, to_state) VALUES (?, ?, 'daemon:intake', "
                      "'delivered')", [(i + 1, stamp) for i in range(held)])
        c.executemany("INSERT INTO backups (sha256, target, state, attempts, updated_at, done_at, size, queued_at, "
                      "sidecar_batch) VALUES (?, 'nas', 'done', 1, ?, ?, 1000, ?, 'sidecars/x.json')",
                      [(f"{i:064x}", stamp, stamp, stamp) for i in range(held)])
        c.execute("INSERT INTO backup_targets (name, updated_at, enqueued_doc_id, enqueued_event_id, "
                  "snapshot_event_id, last_snapshot_at, last_verify_at) VALUES ('nas', ?, ?, ?, 0, ?, ?)",
                  (stamp, held, held, utc(now - dt.timedelta(seconds=60)), stamp))
        c.execute("UPDATE backup_targets SET identity = 'held-site' WHERE name = 'nas'")
    # The target those rows were put on carries its marker (agent/backup/identity.py).
    write_marker(open_target(cfg.backups[0]), "held-site", now=now)
    return cfg


def burst(cfg, start: int, n: int) -> None:
    with Ledger(cfg.ledger_path) as ledger:
        for i in range(start, start + n):
            capture_bytes(ledger, Vault(cfg.vault_dir), os.urandom(500) + str(i).encode(), name=f"b{i}.pdf",
                          source_kind="email", source="mail", now=utc(now_dt()), actor="daemon:intake",
                          details={"subject": f"发票 {i}"})


def round_cost(cfg, held: int) -> int:
    """SQLite VM instructions (in thousands) of one TargetRunner round that
    backs up 5 new files, after a first round (which may look at everything once)."""
    service = BackupService(cfg)
    runner = service.runners[0]
    pool = PutPool(2, "cost")
    steps = [0]
    try:
        with Ledger(cfg.ledger_path) as ledger:
            vault, rng = Vault(cfg.vault_dir), random.Random(1)
            burst(cfg, 0, 5)
            assert runner._once(ledger, vault, rng, pool, [0]) > 0   # drained: it waits now
            burst(cfg, 5, 5)
            ledger.conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 1000)
            assert runner._once(ledger, vault, rng, pool, [0]) > 0
            ledger.conn.set_progress_handler(None, 1000)
            assert ledger.backup_target("nas")["objects"] == held + 10
            assert ledger.backup_target("nas")["backlog"] == 0
            assert ledger.backup_target("nas")["last_snapshot_at"] < utc(now_dt() - dt.timedelta(seconds=30))
    finally:
        pool.close()
    return steps[0]


def test_a_round_costs_the_same_whatever_the_target_already_holds(tmp_path):
    small = round_cost(held_site(tmp_path / "small", 1_000), 1_000)
    large = round_cost(held_site(tmp_path / "large", 10_000), 10_000)
    # Before: each of these read every held row, so 10x the rows was ~10x the work.
    assert large < small * 1.5 + 50, (small, large)


def test_manifests_are_spaced_out_in_a_burst_and_complete_after_a_clean_stop(tmp_path):
    cfg = held_site(tmp_path, 0)
    service = BackupService(cfg)
    runner = service.runners[0]
    key = manifest_key(now_dt().astimezone(dt.timezone.utc).date())
    pool = PutPool(2, "spaced")

    def listed() -> int:
        return len(json.loads(runner.target.get(key))["objects"])

    try:
        with Ledger(cfg.ledger_path) as ledger:
            vault, rng = Vault(cfg.vault_dir), random.Random(1)
            burst(cfg, 0, 3)
            runner._once(ledger, vault, rng, pool, [0])
            assert listed() == 3            # the first batch of a burst: at once
            burst(cfg, 3, 4)
            runner._once(ledger, vault, rng, pool, [0])
            assert ledger.backup_target("nas")["objects"] == 7
            assert listed() == 3            # within MANIFEST_GAP_S: not listed again...
            assert ledger.manifest_days("nas")  # ...but remembered as stale
            runner._manifests_at -= dt.timedelta(seconds=MANIFEST_GAP_S)
            burst(cfg, 7, 2)
            runner._once(ledger, vault, rng, pool, [0])
            assert listed() == 9 and not ledger.manifest_days("nas")
            runner._manifests_at = now_dt()
            burst(cfg, 9, 2)
            runner._once(ledger, vault, rng, pool, [0])
            assert listed() == 9
    finally:
        pool.close()
    burst(cfg, 11, 1)   # one not even backed up yet: the stop puts it too
    service.stopping.set()
    assert service.finish(60)["nas"].startswith("stored ")
    assert listed() == 12
    body = json.loads(runner.target.get(key))
    with Ledger(cfg.ledger_path) as ledger:
        assert not ledger.manifest_days("nas")
        rows = ledger.conn.execute("SELECT sha256, size, done_at FROM backups WHERE target = 'nas' "
                                   "ORDER BY done_at, sha256").fetchall()
    assert body["day"] == key[len("manifests/"):-len(".json")] and body["target"] == "nas"
    assert body["objects"] == [{"sha256": s, "size": n, "at": at} for s, n, at in rows]


def test_counts_kept_by_triggers_match_the_rows_through_every_change(tmp_path):
    cfg = held_site(tmp_path, 3)
    now = utc(now_dt())

    def counted(ledger) -> dict:
        rows = ledger.conn.execute("SELECT state, count(*), coalesce(sum(size), 0) FROM backups "
                                   "WHERE target = 'nas' GROUP BY state").fetchall()
        return {s: (n, b) for s, n, b in rows}

    def reported(ledger) -> dict:
        t = ledger.backup_target("nas")
        return {"done": (t["objects"], t["bytes"])} | {s: (n, None) for s, n in
                                                       (("pending", t["backlog"]), ("failed", t["failed"])) if n}

    def copies(ledger, targets: list[str], need: int) -> int:
        marks = ",".join("?" * len(targets))
        return ledger.conn.execute(f"SELECT count(*) FROM (SELECT sha256 FROM backups WHERE state = 'done' AND "
                                   f"target IN ({marks}) GROUP BY sha256 HAVING count(*) >= ?)",
                                   (*targets, need)).fetchone()[0]

    def check(ledger) -> None:
        real = counted(ledger)
        assert reported(ledger) == {s: (n, b if s == "done" else None) for s, (n, b) in real.items()
                                    if s == "done" or n}
        originals = ledger.conn.execute("SELECT count(DISTINCT sha256) FROM documents").fetchone()[0]
        for targets, min_copies in ((["nas"], 0), (["nas", "s3"], 0), (["nas", "s3"], 1), (["s3", "nas"], 2),
                                    (["s3"], 0)):
            got = ledger.backed_up_count(targets, min_copies)
            need = min_copies or len(targets)
            assert got["backed_up"] == copies(ledger, targets, need), (targets, min_copies)
            assert got["documents"] == originals

    with Ledger(cfg.ledger_path) as ledger:
        check(ledger)
        burst(cfg, 0, 4)
        ledger.enqueue_backups("nas", now=now)
        check(ledger)
        shas = [r[0] for r in ledger.conn.execute("SELECT sha256 FROM backups WHERE state = 'pending' "
                                                  "ORDER BY sha256")]
        ledger.backups_done("nas", [(shas[0], 700), (shas[1], 800)], now=now, day=now[:10], batch="b")
        check(ledger)
        ledger.backup_retry("nas", shas[2], now=now, error="gone", next_attempt_at=None, failed=True)
        ledger.requeue_backup("nas", shas[0], now=now)
        ledger.requeue_backup("nas", "f" * 64, now=now, size=5)
        check(ledger)
        ledger.backups_done("nas", [(shas[0], 900)], now=now, day=now[:10], batch="c")
        ledger.restore_documents("e" * 64, 42, None, target="nas", now=now, actor="test")
        check(ledger)
        # A second target holding some of the same originals, and one more.
        ledger.enqueue_backups("s3", now=now)
        ledger.backups_done("s3", [(shas[0], 900), (shas[3], 10), (f"{1:064x}", 1000)], now=now, day=now[:10])
        check(ledger)
        ledger.requeue_backup("s3", shas[3], now=now)
        burst(cfg, 4, 2)   # a new document whose original is a known one counts once
        with Ledger(cfg.ledger_path) as other:
            doc = other.conn.execute("SELECT * FROM documents ORDER BY id DESC LIMIT 1").fetchone()
        capture_bytes(ledger, Vault(cfg.vault_dir), Vault(cfg.vault_dir).path(doc["sha256"]).read_bytes(),
                      name="again.pdf", source_kind="email", source="mail", now=now, actor="test")
        ledger.enqueue_backups("nas", now=now)   # else the new ones are backlog not yet in rows
        check(ledger)
        # Rows of a target no longer configured: counted from the rows themselves.
        ledger.backups_done("gone", [(shas[1], 5)], now=now, day=now[:10])
        ledger.enqueue_backups("gone", now=now)
        ledger.backups_done("gone", [(shas[1], 5)], now=now, day=now[:10])
        check(ledger)
        assert ledger.backup_target("other")["objects"] == 0


def test_kicks_in_a_burst_coalesce_into_few_rounds(tmp_path):
    # The daemon kicks the backup thread after every reading result: a round
    # (and a sidecar batch, and two ledger commits) per kick made a burst
    # of 5,000 files thousands of tiny batches. Rounds now start at most
    # every ROUND_GAP_S: these 20 files, kicked one by one, take a few.
    cfg = held_site(tmp_path, 0)
    service = BackupService(cfg)
    runner = service.runners[0]
    service.start()
    try:
        for i in range(20):
            burst(cfg, i, 1)
            runner.kick()
            time.sleep(0.02)
        deadline = time.monotonic() + 60
        with Ledger(cfg.ledger_path) as ledger:
            while ledger.backup_target("nas")["objects"] < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ledger.backup_target("nas")["objects"] == 20
    finally:
        service.stop()
        service.join(30)
    assert not any(t.is_alive() for t in service.threads())
    batches = [o.key for o in runner.target.list("sidecars/")]
    assert 1 <= len(batches) <= 4, batches


def test_status_counts_cost_the_same_whatever_the_targets_hold(tmp_path):
    # `status` and the metrics ask how many originals meet min_copies and what
    # each target holds: counted from every row, that was seconds at 1M.
    def cost(root, held: int) -> int:
        cfg = held_site(root, held)
        steps = [0]
        with Ledger(cfg.ledger_path) as ledger:
            ledger.conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 1000)
            assert ledger.backed_up_count(["nas"], 0)["backed_up"] == held
            assert ledger.backed_up_count(["nas"], 0)["documents"] == held
            assert ledger.backup_target("nas")["objects"] == held
        return steps[0]

    small, large = cost(tmp_path / "small", 1_000), cost(tmp_path / "large", 10_000)
    assert large < small * 1.5 + 20, (small, large)
