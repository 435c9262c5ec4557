"""Which faults are open now: read from the figures `status` shows (its
JSON-ready report) and the free space of the agent's folders. Pure: the
report, the disk figures, the entry's thresholds and `now` come in.

Each fault has a stable key (`backup-failing:s3main`), so the outbox can
tell one when it opens and once when it is resolved, however often it is
seen in between. The texts are Chinese first (the office reads them), then
English, and carry the numbers and names a person needs to act. Every
value not written here (an entry's or a label's name, a path, a server's
error, a filer) is a `code_span`: the robots read the rest as markdown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from agent.health import files_waiting_late, heartbeat_details, span
from agent.ledger.rows import TimeText, as_stored, parse_utc
from agent.notify.base import code_span, one_line


@dataclass(frozen=True)
class Fault:
    """One open fault: `key` stable while it lasts, its event, a subject and the detail text."""

    key: str
    event: str
    subject: str
    text: str


def open_faults(report: dict, entry: dict[str, Any], *, now: dt.datetime,
                disk: dict[str, dict] | None = None, sla_warn_fraction: float = 0.8,
                time_text: TimeText = as_stored) -> dict[str, Fault]:
    """The faults of the events `entry` asks for that `report` (status's
    dict: delivery, backup) and `disk` ({label: {path, free, total}} in
    bytes) show at `now`, by key, a stored time in their texts written by
    `time_text` (the daemon passes local time). An event the entry does not
    want is never a fault here."""
    wanted = set(entry.get("events") or ())
    found: list[Fault] = []
    delivery = report.get("delivery") or {}
    hours = _hours(delivery, report)
    if "sla-breached" in wanted and delivery.get("sla_breaches"):
        n = delivery["sla_breaches"]
        held = ", ".join(f"{k} {v}" for k, v in (delivery.get("late_by_state") or {}).items() if v)
        found.append(Fault("sla-breached", "sla-breached", f"{n} 张发票超过 {hours} 小时未送达 / {n} invoices past the {hours} h SLA",
                           f"{n} 张发票自到达起已超过 {hours} 小时仍未送达财务系统 ({held or '-'}).\n"
                           f"{n} invoice(s) not delivered {hours} h after arrival ({held or '-'}).\n"
                           "See `fapiao-agent status` and `fapiao-agent list --state quarantined`."))
    if "sla-at-risk" in wanted and delivery.get("near_sla"):
        n = delivery["near_sla"]
        warn = f"{float(hours) * sla_warn_fraction:g}"
        found.append(Fault("sla-at-risk", "sla-at-risk", f"{n} 张发票即将超时 / {n} invoices near the {hours} h SLA",
                           f"{n} 张发票已等待超过 {warn} 小时 (时限 {hours} 小时).\n"
                           f"{n} invoice(s) waiting over {warn} h of the {hours} h SLA."))
    for dest in delivery.get("destinations") or []:
        if "destination-paused" in wanted and dest.get("paused_error"):
            name, shown = dest["name"], code_span(dest["name"])
            found.append(Fault(f"destination-paused:{name}", "destination-paused",
                               f"投递目标 {shown} 已暂停 / destination {shown} paused",
                               f"投递目标 {shown} 已暂停 (since {time_text(dest.get('paused_at')) or '?'}): {code_span(dest['paused_error'])}\n"
                               f"backlog {dest.get('backlog', 0)}; fix it, then `fapiao-agent retry`."))
    for t in (report.get("backup") or {}).get("targets") or []:
        name, shown = t["name"], code_span(t["name"])
        since = t.get("paused_at") if t.get("paused_error") else t.get("unreachable_since")
        if "backup-failing" in wanted and since:
            minutes = (now - parse_utc(since)).total_seconds() / 60
            if minutes >= float(entry.get("backup_failing_minutes") or 0):
                why = code_span(t.get("paused_error") or t.get("last_error") or "not answering")
                found.append(Fault(f"backup-failing:{name}", "backup-failing",
                                   f"备份目标 {shown} 故障 {span(minutes * 60)} / backup target {shown} failing",
                                   f"备份目标 {shown} 自 {time_text(since)} 起无法备份 ({span(minutes * 60)}): {why}\n"
                                   f"backup target {shown} failing since {time_text(since)}; backlog {t.get('backlog', 0)} objects."))
        last = t.get("last_verify") or {}
        if "verify-mismatch" in wanted and (last.get("mismatch") or 0) > 0:
            found.append(Fault(f"verify-mismatch:{name}", "verify-mismatch",
                               f"备份校验不一致: {shown} / backup verify mismatch on {shown}",
                               f"备份目标 {shown} 的校验 ({time_text(t.get('last_verify_at'))}) 发现 {last['mismatch']} 个对象与金库不一致, "
                               f"已修复 {last.get('repaired', 0)} 个.\n"
                               f"verify of {shown} found {last['mismatch']} mismatching object(s) of "
                               f"{last.get('checked', 0)} checked, {last.get('repaired', 0)} repaired."))
    for label, d in (disk or {}).items() if "disk-full" in wanted else ():
        total, free = d.get("total") or 0, d.get("free") or 0
        if total and free * 100.0 / total < float(entry.get("disk_free_percent") or 0):
            pct = free * 100.0 / total
            # A label names a destination or backup entry, the path is where it writes.
            shown, path = code_span(label), code_span(d.get("path"))
            found.append(Fault(f"disk-full:{label}", "disk-full",
                               f"磁盘空间不足: {shown} / disk nearly full: {shown}",
                               f"{shown} ({path}) 仅剩 {free / 2**20:.0f} MiB ({pct:.1f}%).\n"
                               f"{shown} ({path}) has {free / 2**20:.0f} MiB free ({pct:.1f} %)."))
    if "intake-stuck" in wanted:
        found += _intake_stuck(heartbeat_details(report.get("daemon") or {}))
    if "application-pending" in wanted:
        found += _applications_pending(report.get("applications") or {}, now, time_text)
    if "config-refused" in wanted:
        found += _config_refused(report.get("config") or {}, time_text)
    if "rejected-at-destination" in wanted:
        found += _rejected_at_destination(report.get("rejected_there") or {})
    if "held-under-old-key" in wanted:
        found += _held_under_old_key(report.get("old_keys_held") or {})
    if "fleet-claims-lost" in wanted:
        found += _fleet_claims_lost(report.get("fleet") or {}, time_text)
    return {f.key: f for f in found}


def _fleet_claims_lost(fleet: dict, time_text: TimeText) -> list[Fault]:
    # The fleet store lost claims, or may have (docs/fleet.md): this site
    # doubts it (its epoch gone, another or older, a claim seen there gone),
    # and/or keys it knew claimed have no claim left. One fault: one store,
    # one keeper to tell; resolved once acknowledged and the claims settled.
    # What a site found is the store's text (a site wrote it there): a code span.
    doubt, n = fleet.get("doubt"), fleet.get("vanished") or 0
    if not doubt and not n:
        return []
    site = code_span(fleet.get("site") or "?")
    lines_zh, lines_en = [], []
    if doubt:
        since = time_text(fleet.get("doubt_since")) or "?"
        lines_zh.append(f"站点 {site} 自 {since} 起怀疑共享存储已丢失认领记录: {code_span(doubt)}. "
                        "在确认之前, 每张新认领的发票投递前都先在各目标查询.")
        lines_en.append(f"site {site} doubts since {since} that the fleet store still holds its claims: "
                        f"{code_span(doubt)}. Until acknowledged, every new claim looks every destination up "
                        "before any put.")
    if n:
        lines_zh.append(f"共享存储已丢失本站点所知的 {n} 张发票的认领记录.")
        lines_en.append(f"the fleet store lost the claims of {n} invoice(s) this site knew claimed.")
    return [Fault("fleet-claims-lost", "fleet-claims-lost",
                  f"共享存储可能丢失了认领记录 / the fleet store may have lost its claims (site {site})",
                  "\n".join(lines_zh + lines_en) + "\nFind out what happened to the store (`fapiao-agent fleet "
                  "epoch`), tell finance which invoices may have gone twice, then `fapiao-agent fleet acknowledge "
                  "--reason ...` at one site.")]


def _config_refused(config: dict, time_text: TimeText) -> list[Fault]:
    # The daemon refused a reload and still runs other bytes than the file
    # (status's `reload_refused`: service/config_state.py). One key: it is
    # one daemon's one config, open until a reload is taken or the file is
    # put back; a second refused edit meanwhile is the same fault (a
    # reminder carries its reason), never a "resolved" while the old config
    # still runs. Settings waiting for a restart are no fault here: that
    # reload was taken, the operator who sent it was told in the log, the
    # daemon works as before, and only a restart they plan clears it (an
    # alert would nag until then); `status --check` warns of it.
    if not config.get("reload_refused"):
        return []
    reload = config.get("reload") or {}
    path = code_span(config.get("path") or config.get("file") or "?")
    # A refusal's reason is the config's errors (a line each) and can quote
    # the file: a stranger's text, on one line, as code, not endless.
    reason = "; ".join(line.strip() for line in str(reload.get("reason") or "?").splitlines() if line.strip())
    reason = code_span(reason if len(reason) <= _REASON_MAX else reason[:_REASON_MAX] + " …")
    loaded, at = time_text(config.get("loaded_at")) or "?", time_text(reload.get("at")) or "?"
    return [Fault("config-refused", "config-refused", f"配置重新加载被拒绝 / config reload refused: {path}",
                  f"配置文件 {path} 已修改, 但 {at} 的重新加载被拒绝; 服务仍按 {loaded} 加载的旧配置运行: {reason}\n"
                  f"the config file {path} was changed, but its reload at {at} was REFUSED; the daemon still "
                  f"runs the config it loaded at {loaded}: {reason}\n"
                  "Fix the file (`fapiao-agent config check`), then `systemctl reload fapiao-agent`; "
                  "or put the file back as it was.")]


def _rejected_at_destination(there: dict) -> list[Fault]:
    # Rejected documents a destination holds or may hold (status's REJECTED
    # line, `audit ledger`'s rejected-at-destination): a rejection takes
    # nothing back, only a person can, there. One fault for them all (one
    # kind of chore), naming the first few; resolved once `reconcile` finds
    # each gone. Keys are made of an invoice's fields: code spans.
    n = there.get("count") or 0
    if not n:
        return []
    docs = (there.get("documents") or [])[:_LISTED]
    listed = "; ".join(f"#{d['document_id']} " + ", ".join(_held(r) for r in d.get("at") or ()) for d in docs)
    more = f"; and {n - len(docs)} more (`fapiao-agent status`)" if n > len(docs) else ""
    return [Fault("rejected-at-destination", "rejected-at-destination",
                  f"{n} 张已驳回的发票仍在投递目标 / {n} rejected invoice(s) still at a destination",
                  f"{n} 张已驳回的发票仍在 (或可能在) 投递目标中, 驳回不会从目标撤回: {listed}{more}\n"
                  f"{n} rejected invoice(s) still held (or maybe held) by a destination; a rejection takes "
                  f"nothing back: {listed}{more}.\n"
                  "Remove each there by hand, then run `fapiao-agent reconcile`: it finds it gone.")]


def _held_under_old_key(old: dict) -> list[Fault]:
    # Invoices a destination holds under a 号码 an amend corrected since
    # (status's OLD KEYS line, agent/ledger/held_keys.py): a copy under a
    # wrong number in the finance system, which no delivery takes back. One
    # fault for them all, as rejected-at-destination; resolved once each is
    # forgotten (`forget-key`, or `reconcile` finding it gone).
    n = old.get("count") or 0
    if not n:
        return []
    docs = (old.get("documents") or [])[:_LISTED]
    listed = "; ".join(f"#{d['document_id']} " + ", ".join(
        f"{code_span(a.get('destination'))} (old key {code_span(a.get('key') or '?')})" for a in d.get("at") or ())
        for d in docs)
    more = f"; and {n - len(docs)} more (`fapiao-agent status`)" if n > len(docs) else ""
    return [Fault("held-under-old-key", "held-under-old-key",
                  f"{n} 张发票仍以旧号码存于投递目标 / {n} invoice(s) still held at a destination under an old key",
                  f"{n} 张发票在补录更正号码后, 投递目标中仍存有旧号码的副本: {listed}{more}\n"
                  f"{n} invoice(s) still held by a destination under a key an amend has corrected since: "
                  f"{listed}{more}.\n"
                  "Remove each old copy there by hand, then run `fapiao-agent forget-key ID --destination NAME "
                  "--key KEY --reason TEXT` (or `fapiao-agent reconcile`: it finds it gone).")]


def _held(row: dict) -> str:
    # One destination's hold of a rejected document (rejections.where_held's
    # cases, shorter, the key as code).
    state = row.get("state")
    how = ("a put in flight, maybe under key" if state == "delivering"
           else "under its old key" if state == "superseded" else f"{one_line(state)} under key")
    return f"{code_span(row.get('destination'))} ({how} {code_span(row.get('key') or '?')})"


def _applications_pending(applications: dict, now: dt.datetime, time_text: TimeText) -> list[Fault]:
    # Each 补录 application pending past [health] application_pending_hours,
    # keyed by its number: told once when it crosses the threshold, resolved
    # once it is approved or declined. Its document may be a `duplicate`,
    # which no quarantine digest or SLA fault ever names. The filer's reason
    # is a person's free text: one line, as a code span (no markdown, no
    # mention in a robot).
    hours = f"{float(applications.get('overdue_hours') or 0):g}"
    found = []
    for a in applications.get("overdue_applications") or ():
        number, age = a["number"], span((now - parse_utc(a["filed_at"])).total_seconds())
        doc = f"#{a['document_id']} ({a['doc_state_now']})"
        who = code_span(str(a.get("filer") or "?"))
        reason = code_span(a.get("reason") or "")
        found.append(Fault(f"application-pending:{number}", "application-pending",
                           f"补录申请 {number} 待审批已 {age} / 补录 application {number} pending {age}",
                           f"补录申请 {number} ({a['kind']}, 发票 {doc}) 由 {who} 于 {time_text(a['filed_at'])} 提交, "
                           f"已等待审批 {age} (超过 {hours} 小时): {reason}\n"
                           f"补录 application {number} ({a['kind']}) for document {doc}, filed by {who} at "
                           f"{time_text(a['filed_at'])}, has waited {age} for an approver (over {hours} h): "
                           f"{reason}\nThe document waits until someone other than the filer runs "
                           f"`fapiao-agent approve {number}` or `fapiao-agent decline {number}`."))
    return found


def _intake_stuck(details: dict) -> list[Fault]:
    # Files that land and are not taken in: intake paused (the vault cannot
    # take them), a watched folder refused or replaced, folders below one
    # that cannot be listed, a file that never settles or cannot be read.
    # Each is a line of `status`; here it also reaches a person. Names are a
    # stranger's text: code spans (no markdown, mention or link in a robot)
    # and escaped (a non-UTF-8 byte as \xNN, also in the key the ledger keeps).
    found = []
    if details.get("intake_paused"):
        why = code_span(str(details["intake_paused"]))
        found.append(Fault("intake-stuck:paused", "intake-stuck", "收件已暂停 / intake paused",
                           f"新文件暂不收取, 原文件留在原处: {why}\n"
                           f"intake is paused; files stay where they landed: {why}"))
    for path, why in (details.get("folders_not_watched") or {}).items():
        p, why = code_span(path), code_span(str(why))
        found.append(Fault(f"intake-stuck:folder:{one_line(path)}", "intake-stuck",
                           f"文件夹未被监视 / folder not watched: {p}",
                           f"监视文件夹 {p} 未被监视, 其中的文件不会被收取: {why}\n"
                           f"watched folder {p} is not watched; files there are not taken: {why}"))
    if unreadable := details.get("folders_unreadable") or {}:
        # One fault for them all: a tree of unreadable folders is one fix,
        # and a robot takes 20 messages a minute.
        n = details.get("folders_unreadable_count") or len(unreadable)
        listed = "; ".join(f"{code_span(p)}: {code_span(str(w))}" for p, w in list(unreadable.items())[:_LISTED])
        more = f"; and {n - _LISTED} more (`fapiao-agent status`)" if n > _LISTED else ""
        found.append(Fault("intake-stuck:unreadable", "intake-stuck",
                           f"{n} 个文件夹无法读取 / {n} folder(s) cannot be read",
                           f"监视文件夹中有 {n} 个文件夹无法读取, 其中的文件不会被收取: {listed}{more}\n"
                           f"{n} folder(s) in a watched folder cannot be read, so their files are not taken: "
                           f"{listed}{more}. Give the service's user read and search (x) permission."))
    if late := files_waiting_late(details):
        n, oldest, path, why = late
        where = f"{code_span(path)}: {code_span(why)}"
        found.append(Fault("intake-stuck:waiting", "intake-stuck", f"{n} 个文件迟迟未收取 / {n} file(s) not taken",
                           f"{n} 个文件在监视文件夹中超过 {span(oldest)} 仍未收取 (最早: {where}).\n"
                           f"{n} file(s) in a watched folder not taken for over {span(oldest)} "
                           f"(oldest: {where}). See `fapiao-agent status`."))
    return found


# Unreadable folders (or rejected documents) named in their alert at most
# (status names 20).
_LISTED = 5
# A refused reload's reason, at most (the config's errors, a line each).
_REASON_MAX = 600


def _hours(delivery: dict, report: dict) -> str:
    hours = delivery.get("sla_hours") or report.get("sla_hours") or 24
    return f"{float(hours):g}"
