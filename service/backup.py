"""The backup threads: one per [[backup]] target, each repeating the steps of
agent/backup/mirror.py: mirror due objects continuously, put a ledger
snapshot every snapshot_interval_s (with retention), and one within a
minute of an operator's action (amend, accept, reject...: any event the
daemon did not write itself; at most one per action_snapshot_gap_s, 30 s),
verify a sample every verify_interval_s, and run the weekly restore drill
(drill_weekday, drill_time: agent/backup/drill.py).
At a clean stop, `final_snapshot` puts one last snapshot on every target
whose last one misses an event, within shutdown_snapshot_s: the last
actions are never only on this disk, and a dead target cannot hold the stop.

A round costs what changed since the last, not what the target holds; in
an intake burst rounds start at most every ROUND_GAP_S (each sidecar batch
then carries many files), and a day's manifest, which lists the whole day,
is rewritten at most every MANIFEST_GAP_S (and at a clean stop).

A target that is down is probed with a growing wait (at most
probe_interval_s); each object tried meanwhile backs off (at most
retry_max_s), and the whole backlog is due again as soon as a put
succeeds. Wrong credentials or a missing bucket log ONE error line and
pause the target (visible in `backup status`); it is probed every
probe_interval_s and resumes by itself once fixed. Nothing here lets an
exception end the daemon.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import random
import threading
import time
from concurrent.futures import Future
from typing import Callable, Iterable

from agent.backup.base import BackupTarget, open_target
from agent.backup.drill import DrillCancelled, drill_due, restore_drill
from agent.backup.mirror import (TARGET_ERRORS, mirror_step, put_snapshot, snapshot_step, take_snapshot,
                                 verify_step)
from agent.backup.sites import layout_of, site_target
from agent.config import Config
from agent.errors import AgentError, Transient
from agent.ledger import Ledger, utc
from agent.ledger.rows import parse_utc
from agent.vault import Vault
from service import pace
from service.access import service_actor
from service.loops import Runner, RunnerGroup
from service.context import now_dt

log = logging.getLogger("fapiao.backup")
IDLE_POLL_S = 5.0
DEFAULT_WORKERS = 16         # puts in flight per target ([backup_policy] workers); S3 latency, not CPU, bounds a put
BATCH_PER_WORKER = 32        # a mirror step puts this many originals per worker, then one sidecar batch
DAEMON_ACTOR_PREFIX = "daemon:"   # events the daemon writes itself (context.actor("daemon")); all others are actions
CLOCK_SLACK_S = 1.0          # a last run this far ahead of now is only threads' clocks disagreeing
# Each rewrite of a day's manifest lists the whole day, so in a burst they
# are spaced out (the sidecar batches already name every object held, and a
# clean stop writes what is left): at most this late after the ledger.
MANIFEST_GAP_S = 300.0
# The daemon kicks every loop after each reading result: in a burst, a round
# per kick would put a sidecar batch (and write the ledger twice) for every
# few files. Kicks within this long of a round's start wait for the next.
ROUND_GAP_S = 1.0


class PutPool:
    """`workers` daemon threads that run one target's transfers: `map` is the
    builtin's, with that many calls in flight. Daemon threads, so a put hung
    on a dead mount never holds the process at exit."""

    def __init__(self, workers: int, name: str):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, name=f"{name}-put-{i}", daemon=True)
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, arg, future = job
            try:
                future.set_result(fn(arg))
            except BaseException as e:  # noqa: BLE001  handed to the caller of map
                future.set_exception(e)

    def map(self, fn: Callable, items: Iterable) -> list:
        """[fn(item) for item in items], run in the pool; the first exception is raised."""
        futures = []
        for item in items:
            future: Future = Future()
            self._jobs.put((fn, item, future))
            futures.append(future)
        return [f.result() for f in futures]

    def close(self) -> None:
        """Let every thread end once the queued work is done."""
        for _ in self.threads:
            self._jobs.put(None)


class TargetRunner(Runner):
    """One thread per backup target: it mirrors (its `workers` puts in
    flight through a PutPool, the ledger written by it alone, once per
    batch), and when the backlog is drained snapshots, verifies and drills."""

    def __init__(self, cfg: Config, target: BackupTarget, stopping: threading.Event):
        super().__init__(stopping)
        self.cfg, self.target = cfg, target
        self.name = target.name
        self.policy = cfg.backup_policy
        self._down = False
        self._manifests_at: dt.datetime | None = None   # when this thread last rewrote a manifest
        self._quiet_through = 0      # events up to this id were looked at: no operator's action among them
        self._future_named: set[str] = set()  # future-dated snapshots already logged this run
        self.workers = max(1, int(self.policy.get("workers") or DEFAULT_WORKERS))
        self.threads = [threading.Thread(target=self._run, name=f"backup-{self.name}", daemon=True)]
        # Read before any thread runs: read in a thread, a pause another
        # thread had just made was reported twice, as new and as left over.
        with Ledger(cfg.ledger_path) as ledger:
            if ledger.adopt_backup_layout(self.name, layout_of(target), now=utc(now_dt())):
                # Its marker stayed under the old layout: the first check adopts
                # the target again, as it holds our originals (agent/backup/identity.py).
                ledger.forget_target_identity(self.name, now=utc(now_dt()))
                log.warning(f"backup layout of {self.name} is now {layout_of(target)}: sidecars, manifests "
                            "and a ledger snapshot are put again under it (originals stay)",
                            extra={"target": self.name})
            if paused := ledger.backup_target(self.name)["paused_error"]:
                log.error(f"backup still paused: {paused}; it resumes by itself "
                          "once a probe succeeds", extra={"target": self.name})

    def _run(self) -> None:
        rng = random.Random()
        ledger = Ledger(self.cfg.ledger_path)
        vault = Vault(self.cfg.vault_dir)
        pool = PutPool(self.workers, f"backup-{self.name}")
        failures = [0]
        try:
            while not self.stopping.is_set():
                pace.yield_to_intake(self.stopping)  # capture goes first
                kicks, began = self._kicks, time.monotonic()
                try:
                    wait = self._once(ledger, vault, rng, pool, failures)
                except Exception:  # a bug must not end the thread; back off and go on
                    failures[0] += 1
                    log.exception("backup step failed; backing off", extra={"target": self.name})
                    wait = min(60.0, 2.0 ** failures[0])
                if wait:
                    gap = min(wait, ROUND_GAP_S - (time.monotonic() - began))
                    if gap > 0 and self.stopping.wait(gap):
                        break
                    self._sleep(kicks, wait - max(gap, 0.0))
        finally:
            pool.close()
            ledger.close()

    def _once(self, ledger: Ledger, vault: Vault, rng: random.Random, pool: PutPool,
              failures: list[int]) -> float:
        """One round; returns how long to wait before the next (0: go on now)."""
        now = now_dt()
        since = None if self._manifests_at is None else (now - self._manifests_at).total_seconds()
        manifests = since is None or not 0 <= since < MANIFEST_GAP_S   # < 0: the clock went back
        out = mirror_step(ledger, vault, self.target, now=now, rng=rng, transfer=pool.map, manifests=manifests,
                          limit=BATCH_PER_WORKER * self.workers, retry_max_s=float(self.policy["retry_max_s"]))
        if out.manifests:
            self._manifests_at = now
        if out.paused:
            if out.newly_paused:
                log.error(f"backup paused: {out.paused}; objects stay queued "
                          f"and it is tried again every {self.policy['probe_interval_s']:g}s",
                          extra={"target": self.name})
            return float(self.policy["probe_interval_s"])
        if out.resumed:
            log.info(f"backup target {self.name} works again; its backlog drains", extra={"target": self.name})
        if out.unavailable:
            with self.cond:
                was_down, self._down = self._down, True
            if not was_down:
                log.warning(f"backup target {self.name} is unavailable; its backlog waits",
                            extra={"target": self.name, "error": out.unavailable})
            failures[0] += 1
            return min(float(self.policy["probe_interval_s"]), 2.0 ** failures[0])
        failures[0] = 0
        if out.put or out.failed:
            with self.cond:
                was_down, self._down = self._down, False
            if was_down:
                # Objects tried during the outage wait no longer than the others.
                n = ledger.retry_backups_now(self.name, now=utc(now))
                log.info(f"backup target {self.name} is reachable again", extra={"target": self.name,
                                                                                   "retried_now": n})
            log.info("backed up", extra={"target": self.name, "put": out.put, "failed": out.failed})
        if out.more:
            return 0.0
        self._scheduled(ledger, vault, rng, now)
        return IDLE_POLL_S

    def _scheduled(self, ledger: Ledger, vault: Vault, rng: random.Random, now: dt.datetime) -> None:
        state = ledger.backup_target(self.name)
        p = self.policy
        try:
            if (_due(state["last_snapshot_at"], p["snapshot_interval_s"], now)
                    or (_due(state["last_snapshot_at"], p["action_snapshot_gap_s"], now) and self._acted(ledger))):
                # An operator's action (amend, accept, reject...) reaches the
                # target with the next round (IDLE_POLL_S), not the next hour.
                # Dated when it is taken, not when the round began: the
                # round's puts can take seconds, and an action made during
                # them is in this snapshot, which must not look older.
                future: list[str] = []
                key = snapshot_step(ledger, self.target, now=now_dt(), retention={
                    "hourly_days": p["keep_hourly_days"], "daily_days": p["keep_daily_days"],
                    "monthly_years": p["keep_monthly_years"]}, future=future)
                log.info("ledger snapshot stored", extra={"target": self.name, "key": key})
                self._name_future(future)
            if _due(state["last_verify_at"], p["verify_interval_s"], now) and state["objects"]:
                report = verify_step(ledger, vault, self.target, now=now, rng=rng,
                                     fraction=p["verify_fraction"], minimum=p["verify_minimum"])
                level = logging.WARNING if report.problems else logging.INFO
                log.log(level, "backup verified", extra={"target": self.name, "checked": report.checked,
                                                         "missing": report.missing,
                                                         "mismatch": report.mismatch,
                                                         "repaired": report.repaired})
        except TARGET_ERRORS as e:
            if ledger.pause_backup_target(self.name, str(e), now=utc(now)):
                log.error(f"backup paused: {e}", extra={"target": self.name})
        except Transient as e:
            ledger.backup_unreachable(self.name, str(e), now=utc(now))  # `status`: UNREACHABLE since
            log.warning("backup snapshot or verify postponed", extra={"target": self.name, "error": str(e)})
        except AgentError as e:
            log.error("backup snapshot or verify failed", extra={"target": self.name, "error": str(e)})
        self._drill(ledger, now)

    def _name_future(self, future: list[str]) -> None:
        # Retention never deletes a snapshot dated after now and restores pass
        # it over: said once a run for each, or it would sit there unseen.
        new = [name for name in future if name not in self._future_named]
        if new:
            self._future_named.update(new)
            log.warning(f"backup target {self.name} holds {len(new)} ledger snapshot(s) dated in the future "
                        "(taken while this host's clock was ahead, or the clock is behind now): retention "
                        "keeps them and restores pass them over; delete them from the target once the clock "
                        "is right", extra={"target": self.name, "snapshots": new})

    def _acted(self, ledger: Ledger) -> bool:
        # Whether an operator acted since the last snapshot, reading each
        # event once: those up to `_quiet_through` held no action.
        top = ledger.last_event_id()
        if ledger.actions_since_snapshot(self.name, machine_actor_prefix=DAEMON_ACTOR_PREFIX,
                                         after=self._quiet_through):
            return True
        self._quiet_through = top
        return False

    def _drill(self, ledger: Ledger, now: dt.datetime) -> None:
        # The weekly restore drill, in this target's thread 0 (never the
        # intake loop): it records its own outcome, failed or not.
        p = self.policy
        last = next(iter(ledger.last_restore_drills([self.name])), None)
        if not drill_due(last, ledger.first_backup_at(self.name), now=now, weekday=p["drill_weekday"],
                         at=p["drill_time"]):
            return
        try:
            report = restore_drill(ledger, self.target, now=now_dt, work_parent=self.cfg.state_dir,
                                   sample=int(p["drill_sample"]), cancelled=self.stopping.is_set,
                                   actor=service_actor())
        except DrillCancelled:
            return   # stopping: no record, so it is due again at the next start
        level = logging.INFO if report.ok else logging.ERROR if report.mismatch else logging.WARNING
        log.log(level, "restore drill passed" if report.ok else f"restore drill failed: {report.reasons[0]}",
                extra={"target": self.name, "sampled": report.sampled, "failed": report.failed,
                       "snapshot": report.snapshot, "seed": report.seed})


def fleet_site(cfg: Config) -> str | None:
    """This site's name when [fleet] is on (its backups then live under
    sites/<site>/ of each target), else None (the layout of a lone agent)."""
    return cfg.fleet.get("site") if cfg.fleet and cfg.fleet.get("url") else None


def open_backup(cfg: Config, entry: dict) -> BackupTarget:
    """The target of a [[backup]] entry as this agent uses it: as its site of
    a shared target when [fleet] is on (agent/backup/sites.py), else as it is.
    Raises ConfigError like `open_target`."""
    return site_target(open_target(entry), fleet_site(cfg))


def _due(last: str | None, interval_s: float, now: dt.datetime) -> bool:
    # A last run in the future means the wall clock went back since: run now,
    # rather than skip snapshots and verification for the length of the jump.
    if last is None:
        return True
    elapsed = (now - parse_utc(last)).total_seconds()
    return elapsed >= interval_s or elapsed < -CLOCK_SLACK_S


class BackupService(RunnerGroup):
    """All backup target threads of one config."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        for entry in cfg.backups:
            try:
                target = open_backup(cfg, entry)
            except AgentError as e:
                log.error(f"backup target {entry.get('name')!r} is not started: {e}",
                          extra={"target": entry.get("name")})
                continue
            self.runners.append(TargetRunner(cfg, target, self.stopping))

    def start(self) -> "BackupService":
        """Start every target's threads; returns self."""
        for r in self.runners:
            r.start()
        if self.runners:
            log.info("backup started", extra={"targets": ",".join(r.name for r in self.runners)})
        return self

    def finish(self, timeout: float) -> dict[str, str]:
        """The last ledger snapshot, at a clean stop (after `stop` and
        `join`): one consistent copy, put on every target whose last snapshot
        misses an event, all targets at once; then, in what is left of
        `timeout`, the objects still waiting for each target. Returns within
        `timeout` seconds whatever the targets do (a put still running then
        is left behind; its thread dies with the process). Every target's
        outcome is logged, an error line for each whose snapshot failed or
        did not finish, and returned by name: "stored KEY", "up to date", or
        what went wrong."""
        outcome: dict[str, str] = {}
        if not self.runners:
            return outcome
        if timeout <= 0:
            log.warning("no ledger snapshot at shutdown ([backup_policy] shutdown_snapshot_s = 0): "
                        "actions since the last one are only on this disk")
            return outcome
        deadline = time.monotonic() + timeout
        done = threading.Event()
        puts: list[threading.Thread] = []
        threading.Thread(target=self._final, args=(outcome, puts, done, deadline), name="backup-final",
                         daemon=True).start()
        done.wait(timeout)
        for t in list(puts):  # the targets run side by side: wait for what is left of the budget
            t.join(max(0.0, deadline - time.monotonic()))
        for r in self.runners:
            result = outcome.setdefault(r.name, f"not finished within shutdown_snapshot_s = {timeout:g} s")
            if result.startswith("stored "):
                log.info("ledger snapshot stored at shutdown", extra={"target": r.name, "key": result[7:]})
            elif result != "up to date":
                log.error("no ledger snapshot at shutdown: the last actions are only on this disk until "
                          "the next start", extra={"target": r.name, "error": result})
        return dict(outcome)

    def _final(self, outcome: dict[str, str], puts: list[threading.Thread], done: threading.Event,
               deadline: float) -> None:
        # In a thread: a huge ledger, or a put on a dead mount, must not
        # hold the stop; `finish` stops waiting at its deadline.
        try:
            with Ledger(self.cfg.ledger_path) as ledger:
                behind = {r.name for r in self.runners if ledger.snapshot_behind(r.name)}
                now = now_dt()
                held, data = take_snapshot(ledger, now=now) if behind else (0, b"")
            for r in self.runners:
                t = threading.Thread(target=self._last_puts, name=f"backup-final-{r.name}", daemon=True,
                                     args=(r.target, (held, data) if r.name in behind else None, now,
                                           outcome, deadline))
                t.start()
                puts.append(t)
        except Exception as e:  # the snapshot itself: every target misses it
            for r in self.runners:
                outcome.setdefault(r.name, f"cannot snapshot the ledger: {type(e).__name__}: {e}")
        finally:
            done.set()

    def _last_puts(self, target: BackupTarget, snapshot: tuple[int, bytes] | None, now: dt.datetime,
                   outcome: dict[str, str], deadline: float) -> None:
        # The snapshot first: it holds the operators' actions. No retention
        # here (listing and deleting wait for the next scheduled snapshot).
        # Then the objects still due, batch by batch until the deadline, so
        # the snapshot's documents are there too when it is restored.
        try:
            with Ledger(self.cfg.ledger_path) as ledger:
                if snapshot is None:
                    outcome[target.name] = "up to date"
                else:
                    outcome[target.name] = "stored " + put_snapshot(ledger, target, *snapshot, now=now,
                                                                    prune=False)
                vault, rng = Vault(self.cfg.vault_dir), random.Random()
                workers = max(1, int(self.cfg.backup_policy.get("workers") or DEFAULT_WORKERS))
                pool = PutPool(workers, f"backup-final-{target.name}")
                try:
                    while time.monotonic() < deadline:
                        out = mirror_step(ledger, vault, target, now=now_dt(), rng=rng, transfer=pool.map,
                                          limit=BATCH_PER_WORKER * workers,
                                          retry_max_s=float(self.cfg.backup_policy["retry_max_s"]))
                        if not out.more or out.unavailable or out.paused:
                            break
                finally:
                    pool.close()
        except Exception as e:  # noqa: BLE001  reported by `finish`, never raised at shutdown
            outcome.setdefault(target.name, f"{type(e).__name__}: {e}")
