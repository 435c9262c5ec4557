"""The restore drill's schedule, its verdict in `status --check`, and its config keys (pure)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from agent.backup.drill import RETRY_FAILED_S, drill_due, last_scheduled
from agent.config import parse_config
from agent.errors import ConfigError
from agent.health import CRITICAL, OK, WARNING, Thresholds, evaluate

CST = dt.timezone(dt.timedelta(hours=8))
# Wednesday 2026-12-02 10:00 in UTC+8.
WED = dt.datetime(2026, 12, 2, 10, 0, tzinfo=CST)


def utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_last_scheduled_moment_is_this_weeks_or_last_weeks_in_the_given_zone():
    assert last_scheduled(WED, "mon", "03:30", CST) == dt.datetime(2026, 11, 30, 3, 30, tzinfo=CST)
    assert last_scheduled(WED, "wed", "09:59", CST) == dt.datetime(2026, 12, 2, 9, 59, tzinfo=CST)
    assert last_scheduled(WED, "wed", "10:01", CST) == dt.datetime(2026, 11, 25, 10, 1, tzinfo=CST)
    # Given in UTC, judged in UTC+8: Tuesday 20:00 UTC is Wednesday 04:00 there.
    assert last_scheduled(dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.timezone.utc), "wed", "03:30", CST) \
        == dt.datetime(2026, 12, 2, 3, 30, tzinfo=CST)


def test_a_drill_is_due_once_per_scheduled_moment_and_a_failed_one_again_after_an_hour():
    monday = dt.datetime(2026, 11, 30, 3, 30, tzinfo=CST)
    after = {"started_at": utc(monday + dt.timedelta(minutes=1)),
             "finished_at": utc(monday + dt.timedelta(minutes=2)), "ok": True}
    due = lambda last, first=None, now=WED: drill_due(last, first, now=now, weekday="mon", at="03:30", tz=CST)  # noqa: E731
    assert not due(after)
    before = {**after, "started_at": utc(monday - dt.timedelta(days=1)), "finished_at": utc(monday - dt.timedelta(days=1))}
    assert due(before)
    failed = {**after, "ok": False}
    assert due(failed)                          # two days later: run again
    soon = WED - dt.timedelta(seconds=RETRY_FAILED_S - 60)
    assert not due({**failed, "finished_at": utc(soon)})
    assert due({**after, "started_at": utc(WED + dt.timedelta(hours=5))})   # the clock went back
    assert not drill_due(before, None, now=WED, weekday="off", at="03:30", tz=CST)


def test_a_target_never_drilled_waits_for_a_scheduled_moment_while_it_holds_backups():
    due = lambda first: drill_due(None, first, now=WED, weekday="mon", at="03:30", tz=CST)  # noqa: E731
    assert not due(None)                                          # holds nothing yet
    assert not due(utc(dt.datetime(2026, 12, 1, 9, 0, tzinfo=CST)))  # a new install: next Monday
    assert due(utc(dt.datetime(2026, 11, 2, 9, 0, tzinfo=CST)))      # an upgraded one: now


def report_with(targets: list[dict]) -> dict:
    return {"daemon": {"activity": "idle", "age_s": 1, "alive": True, "pid": 1},
            "backup": {"targets": targets}}


def drill(finished: dt.datetime, ok: bool = True, mismatch: bool = False, reason: str | None = None) -> dict:
    return {"finished_at": utc(finished), "ok": ok, "mismatch": mismatch, "reason": reason}


@pytest.mark.parametrize("target, level, text", [
    ({"last_drill": drill(WED - dt.timedelta(days=1))}, OK, None),
    ({"last_drill": drill(WED - dt.timedelta(days=9))}, WARNING, "backup target nas: last passed restore drill 9 d ago"),
    ({"last_drill": drill(WED - dt.timedelta(hours=2), ok=False, reason="object abc: missing on the target")},
     WARNING, "backup target nas: restore drill failed 2 h ago: object abc: missing on the target"),
    ({"last_drill": drill(WED - dt.timedelta(hours=2), ok=False, mismatch=True, reason="object abc: came back")},
     CRITICAL, "backup target nas: restore drill 2 h ago got back bytes that are not what we stored: object abc"),
    ({"last_drill": None, "first_backup_at": utc(WED - dt.timedelta(days=30))}, WARNING,
     "backup target nas: never restore-drilled, holding backups for 30 d"),
    ({"last_drill": None, "first_backup_at": utc(WED - dt.timedelta(days=2))}, OK, None),
    ({"last_drill": None, "first_backup_at": None}, OK, None),
])
def test_status_check_judges_each_targets_last_drill(target, level, text):
    health = evaluate(report_with([{"name": "nas", **target}]), Thresholds(), now=WED)
    assert health.level == level, health.summary
    if text:
        assert text in health.summary


def test_drill_max_age_days_zero_never_warns_for_age_but_a_failure_still_does():
    limits = Thresholds(drill_max_age_days=0)
    old = {"name": "nas", "last_drill": drill(WED - dt.timedelta(days=90))}
    assert evaluate(report_with([old]), limits, now=WED).level == OK
    failed = {"name": "nas", "last_drill": drill(WED - dt.timedelta(days=90), ok=False, reason="x")}
    assert evaluate(report_with([failed]), limits, now=WED).level == WARNING


def test_drill_keys_are_checked_at_load_and_reach_the_thresholds():
    cfg = parse_config({"backup_policy": {"drill_weekday": "sun", "drill_time": "23:59", "drill_sample": 5,
                                          "drill_max_age_days": 15}}, base_dir=Path("/tmp"))
    assert Thresholds.from_config(cfg).drill_max_age_days == 15.0
    assert (cfg.backup_policy["drill_weekday"], cfg.backup_policy["drill_sample"]) == ("sun", 5)
    with pytest.raises(ConfigError) as e:
        parse_config({"backup_policy": {"drill_weekday": "Monday", "drill_time": "3:30",
                                        "drill_sample": -1}}, base_dir=Path("/tmp"))
    lines = str(e.value).splitlines()
    assert "backup_policy.drill_weekday: must be one of mon, tue, wed, thu, fri, sat, sun or off, not 'Monday'" in lines
    assert "backup_policy.drill_time: must be a time of day HH:MM such as 03:30, not '3:30'" in lines
    assert any(line.startswith("backup_policy.drill_sample: must not be negative") for line in lines)
