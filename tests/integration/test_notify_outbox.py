"""The notify outbox over a real ledger, with the faults read the way the
daemon reads them (status_report), sent to real servers on 127.0.0.1: one
message per fault, none again after a restart, one for a flapping target,
a dead server retried and given up with its reason, quarantine digests,
the report fan-out with attachments, and no secret in any row."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time

import pytest

from agent.config import parse_config
from agent.ledger import Ledger, utc
from agent.notify import enqueue, open_faults, open_notifier, run_round, send_due
from service.commands.status import status_report
from service.notify import NotifyService, disk_figures
from tests.support.notify_servers import RobotServer, SmtpSink

ACTOR = "daemon:test"
T0 = dt.datetime.now(dt.timezone.utc)


def config(tmp_path, *entries):
    for d in ("outbox", "backup"):
        (tmp_path / d).mkdir(exist_ok=True)
    return parse_config({"destination": [{"name": "finance", "url": "folder://outbox"}],
                         "backup": [{"name": "s3main", "url": "file://backup"}],
                         "notify": [dict(e) for e in entries]}, base_dir=tmp_path)


def robot_entry(robot, **extra):
    return {"name": "wx", "url": robot.url, "preset": "wecom", "timeout_s": 2.0, "resolve_after_minutes": 0.0,
            "backup_failing_minutes": 30.0, **extra}


def round_at(ledger, cfg, now, disk=None):
    report = status_report(ledger, cfg)
    return sum(run_round(ledger, e, open_faults(report, e, now=now, disk=disk), now=now, actor=ACTOR)
               for e in cfg.notify)


def channels(cfg):
    return {e["name"]: (open_notifier(e), e) for e in cfg.notify}


def break_backup(ledger, minutes_ago=45):
    ledger.backup_unreachable("s3main", "ConnectTimeout: s3.example.com", now=utc(T0 - dt.timedelta(minutes=minutes_ago)))


def mend_backup(ledger, now=T0):
    ledger.record_backup_snapshot("s3main", "snap-1", now=utc(now))


def test_one_message_when_a_fault_opens_none_while_it_stays_and_one_when_resolved(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot))
        ledger = Ledger(cfg.ledger_path)
        break_backup(ledger)
        ledger.save_destination_health("finance", now=utc(T0), paused_error="HTTP 401: token refused",
                                       paused_at=utc(T0))
        for minute in range(3):
            round_at(ledger, cfg, T0 + dt.timedelta(minutes=minute))
        out = send_due(ledger, channels(cfg), now=T0 + dt.timedelta(minutes=3), actor=ACTOR)
        assert [o.result for o in out] == ["sent", "sent"]
        texts = sorted(r["json"]["markdown"]["content"] for r in robot.requests)
        assert len(texts) == 2
        backup = next(t for t in texts if "s3main" in t)
        assert "备份目标 `s3main` 故障 45 min" in backup and "`ConnectTimeout: s3.example.com`" in backup
        dest = next(t for t in texts if "finance" in t)
        assert "投递目标 `finance` 已暂停" in dest and "`HTTP 401: token refused`" in dest
        # The backup answers again: one resolved message, then silence.
        mend_backup(ledger)
        for minute in range(4, 7):
            round_at(ledger, cfg, T0 + dt.timedelta(minutes=minute))
        send_due(ledger, channels(cfg), now=T0 + dt.timedelta(minutes=7), actor=ACTOR)
        assert len(robot.requests) == 3
        assert "已恢复 RESOLVED" in robot.requests[-1]["json"]["markdown"]["content"]
        assert "s3main" in robot.requests[-1]["json"]["markdown"]["content"]
        reasons = [r[0] for r in ledger.conn.execute("SELECT reason FROM events WHERE document_id IS NULL")]
        assert "notify wx: backup-failing:s3main opened" in reasons
        assert "notify wx: backup-failing:s3main resolved" in reasons


def test_the_daemons_messages_say_stored_times_in_local_time(tmp_path, monkeypatch):
    # The office reads them as `status` shows times: local, with the offset,
    # never the ledger's raw UTC ("since 2026-12-05T17:57:26.661669Z").
    import re

    from service.notify import NotifyRunner

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        with RobotServer() as robot:
            cfg = config(tmp_path, robot_entry(robot, events=["backup-failing", "destination-paused",
                                                               "quarantined"], digest_minutes=0.0001))
            ledger = Ledger(cfg.ledger_path)
            runner = NotifyRunner(cfg, threading.Event())
            runner.check(ledger, ACTOR)                       # the digest's cursor starts here
            paused = T0 - dt.timedelta(minutes=50)
            ledger.save_destination_health("finance", now=utc(T0), paused_error="HTTP 401: token refused",
                                           paused_at=utc(paused))
            break_backup(ledger)
            _quarantine(ledger, 5, "发票-D.pdf", T0 - dt.timedelta(minutes=1))
            time.sleep(0.05)                                  # past the digest's window (6 ms)
            runner.check(ledger, ACTOR)
            bodies = "\n".join(n["body"] for n in ledger.notifications())
            shanghai = lambda moment: (moment + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S +08:00")  # noqa: E731
            assert f"已暂停 (since {shanghai(paused)})" in bodies, bodies
            assert f"failing since {shanghai(T0 - dt.timedelta(minutes=45))}" in bodies, bodies
            assert f"({shanghai(T0 - dt.timedelta(minutes=1))}, now quarantined)" in bodies, bodies
            assert not re.search(r"\d\d:\d\d:\d\d(\.\d+)?Z", bodies), bodies
            ledger.close()
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_ledger_remembers_told_faults_across_a_restart(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot))
        with Ledger(cfg.ledger_path) as ledger:
            break_backup(ledger)
            assert round_at(ledger, cfg, T0) == 1
        with Ledger(cfg.ledger_path) as ledger:        # the daemon restarted
            assert round_at(ledger, cfg, T0 + dt.timedelta(minutes=1)) == 0
            assert len(ledger.notifications()) == 1


def test_a_flapping_target_sends_one_message_not_a_storm(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot, resolve_after_minutes=10.0, backup_failing_minutes=0.0))
        ledger = Ledger(cfg.ledger_path)
        at = T0
        for _ in range(6):                     # down a minute, up a minute, six times
            break_backup(ledger, minutes_ago=0)
            round_at(ledger, cfg, at)
            at += dt.timedelta(minutes=1)
            mend_backup(ledger, at)
            round_at(ledger, cfg, at)
            at += dt.timedelta(minutes=1)
        assert [(n["kind"], n["key"]) for n in ledger.notifications()] == [("opened", "backup-failing:s3main")]
        round_at(ledger, cfg, at + dt.timedelta(minutes=11))   # stayed clear long enough
        assert [n["kind"] for n in ledger.notifications()] == ["resolved", "opened"]


def test_a_fault_open_for_repeat_hours_sends_one_reminder(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot, repeat_hours=24.0))
        ledger = Ledger(cfg.ledger_path)
        break_backup(ledger)
        round_at(ledger, cfg, T0)
        round_at(ledger, cfg, T0 + dt.timedelta(hours=23))
        round_at(ledger, cfg, T0 + dt.timedelta(hours=24, minutes=1))
        round_at(ledger, cfg, T0 + dt.timedelta(hours=25))
        assert [n["kind"] for n in ledger.notifications()] == ["reminder", "opened"]
        assert ledger.notifications()[0]["subject"].startswith("[fapiao-agent] 仍未解决 STILL OPEN")


def test_a_server_refusing_for_now_is_retried_with_backoff_then_sent(tmp_path):
    with SmtpSink() as sink:
        entry = {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1", "port": sink.port,
                 "timeout_s": 2.0, "resolve_after_minutes": 0.0}
        cfg = config(tmp_path, entry)
        ledger = Ledger(cfg.ledger_path)
        break_backup(ledger)
        round_at(ledger, cfg, T0)
        sink.fail_with = "451 4.3.0 mailbox busy"
        rng = random.Random(1)
        (o,) = send_due(ledger, channels(cfg), now=T0, actor=ACTOR, rng=rng)
        assert o.result == "retry" and "451" in o.error
        row = ledger.notifications()[0]
        assert row["state"] == "pending" and row["attempts"] == 1 and row["next_attempt_at"] > utc(T0)
        assert send_due(ledger, channels(cfg), now=T0 + dt.timedelta(seconds=5), actor=ACTOR) == []  # not due yet
        sink.fail_with = None
        (o,) = send_due(ledger, channels(cfg), now=T0 + dt.timedelta(minutes=5), actor=ACTOR)
        assert o.result == "sent" and len(sink.messages) == 1
        assert "s3main" in sink.messages[0]["message"]["Subject"]
        summary = ledger.notify_summary(["mail"])[0]
        assert summary["sent"] == 1 and not summary["failing"] and "451" in summary["last_error"]


def test_a_dead_server_is_given_up_after_give_up_hours_with_its_reason(tmp_path):
    entry = {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1", "port": 9,
             "timeout_s": 1.0, "give_up_hours": 1.0}
    cfg = config(tmp_path, entry)
    ledger = Ledger(cfg.ledger_path)
    break_backup(ledger)
    round_at(ledger, cfg, T0)
    (o,) = send_due(ledger, channels(cfg), now=T0, actor=ACTOR)
    assert o.result == "retry"
    (o,) = send_due(ledger, channels(cfg), now=T0 + dt.timedelta(hours=2), actor=ACTOR)
    assert o.result == "failed"
    summary = ledger.notify_summary(["mail"])[0]
    assert summary["failed"] == 1 and summary["failing"] and "smtp 127.0.0.1:9" in summary["last_error"]
    assert any("given up" in (r[0] or "") for r in ledger.conn.execute("SELECT reason FROM events"))


def _quarantine(ledger, i, name, at):
    doc, _ = ledger.add_document(sha256=f"{i:064x}", size=100, media_type="pdf", source_kind="scanner",
                                 source="/in", original_name=name, original_path=None, now=utc(at), actor=ACTOR)
    ledger.transition(doc, "quarantined", now=utc(at), actor=ACTOR, reason="quarantined: tax-id-invalid",
                      problems=[{"code": "tax-id-invalid", "severity": "error", "message": "bad"}])
    return doc


def test_a_digest_names_each_code_of_a_document_once(tmp_path):
    # amount-range on 金额 and on 价税合计 is one reason, as `list` shows it.
    ledger = Ledger(tmp_path / "ledger.sqlite")
    doc, _ = ledger.add_document(sha256="9" * 64, size=100, media_type="pdf", source_kind="scanner", source="/in",
                                 original_name="huge.pdf", original_path=None, now=utc(T0), actor=ACTOR)
    ledger.transition(doc, "quarantined", now=utc(T0), actor=ACTOR, reason="quarantined: amount-range",
                      problems=[{"code": "amount-range", "severity": "error", "field": "amount", "message": "big"},
                                {"code": "tax-id-invalid", "severity": "error", "message": "bad"},
                                {"code": "amount-range", "severity": "error", "field": "total", "message": "big"}])
    assert [q["codes"] for q in ledger.quarantines_after(0)] == [["amount-range", "tax-id-invalid"]]
    ledger.close()


def test_quarantines_arrive_as_one_digest_per_digest_minutes(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot, events=["quarantined"], digest_minutes=15.0))
        ledger = Ledger(cfg.ledger_path)
        _quarantine(ledger, 1, "old.pdf", T0)              # before the entry existed: not reported
        round_at(ledger, cfg, T0)
        _quarantine(ledger, 2, "发票-A.pdf", T0)
        _quarantine(ledger, 3, "发票-B.pdf", T0)
        round_at(ledger, cfg, T0 + dt.timedelta(minutes=5))
        assert ledger.notifications() == []                  # within the window
        round_at(ledger, cfg, T0 + dt.timedelta(minutes=16))
        _quarantine(ledger, 4, "发票-C.pdf", T0)
        round_at(ledger, cfg, T0 + dt.timedelta(minutes=20))
        send_due(ledger, channels(cfg), now=T0 + dt.timedelta(minutes=20), actor=ACTOR)
        (req,) = robot.requests
        text = req["json"]["markdown"]["content"]
        assert "2 张发票被隔离" in text and "`发票-A.pdf`: `tax-id-invalid`" in text and "发票-B.pdf" in text
        assert "old.pdf" not in text and "发票-C.pdf" not in text
        round_at(ledger, cfg, T0 + dt.timedelta(minutes=32))
        assert "发票-C.pdf" in ledger.notifications()[0]["body"] and "1 张" in ledger.notifications()[0]["body"]


def test_enqueue_fans_out_to_the_entries_that_want_the_event_mail_with_attachments(tmp_path):
    with SmtpSink() as sink, RobotServer() as robot, RobotServer() as other:
        cfg = config(tmp_path,
                     {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1", "port": sink.port,
                      "events": ["weekly-report"]},
                     {"name": "wx", "url": robot.url, "preset": "wecom", "events": ["weekly-report", "disk-full"]},
                     {"name": "ops", "url": other.url, "events": ["quarantined"]})
        ledger = Ledger(cfg.ledger_path)
        csv = "\ufeff日期,到达\n2026-12-01,42\n".encode()
        ids = enqueue(ledger, cfg.notify, event="weekly-report", key="weekly-report:2026-W49",
                      subject="每周发票检查 2026-W49", text="42 张到达, 40 张已确认", html="<p>42</p>",
                      attachments=[("report.html", b"<p>42</p>", "text/html"), ("report.csv", csv, "text/csv")],
                      now=T0)
        assert len(ids) == 2
        out = send_due(ledger, channels(cfg), now=T0, actor=ACTOR)
        assert sorted(o.entry for o in out) == ["mail", "wx"] and {o.result for o in out} == {"sent"}
        msg = sink.messages[0]["message"]
        assert msg["Subject"] == "[fapiao-agent] 每周发票检查 2026-W49"
        assert {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()} == {
            "report.html": b"<p>42</p>", "report.csv": csv}
        assert "42 张到达" in robot.requests[0]["json"]["markdown"]["content"] and other.requests == []
        with pytest.raises(ValueError):
            enqueue(ledger, cfg.notify, event="weekly", key="k", subject="s", text="t", now=T0)


def test_disk_nearly_full_is_a_fault_per_file_system(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot, events=["disk-full"], disk_free_percent=100.0))
        cfg.vault_dir.mkdir(parents=True)
        ledger = Ledger(cfg.ledger_path)
        disk = disk_figures(cfg)
        assert list(disk) == ["state"] and str(cfg.vault_dir) in disk["state"]["path"]   # one file system
        round_at(ledger, cfg, T0, disk=disk)
        (n,) = ledger.notifications()
        assert n["key"] == "disk-full:state" and "MiB" in n["body"]


def test_no_secret_reaches_a_row_an_event_or_a_log_line(tmp_path, caplog):
    key = "693a91f6-7aaa-4bc4-97a0-0ec2abcdef12"
    with SmtpSink(username="fapiao", password="right-Pa55word") as sink, \
            RobotServer(path=f"/cgi-bin/webhook/send?key={key}") as robot:
        robot.default = (200, {"errcode": 93000, "errmsg": f"invalid webhook url key={key}"})
        cfg = config(tmp_path,
                     {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1", "port": sink.port,
                      "username": "fapiao", "password": "wrong-Pa55word-xyz", "timeout_s": 2.0},
                     robot_entry(robot))
        ledger = Ledger(cfg.ledger_path)
        break_backup(ledger)
        svc = NotifyService(cfg, check_interval_s=0.1, send_poll_s=0.05)
        with caplog.at_level(logging.INFO, logger="fapiao.notify"):
            svc.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and sum(s["failed"] for s in ledger.notify_summary(["mail", "wx"])) < 2:
                time.sleep(0.05)
            svc.stop()
            svc.join(5)
        assert [s["failed"] for s in ledger.notify_summary(["mail", "wx"])] == [1, 1]
        dump = "\n".join(ledger.conn.iterdump())
        logs = caplog.text
        for secret in ("wrong-Pa55word-xyz", key):
            assert secret not in dump and secret not in logs
        assert "login refused" in logs and "93000" in logs


def test_a_hanging_robot_holds_no_ledger_lock(tmp_path):
    with RobotServer() as robot:
        robot.default = ("hang", 1.5)
        cfg = config(tmp_path, robot_entry(robot, timeout_s=1.0))
        ledger = Ledger(cfg.ledger_path)
        break_backup(ledger)
        svc = NotifyService(cfg, check_interval_s=0.05, send_poll_s=0.05).start()
        try:
            deadline = time.monotonic() + 5
            while not robot.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert robot.requests, "the notify thread never tried to send"
            # While the send hangs, intake and delivery write the ledger at once.
            started = time.monotonic()
            other = Ledger(cfg.ledger_path)
            _quarantine(other, 9, "during-hang.pdf", T0)
            other.save_destination_health("finance", now=utc(T0), last_ok_at=utc(T0))
            assert time.monotonic() - started < 0.9      # well inside the send's 1 s timeout
            other.close()
        finally:
            svc.stop()
            svc.join(5)
        assert not any(t.is_alive() for t in svc.threads())


class _Broken:
    name = "wx"

    def send(self, message):
        raise UnicodeEncodeError("ascii", "发", 0, 1, "a bug in a channel")


def test_a_channel_bug_counts_as_a_failed_try_and_stalls_no_other_entry(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot), {**robot_entry(robot), "name": "ops"})
        ledger = Ledger(cfg.ledger_path)
        break_backup(ledger)
        round_at(ledger, cfg, T0)
        chans = channels(cfg)
        chans["wx"] = (_Broken(), chans["wx"][1])
        out = {o.entry: o for o in send_due(ledger, chans, now=T0, actor=ACTOR)}
        assert out["wx"].result == "retry" and "UnicodeEncodeError" in out["wx"].error
        assert out["ops"].result == "sent" and len(robot.requests) == 1


def test_sla_at_risk_breached_and_a_verify_mismatch_are_faults_with_their_numbers(tmp_path):
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot))
        ledger = Ledger(cfg.ledger_path)
        for i, hours in ((1, 25), (2, 20), (3, 21)):         # sla_hours 24, at risk after 19.2 h
            ledger.add_document(sha256=f"{i:064x}", size=100, media_type="pdf", source_kind="scanner", source="/in",
                                original_name=f"late-{i}.pdf", original_path=None, actor=ACTOR,
                                now=utc(T0 - dt.timedelta(hours=hours)))
        ledger.record_backup_verify("s3main", {"checked": 20, "ok": 18, "missing": 0, "mismatch": 2, "repaired": 1,
                                               "full": False, "problems": []}, now=utc(T0))
        round_at(ledger, cfg, T0)
        by_key = {n["key"]: n for n in ledger.notifications()}
        assert set(by_key) == {"sla-breached", "sla-at-risk", "verify-mismatch:s3main"}
        assert "1 张发票超过 24 小时未送达" in by_key["sla-breached"]["subject"]
        assert "captured 1" in by_key["sla-breached"]["body"]
        assert "2 invoice(s) waiting over 19.2 h of the 24 h SLA" in by_key["sla-at-risk"]["body"]
        assert "2 mismatching object(s) of 20 checked, 1 repaired" in by_key["verify-mismatch:s3main"]["body"]


def test_the_weekly_report_hook_queues_page_and_csv_for_mail_and_the_summary_for_robots(tmp_path):
    from pathlib import Path
    from types import SimpleNamespace

    from service.notify import weekly_report_hook

    with SmtpSink() as sink, RobotServer() as robot:
        cfg = config(tmp_path, {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1",
                                "port": sink.port, "events": ["weekly-report"]},
                     {**robot_entry(robot), "events": ["weekly-report"]})
        ledger = Ledger(cfg.ledger_path)
        csv = "\ufeff日期,到达\n".encode()
        report = SimpleNamespace(html="<h1>每周</h1>", csv=csv, summary="本周到达 42 张, 已确认 40 张",
                                 html_path=Path("/r/fapiao-report-2026-12-07.html"))
        weekly_report_hook(cfg, ledger)(report)
        send_due(ledger, channels(cfg), now=dt.datetime.now(dt.timezone.utc), actor=ACTOR)
        msg = sink.messages[0]["message"]
        assert "weekly invoice check (2026-12-07)" in msg["Subject"]
        assert {a.get_filename() for a in msg.iter_attachments()} == {"fapiao-report-2026-12-07.html",
                                                                      "fapiao-report-2026-12-07.csv"}
        assert "本周到达 42 张" in robot.requests[0]["json"]["markdown"]["content"]


def test_a_file_name_or_a_server_error_cannot_forge_lines_markup_or_escapes_in_a_message(tmp_path):
    # Names and error texts come from strangers: a newline would forge a
    # heading or a document line, markdown a mention or a link in the
    # robot, ESC/BEL act on a terminal reading the mail.
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot, events=["quarantined", "destination-paused"], digest_minutes=1.0))
        ledger = Ledger(cfg.ledger_path)
        round_at(ledger, cfg, T0)
        _quarantine(ledger, 2, "evil.pdf\n\n## ALL RESOLVED <@all> [click](http://evil.example)\n- #99 fake.pdf", T0)
        _quarantine(ledger, 3, "a\x1b]0;owned\x07\u202e.pdf", T0)
        ledger.save_destination_health("finance", now=utc(T0), paused_error="HTTP 500: oops\n## 已恢复 RESOLVED",
                                       paused_at=utc(T0))
        round_at(ledger, cfg, T0 + dt.timedelta(minutes=2))
        send_due(ledger, channels(cfg), now=T0 + dt.timedelta(minutes=2), actor=ACTOR)
        texts = [r["json"]["markdown"]["content"] for r in robot.requests]
        assert len(texts) == 2
        for text in texts:
            lines = text.splitlines()
            assert not any(line.startswith(("## ALL", "## 已恢复", "- #99")) for line in lines), text
            assert not any(ch in text for ch in "\x1b\x07\u202e"), text
        digest = next(t for t in texts if "隔离" in t)
        # In a code span, what WeCom's markdown starts with made inert (its full-width twin).
        assert "`evil.pdf\\n\\n## ALL RESOLVED ＜@all＞ ［click］(http://evil.example)\\n- #99 fake.pdf`" in digest
        assert "`a\\x1b］0;owned\\x07\\u202e.pdf`: `tax-id-invalid`" in digest
        assert "`HTTP 500: oops\\n## 已恢复 RESOLVED`" in next(t for t in texts if "finance" in t)


def test_a_clock_set_back_silences_no_digest_and_no_resolved_message(tmp_path):
    # NTP correcting a clock that ran a day ahead: the windows counted from
    # the last digest and from "clear since" lie in the future.
    cfg = config(tmp_path, {"name": "wx", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-0123456789",
                            "events": ["quarantined", "destination-paused"], "digest_minutes": 15.0,
                            "resolve_after_minutes": 10.0})
    ledger = Ledger(cfg.ledger_path)
    round_at(ledger, cfg, T0)
    ledger.save_destination_health("finance", now=utc(T0), paused_error="HTTP 401", paused_at=utc(T0))
    _quarantine(ledger, 2, "a.pdf", T0)
    round_at(ledger, cfg, T0 + dt.timedelta(minutes=16))          # opened + digest of a.pdf
    ledger.save_destination_health("finance", now=utc(T0), paused_error=None, paused_at=None)
    round_at(ledger, cfg, T0 + dt.timedelta(minutes=17))          # clear since T0+17
    back = T0 - dt.timedelta(days=1)
    _quarantine(ledger, 3, "b.pdf", back)
    round_at(ledger, cfg, back + dt.timedelta(minutes=20))
    kinds = [(n["kind"], n["body"]) for n in ledger.notifications()]
    assert [k for k, _ in kinds].count("resolved") == 1, kinds
    assert any(k == "digest" and "b.pdf" in body for k, body in kinds), kinds


def test_a_storm_of_quarantines_is_one_digest_that_counts_them_all(tmp_path):
    # More than the digest ever listed or fetched (it once read 1000 rows
    # and said "1000" for 1,001): the count is every one since the cursor.
    with RobotServer() as robot:
        cfg = config(tmp_path, robot_entry(robot, events=["quarantined"], digest_minutes=15.0))
        ledger = Ledger(cfg.ledger_path)
        round_at(ledger, cfg, T0)
        with ledger.transaction():
            for i in range(1, 1002):
                _quarantine(ledger, i, f"storm-{i}.pdf", T0)
        round_at(ledger, cfg, T0 + dt.timedelta(minutes=16))
        (row,) = ledger.notifications()
        assert "1001 张发票被隔离" in row["body"] and "storm-1.pdf" in row["body"]
        assert "另有 971 张" in row["body"] and "storm-1001.pdf" not in row["body"]
        round_at(ledger, cfg, T0 + dt.timedelta(minutes=32))
        assert len(ledger.notifications()) == 1              # all of them told: nothing left for a second
