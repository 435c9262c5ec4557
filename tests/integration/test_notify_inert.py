"""Every message the agent sends, built with a stranger's text in every
value that can come from outside (entry, target and label names, paths, a
server's error, a file name, a quarantine reason, a filer's name and words,
the host, the report's target names and time zone), posted to real servers
on 127.0.0.1 for each preset: outside the code spans nothing of it is left,
so none of it is live markdown there (a link, an image, a mention, a
`<font>` tag, a heading, emphasis, a forged line); inside a span, nothing
that preset's markdown could act on. E-mail shows the same values exact,
one line each, between backticks."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from agent.ledger import Ledger, utc
from agent.notify import EVENTS, enqueue, open_faults, open_notifier, run_round, send_due
from agent.notify.base import Message, code_span
from agent.notify.outbox import send_test
from agent.notify.webhook import WebhookNotifier
from agent.report.figures import Figures
from agent.report.text import summary
from tests.support.notify_servers import RobotServer, SmtpSink

ACTOR = "daemon:test"
T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.timezone.utc)
MARK = "EVIL"
# Each kind of markdown (and a backtick, so an unescaped value could not hide
# in a span of its own), with MARK in every part, so any part of it left
# outside a span is found.
HOSTILE = (f"{MARK} [x](https://evil.example/{MARK}) ![](https://evil.example/{MARK}.png) <@all> @all {MARK} "
           f"<at user_id=\"all\">{MARK}</at> <font color=\"warning\">{MARK}</font> **{MARK}** _{MARK}_ "
           f"~~{MARK}~~ |{MARK}| \\{MARK} &amp; ` {MARK} `` {MARK}\n# {MARK} forged heading\n"
           f"- #99 {MARK} forged line\u2028> {MARK}\r\n## 已恢复 RESOLVED {MARK}")
# What each preset's markdown could act on inside a code span.
LIVE_IN_SPAN = {"dingtalk": set("[]()!<>@*_#|~\\&"), "wecom": set("[]<>*"), "feishu": set(), "generic": set()}
SPAN = re.compile(r"`[^`\n]*`")


def hostile(tag: str) -> str:
    return f"{tag} {HOSTILE}"


def status_figures() -> dict:
    """What `status` shows, with a stranger's text in every outside value."""
    at = utc(T0 - dt.timedelta(hours=1))
    details = {"intake_paused": hostile("paused"), "folders_not_watched": {hostile("/watched"): hostile("why")},
               "folders_unreadable": {hostile("/unreadable"): hostile("denied")}, "folders_unreadable_count": 1,
               "files_stuck_count": 1, "files_stuck_oldest_s": 3600.0, "files_waiting_oldest_s": 3600.0,
               "files_waiting": {hostile("/scan/file.pdf"): hostile("growing")}}
    return {
        "delivery": {"sla_hours": 24, "sla_breaches": 2, "near_sla": 1, "late_by_state": {"queued": 2},
                     "destinations": [{"name": hostile("dest"), "paused_error": hostile("HTTP 500"),
                                       "paused_at": at, "backlog": 3}]},
        "backup": {"targets": [{"name": hostile("target"), "paused_error": hostile("AccessDenied"), "paused_at": at,
                                "backlog": 1, "last_verify": {"mismatch": 1, "checked": 5, "repaired": 0},
                                "last_verify_at": at}]},
        "daemon": {"details": json.dumps(details)},
        "applications": {"overdue_hours": 24, "overdue_applications": [
            {"number": "BL-20261130-0001", "filed_at": utc(T0 - dt.timedelta(hours=30)), "document_id": 7,
             "doc_state_now": "duplicate", "kind": "amend", "filer": hostile("filer"), "reason": hostile("reason")}]},
        "config": {"reload_refused": True, "path": hostile("/etc/agent.toml"), "loaded_at": at,
                   "reload": {"at": at, "outcome": "refused", "reason": hostile("line 3") + "\n" + hostile("line 4")}},
        "rejected_there": {"count": 7, "documents": [
            {"document_id": i, "at": [{"destination": hostile("erp"), "state": state, "key": hostile("key")}]}
            for i, state in enumerate(("delivered", "delivering", "superseded", "confirmed", "delivered",
                                       "delivered", "delivered"), start=1)]},
        "old_keys_held": {"count": 6, "by_destination": {hostile("erp"): 6}, "documents": [
            {"document_id": i, "state": "delivered",
             "at": [{"destination": hostile("erp"), "key": hostile("old key"), "since": at}]} for i in range(1, 7)]},
        # What a site found in the fleet store is the store's text: another site wrote it there.
        "fleet": {"site": hostile("site"), "doubt": hostile("doubt"), "doubt_since": at, "vanished": 2},
    }


