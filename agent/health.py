"""`status --check`: the status figures judged against [health] thresholds.

The monitoring-plugin convention (Nagios, Icinga, Sensu, Zabbix agents):
exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, and one summary line naming
every reason, worst first, e.g. `CRITICAL: backup target s3 unreachable
for 2 h; 3 invoices past the 24 h SLA`. Pure: the figures (the JSON-ready
dict `status --json` prints) and `now` come in; nothing is read here.
UNKNOWN (the ledger cannot be read) is the caller's, since then there are
no figures to judge.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from agent.ledger.rows import RESTORED_ACTIVITY, TimeText, as_stored, parse_utc

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LEVELS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
# A file in a watched folder not taken this long after it was first seen
# (its writer never stops: it grows, or is touched, forever; or it cannot be
# read, held by another program) is a WARNING and an `intake-stuck` alert;
# `status` names it sooner.
WAITING_ALERT_S = 1800.0


@dataclass(frozen=True)
class Reason:
    """One finding: its level (WARNING or CRITICAL) and a short phrase."""

    level: int
    text: str


@dataclass(frozen=True)
class Thresholds:
    """[health] (with [delivery] sla_hours): when a figure is a WARNING or
    CRITICAL. A count threshold of 0 never fires."""

    sla_hours: float = 24.0
    sla_warn_fraction: float = 0.8
    backup_unreachable_warn_minutes: float = 30.0
    backup_unreachable_crit_minutes: float = 120.0
    heartbeat_stale_s: float = 120.0
    failed_warn: int = 1
    failed_crit: int = 10
    quarantined_warn: int = 1
    quarantined_crit: int = 0
    drill_max_age_days: float = 8.0      # [backup_policy]: no passed restore drill this long is a WARNING
    application_pending_hours: float = 24.0   # a 补录 application waiting this long for its approver (0: never)

    @classmethod
    def from_config(cls, cfg) -> "Thresholds":
        """The thresholds of a loaded Config (types already checked there)."""
        return cls(sla_hours=float(cfg.delivery.get("sla_hours") or 24), **cfg.health,
                   drill_max_age_days=float(cfg.backup_policy.get("drill_max_age_days", 8.0)))

    @property
    def sla_warn_hours(self) -> float:
        """Hours since arrival after which an undelivered invoice is near the SLA."""
        return self.sla_hours * self.sla_warn_fraction


@dataclass
class Health:
    """The verdict: the worst level of the reasons (OK when none)."""

    reasons: list[Reason] = field(default_factory=list)
    ok_text: str = "all well"

    @property
    def level(self) -> int:
        """0 OK, 1 WARNING, 2 CRITICAL: the exit status of `status --check`."""
        return max((r.level for r in self.reasons), default=OK)

    @property
    def summary(self) -> str:
        """`LEVEL: reason; reason` (worst first), or `OK: ...`: the one line a
        monitoring system shows."""
        if not self.reasons:
            return f"OK: {self.ok_text}"
        ordered = sorted(self.reasons, key=lambda r: -r.level)
        return f"{LEVELS[self.level]}: " + "; ".join(r.text for r in ordered)

    def to_dict(self) -> dict:
        """JSON-ready: status (name), code (exit status), summary, reasons."""
        return {"status": LEVELS[self.level], "code": self.level, "summary": self.summary,
                "reasons": [{"level": LEVELS[r.level], "text": r.text}
                            for r in sorted(self.reasons, key=lambda r: -r.level)]}


def evaluate(report: dict, limits: Thresholds, *, now: dt.datetime, time_text: TimeText = as_stored) -> Health:
    """Judge `report` (`status --json`'s dict: daemon, config, states,
    delivery, backup) by `limits` at `now`. Guarantees: every fault it can see is one
    reason; the daemon not running, intake paused, a folder not watched or
    not readable, an
    invoice past the SLA, a paused destination and a backup object that
    cannot be backed up are CRITICAL whatever the thresholds. A stored
    time in a reason is written by `time_text` (`status` for a person: local
    time; --json and the fleet's status.json: the ledger's UTC)."""
    reasons: list[Reason] = []
    reasons += _daemon(report.get("daemon"), limits)
    reasons += _config(report.get("config"), time_text)
    states = report.get("states") or {}
    targets = (report.get("backup") or {}).get("targets") or []
    applications = report.get("applications") or {}
    reasons += _delivery(report.get("delivery") or {}, states, limits)
    reasons += _backups(targets, limits, now)
    reasons += _drills(targets, limits, now)
    reasons += _unkept(targets, now)
    reasons += _fleet(report.get("fleet"), time_text)
    reasons += _fleet_claims_lost(report.get("fleet"), time_text)
    reasons += _same_name(report.get("fleet"))
    reasons += _waiting_for_a_person(states.get("quarantined", 0), held_elsewhere(applications), limits)
    reasons += _applications(applications, limits)
    reasons += _rejected_there(report.get("rejected_there") or {})
    reasons += _old_keys(report.get("old_keys_held") or {})
    unfinished = sum(states.get(s, 0) for s in ("captured", "extracted", "valid", "queued", "delivering"))
    return Health(reasons, ok_text=f"daemon alive, {unfinished} documents on their way, none late")


def _config(config: dict | None, time_text: TimeText) -> list[Reason]:
    # The daemon does not run what the config file says (service/config_state.py):
    # a reload it refused, or settings it takes only at a restart. WARNING:
    # it goes on working, on the config it had, and the next restart changes that.
    if not config:
        return []
    out = []
    if config.get("reload_refused"):
        reload = config.get("reload") or {}
        out.append(Reason(WARNING, f"the daemon runs the config loaded at {time_text(config.get('loaded_at'))}: "
                                   f"its reload at {time_text(reload.get('at'))} was refused: {reload.get('reason')}"))
    if config.get("restart_needed"):
        out.append(Reason(WARNING, "config settings changed that take effect only at a restart: "
                                   + "; ".join(config["restart_needed"])))
    return out


def _fleet(fleet: dict | None, time_text: TimeText) -> list[Reason]:
    # Deliveries held because the shared store does not answer (on_unreachable = hold).
    if not fleet or not fleet.get("claims", {}).get("held"):
        return []
    n = fleet["claims"]["held"]
    return [Reason(WARNING, f"{_n(n, 'invoice')} held since {time_text(fleet.get('held_since'))}: "
                            f"{fleet.get('held_reason')}")]


def _fleet_claims_lost(fleet: dict | None, time_text: TimeText) -> list[Reason]:
    # The store in doubt (its epoch gone, another or older, a claim seen there
    # gone: new claims look up first until acknowledged), and keys this site
    # knew claimed with no claim left (none delivered again on that alone).
    fleet, out = fleet or {}, []
    if fleet.get("doubt"):
        out.append(Reason(WARNING, f"the fleet store may have lost its claims (since "
                                   f"{time_text(fleet.get('doubt_since'))}): {fleet['doubt']}; every new claim "
                                   "here looks every destination up before any put until `fapiao-agent fleet "
                                   "acknowledge`"))
    if n := fleet.get("vanished") or 0:
        out.append(Reason(WARNING, f"the fleet store lost the claims of {_n(n, 'invoice')} this site knew "
                                   "claimed (an expiry rule on claims/, a bucket made anew, another [fleet] "
                                   "url?); none is delivered again on that alone"))
    return out


def _same_name(fleet: dict | None) -> list[Reason]:
    # Another live agent publishes under this site's name (a copied config):
    # the two overwrite each other's status.json and would share one backup
    # layout. CRITICAL: until now only `fleet status` showed it.
    if not fleet or not fleet.get("same_name"):
        return []
    return [Reason(CRITICAL, f"site name used by another agent: {fleet['same_name']}")]


def _daemon(d: dict | None, limits: Thresholds) -> list[Reason]:
    if not d:
        return [Reason(CRITICAL, "the daemon never ran on this ledger")]
    if d.get("activity") == RESTORED_ACTIVITY:
        return [Reason(CRITICAL, "the daemon has not run since this ledger was restored")]
    if d.get("activity") == "stopped":
        return [Reason(CRITICAL, f"the daemon is stopped (for {span(d.get('age_s'))})")]
    age = d.get("age_s")
    if age is None or age >= limits.heartbeat_stale_s:
        return [Reason(CRITICAL, f"the daemon's heartbeat is stale (last {span(age)} ago)")]
    if not d.get("alive"):
        return [Reason(CRITICAL, f"the daemon is not running (pid {d.get('pid')} is gone)")]
    out = []
    details = heartbeat_details(d)
    if details.get("intake_paused"):
        out.append(Reason(CRITICAL, f"intake paused: {details['intake_paused']}"))
    for path, why in (details.get("folders_not_watched") or {}).items():
        out.append(Reason(CRITICAL, f"folder {path} not watched: {why}"))
    if details.get("folders_unreadable"):
        n = details.get("folders_unreadable_count") or len(details["folders_unreadable"])
        path, why = next(iter(details["folders_unreadable"].items()))
        out.append(Reason(CRITICAL, f"{_n(n, 'folder')} in a watched folder cannot be read, so "
                                    f"{'its' if n == 1 else 'their'} files are not taken ({path}: {why})"))
    if details.get("state_dir_moved"):
        out.append(Reason(CRITICAL, details["state_dir_moved"]))
    if late := files_waiting_late(details):
        n, oldest, path, why = late
        out.append(Reason(WARNING, f"{_n(n, 'file')} in a watched folder not taken ({path}: {why})"))
    return out


def files_waiting_late(details: dict) -> tuple[int, float, str, str] | None:
    """(files, seconds since the oldest was first seen, a path, its why)
    from a heartbeat's details when files in a watched folder have not been
    taken WAITING_ALERT_S after they were first seen (`files_stuck_count`):
    their writer never stops (`files_waiting`), or intake holds them
    (`files_held`: unreadable just now, an e-mail never finished). The path
    named is the oldest of either kind. None otherwise, also for details of
    an older version."""
    count, oldest = details.get("files_stuck_count"), details.get("files_stuck_oldest_s")
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0 or \
            not isinstance(oldest, (int, float)) or isinstance(oldest, bool):
        return None
    named = []
    for kind in ("files_waiting", "files_held"):
        first, listed = details.get(f"{kind}_oldest_s"), details.get(kind)
        if isinstance(first, (int, float)) and isinstance(listed, dict) and listed:
            named.append((first, *next(iter(listed.items()))))
    _, path, why = max(named, key=lambda item: item[0]) if named else (0, "?", "?")
    return count, float(oldest), str(path), str(why)


def _delivery(delivery: dict, states: dict, limits: Thresholds) -> list[Reason]:
    out = []
    hours = f"{limits.sla_hours:g} h"
    late = delivery.get("sla_breaches") or 0
    if late:
        held = {s: n for s, n in (delivery.get("late_by_state") or {}).items() if n}
        out.append(Reason(CRITICAL, f"{_n(late, 'invoice')} past the {hours} SLA" + _parts(held)))
    near = delivery.get("near_sla") or 0
    if near:
        out.append(Reason(WARNING, f"{_n(near, 'invoice')} near the {hours} SLA "
                                   f"(waiting over {limits.sla_warn_hours:g} h)"))
    out += _count(states.get("failed", 0), limits.failed_warn, limits.failed_crit,
                  "whose delivery failed (retries exhausted)")
    for name, n in sorted((delivery.get("unknown_destinations") or {}).items()):
        rows = "1 delivery waits" if n == 1 else f"{n} deliveries wait"
        out.append(Reason(CRITICAL, f"{rows} for destination {name}, which the config no longer has "
                                    "(renamed or removed?): put it back, or nothing delivers them; removed on "
                                    f"purpose: fapiao-agent drop-destination {name} --reason TEXT"))
    for dest in delivery.get("destinations") or []:
        if dest.get("overdue_leases"):
            rows = "1 delivery" if dest["overdue_leases"] == 1 else f"{dest['overdue_leases']} deliveries"
            out.append(Reason(WARNING, f"destination {dest['name']}: {rows} still being sent past the lease "
                                       "(a worker hung on an answer that never ends, or died)"))
        if dest.get("paused_error"):
            out.append(Reason(CRITICAL, f"destination {dest['name']} paused: {dest['paused_error']}"))
        elif (dest.get("breaker") or {}).get("state") not in (None, "closed"):
            out.append(Reason(WARNING, f"destination {dest['name']} not answering (breaker "
                                       f"{dest['breaker']['state']})"))
    return out


def held_elsewhere(applications: dict) -> dict[str, int]:
    """Documents a pending 补录 application holds that are NOT quarantined,
    by state (a duplicate the application says is another invoice): from
    `status --json`'s `applications.held`. They wait for a person as a
    quarantined one does, though no quarantine count or SLA sees them."""
    return {s: n for s, n in (applications.get("held") or {}).items() if n and s != "quarantined"}


def _waiting_for_a_person(quarantined: int, held: dict[str, int], limits: Thresholds) -> list[Reason]:
    # One count of what needs a person, judged by quarantined_warn/crit: a
    # held duplicate is no less waiting than a quarantined document.
    if not held:
        return _count(quarantined, limits.quarantined_warn, limits.quarantined_crit,
                      "quarantined (waiting for a person)")
    others = ", ".join(f"{n} {s}" for s, n in sorted(held.items()))
    return _count(quarantined + sum(held.values()), limits.quarantined_warn, limits.quarantined_crit,
                  f"waiting for a person ({quarantined} quarantined; held by a pending 补录 application: {others})")


def _applications(applications: dict, limits: Thresholds) -> list[Reason]:
    # 补录 applications past [health] application_pending_hours: someone
    # filed a correction and no approver has looked at it since.
    n = applications.get("overdue") or 0
    if not n or not limits.application_pending_hours:
        return []
    oldest = (applications.get("overdue_applications") or [{}])[0]
    named = (f" (the oldest {oldest['number']}, document {oldest['document_id']} ({oldest['doc_state_now']}), "
             f"filed by {oldest['filer']} {span(applications.get('oldest_age_s'))} ago)" if oldest else "")
    return [Reason(WARNING, f"{_n(n, '补录 application')} pending over {limits.application_pending_hours:g} h{named}: "
                            "`fapiao-agent requests --state pending`, then approve or decline")]


def _rejected_there(there: dict) -> list[Reason]:
    # A person rejected it, and a destination holds it (or may): the finance
    # system books what the ledger says must not be, until someone removes it.
    return _to_remove(there, "rejected invoice", "still at a destination",
                      "remove it there by hand, then `fapiao-agent reconcile`")


def _old_keys(old: dict) -> list[Reason]:
    # A destination holds an invoice under a 号码 an amend corrected since
    # (agent/ledger/held_keys.py): a copy under a wrong number, until a
    # person removes it there.
    return _to_remove(old, "invoice", "held at a destination under an old key", "remove each copy there by hand, "
                      "then `fapiao-agent forget-key` (or `fapiao-agent reconcile`)")


def _to_remove(found: dict, noun: str, where: str, todo: str) -> list[Reason]:
    n = found.get("count") or 0
    if not n:
        return []
    listed = [str(d["document_id"]) for d in found.get("documents") or []]
    ids = f" (document{'s' if len(listed) > 1 else ''} {', '.join(listed)})" if listed else ""
    return [Reason(WARNING, f"{_n(n, noun)} {where}{ids}: {todo}")]


def _count(n: int, warn: int, crit: int, what: str) -> list[Reason]:
    if crit and n >= crit:
        return [Reason(CRITICAL, f"{_n(n, 'invoice')} {what}")]
    if warn and n >= warn:
        return [Reason(WARNING, f"{_n(n, 'invoice')} {what}")]
    return []


def _backups(targets: list[dict], limits: Thresholds, now: dt.datetime) -> list[Reason]:
    out = []
    for t in targets:
        name = t["name"]
        if t.get("failed"):
            out.append(Reason(CRITICAL, f"backup target {name}: {_n(t['failed'], 'object')} cannot be "
                                        "backed up (the vault copy is missing or corrupt)"))
        since = t.get("paused_at") if t.get("paused_error") else t.get("unreachable_since")
        if not since:
            continue
        minutes = (now - parse_utc(since)).total_seconds() / 60
        what = (f"backup target {name} paused for {span(minutes * 60)}: {t['paused_error']}" if t.get("paused_error")
                else f"backup target {name} unreachable for {span(minutes * 60)}")
        if limits.backup_unreachable_crit_minutes and minutes >= limits.backup_unreachable_crit_minutes:
            out.append(Reason(CRITICAL, what))
        elif t.get("paused_error") or minutes >= limits.backup_unreachable_warn_minutes:
            out.append(Reason(WARNING, what))  # paused: a person must act, so at once
    return out


def _drills(targets: list[dict], limits: Thresholds, now: dt.datetime) -> list[Reason]:
    # The restore drill (agent/backup/drill.py): the latest one failed, or none passed lately.
    out = []
    for t in targets:
        name, d = t["name"], t.get("last_drill")
        if d and not d.get("ok"):
            ago = span((now - parse_utc(d["finished_at"])).total_seconds())
            why = (d.get("reason") or "")[:200]
            if d.get("mismatch"):
                out.append(Reason(CRITICAL, f"backup target {name}: restore drill {ago} ago got back bytes "
                                            f"that are not what we stored: {why}"))
            else:
                out.append(Reason(WARNING, f"backup target {name}: restore drill failed {ago} ago: {why}"))
            continue
        if not limits.drill_max_age_days:
            continue
        since = d["finished_at"] if d else t.get("first_backup_at")
        if not since:
            continue   # never drilled and holding nothing: nothing to prove yet
        age = (now - parse_utc(since)).total_seconds()
        if age >= limits.drill_max_age_days * 86400:
            out.append(Reason(WARNING, f"backup target {name}: last passed restore drill {span(age)} ago" if d
                              else f"backup target {name}: never restore-drilled, holding backups for {span(age)}"))
    return out


def _unkept(targets: list[dict], now: dt.datetime) -> list[Reason]:
    # Objects a verification found missing or changed and could not repair
    # (Ledger.unverified_counts): a store that answers 200 and keeps nothing
    # looks healthy otherwise, and the next verification is a day away.
    # Other bytes than we stored are CRITICAL, as in a failed drill.
    out = []
    for t in targets:
        u = t.get("unverified") or {}
        missing, mismatch = u.get("missing") or 0, u.get("mismatch") or 0
        if not (missing or mismatch):
            continue
        ago = f", found {span((now - parse_utc(u['since'])).total_seconds())} ago" if u.get("since") else ""
        if mismatch:
            out.append(Reason(CRITICAL, f"backup target {t['name']}: {_n(mismatch, 'object')} read back with "
                                        f"other bytes than we stored after a repair{ago}"))
        if missing:
            out.append(Reason(WARNING, f"backup target {t['name']}: {_n(missing, 'object')} missing after a "
                                       f"repair{ago} (the store accepts puts but does not keep them?)"))
    return out


def span(seconds: float | None) -> str:
    """A duration as people say it in an alert: `40 s`, `25 min`, `2 h`, `2.5 h`, `3 d`."""
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}".removesuffix(".0") + " h"
    return f"{seconds / 86400:.1f}".removesuffix(".0") + " d"


def _n(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _parts(counts: dict[str, int]) -> str:
    return f" ({', '.join(f'{n} {state}' for state, n in counts.items())})" if counts else ""


def heartbeat_details(d: dict) -> dict:
    """The daemon heartbeat's JSON `details` as a dict; {} when absent,
    unparsable or not an object (never raises)."""
    try:
        details = json.loads(d.get("details") or "{}")
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}

