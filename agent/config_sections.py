"""Checks of whole config sections beyond their keys' types: [fleet],
[health], [backup_policy]'s drill schedule and [report]. Each returns one
line per problem, naming the key; agent/config.py reports them all at once.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from agent.fleet import MAX_LEASE_S
from agent.redact import has_credentials

_SITE = re.compile(r"[a-z0-9-]{1,63}")


def fleet_problems(fleet: dict[str, Any]) -> list[str]:
    """One line per problem of the [fleet] section, naming the key (empty
    without a url: no fleet). The site must be a short [a-z0-9-] name: it is
    a key in the shared store and every other site shows it."""
    if not fleet.get("url"):
        extra = sorted(k for k, v in fleet.items() if v is not None and k not in ("lease_s", "on_unreachable", "status_interval_s", "retry_s", "settle_s"))
        return [f"fleet.{extra[0]}: set fleet.url too (without it there is no fleet)"] if extra else []
    out = []
    site = fleet.get("site")
    if not site:
        out.append("fleet.site: required with fleet.url (a name unique in the fleet, e.g. \"beijing\")")
    elif not _SITE.fullmatch(site):
        out.append(f"fleet.site: {site!r} must be 1-63 characters of a-z, 0-9 and -")
    url = fleet["url"]
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if has_credentials(url):
        out.append("fleet.url: holds credentials, which would end up in logs; set access_key_id and "
                   "secret_access_key instead")
    elif scheme not in ("s3", "file"):
        out.append(f"fleet.url: must start with s3:// or file://, not {scheme + '://' if scheme else 'a url without one'}")
    elif scheme == "s3" and len(url[5:].split("/", 1)[0]) < 3:
        out.append("fleet.url: names no bucket (s3://bucket/prefix)")
    elif scheme == "file" and not url[7:].startswith("/"):
        out.append("fleet.url: a file:// store must be absolute (file:///path)")
    if scheme == "file":
        extra = [k for k in ("endpoint_url", "region", "addressing_style", "access_key_id",
                             "secret_access_key") if fleet.get(k) is not None]
        if extra:
            out.append(f"fleet.{extra[0]}: applies only to an s3:// fleet url")
    if (fleet.get("access_key_id") is None) != (fleet.get("secret_access_key") is None):
        out.append("fleet.access_key_id: set both access_key_id and secret_access_key, or neither")
    if not fleet.get("lease_s") or fleet["lease_s"] < 10:
        out.append("fleet.lease_s: must be at least 10 seconds (a claim must outlive one delivery)")
    elif fleet["lease_s"] > MAX_LEASE_S:
        out.append(f"fleet.lease_s: must be at most {MAX_LEASE_S:.0f} seconds (a day: a claim whose lease "
                   "ends later is taken for a broken one, docs/fleet.md)")
    for key in ("retry_s", "settle_s"):
        if fleet.get(key) is not None and not 0.2 <= fleet[key] <= 3600:
            out.append(f"fleet.{key}: must be between 0.2 and 3600 seconds")
    return out


def health_problems(health: dict[str, Any]) -> list[str]:
    # Thresholds that would make `status --check` say nonsense.
    out = []
    if not 0 < health.get("sla_warn_fraction", 0.8) <= 1:
        out.append(f"health.sla_warn_fraction: must be more than 0 and at most 1 (a share of "
                   f"[delivery] sla_hours), not {health['sla_warn_fraction']!r}")
    if health.get("heartbeat_stale_s", 120.0) == 0:
        out.append("health.heartbeat_stale_s: must be more than 0 (the daemon beats every 5 s)")
    for warn, crit in (("backup_unreachable_warn_minutes", "backup_unreachable_crit_minutes"),
                       ("failed_warn", "failed_crit"), ("quarantined_warn", "quarantined_crit")):
        if health.get(warn) and health.get(crit) and health[crit] < health[warn]:
            out.append(f"health.{crit}: must not be below health.{warn} ({health[crit]} < {health[warn]})")
    return out


def drill_problems(policy: dict[str, Any]) -> list[str]:
    # A schedule the backup loop could not follow is refused at load, not met at 03:30.
    if "drill_weekday" not in policy or "drill_time" not in policy:
        return []   # a wrong type, already reported
    return [f"backup_policy.{key}: {problem}"
            for key, problem in check_schedule(policy["drill_weekday"], policy["drill_time"]).items()]


# The restore drill's schedule (agent/backup/drill.py follows it), here so
# that loading a config does not import the drill and the backup code behind it.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def check_schedule(weekday: str, at: str) -> dict[str, str]:
    """The problem with each of `weekday` (mon..sun, or off) and `at` (HH:MM), by
    their [backup_policy] key; empty when they make a schedule."""
    out = {}
    if weekday not in (*WEEKDAYS, "off"):
        out["drill_weekday"] = f"must be one of {', '.join(WEEKDAYS)} or off, not {weekday!r}"
    try:
        drill_clock(at)
    except ValueError:
        out["drill_time"] = f"must be a time of day HH:MM such as 03:30, not {at!r}"
    return out


def drill_clock(at: str) -> dt.time:
    """`at` (HH:MM, two digits each) as a time of day; ValueError otherwise."""
    hh, sep, mm = at.partition(":")
    if sep != ":" or len(hh) != 2 or len(mm) != 2 or not (hh + mm).isdigit():
        raise ValueError(at)
    return dt.time(int(hh), int(mm))


def report_problems(report: dict[str, Any]) -> list[str]:
    # A weekly report that would never run, or at a moment no clock has.
    out = []
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", report.get("time", "08:00")):
        out.append(f"report.time: must be HH:MM (24 h), not {report['time']!r}")
    try:
        # The default always is one (figures.DEFAULT_ZONE, UTC+8 without
        # tzdata); anything else is looked up, which loads zoneinfo.
        if report.get("time_zone", "Asia/Shanghai") != "Asia/Shanghai":
            from agent.report.figures import zone_of
            zone_of(report["time_zone"])
    except (ValueError, KeyError, OSError):
        out.append(f"report.time_zone: {report['time_zone']!r} is not a time zone (e.g. \"Asia/Shanghai\")")
    if report.get("keep_weeks", 1) < 1:
        out.append("report.keep_weeks: must be at least 1")
    return out