def weekly_figures() -> Figures:
    days = [{"day": dt.date(2026, 11, 23), "total": 0}]
    timing = {"confirmed": {"count": 0, "p50_s": None, "p95_s": None}}
    return Figures(since=T0, until=T0, now=T0, tz=hostile("zone"), days=days,
                   totals={"total": 0, "delivered": 0, "in_progress": 0, "failed": 0, "refused": 0},
                   repeat_arrivals=0, timing=timing, quarantine={"total": 0, "by_code": {}, "oldest": []},
                   duplicates={"count": 0, "examples": []}, missing={"count": 0, "resent": 0, "rows": []},
                   expiry={"count": 0, "warn_days": 30, "max_age_days": 360, "today": T0.date(), "rows": []},
                   backup={"targets": [{"name": hostile("failing"), "reachable": "unreachable"},
                                       {"name": hostile("kept"), "reachable": "ok"}]},
                   drills={hostile("kept"): {"ok": False}})


def _quarantine(ledger, i, name, reason, problems, at):
    doc, _ = ledger.add_document(sha256=f"{i:064x}", size=100, media_type="pdf", source_kind="scanner",
                                 source="/in", original_name=name, original_path=None, now=utc(at), actor=ACTOR)
    ledger.transition(doc, "quarantined", now=utc(at), actor=ACTOR, reason=reason, problems=problems)


