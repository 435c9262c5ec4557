"""One view of the fleet: each site's `sites/<site>/status.json`, read back
by any site (`fleet status`), and which site holds an invoice (`fleet find`).
Pure: the store and `now` come from the caller."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from agent.errors import AdapterError, Permanent
from agent.fleet.claims import CLAIMS, _GEN, ClaimRecord, check_calendar, claim_prefix, head
from agent.fleet.store import FleetStore

SITES = "sites/"
STATUS_NAME = "status.json"
# A site whose status is older than this many of its intervals is marked stale.
STALE_INTERVALS = 3
# A status.json is read no further than this (one is a few KiB).
STATUS_MAX_BYTES = 1 << 20
# What `fleet status` prints of a site's status, and the JSON types it must have.
_SHAPE = {"states": dict, "health": dict, "backup": dict, "fleet": dict, "same_name": str,
          "oldest_unfinished_age_s": (int, float), "interval_s": (int, float), "written_at": str}


def status_key(site: str) -> str:
    """Where a site's status lives in the store."""
    return f"{SITES}{site}/{STATUS_NAME}"


def site_status(site: str, report: dict[str, Any], *, now: dt.datetime, interval_s: float) -> bytes:
    """The JSON a site publishes: `status --json`'s figures (counts by state,
    oldest unfinished, SLA, backup backlog, heartbeat, health) with the site,
    the time written and the interval the next one is due in."""
    body = {"site": site, "written_at": now.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
            "interval_s": interval_s, **{k: report.get(k) for k in (
                "states", "oldest_unfinished", "oldest_unfinished_age_s", "last_activity", "daemon",
                "delivery", "backup", "fleet", "health")}}
    return json.dumps(body, ensure_ascii=False, default=str, sort_keys=True).encode()


def publish_status(store: FleetStore, site: str, holder: str, report: dict[str, Any], *, now: dt.datetime,
                   interval_s: float) -> str | None:
    """Write `site`'s status.json (`site_status`, with this agent's `holder`).
    When the status it replaces was written by another agent (another
    holder) less than STALE_INTERVALS of its intervals ago, two agents use
    one site name: the status says so in `same_name` (read by `fleet status`)
    and the warning is returned for the log; else None. Raises
    Transient/Permanent when the store does not answer."""
    body = json.loads(site_status(site, report, now=now, interval_s=interval_s))
    body["holder"] = holder
    warning = None
    try:
        got = store.read(status_key(site), max_bytes=STATUS_MAX_BYTES)
    except Permanent:
        got = None   # too large or not an object: replaced below
    if got is not None:
        try:
            old = json.loads(got[0])
            age = (now - dt.datetime.fromisoformat(old["written_at"])).total_seconds()
            fresh = age <= STALE_INTERVALS * float(old.get("interval_s") or 60)
            if fresh and old.get("holder") and old["holder"] != holder:
                warning = (f"another agent also publishes as site {site!r} (its status was written "
                           f"{age:.0f} s ago from another ledger): give each site its own [fleet] site")
        except (ValueError, KeyError, TypeError, AttributeError):
            pass   # a stranger's or a broken status: replaced
    if warning:
        body["same_name"] = warning
    store.put(status_key(site), json.dumps(body, ensure_ascii=False, default=str, sort_keys=True).encode())
    return warning


def _site_status(data: bytes, now: dt.datetime) -> dict[str, Any]:
    # One site's status.json, checked: a JSON object whose printed fields have
    # their types, a time zone on written_at, a finite interval. Raises
    # ValueError/TypeError/KeyError (and RecursionError) on anything else.
    body = json.loads(data)
    if not isinstance(body, dict):
        raise TypeError(f"a JSON {type(body).__name__}, not an object")
    for name, kind in _SHAPE.items():
        if body.get(name) is not None and (not isinstance(body[name], kind) or isinstance(body[name], bool)):
            raise TypeError(f"{name} is a JSON {type(body[name]).__name__}")
    if any(not isinstance(n, int) or isinstance(n, bool) for n in body.get("states", {}).values()):
        raise TypeError("states holds something other than counts")
    targets = (body.get("backup") or {}).get("targets") or []
    if not isinstance(targets, list) or any(not isinstance(t, dict) or not isinstance(t.get("backlog") or 0, int)
                                            for t in targets):
        raise TypeError("backup targets are not objects with a backlog count")
    for section, name in (("health", "summary"), ("fleet", "held_reason"), ("fleet", "doubt")):
        if not isinstance((body.get(section) or {}).get(name) or "", str):
            raise TypeError(f"{section}.{name} is not text")
    written = dt.datetime.fromisoformat(body["written_at"])
    interval = float(body.get("interval_s") or 60)
    if written.tzinfo is None or not 0 < interval < 1e9:
        raise ValueError("written_at has no time zone" if written.tzinfo is None else f"interval_s {interval}")
    check_calendar(written, "written_at")
    age = (now - written).total_seconds()
    # Written more than an interval in the future: that site's clock is ahead
    # (or the stamp forged), and its heartbeat would look fresh for that long
    # after it died: stale until its clock is right.
    body.update(age_s=round(age, 1), stale=age > STALE_INTERVALS * interval or age < -interval)
    return body


def read_sites(store: FleetStore, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Every site's last status, by site name, each with `age_s` and `stale`
    (older than STALE_INTERVALS intervals, or written more than one interval
    in the future: a clock ahead would keep a dead site looking fresh). One site's status that cannot be
    shown (not JSON, the wrong shape, bigger than STATUS_MAX_BYTES: never
    read further, deleted between list and read, or a read that fails) is
    listed with `error` saying why and
    `stale` set; the other sites are shown as usual. Raises
    Transient/Permanent when the store cannot be listed."""
    out = []
    for key in store.list(SITES):
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != STATUS_NAME:
            continue
        try:
            got = store.read(key, max_bytes=STATUS_MAX_BYTES)
            if got is None:
                # Listed, then gone: a site must never drop out of the view unsaid.
                raise ValueError("status.json was deleted between listing and reading it")
            body = _site_status(got[0], now)
        except AdapterError as e:
            body = {"error": f"status.json not read: {e}", "stale": True}
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
            body = {"error": f"unreadable status.json ({type(e).__name__}: {str(e)[:160]})", "stale": True}
        body["site"] = parts[1]
        out.append(body)
    return sorted(out, key=lambda b: b["site"])


def find(store: FleetStore, number: str, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The claims whose invoice key is `number` or ends in `-number` (代码-号码):
    key, site, state, when claimed, lease, document id there. Raises
    Transient/Permanent when the store does not answer."""
    keys = {claim_prefix(number)}
    for k in store.list(CLAIMS):
        parts = k.split("/")
        if len(parts) == 3 and _GEN.fullmatch(parts[2]) and parts[1].endswith("-" + number):
            keys.add(f"{CLAIMS}{parts[1]}/")
    out = []
    for prefix in sorted(keys):
        key = prefix[len(CLAIMS):-1]
        try:
            rec: ClaimRecord | None = head(store, key, now=now)
        except Permanent as e:
            out.append({"invoice_key": key, "error": str(e)})
            continue
        if rec is not None:
            out.append({"invoice_key": key, "site": rec.site, "state": rec.state, "claimed_at": rec.at,
                        "lease_until": rec.lease_until, "document_id": rec.document_id,
                        "generation": rec.generation, "sha256": rec.sha256})
    return out
