"""The weekly check (每周发票状态检查): built, written and scheduled.

`build_report` makes the page, the CSV and the chat summary from the ledger
(agent/report/); `write_report` puts the two files in place atomically (temp,
fsync, rename: a reader never sees half a page); `WeeklyReport` is the
daemon's one call: it schedules the report at `[report] weekday time` in
`[report] time_zone`, converted to the daemon's own clock for `schedule`,
writes it, prunes old ones past `keep_weeks`, and hands the built report to
`on_report` (the notification outbox, wired by the daemon).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import schedule

from agent.config import Config
from agent.ledger import Ledger
from agent.report.figures import Figures, gather, zone_of
from agent.report.html import render_html
from agent.report.text import CSV_COLUMNS, csv_rows, summary
from service.backup_figures import backup_report
from service.context import span_of
from service.csv_safe import csv_text

log = logging.getLogger("fapiao.report")

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEK = dt.timedelta(days=7)
RETRY_S = 900                      # a report that failed is tried again this much later
_NAME = re.compile(r"fapiao-report-(\d{4}-\d{2}-\d{2})\.(html|csv)")


@dataclass
class Report:
    """One built weekly check: the page, the CSV (UTF-8 with a BOM, for
    Excel), a one-paragraph summary for chat robots, the figures behind
    them, and where the files were written (None until written)."""

    figures: Figures
    html: str
    csv: bytes
    summary: str
    html_path: Path | None = None
    csv_path: Path | None = None


def build_report(ledger: Ledger, cfg: Config, *, since: dt.datetime, until: dt.datetime, now: dt.datetime,
                 drills: Mapping[str, Mapping[str, Any]] | None = None) -> Report:
    """The weekly check of [since, until) as of `now`, every figure from
    `ledger` in one read snapshot; backup targets as `status` computes
    them, with `drills` (target -> latest restore drill: at, ok, detail;
    default: each target's latest drill in the ledger)."""
    own = not ledger.conn.in_transaction
    if own:
        ledger.conn.execute("BEGIN")
    try:
        backup = backup_report(ledger, cfg, at=now)
        if drills is None:
            drills = latest_drills(ledger)
        fig = gather(ledger, since=since, until=until, now=now, tz=cfg.report["time_zone"],
                     max_age_days=cfg.validation["max_age_days"], warn_days=cfg.report["expiry_warn_days"],
                     backup=backup, drills=drills)
    finally:
        if own:
            ledger.conn.execute("ROLLBACK")
    csv_bytes = csv_text(csv_rows(fig), CSV_COLUMNS).encode("utf-8")   # the BOM is csv_text's
    return Report(figures=fig, html=render_html(fig), csv=csv_bytes, summary=summary(fig))


def latest_drills(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Each target's latest restore drill (agent/backup/drill.py) as the
    report shows it: at (when it finished), ok, detail (why it failed, or
    what it checked)."""
    return {d["target"]: {"at": d["finished_at"], "ok": d["ok"],
                          "detail": d["reason"] or f"{d['sampled']} objects and the ledger snapshot restored and checked"}
            for d in ledger.last_restore_drills()}


def write_report(report: Report, folder: Path, stem: str) -> Report:
    """Write `stem`.csv then `stem`.html into `folder` (created 0750), each
    through a temporary file, fsync and rename, then fsync the folder: a
    file there is always whole, and the page (written last) says the pair
    is complete. Returns `report` with its paths set."""
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    for suffix, data in (("csv", report.csv), ("html", report.html.encode("utf-8"))):
        final = folder / f"{stem}.{suffix}"
        tmp = folder / f".{stem}.{suffix}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    report.csv_path, report.html_path = folder / f"{stem}.csv", folder / f"{stem}.html"
    return report


def report_dir(cfg: Config) -> Path:
    """[report] dir (relative to the config's folder), else <state_dir>/reports."""
    return cfg.base_dir / cfg.report["dir"] if cfg.report.get("dir") else cfg.state_dir / "reports"


def next_slot(now: dt.datetime, weekday: str, at: str, tz: str) -> dt.datetime:
    """The first moment after `now` that is `weekday` at `at` ("HH:MM") on
    the clocks of time zone `tz`; aware, in `tz`."""
    zone = zone_of(tz)
    here = now.astimezone(zone)
    hour, minute = (int(x) for x in at.split(":"))
    day = here.date() + dt.timedelta(days=(WEEKDAYS.index(weekday) - here.weekday()) % 7)
    slot = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
    if slot <= now:
        slot = dt.datetime.combine(day + WEEK, dt.time(hour, minute), tzinfo=zone)
    return slot


def last_slot(now: dt.datetime, weekday: str, at: str, tz: str) -> dt.datetime:
    """The latest moment at or before `now` that is `weekday` at `at` in `tz`."""
    upcoming = next_slot(now, weekday, at, tz)
    return dt.datetime.combine(upcoming.date() - WEEK, upcoming.timetz())


def week_before(slot: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The seven whole days (midnight to midnight on `slot`'s clocks) before
    the day of `slot`: what the report written at `slot` covers."""
    until = dt.datetime.combine(slot.date(), dt.time(), tzinfo=slot.tzinfo)
    return dt.datetime.combine(slot.date() - WEEK, dt.time(), tzinfo=slot.tzinfo), until


def on_local_clock(moment: dt.datetime, local: dt.tzinfo | None = None) -> tuple[str, str]:
    """`moment` as the daemon's clock (`local`; default: this system's zone
    at that moment, DST included) shows it: (weekday name, "HH:MM:SS"), what
    `schedule.every().<weekday>.at(...)` needs (it counts in local time)."""
    here = moment.astimezone(local) if local is not None else moment.astimezone()
    return WEEKDAYS[here.weekday()], here.strftime("%H:%M:%S")


class WeeklyReport:
    """The daemon's weekly check. `start` schedules it (tag "daemon");
    `configure` takes a reloaded config. Runs in the daemon's main loop
    (schedule.run_pending), on the main thread's ledger."""

    def __init__(self, cfg: Config, ledger: Ledger, *,
                 on_report: Callable[[Report], None] | None = None,
                 drills: Callable[[Ledger], Mapping[str, Mapping[str, Any]]] | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)):
        self.cfg, self.ledger, self.clock = cfg, ledger, clock
        self.on_report = on_report or (lambda report: None)
        self.drills = drills or latest_drills
        self.job: schedule.Job | None = None

    @classmethod
    def start(cls, cfg: Config, ledger: Ledger, **kwargs: Any) -> "WeeklyReport":
        """A WeeklyReport scheduled from `cfg`, having written the last
        week's report first when the daemon was down at its moment (only
        where a report was written before: a first start invents none)."""
        weekly = cls(cfg, ledger, **kwargs)
        weekly.configure(cfg)
        folder = report_dir(cfg)
        if cfg.report["enabled"] and any(_NAME.fullmatch(p.name) for p in _listing(folder)):
            weekly.run_due()
        return weekly

    def configure(self, cfg: Config) -> None:
        """Schedule (again) from `cfg`: the next `[report] weekday time` in
        `time_zone`, on the local clock; nothing when `enabled` is false."""
        self.cfg = cfg
        if self.job is not None:
            schedule.cancel_job(self.job)
            self.job = None
        if not cfg.report["enabled"]:
            return
        r = cfg.report
        slot = next_slot(self.clock(), r["weekday"], r["time"], r["time_zone"])
        weekday, at = on_local_clock(slot)
        self.job = getattr(schedule.every(), weekday).at(at).do(self._fire).tag("daemon", "report")
        log.info("weekly report scheduled", extra={"at": slot.isoformat(), "local": f"{weekday} {at}"})

    def _fire(self):
        ok = self.run_due()
        self.job = None
        if ok:
            self.configure(self.cfg)   # a fresh conversion: the local clock may have changed its offset
        else:
            self.job = schedule.every(RETRY_S).seconds.do(self._fire).tag("daemon", "report")
        return schedule.CancelJob

    def run_due(self) -> bool:
        """Write the report of the seven days before the latest slot's day
        (unless its page exists), prune old ones, call `on_report`. False (logged) when
        it could not be built or written; the daemon goes on."""
        now = self.clock()
        r = self.cfg.report
        slot = last_slot(now, r["weekday"], r["time"], r["time_zone"])
        since, until = week_before(slot)
        folder = report_dir(self.cfg)
        stem = f"fapiao-report-{slot.date().isoformat()}"
        if (folder / f"{stem}.html").exists():
            return True
        try:
            report = build_report(self.ledger, self.cfg, since=since, until=until, now=now,
                                  drills=self.drills(self.ledger))
            write_report(report, folder, stem)
            prune(folder, keep_weeks=r["keep_weeks"], today=slot.date())
        except Exception as e:  # noqa: BLE001 - the daemon never dies of its report
            log.error("weekly report failed; tried again later", extra={"error": str(e), "dir": str(folder),
                                                                        "retry_s": RETRY_S})
            return False
        log.info("weekly report written", extra={"html": str(report.html_path), "summary": report.summary})
        try:
            self.on_report(report)
        except Exception as e:  # noqa: BLE001 - a failed hand-over must not rewrite the week
            log.error("weekly report written, but handing it on failed", extra={"error": str(e)})
        return True


def prune(folder: Path, *, keep_weeks: int, today: dt.date) -> list[Path]:
    """Delete this folder's weekly reports (fapiao-report-DATE.html/.csv,
    nothing else) dated more than `keep_weeks` weeks before `today`;
    returns what was deleted."""
    gone = []
    for p in _listing(folder):
        m = _NAME.fullmatch(p.name)
        try:
            day = dt.date.fromisoformat(m.group(1)) if m else None
        except ValueError:   # fapiao-report-2026-13-45.html: not ours
            day = None
        if day is not None and day < today - keep_weeks * WEEK:
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def figures_json(report: Report) -> dict[str, Any]:
    """The report as one JSON-ready dict (`report --json`): paths, summary, figures."""
    return {"html_path": str(report.html_path) if report.html_path else None,
            "csv_path": str(report.csv_path) if report.csv_path else None,
            "summary": report.summary, "figures": dataclasses.asdict(report.figures)}




def parse_moment(text: str, *, now: dt.datetime, tz: str) -> dt.datetime:
    """`--since`/`--until` as a moment: "7d", "36h", "2w" before `now`; a day
    "2026-11-23" (its midnight in `tz`); or an ISO date-time (an offset
    given, else read in `tz`). ValueError saying what is accepted."""
    text = text.strip()
    try:
        span = span_of(text)
        if span is not None:
            moment = now - span
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=zone_of(tz))
        else:
            moment = dt.datetime.fromisoformat(text)
        # As UTC too (the ledger's clock): year 1 in +08:00 is before year 1 there.
        (moment if moment.tzinfo else moment.replace(tzinfo=zone_of(tz))).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is not a moment: use 7d, 36h, 2w, a day (2026-11-23) or "
                         "an ISO date-time (2026-11-23T08:00+08:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone_of(tz))


MAX_REPORT_DAYS = 3 * 366   # a row and a bar per day: a century would be a 16 MB page of zeros


def report_window(since: str, until: str | None, *, now: dt.datetime, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """`--since`/`--until` (None: `now`) as (start, end), start before end
    and at most MAX_REPORT_DAYS apart; ValueError saying what is wrong."""
    start = parse_moment(since, now=now, tz=tz)
    end = parse_moment(until, now=now, tz=tz) if until else now
    if start >= end:
        raise ValueError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    if end - start > dt.timedelta(days=MAX_REPORT_DAYS):
        raise ValueError(f"--since {since} to --until {until or 'now'} spans {(end - start).days} days; a report "
                         f"covers at most {MAX_REPORT_DAYS} (write one per year for longer)")
    return start, end