def send_everything(tmp_path, entries: list[dict]) -> None:
    """Every kind of message to `entries`: each fault opened, reminded and
    resolved, a quarantine digest, the weekly report, the test message."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    channels = {e["name"]: (open_notifier(e), e) for e in entries}

    def round_at(now, report):
        for e in entries:
            faults = open_faults(report, e, now=now, disk=disk)
            run_round(ledger, e, faults, now=now, actor=ACTOR)
        while send_due(ledger, channels, now=now, actor=ACTOR):
            pass

    disk = {f"destination {hostile('disk')}": {"path": hostile("/mnt/out"), "free": 1, "total": 100}}
    round_at(T0, status_figures())                                     # opened
    _quarantine(ledger, 1, hostile("file.pdf"), hostile("quarantined"), [], T0)
    _quarantine(ledger, 2, hostile("other.pdf"), "quarantined: tax-id-invalid",
                [{"code": "tax-id-invalid", "severity": "error", "message": "bad"}], T0)
    round_at(T0 + dt.timedelta(hours=2), status_figures())             # reminders, the digest
    disk = {}
    round_at(T0 + dt.timedelta(hours=3), {})                           # resolved
    enqueue(ledger, entries, event="weekly-report", key="weekly-report:w48", subject="每周发票检查 weekly",
            text=summary(weekly_figures()), now=T0 + dt.timedelta(hours=4))
    while send_due(ledger, channels, now=T0 + dt.timedelta(hours=4), actor=ACTOR):
        pass
    results = send_test(ledger, entries, now=T0 + dt.timedelta(hours=4), actor=ACTOR, host=hostile("host"))
    assert all(r["ok"] for r in results), results
    ledger.close()


def shown_texts(preset: str, body: dict) -> list[str]:
    """The texts a robot shows of one posted body (Feishu: each segment, all plain text)."""
    if preset == "wecom":
        return [body["markdown"]["content"]]
    if preset == "dingtalk":
        return [body["markdown"]["title"], body["markdown"]["text"]]
    if preset == "feishu":
        post = body["content"]["post"]["zh_cn"]
        assert all(seg["tag"] == "text" for line in post["content"] for seg in line), post
        return [post["title"]] + [seg["text"] for line in post["content"] for seg in line]
    return [body["subject"], body["text"]]


def test_no_outside_text_is_live_markdown_in_any_message_on_any_preset(tmp_path):
    presets = ("wecom", "dingtalk", "feishu", "generic")
    robots = {p: RobotServer().__enter__() for p in presets}
    try:
        entries = [{"name": f"{p} {hostile('entry')}", "url": robots[p].url, "preset": p, "timeout_s": 2.0,
                    "events": list(EVENTS), "resolve_after_minutes": 0.0, "backup_failing_minutes": 0.0,
                    "disk_free_percent": 10.0, "repeat_hours": 1.0, "digest_minutes": 1.0} for p in presets]
        send_everything(tmp_path, entries)
    finally:
        for robot in robots.values():
            robot.__exit__(None, None, None)
    # Every event, and every kind of message, reached every robot.
    generic = [r["json"] for r in robots["generic"].requests]
    assert {b["event"] for b in generic} == {*EVENTS, "test"}
    for word in ("STILL OPEN", "RESOLVED", "张发票被隔离", "测试通知", "Weekly invoice check"):
        assert any(word in b["subject"] + b["text"] for b in generic), word
    for preset, robot in robots.items():
        assert len(robot.requests) == len(generic), preset
        hostile_seen = 0
        for request in robot.requests:
            texts = shown_texts(preset, request["json"])
            for text in texts:
                outside = SPAN.sub("", text)
                assert MARK not in outside, (preset, text)
                for span in SPAN.findall(text):
                    assert not set(span) & LIVE_IN_SPAN[preset], (preset, span)
            hostile_seen += any(MARK in text for text in texts)
        # The values are there, only inert: in as many messages as the generic webhook shows them.
        assert hostile_seen == sum(MARK in b["subject"] + b["text"] for b in generic) > 20, preset


def test_e_mail_shows_an_outside_value_exact_on_one_line_between_backticks(tmp_path):
    with SmtpSink() as sink:
        entry = {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1", "port": sink.port,
                 "sender": "agent@example.com", "timeout_s": 5.0, "events": ["destination-paused"]}
        ledger = Ledger(tmp_path / "ledger.sqlite")
        faults = open_faults(status_figures(), entry, now=T0)
        run_round(ledger, entry, faults, now=T0, actor=ACTOR)
        send_due(ledger, {"mail": (open_notifier(entry), entry)}, now=T0, actor=ACTOR)
        ledger.close()
    (mail,) = sink.messages
    text = mail["message"].get_body(("plain",)).get_content()
    assert code_span(hostile("HTTP 500")) in text and code_span(hostile("dest")) in mail["message"]["Subject"]
    assert code_span(hostile("HTTP 500")) == ("`HTTP 500 " + HOSTILE.replace("\n", "\\n").replace("\r", "\\r")
                                              .replace("\u2028", "\\u2028").replace("`", "'") + "`")


@pytest.mark.parametrize("preset", ["wecom", "dingtalk", "feishu"])
def test_a_subject_longer_than_the_robots_cap_is_cut_and_the_post_fits(preset):
    # A watched folder's path is in its intake-stuck subject, a config's in
    # config-refused's. One of 5,000 bytes left the text a negative room:
    # WeCom got a 9 KB markdown (its cap is 4,096 bytes) and refuses such a
    # post for good, so the alert was never read.
    path = "/srv/" + "深" * 1700 + "/scanner"
    message = Message(subject=f"[fapiao] 文件夹未被监视 / folder not watched: {code_span(path)}",
                      text=f"监视文件夹 {code_span(path)} 未被监视: `No such file or directory`\n" + "x" * 300,
                      event="intake-stuck", key="intake-stuck:folder")
    with RobotServer() as robot:
        WebhookNotifier("ops", robot.url, preset=preset).send(message)
        body = robot.requests[-1]["json"]
    shown = (body["markdown"]["content"] if preset == "wecom" else
             body["markdown"]["text"] if preset == "dingtalk" else json.dumps(body["content"], ensure_ascii=False))
    assert len(shown.encode()) <= {"wecom": 4096, "dingtalk": 20000, "feishu": 30000}[preset]
    heading = body["content"]["post"]["zh_cn"]["title"] if preset == "feishu" else shown.splitlines()[0]
    assert "folder not watched" in heading and heading.count("`") % 2 == 0 and len(heading.encode()) < 600
