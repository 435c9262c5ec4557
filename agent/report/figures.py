"""The weekly check's figures (每周发票状态检查): read from the ledger, grouped.

`gather` is the one place the report reads the ledger (through the
report_rows queries); everything after it (HTML, CSV, summary) formats these
figures and computes nothing new, so every number printed is one counted
here from the ledger. Pure apart from those reads: `now` is passed in.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.ledger.rows import parse_utc, utc

# The invoices' own calendar: the expired rule counts days in China (UTC+8).
CHINA = dt.timezone(dt.timedelta(hours=8))
DEFAULT_ZONE = "Asia/Shanghai"
APPLICATIONS_LISTED = 50    # pending applications the page lists, oldest first; all are counted


def zone_of(name: str) -> dt.tzinfo:
    """The IANA zone `name`. A host without the zone database (a slim image
    with no tzdata) still gets the default zone as the fixed UTC+8 it has
    been since 1991; any other missing zone raises ZoneInfoNotFoundError."""
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        if name == DEFAULT_ZONE:
            return CHINA
        raise


@dataclass(frozen=True)
class Outcome:
    """One colour of the arrivals chart: the document states it stands for."""

    key: str
    zh: str
    en: str
    colour: str
    states: frozenset[str]


# Every document state is in exactly one outcome (tests check it); refused
# files are no document and have their own.
OUTCOMES: tuple[Outcome, ...] = (
    Outcome("delivered", "已送达", "delivered", "#2e7d32", frozenset({"delivered", "confirmed"})),
    Outcome("in_progress", "处理中", "in progress", "#1e88e5",
            frozenset({"captured", "extracted", "valid", "queued", "delivering", "missing"})),
    Outcome("quarantined", "待人工处理", "quarantined", "#f9a825", frozenset({"quarantined"})),
    Outcome("failed", "发送失败", "failed", "#c62828", frozenset({"failed"})),
    Outcome("duplicate", "重复", "duplicate", "#8e24aa", frozenset({"duplicate"})),
    Outcome("ended", "已结束", "ended (not an invoice, rejected, superseded)", "#78909c",
            frozenset({"not_invoice", "rejected", "superseded"})),
    Outcome("refused", "拒收", "refused at intake", "#6d4c41", frozenset()),
)
_OUTCOME_OF = {s: o.key for o in OUTCOMES for s in o.states}


def outcome_of(state: str) -> str:
    """The outcome key of a document state; ValueError for a state no
    outcome names (a new state must be placed, never counted silently)."""
    try:
        return _OUTCOME_OF[state]
    except KeyError:
        raise ValueError(f"document state {state!r} belongs to no report outcome") from None


@dataclass
class Figures:
    """Everything the weekly report shows, each figure from the ledger."""

    since: dt.datetime
    until: dt.datetime
    now: dt.datetime
    tz: str
    days: list[dict[str, Any]]                  # {"day": date, outcome key: n, ..., "total": n}
    totals: dict[str, int]                      # per outcome over the window, and "total"
    repeat_arrivals: int                        # the same bytes arriving again
    timing: dict[str, Any]                      # delivered/confirmed: count, p50_s, p95_s
    quarantine: dict[str, Any]                  # total, by_code, oldest
    duplicates: dict[str, Any]                  # count, examples
    missing: dict[str, Any]                     # count, resent, rows
    expiry: dict[str, Any]                      # max_age_days, warn_days, today, count, rows
    backup: dict[str, Any]                      # as `status` computes it: targets, backed_up, objects...
    drills: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> latest restore drill
    # pending 补录 applications now: pending, held (documents by state), held_elsewhere (those not
    # quarantined: a duplicate waits for a person too), waiting (quarantined + held_elsewhere), rows
    applications: dict[str, Any] = field(default_factory=lambda: {"pending": 0, "held": {}, "held_elsewhere": 0,
                                                                  "waiting": 0, "rows": []})


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0 < q <= 1) of `values`: a value
    that occurred, never an interpolation; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def gather(ledger, *, since: dt.datetime, until: dt.datetime, now: dt.datetime, tz: str,
           max_age_days: int, warn_days: int, backup: Mapping[str, Any],
           drills: Mapping[str, Mapping[str, Any]] | None = None) -> Figures:
    """The figures of [since, until) from `ledger` (one read snapshot), days
    cut in time zone `tz`; open quarantine, pending 补录 applications (the
    APPLICATIONS_LISTED oldest listed, each with its age at `now`) and
    invoices near `max_age_days` (within `warn_days`, undelivered) as of `now`. `backup` is what
    `status` computes for the targets; `drills` the latest restore drill per
    target (absent: none yet)."""
    zone = zone_of(tz)
    s, u = utc(since), utc(until)
    today = now.astimezone(CHINA).date()
    own = not ledger.conn.in_transaction   # one snapshot: every figure sees the same commit
    if own:
        ledger.conn.execute("BEGIN")
    try:
        arrivals = ledger.arrivals_by_minute(since=s, until=u)
        refusals = ledger.refusals_by_minute(since=s, until=u)
        repeats = ledger.repeat_arrivals(since=s, until=u)
        timing_rows = ledger.arrival_to_delivery(since=s, until=u)
        quarantine = ledger.open_quarantine(oldest=10)
        duplicates = ledger.duplicates_caught(since=s, until=u)
        missing = ledger.missing_at_reconciliation(since=s, until=u)
        cutoff = today - dt.timedelta(days=max_age_days - warn_days)
        expiry = ledger.undelivered_dated_by(dated_on_or_before=cutoff.isoformat())
        pending = ledger.pending_summary()
        pending_rows = ledger.pending_applications(limit=APPLICATIONS_LISTED)
    finally:
        if own:
            ledger.conn.execute("ROLLBACK")
    days = _days(since, until, zone)
    by_day = {d["day"]: d for d in days}
    totals = {o.key: 0 for o in OUTCOMES}
    for row in arrivals:
        _count(by_day, totals, _local_day(row["minute"], zone), outcome_of(row["state"]), row["n"])
    for row in refusals:
        _count(by_day, totals, _local_day(row["minute"], zone), "refused", row["n"])
    totals["total"] = sum(totals[o.key] for o in OUTCOMES)
    for row in expiry["rows"]:
        age = (today - dt.date.fromisoformat(row["invoice_date"])).days
        row["days_left"] = max_age_days - age
    return Figures(since=since, until=until, now=now, tz=tz, days=days, totals=totals,
                   repeat_arrivals=repeats, timing=_timing(timing_rows), quarantine=quarantine,
                   duplicates=duplicates, missing=missing,
                   expiry={"max_age_days": max_age_days, "warn_days": warn_days, "today": today, **expiry},
                   backup=dict(backup), drills={k: dict(v) for k, v in (drills or {}).items()},
                   applications=_applications(pending, pending_rows, quarantine["total"], now))


def _applications(pending: dict, rows: list[dict], quarantined: int, now: dt.datetime) -> dict[str, Any]:
    # A document a pending application holds waits for a person whatever its
    # state; a held duplicate is no quarantine, so it is added to that count.
    elsewhere = sum(n for state, n in pending["held"].items() if state != "quarantined")
    for r in rows:
        r["age_s"] = (now - parse_utc(r["filed_at"])).total_seconds()
    return {"pending": pending["pending"], "held": dict(pending["held"]), "held_elsewhere": elsewhere,
            "waiting": quarantined + elsewhere, "rows": rows}


def _days(since: dt.datetime, until: dt.datetime, zone: dt.tzinfo) -> list[dict[str, Any]]:
    first, last = since.astimezone(zone).date(), (until - dt.timedelta(microseconds=1)).astimezone(zone).date()
    out, day = [], first
    while day <= last:
        out.append({"day": day, **{o.key: 0 for o in OUTCOMES}, "total": 0})
        day += dt.timedelta(days=1)
    return out


def _local_day(minute: str, zone: dt.tzinfo) -> dt.date:
    at = dt.datetime.strptime(minute, "%Y-%m-%dT%H:%M").replace(tzinfo=dt.timezone.utc)
    return at.astimezone(zone).date()


def _count(by_day: dict, totals: dict, day: dt.date, key: str, n: int) -> None:
    bucket = by_day[day]   # every minute of [since, until) falls on a day of _days
    bucket[key] += n
    bucket["total"] += n
    totals[key] += n


def _timing(rows: list[dict]) -> dict[str, Any]:
    out = {}
    for what in ("delivered", "confirmed"):
        values = [(parse_utc(r[f"{what}_at"]) - parse_utc(r["received_at"])).total_seconds()
                  for r in rows if r[f"{what}_at"]]
        out[what] = {"count": len(values), "p50_s": percentile(values, 0.5), "p95_s": percentile(values, 0.95)}
    return out


def duration_text(seconds: float | None) -> str:
    """A duration as people read it: "-", "45 s", "12 min", "3.5 h", "2.1 d"."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"

