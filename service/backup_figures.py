"""A backup report as `status`, `backup status` and the weekly report show
it: each target's state, the copies held, the last restore drill. Apart
from the backup commands so `status` imports no backup machinery."""

from __future__ import annotations

import datetime as dt

from agent.config import Config
from agent.ledger import Ledger
from service.context import age_seconds, human_age, now_dt
from service.display import local_time


def backup_report(ledger: Ledger, cfg: Config, at: dt.datetime | None = None) -> dict:
    """Per target: objects and bytes held, backlog (count, oldest), failed,
    pause, last put, last verify and its result, last ledger snapshot, and
    `reachable`: "ok", "unreachable" (since `unreachable_since`, for
    `unreachable_for_s`: no put, snapshot or verify has answered since),
    "paused" (a person must fix it), "not keeping" (`unverified`: objects a
    verification found missing or changed could not be repaired) or "never used". Then how many
    originals meet min_copies, counted apart: `backed_up`/`objects` over every
    original the vault keeps (documents' files, raw e-mails, refused files
    kept), `documents_backed_up`/`documents` over documents' files. Ages
    are counted to `at` (default: now)."""
    at = at or now_dt()
    names = [b["name"] for b in cfg.backups]
    targets = []
    for name in names:
        t = ledger.backup_target(name)
        t["backlog_oldest_age_s"] = age_seconds(t["backlog_oldest"], at)
        t["url"] = next(b["url"] for b in cfg.backups if b["name"] == name)
        t["unreachable_for_s"] = age_seconds(t["unreachable_since"], at)
        unkept = t["unverified"]["missing"] + t["unverified"]["mismatch"]
        t["reachable"] = ("paused" if t["paused_error"] else "unreachable" if t["unreachable_since"]
                          else "not keeping" if unkept
                          else "ok" if t["last_put_at"] or t["last_snapshot_at"] or t["last_verify_at"]
                          else "never used")
        targets.append(t)
    drills = {d["target"]: d for d in ledger.last_restore_drills(names)}
    for t in targets:
        t["last_drill"] = drills.get(t["name"])   # the restore drill: agent/backup/drill.py
        t["first_backup_at"] = ledger.first_backup_at(t["name"])
    min_copies = int(cfg.backup_policy["min_copies"])
    return {"targets": targets, "min_copies": min_copies or len(names),
            **ledger.backed_up_count(names, min_copies)}


def target_state(t: dict) -> str:
    """A target's reachability as `status` and `backup status` print it."""
    if t["reachable"] == "paused":
        return f"PAUSED since {local_time(t['paused_at'])}: {t['paused_error']}"
    if t["reachable"] == "unreachable":
        return (f"UNREACHABLE since {local_time(t['unreachable_since'])} ({human_age(t['unreachable_for_s'])})"
                + (f": {t['last_error']}" if t["last_error"] else ""))
    if t["reachable"] == "not keeping":
        u = t["unverified"]
        return (f"NOT KEEPING since {local_time(u['since'])}: {u['missing']} missing, {u['mismatch']} with other "
                "bytes after a verification's repair (not counted as held until they read back whole)")
    return t["reachable"]


def drill_line(d: dict | None) -> str:
    """A restore drill (`last_restore_drills` or `backup drill --json`) in one
    line: when, OK or FAILED, the sample, the snapshot, the first reason."""
    if not d:
        return "never"
    snap = ("no snapshot" if d["snapshot"] is None else
            f"snapshot {'ok' if d['snapshot_ok'] else 'FAILED'}")
    return (f"{local_time(d['finished_at'])} {'OK' if d['ok'] else 'FAILED'}: {d['sampled'] - d['failed']}/{d['sampled']} "
            f"objects, {snap} (seed {d['seed']})" + (f"; {d['reason']}" if d["reason"] else ""))


def backed_up_line(report: dict) -> str:
    """`14/14 originals on at least 1 target(s) (documents' files 13/13, raw
    e-mails and refused files 1/1)`: held of total, each part apart, so an
    e-mail is never counted against documents."""
    other, other_held = (report["objects"] - report["documents"],
                         report["backed_up"] - report["documents_backed_up"])
    return (f"{report['backed_up']}/{report['objects']} originals on at least {report['min_copies']} "
            f"target(s) (documents' files {report['documents_backed_up']}/{report['documents']}, "
            f"raw e-mails, zip archives and refused files {other_held}/{other})")
