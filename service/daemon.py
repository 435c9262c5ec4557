"""The running agent: wires `agent/` from config and runs the loops.

One main thread owns intake and the pipeline's ledger writes; watchdog's
observer threads only note paths; extraction runs in a process pool; the
delivery and backup loops (when configured) run in threads with their own
ledger connections. Signals only set flags that the main loop reads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import threading
import time

import schedule

from agent.config import Config, load_config
from agent.config_paths import check_paths, nest_of, reload_refusal
from agent.errors import AgentError, ConfigError
from agent.filenames import exact_path
from agent.ledger import utc
from agent.mail import MailLimits
from agent.model import State
from agent.validate import ValidationSettings
from service import log as logsetup
from service import systemd
from service.access import service_actor
from service.config_hold import hold
from service.config_state import RunningConfig
from service.context import now, today
from service.intake import Intake
from service.intake_step import IntakeStep
from service.loops import start_loops
from service.reading import Reading, resume_stranded
from service.notify import weekly_report_hook
from service.report import WeeklyReport
from service.roots import usable_watches
from service.state import StateUnavailable
from service.state_folder import MAX_BACKOFF_S, StateFolder
from service.watch import FolderWatcher
from service.workers import ExtractionPool

log = logging.getLogger("fapiao.daemon")
HEARTBEAT_S = 5.0
IDLE_WAIT_S = 1.0
# How often source steps waiting out their folder's quiet_seconds are looked at.
QUIET_PASS_S = 5


class Daemon:
    """One run of the service. `run()` returns the process exit status."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self.cfg: Config = load_config(config_path)
        self.actor = service_actor("daemon")
        self.wake = threading.Event()
        self.stopping = False
        self.reload_requested = False
        self.state_folder = StateFolder(self.cfg, stopping=lambda: self.stopping)
        self._last_beat = 0.0
        self.refused_roots: list = []  # configured folders not watched, with why (status shows them)
        self._apply_config(self.cfg)
        # What the heartbeat says of the config run (service/config_state.py).
        self.running = RunningConfig(self.cfg, at=now())
        self.config_hold: int | None = None

    def _apply_config(self, cfg: Config) -> None:
        self.cfg = cfg
        # The watches whose waiting moves/deletes are carried out: never one in
        # a nest (not watched), as an outer one would delete what the inner one
        # moved; its steps are closed as no longer watched, the files kept. A
        # folder merely missing waits. Decided with the config, as what is
        # watched is (service/roots.py), not at each recorded batch.
        self.stepping_watches = [w for w in cfg.watches if nest_of(cfg, w) is None]
        self.settings = ValidationSettings.from_config(cfg.validation, cfg.company)
        self.destinations = [d["name"] for d in cfg.destinations]
        self.mail_limits = MailLimits.from_config(cfg.mail)

    @property
    def intake_paused(self) -> str | None:
        """Why intake is paused (the vault cannot take files), or None."""
        step = getattr(self, "intake_step", None)
        return step.paused if step is not None else None

    def _show_now(self) -> None:
        self._last_beat = 0.0  # the heartbeat and status line say it at the next step

    # -- lifecycle ---------------------------------------------------------------

    def run(self) -> int:
        """Start everything, loop until SIGTERM/SIGINT, stop within stop_timeout_s; 0 on a clean stop."""
        for problem in check_paths(self.cfg):
            # Said as it is: what it stops is said where it happens (a folder
            # missing is NOT WATCHED, one unreadable is UNREADABLE in status).
            log.error("config problem", extra={"problem": problem})
        for d in self.cfg.destinations:
            if not d.get("tls_verify", True) and str(d.get("url", "")).startswith("https:"):
                log.warning("TLS certificate checks are OFF for this destination (tls_verify = false); "
                            "anyone on the network path can read and alter deliveries",
                            extra={"destination": d["name"], "url": d["url"]})
        self._install_signals()
        opened = self.state_folder.open_state()
        if opened is None:
            return 0
        self.ledger, self.vault = opened
        # Once the ledger is there: a command finding no ledger where this
        # config's folder is held knows the daemon serves another one.
        self.config_hold = hold(self.cfg.path)
        self._resume_stranded()
        self.pool = ExtractionPool(str(self.vault.root), self.cfg.agent["workers"], ocr=self.cfg.ocr,
                                   ocr_slots=self.cfg.extract["ocr_workers"], slot_dir=str(self.cfg.state_dir),
                                   timeout_s=self.cfg.extract["timeout_s"],
                                   ocr_idle_unload_s=self.cfg.extract["ocr_idle_unload_s"])
        self.intake = Intake(self.ledger, self.vault, max_bytes=self.cfg.agent["max_file_mb"] * 1024 * 1024,
                             mail_limits=self.mail_limits, actor=self.actor)
        self.reading = Reading(self.ledger, self.pool, actor=self.actor, on_read=self._read)
        self.reading.configure(self.settings, self.destinations)
        self.watcher = self._start_watcher()
        self.intake_step = IntakeStep(self.intake, self.watcher, self.reading, self.vault,
                                      stopping=lambda: self.stopping, on_pause_change=self._show_now)
        self._finish_sources()  # moves/deletes a killed run left waiting on documents read since
        self.loops = start_loops(self.cfg, wake=self.wake)
        self._schedule()
        # To the [[notify]] entries of the config in force when it is built (reloads included).
        self.weekly = WeeklyReport.start(self.cfg, self.ledger,
                                         on_report=lambda r: weekly_report_hook(self.cfg, self.ledger)(r))
        seen = self.watcher.scan()  # files that arrived while we were down
        self._carry_first_seen()
        ocr = self._ocr_status()
        log.info("started", extra={"pid": os.getpid(), "ledger": str(self.cfg.ledger_path),
                                   "files_found": seen, "workers": self.pool.workers,
                                   "ocr": ocr, "ocr_workers": self.cfg.extract["ocr_workers"]})
        if ocr == "not-installed":
            log.warning("OCR is not installed: scans are read through their QR code only "
                        "(pip install 'fapiao-agent[ocr]', or set [extract] ocr = \"off\" to silence this)")
        systemd.ready(self._status_text())
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _schedule(self) -> None:
        # At start and at each reload (rescan_interval_s may have changed).
        schedule.clear("daemon")
        # The watcher of the moment: a reload replaces it, and a job bound to
        # the first one would rescan nothing ever after.
        schedule.every(self.cfg.agent["rescan_interval_s"]).seconds.do(
            lambda: self.watcher.rescan_requested.set()).tag("daemon")
        # Source steps waiting for their file to be quiet ([[watch]]
        # quiet_seconds) are looked at again.
        schedule.every(QUIET_PASS_S).seconds.do(self._finish_sources).tag("daemon")

    def _install_signals(self) -> None:
        def stop(signum, frame):
            self.stopping = True
            self.wake.set()

        def hup(signum, frame):
            self.reload_requested = True
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    def _carry_first_seen(self) -> None:
        # Before this run's first heartbeat: files the last run named as
        # waiting keep their age (`carry_first_seen`), so a restart does not
        # resolve an open intake-stuck alert. Never fatal: a damaged row
        # costs the carry-over, not the start.
        try:
            beat = self.ledger.heartbeat() or {}
            first_seen = json.loads(beat.get("details") or "{}").get("files_first_seen")
            if isinstance(first_seen, dict) and first_seen:
                # A file under that name captured or refused since it was
                # first seen was that file: one there now is new.
                self.watcher.carry_first_seen(first_seen, time.time(), taken_since=lambda path, at: (
                    self.ledger.handled_since(exact_path(path), utc(dt.datetime.fromtimestamp(at, dt.timezone.utc)))))
        except Exception as e:  # noqa: BLE001 - a bad row, whatever it holds
            log.warning("the last run's waiting times could not be read; waits are counted from now",
                        extra={"error": str(e)[:200]})

    def _start_watcher(self) -> FolderWatcher:
        # Only folders that are still the ones first watched (after a reload
        # or restart too: a name swapped for a symlink to the outbox while we
        # were down must not be pinned afresh), and never one overlapping our own.
        usable, self.refused_roots = usable_watches(self.cfg, self.ledger, now=now())
        for r in self.refused_roots:
            log.error("not watched", extra={"watch": r.path, "reason": r.reason})
        watcher = FolderWatcher(usable, wake=self.wake.set)
        for line in watcher.start():
            log.info(line)
        return watcher

    def _shutdown(self) -> None:
        systemd.stopping("stopping: finishing in-flight work")
        self.watcher.stop()
        timeout = float(self.cfg.agent["stop_timeout_s"])
        deadline = time.monotonic() + timeout
        for loop in self.loops:
            loop.stop()
        self.reading.drain(max(0.0, deadline - time.monotonic()))
        for loop in self.loops:
            loop.join(max(0.0, deadline - time.monotonic()))
        # After the drain, so the last results are in it too; its own budget,
        # so a slow drain cannot leave the operators' last actions only here.
        systemd.status("stopping: last ledger snapshot to the backup targets")
        for loop in self.loops:
            loop.finish(float(self.cfg.backup_policy["shutdown_snapshot_s"]))
        left = self.ledger.counts()[State.CAPTURED.value]
        last = {}
        if not_watched := {r.path: r.reason for r in self.refused_roots}:
            last["folders_not_watched"] = not_watched
        if first_seen := self.watcher.waits().get("files_first_seen"):
            last["files_first_seen"] = first_seen  # the next run goes on counting their wait
        self.ledger.beat(pid=os.getpid(), now=now(), activity="stopped", details=json.dumps(last) if last else None)
        self.ledger.close()
        log.info("stopped", extra={"left_captured": left})
        if self.state_folder.lock_fd is not None:
            os.close(self.state_folder.lock_fd)
        if self.config_hold is not None:
            os.close(self.config_hold)

    # -- the main loop -------------------------------------------------------------

    def _loop(self) -> None:
        failures = 0
        while not self.stopping:
            self.wake.clear()
            try:
                busy = self._step()
                failures = 0
            except Exception as e:  # a read-only or full disk: log, back off, never crash-loop
                failures += 1
                wait = min(MAX_BACKOFF_S, 2.0 ** failures)
                self.state_folder.log_step_failure(e, failures, wait)
                busy = False
                self.state_folder.backoff(wait)
            if not busy and not self.stopping:
                self.wake.wait(self._idle_wait())

    def _step(self) -> bool:
        if self.reload_requested:
            self.reload_requested = False
            self._reload()
        if self.watcher.rescan_requested.is_set():
            self.watcher.rescan_requested.clear()
            n = self.watcher.scan()
            log.info("rescan", extra={"files": n})
            self._finish_sources()
        # The pool is fed before and after intake: a step spent capturing a
        # flood must not leave the workers idle (the invoice already captured
        # would wait behind every file still to capture).
        started = self.reading.feed()
        took = self.intake_step.run()
        started += self.reading.feed()
        # While files wait to be captured, recording results keeps only its
        # share of this thread (service/reading.py): capture goes first.
        finished = self.reading.collect(timeout=0 if took else 0.05, intake_busy=bool(took))
        schedule.run_pending()
        self._beat()
        return bool(took or started or finished or self.pool.in_flight or self.reading.unrecorded)

    def _finish_sources(self, doc_ids: list[int] | None = None) -> None:
        # A scanner file's move/delete waits until its capture was read
        # (service/intake.py): after each result, at start and at each rescan;
        # only for `stepping_watches`.
        self.intake.finish_sources(self.stepping_watches, now=now(), today=today(), doc_ids=doc_ids)

    def _read(self, doc_ids: list[int]) -> None:
        # After each recorded result: its source's waiting step, and the
        # delivery loops told there may be work.
        self._finish_sources(doc_ids)
        for loop in self.loops:
            loop.kick()

    def _resume_stranded(self) -> dict[str, int]:
        return resume_stranded(self.ledger, settings=self.settings, destinations=self.destinations,
                               actor=self.actor)

    def _reload(self) -> None:
        self._last_beat = 0.0  # status says the outcome at once, refused or taken
        try:
            cfg = load_config(self.config_path)
            ValidationSettings.from_config(cfg.validation, cfg.company)
            refusal = reload_refusal(self.cfg, cfg, self.state_folder.identity)
            if refusal:
                raise ConfigError(refusal)
            self.state_folder.pin_state_dir(cfg)
        except (ConfigError, AgentError) as e:
            # Each failed reload is said, however soon after another: the
            # operator who just sent SIGHUP waits for this line.
            log.error("config reload failed; keeping the old config", extra={"error": str(e), "_unlimited": True})
            self.running.refused(str(e), at=now(), path=self.config_path or self.cfg.path)
            return
        before = set(self.destinations)
        self._apply_config(cfg)
        self.reading.configure(self.settings, self.destinations)
        # Intake's limits apply to the next file taken; the rescan's interval
        # from now (both were fixed at start, and a reload said "reloaded").
        self.intake.configure(max_bytes=cfg.agent["max_file_mb"] * 1024 * 1024, mail_limits=self.mail_limits)
        self._schedule()
        self.weekly.configure(cfg)
        old = self.watcher
        old.stop()
        self.watcher = self.intake_step.watcher = self._start_watcher()
        self._last_beat = 0.0  # a folder refused now shows in status at once
        self.watcher.scan()
        self.watcher.keep_ages_of(old)
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:
            loop.join(5.0)
        self.loops = start_loops(self.cfg, wake=self.wake)
        added = self._resume_stranded()
        for name in sorted(set(self.destinations) - before):
            # Said once, here: documents delivered before it was added are
            # not sent to it by themselves (docs/operations.md).
            log.info("destination added", extra={
                "destination": name, "documents_queued": added.get(name, 0),
                "delivered_before": self.ledger.count_without_delivery(name),
                "to_send_one": f"fapiao-agent requeue ID --destination {name}"})
        if waiting := self.running.applied(cfg, at=now()):
            log.warning("config reloaded in part: these settings take effect only at a restart",
                        extra={"restart_needed": "; ".join(waiting), "watches": len(self.watcher.watches)})
        else:
            log.info("config reloaded", extra={"watches": len(self.watcher.watches)})

    def _idle_wait(self) -> float:
        wait = IDLE_WAIT_S if self.watcher.pending_count == 0 else 0.25
        idle = schedule.idle_seconds()
        return max(0.01, min(wait, idle)) if idle is not None else wait

    def _beat(self) -> None:
        if time.monotonic() - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = time.monotonic()
        systemd.watchdog()
        activity = "working" if self.pool.in_flight or self.watcher.pending_count else "idle"
        details = {"pending_files": self.watcher.pending_count, "extracting": self.pool.in_flight}
        if self.intake_paused:
            activity = "intake paused"
            details["intake_paused"] = self.intake_paused
        not_watched = {**{r.path: r.reason for r in self.refused_roots}, **self.watcher.replaced}
        if not_watched:
            details["folders_not_watched"] = not_watched  # status and metrics: a folder gone quiet is said
        self.state_folder.check_state_name(details)
        details["config"] = self.running.details()  # status: what runs against the file (config_state.py)
        details.update(self.watcher.waits())  # status and alerts: a file not taken is never out of sight
        systemd.status(self._status_text())
        self.ledger.beat(pid=os.getpid(), now=now(), activity=activity, details=json.dumps(details))

    def _ocr_status(self) -> str:
        from agent.extract.ocr import engine_installed

        if not self.cfg.ocr:
            return "off"
        return "on" if engine_installed() else "not-installed"

    def _status_text(self) -> str:
        c = self.ledger.counts() if getattr(self, "ledger", None) is not None else {}
        paused = f"INTAKE PAUSED ({self.intake_paused}); " if self.intake_paused else ""
        if self.state_folder.moved_said:
            paused = f"STATE FOLDER NAME RE-POINTED (restart); {paused}"
        return (f"{paused}captured {c.get('captured', 0)}, queued {c.get('queued', 0)}, "
                f"quarantined {c.get('quarantined', 0)}, failed {c.get('failed', 0)}")


def run_daemon(config_path: str | None, log_format: str | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status: 0 on a clean stop,
    2 for an invalid config, 1 when the state cannot be opened (another
    daemon holds the lock, the ledger is not a database or cannot be written,
    the state folder cannot be created), without READY=1."""
    logsetup.setup(log_format or "kv")
    try:
        daemon = Daemon(config_path)
    except (ConfigError, AgentError) as e:
        for line in str(e).splitlines():
            log.error("invalid config", extra={"problem": line})
        return 2
    if log_format is None and daemon.cfg.agent["log_format"] != "kv":
        logsetup.setup(daemon.cfg.agent["log_format"])
    if log_format is not None:
        daemon.running.fixed = frozenset({"agent.log_format"})   # the command line's, not the file's
    try:
        return daemon.run()
    except StateUnavailable as e:
        # Never READY=1: systemd shows the unit failed with this status line.
        log.error(f"{e}; not started", extra={"state_dir": str(daemon.cfg.state_dir)})
        fields: dict[str, object] = {"STATUS": f"FAILED: {e}"}
        if e.errno:
            fields["ERRNO"] = e.errno
        systemd.notify(**fields)
        return 1

