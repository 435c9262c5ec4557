"""The notify loop: one background thread with its own ledger connection
that, every CHECK_INTERVAL_S, reads what `status` shows (status_report) and
the free space of the agent's folders, runs each [[notify]] entry's round
(agent/notify/outbox.py: faults opened / resolved, quarantine digest), and
sends what is due from the ledger's outbox (also rows other producers
queued with agent.notify.enqueue, e.g. the weekly report).

Nothing here can block intake or delivery: they never wait on this thread,
a send is bounded by the entry's timeout_s, a dead channel is retried from
ledger columns (backoff), and no exception ends the thread or the daemon.
Each outcome is logged once: sent (info), retried (warning), given up (error).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Any, Callable

from agent.config import Config
from agent.config_adapters import local_folder
from agent.errors import AgentError
from agent.ledger import Ledger
from agent.notify import enqueue, open_faults, open_notifier, run_round, send_due
from service.context import actor, now_dt
from service.display import local_time
from service.loops import Runner, RunnerGroup

log = logging.getLogger("fapiao.notify")
CHECK_INTERVAL_S = 30.0      # how often faults are looked for (status_report's queries); [[notify]] check_interval_s
SEND_POLL_S = 5.0            # how often the outbox is looked at for rows others queued


def disk_figures(cfg: Config) -> dict[str, dict]:
    """Free and total bytes of the state folder, the vault and each local
    destination or backup folder; folders on one file system are one entry,
    labelled by the first of them ("state"). Folders that cannot be
    measured are left out."""
    folders = [("state", cfg.state_dir), ("vault", cfg.vault_dir)]
    for kind, entries in (("destination", cfg.destinations), ("backup", cfg.backups)):
        folders += [(f"{kind} {e['name']}", p) for e in entries if (p := local_folder(e)) is not None]
    out: dict[str, dict] = {}
    devices: dict[int, str] = {}
    for label, path in folders:
        try:
            st, vfs = os.stat(path), os.statvfs(path)
        except OSError:
            continue
        if st.st_dev in devices:
            out[devices[st.st_dev]]["path"] += f", {path}"
            continue
        devices[st.st_dev] = label
        out[label] = {"path": str(path), "free": vfs.f_bavail * vfs.f_frsize, "total": vfs.f_blocks * vfs.f_frsize}
    return out


def weekly_report_hook(cfg: Config, ledger: Ledger) -> Callable[[Any], None]:
    """The `on_report` for the weekly check (service/report.py WeeklyReport):
    each built report (its html, csv with BOM, summary, html_path) queued on
    `ledger` for every [[notify]] entry that wants `weekly-report`: e-mail
    gets the page and the CSV attached, robots the summary. Guarantee as
    agent.notify.enqueue's: committed when it returns, sent by the notify
    thread, never raising for a channel's trouble."""
    def on_report(report: Any) -> None:
        stem = report.html_path.stem if getattr(report, "html_path", None) else "fapiao-report"
        enqueue(ledger, cfg.notify, event="weekly-report", key=f"weekly-report:{stem}",
                subject=f"每周发票检查 / weekly invoice check ({stem.removeprefix('fapiao-report-')})",
                text=report.summary, html=report.html, now=now_dt(),
                attachments=[(f"{stem}.html", report.html.encode("utf-8"), "text/html"),
                             (f"{stem}.csv", report.csv, "text/csv")])
    return on_report


class NotifyRunner(Runner):
    """The one notify thread."""

    def __init__(self, cfg: Config, stopping: threading.Event, check_interval_s: float | None = None,
                 send_poll_s: float = SEND_POLL_S):
        super().__init__(stopping)
        if check_interval_s is None:
            check_interval_s = min((float(e.get("check_interval_s") or CHECK_INTERVAL_S) for e in cfg.notify),
                                   default=CHECK_INTERVAL_S)
        self.cfg, self.check_interval_s = cfg, check_interval_s
        self.send_poll_s = min(send_poll_s, check_interval_s)
        self.name = "notify"
        self.channels = {}
        for entry in cfg.notify:
            try:
                self.channels[entry["name"]] = (open_notifier(entry), entry)
            except AgentError as e:
                log.error(f"notify entry {entry['name']!r} is not started: {e}", extra={"notify": entry["name"]})
        self.threads = [threading.Thread(target=self._run, name="notify", daemon=True)]

    def _run(self) -> None:
        ledger = Ledger(self.cfg.ledger_path)
        rng, who, next_check, failures = random.Random(), actor("daemon"), 0.0, 0
        try:
            while not self.stopping.is_set():
                kicks = self._kicks
                try:
                    if time.monotonic() >= next_check:
                        self.check(ledger, who)
                        next_check = time.monotonic() + self.check_interval_s
                    self.send(ledger, who, rng)
                    failures, wait = 0, min(self.send_poll_s, max(0.0, next_check - time.monotonic()))
                except Exception:  # a bug must not end the thread; back off and go on
                    failures += 1
                    log.exception("notify step failed; backing off")
                    wait = min(60.0, 2.0 ** failures)
                self._sleep(kicks, wait)
        finally:
            ledger.close()

    def check(self, ledger: Ledger, who: str) -> int:
        """One round for every entry; returns the messages queued."""
        from service.commands.status import status_report   # the figures `status` shows, read once

        report = status_report(ledger, self.cfg)
        disk = disk_figures(self.cfg)
        now = now_dt()
        queued = 0
        for entry in self.cfg.notify:
            # The office reads these: local time with its offset, as `status` shows it.
            faults = open_faults(report, entry, now=now, disk=disk, time_text=local_time,
                                 sla_warn_fraction=float(self.cfg.health.get("sla_warn_fraction") or 0.8))
            queued += run_round(ledger, entry, faults, now=now, actor=who, time_text=local_time)
        return queued

    def send(self, ledger: Ledger, who: str, rng: random.Random) -> None:
        """Send what is due; log each outcome once."""
        for o in send_due(ledger, self.channels, now=now_dt(), actor=who, rng=rng, stopping=self.stopping.is_set):
            extra = {"notify": o.entry, "kind": o.kind, "key": o.key, "notification": o.id}
            if o.result == "sent":
                log.info("notification sent", extra=extra)
            elif o.result == "retry":
                log.warning(f"notification not sent, tried again at {o.next_attempt_at}: {o.error}", extra=extra)
            else:
                log.error(f"notification given up: {o.error}", extra=extra)


class NotifyService(RunnerGroup):
    """The notify loop of one config (started when it has [[notify]] entries)."""

    def __init__(self, cfg: Config, **intervals: float):
        super().__init__()
        self.runners = [NotifyRunner(cfg, self.stopping, **intervals)]

    def start(self) -> "NotifyService":
        """Start the thread; returns self."""
        for r in self.runners:
            r.start()
        log.info("notify started", extra={"entries": ",".join(e["name"] for e in self.runners[0].cfg.notify)})
        return self
