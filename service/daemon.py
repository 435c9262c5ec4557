"""The running agent: wires `agent/` from config and runs the loops.

One main thread owns intake and the pipeline's ledger writes; watchdog's
observer threads only note paths; extraction runs in a process pool; the
delivery and backup loops (when configured) run in threads with their own
ledger connections. Signals only set flags that the main loop reads.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import schedule

from agent import pipeline
from agent.config import Config, check_paths, load_config
from agent.errors import AgentError, ConfigError, IllegalTransition
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.model import State
from agent.validate import ValidationSettings
from agent.vault import Vault
from service import log as logsetup
from service import systemd
from service.context import actor, now, today
from service.intake import Intake
from service.loops import start_loops
from service.watch import FolderWatcher
from service.workers import ExtractionPool

log = logging.getLogger("fapiao.daemon")
HEARTBEAT_S = 5.0
IDLE_WAIT_S = 1.0


class AlreadyRunning(AgentError):
    """Another daemon holds the lock on this ledger."""


class Daemon:
    """One run of the service. `run()` returns the process exit status."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self.cfg: Config = load_config(config_path)
        self.actor = actor("daemon")
        self.wake = threading.Event()
        self.stopping = False
        self.reload_requested = False
        self._lock_fd: int | None = None
        self._last_beat = 0.0
        self._apply_config(self.cfg)

    def _apply_config(self, cfg: Config) -> None:
        self.cfg = cfg
        self.settings = ValidationSettings.from_config(cfg.validation, cfg.company)
        self.destinations = [d["name"] for d in cfg.destinations]
        self.mail_limits = MailLimits(min_image_bytes=cfg.mail["min_inline_image_kb"] * 1024,
                                      max_attachments=cfg.mail["max_attachments"],
                                      max_message_bytes=cfg.mail["max_message_mb"] * 1024 * 1024)

    # -- lifecycle ---------------------------------------------------------------

    def run(self) -> int:
        for problem in check_paths(self.cfg):
            log.error("config problem; that part is skipped", extra={"problem": problem})
        self.cfg.state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._take_lock()
        self.ledger = Ledger(self.cfg.ledger_path)
        self.vault = Vault(self.cfg.vault_dir)
        self.pool = ExtractionPool(str(self.vault.root), self.cfg.agent["workers"])
        self.intake = Intake(self.ledger, self.vault, max_bytes=self.cfg.agent["max_file_mb"] * 1024 * 1024,
                             mail_limits=self.mail_limits, actor=self.actor)
        self._install_signals()
        self.watcher = self._start_watcher()
        self.loops = start_loops(self.cfg, wake=self.wake)
        schedule.clear("daemon")
        schedule.every(self.cfg.agent["rescan_interval_s"]).seconds.do(
            self.watcher.rescan_requested.set).tag("daemon")
        seen = self.watcher.scan()  # files that arrived while we were down
        log.info("started", extra={"pid": os.getpid(), "ledger": str(self.cfg.ledger_path),
                                   "files_found": seen, "workers": self.pool.workers})
        systemd.ready(self._status_text())
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _take_lock(self) -> None:
        path = self.cfg.state_dir / "daemon.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(f"another fapiao-agent daemon (pid {other}) is already running on "
                                 f"{self.cfg.ledger_path}; stop it first (only one may run per ledger)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

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

    def _start_watcher(self) -> FolderWatcher:
        usable = [w for w in self.cfg.watches if w.path.is_dir()]
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
        for doc_id, analysis in self.pool.shutdown(max(0.0, deadline - time.monotonic())):
            self._apply(doc_id, analysis)
        for loop in self.loops:
            loop.join(max(0.0, deadline - time.monotonic()))
        left = self.ledger.counts()[State.CAPTURED.value]
        self.ledger.beat(pid=os.getpid(), now=now(), activity="stopped")
        self.ledger.close()
        log.info("stopped", extra={"left_captured": left})
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    # -- the main loop -------------------------------------------------------------

    def _loop(self) -> None:
        failures = 0
        while not self.stopping:
            self.wake.clear()
            try:
                busy = self._step()
                failures = 0
            except Exception:  # a read-only or full disk: log, back off, never crash-loop
                failures += 1
                log.exception("main loop step failed; backing off", extra={"failures": failures})
                busy = False
                self.wake.wait(min(60.0, 2.0 ** failures))
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
        took = self._intake()
        started = self._feed_pool()
        finished = self.pool.collect(timeout=0.05) if self.pool.in_flight else []
        for doc_id, analysis in finished:
            self._apply(doc_id, analysis)
        schedule.run_pending()
        self._beat()
        return bool(took or started or finished or self.pool.in_flight)

    def _intake(self) -> int:
        took = 0
        for path in self.watcher.ready()[:200]:
            watch = self.watcher.watch_of(path)
            try:
                if watch is not None:
                    result = self.intake.take(path, watch, now=now(), today=today())
                    took += len(result.documents)
            except Exception:
                log.exception("unexpected error taking a file; it stays where it is",
                              extra={"path": str(path)})
            finally:
                self.watcher.done(path)
        return took

    def _feed_pool(self) -> int:
        if not self.pool.has_room():
            return 0
        busy = self.pool.in_flight_ids()
        started = 0
        for doc_id in self.ledger.ids_in_state(State.CAPTURED, limit=self.pool.capacity + len(busy)):
            if doc_id in busy:
                continue
            if not self.pool.submit(doc_id, self.ledger.get(doc_id).sha256):
                break
            started += 1
        return started

    def _apply(self, doc_id: int, analysis: pipeline.Analysis) -> None:
        try:
            touched = pipeline.apply(self.ledger, doc_id, analysis, settings=self.settings,
                                     destinations=self.destinations, today=today(), now=now(),
                                     actor=self.actor)
        except IllegalTransition as e:
            log.info("document changed while it was being read; result dropped",
                     extra={"document": doc_id, "why": str(e)})
            return
        except Exception:
            log.exception("could not record the result for a document", extra={"document": doc_id})
            return
        for d in touched:
            doc = self.ledger.get(d)
            log.info("processed", extra={"document": d, "state": doc.state,
                                         "number": doc.invoice_number or "",
                                         "problems": ",".join(p["code"] for p in doc.problems)})
        for loop in self.loops:
            loop.kick()

    def _reload(self) -> None:
        try:
            cfg = load_config(self.config_path)
            ValidationSettings.from_config(cfg.validation, cfg.company)
        except (ConfigError, AgentError) as e:
            log.error("config reload failed; keeping the old config", extra={"error": str(e)})
            return
        self._apply_config(cfg)
        self.watcher.stop()
        self.watcher = self._start_watcher()
        self.watcher.scan()
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:
            loop.join(5.0)
        self.loops = start_loops(self.cfg, wake=self.wake)
        log.info("config reloaded", extra={"watches": len(self.watcher.watches)})

    def _idle_wait(self) -> float:
        wait = IDLE_WAIT_S if self.watcher.pending_count == 0 else 0.25
        idle = schedule.idle_seconds()
        return max(0.01, min(wait, idle)) if idle is not None else wait

    def _beat(self) -> None:
        if time.monotonic() - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = time.monotonic()
        activity = "working" if self.pool.in_flight or self.watcher.pending_count else "idle"
        details = {"pending_files": self.watcher.pending_count, "extracting": self.pool.in_flight}
        self.ledger.beat(pid=os.getpid(), now=now(), activity=activity, details=json.dumps(details))
        systemd.status(self._status_text())
        systemd.watchdog()

    def _status_text(self) -> str:
        c = self.ledger.counts() if hasattr(self, "ledger") else {}
        return (f"captured {c.get('captured', 0)}, queued {c.get('queued', 0)}, "
                f"quarantined {c.get('quarantined', 0)}, failed {c.get('failed', 0)}")


def run_daemon(config_path: str | None, log_format: str | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status (0 on a clean stop,
    2 for an invalid config, 1 when another daemon holds the ledger)."""
    logsetup.setup(log_format or "kv")
    try:
        daemon = Daemon(config_path)
    except (ConfigError, AgentError) as e:
        for line in str(e).splitlines():
            log.error("invalid config", extra={"problem": line})
        return 2
    if log_format is None and daemon.cfg.agent["log_format"] != "kv":
        logsetup.setup(daemon.cfg.agent["log_format"])
    try:
        return daemon.run()
    except AlreadyRunning as e:
        log.error(str(e))
        return 1
