"""Backoff, Retry-After, maintenance windows and the breaker: pure, `now` passed in."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from agent.deliver.retry import (
    CLOSED, HALF_OPEN, OPEN, Breaker, DeliveryPolicy, backoff, in_maintenance, next_attempt_at,
    parse_window,
)
from agent.errors import ConfigError

# 2026-11-29 is a Sunday.
SUN = dt.datetime(2026, 11, 29)
MON = SUN + dt.timedelta(days=1)


def at(day: dt.datetime, hhmm: str, sec: int = 0) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return day.replace(hour=h, minute=m, second=sec)


# -- backoff -----------------------------------------------------------------

def test_backoff_stays_within_the_exponential_ceiling_and_the_cap():
    rng = random.Random(1)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        draws = [backoff(attempt, base_s=2.0, max_delay_s=60.0, rng=rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Full jitter: draws spread over the whole range, not bunched at the top.
        assert min(draws) < ceiling * 0.1 and max(draws) > ceiling * 0.9


def test_backoff_is_finite_for_absurd_attempts_and_clamps_attempt_zero():
    rng = random.Random(2)
    assert 0 <= backoff(10_000, base_s=1, max_delay_s=300, rng=rng) <= 300
    assert 0 <= backoff(0, base_s=1, max_delay_s=300, rng=rng) <= 1


def test_backoff_is_reproducible_from_the_rng():
    a = [backoff(i, base_s=1, max_delay_s=100, rng=random.Random(7)) for i in range(1, 6)]
    b = [backoff(i, base_s=1, max_delay_s=100, rng=random.Random(7)) for i in range(1, 6)]
    assert a == b


def test_retry_after_is_a_floor_even_above_the_cap():
    now = at(MON, "10:00")
    t = next_attempt_at(now, 1, 120.0, base_s=1, max_delay_s=30, rng=random.Random(3))
    assert t == now + dt.timedelta(seconds=120)
    t = next_attempt_at(now, 3, None, base_s=1, max_delay_s=30, rng=random.Random(3))
    assert now <= t <= now + dt.timedelta(seconds=4)


def test_next_attempt_landing_in_a_window_moves_to_its_end():
    windows = [parse_window("Mon 10:00-11:00")]
    now = at(MON, "09:59", 50)
    t = next_attempt_at(now, 1, 60.0, base_s=1, max_delay_s=1, rng=random.Random(0), windows=windows)
    assert t == at(MON, "11:00")


# -- windows -----------------------------------------------------------------

def test_parse_window_forms():
    w = parse_window("Sun 00:00-06:00")
    assert w.days == {6} and w.start == 0 and w.minutes == 360
    w = parse_window("daily 23:30-00:30")
    assert w.days == set(range(7)) and w.start == 23 * 60 + 30 and w.minutes == 60
    assert parse_window("Mon-Fri 12:00-13:00").days == {0, 1, 2, 3, 4}
    assert parse_window("Fri-Mon 01:00-02:00").days == {4, 5, 6, 0}
    assert parse_window("sat,Sunday 01:00-02:00").days == {5, 6}
    assert parse_window("Tue 00:00-24:00").minutes == 24 * 60


@pytest.mark.parametrize("text", [
    "", "Sun", "Sun 00:00", "Sun 25:00-26:00", "Sun 10:60-11:00", "Funday 00:00-01:00",
    "Mon-Tue-Wed 00:00-01:00", "Su 00:00-01:00", "Sun 10:00-10:00", "Sun 24:00-01:00", None, 5,
])
def test_parse_window_rejects_bad_text_with_config_error(text):
    with pytest.raises(ConfigError, match="maintenance"):
        parse_window(text)


def test_window_edges_start_inclusive_end_exclusive():
    w = [parse_window("Sun 00:00-06:00")]
    assert in_maintenance(w, at(SUN, "00:00")) == at(SUN, "06:00")
    assert in_maintenance(w, at(SUN, "05:59", 59)) == at(SUN, "06:00")
    assert in_maintenance(w, at(SUN, "06:00")) is None
    assert in_maintenance(w, SUN - dt.timedelta(seconds=1)) is None  # Saturday 23:59:59
    assert in_maintenance(w, at(MON, "01:00")) is None


def test_daily_window_wraps_over_midnight():
    w = [parse_window("daily 23:30-00:30")]
    assert in_maintenance(w, at(SUN, "23:29", 59)) is None
    assert in_maintenance(w, at(SUN, "23:30")) == at(MON, "00:30")
    assert in_maintenance(w, at(MON, "00:00")) == at(MON, "00:30")  # begun yesterday
    assert in_maintenance(w, at(MON, "00:29", 59)) == at(MON, "00:30")
    assert in_maintenance(w, at(MON, "00:30")) is None


def test_wrap_from_the_last_day_of_the_week_into_the_first():
    w = [parse_window("Sun 22:00-02:00")]
    assert in_maintenance(w, at(MON, "01:00")) == at(MON, "02:00")
    assert in_maintenance(w, at(MON, "22:30")) is None  # Monday is not a start day
    assert in_maintenance(w, at(SUN, "01:00")) is None  # Saturday night did not start one


def test_weekday_range_skips_the_weekend():
    w = [parse_window("Mon-Fri 12:00-13:00")]
    assert in_maintenance(w, at(MON, "12:30")) == at(MON, "13:00")
    assert in_maintenance(w, at(SUN, "12:30")) is None


def test_touching_windows_chain_to_the_last_end():
    w = [parse_window("daily 01:00-02:00"), parse_window("Mon 02:00-03:00")]
    assert in_maintenance(w, at(MON, "01:15")) == at(MON, "03:00")
    assert in_maintenance(w, at(SUN, "01:15")) == at(SUN, "02:00")


def test_aware_datetimes_keep_their_zone():
    cst = dt.timezone(dt.timedelta(hours=8))
    w = [parse_window("Sun 00:00-06:00")]
    end = in_maintenance(w, SUN.replace(hour=3, tzinfo=cst))
    assert end == SUN.replace(hour=6, tzinfo=cst) and end.tzinfo == cst


def test_no_windows_means_never_in_maintenance():
    assert in_maintenance([], at(SUN, "03:00")) is None


# -- breaker -----------------------------------------------------------------

def test_breaker_opens_after_threshold_and_lets_one_probe_per_interval():
    b = Breaker(threshold=3, probe_interval_s=60)
    t0 = at(MON, "10:00")
    for i in range(2):
        b.record_failure(t0)
        assert b.state == CLOSED and b.allow(t0)
    b.record_failure(t0)
    assert b.state == OPEN and not b.allow(t0 + dt.timedelta(seconds=59))
    assert b.next_probe_at() == t0 + dt.timedelta(seconds=60)
    t1 = t0 + dt.timedelta(seconds=60)
    assert b.allow(t1) and b.state == HALF_OPEN
    assert not b.allow(t1 + dt.timedelta(seconds=1))  # one trial at a time
    assert b.allow(t1 + dt.timedelta(seconds=60))     # a lost trial is retried
    b.record_failure(t1 + dt.timedelta(seconds=61))
    assert b.state == OPEN and not b.allow(t1 + dt.timedelta(seconds=62))
    t2 = t1 + dt.timedelta(seconds=121)
    assert b.allow(t2)
    b.record_success(t2)
    assert b.state == CLOSED and b.failures == 0 and b.allow(t2) and b.next_probe_at() is None


def test_a_success_resets_the_consecutive_count():
    b = Breaker(threshold=2, probe_interval_s=10)
    now = at(MON, "10:00")
    b.record_failure(now)
    b.record_success(now)
    b.record_failure(now)
    assert b.state == CLOSED


def test_breaker_state_round_trips_through_json_form():
    b = Breaker(threshold=1, probe_interval_s=30)
    now = at(MON, "10:00")
    b.record_failure(now)
    again = Breaker.from_dict(b.to_dict(), threshold=1, probe_interval_s=30)
    assert again == b and not again.allow(now + dt.timedelta(seconds=29))


# -- policy ------------------------------------------------------------------

def test_policy_reads_fixed_keys_and_defaults():
    p = DeliveryPolicy.from_config({"name": "erp", "max_attempts": 4, "max_delay_s": 90,
                                    "maintenance": ["Sun 00:00-06:00"], "concurrency": 2})
    assert (p.max_attempts, p.max_delay_s, p.concurrency) == (4, 90, 2)
    assert [str(w) for w in p.maintenance] == ["Sun 00:00-06:00"]
    assert DeliveryPolicy.from_config({}) == DeliveryPolicy()
    assert p.breaker().threshold == p.breaker_threshold


@pytest.mark.parametrize("cfg, key", [
    ({"max_attempts": 0}, "max_attempts"), ({"max_attempts": 1.5}, "max_attempts"),
    ({"max_delay_s": "1h"}, "max_delay_s"), ({"concurrency": True}, "concurrency"),
    ({"maintenance": "Sun 99:00-01:00"}, "maintenance"), ({"maintenance": 3}, "maintenance"),
])
def test_policy_errors_name_the_key(cfg, key):
    with pytest.raises(ConfigError, match=key):
        DeliveryPolicy.from_config(dict(cfg, name="erp"))


def test_windows_are_read_in_the_destinations_time_zone():
    # A finance system down Sundays 00:00-06:00 Beijing time, seen from a UTC server.
    from agent.deliver.loop import Gate
    policy = DeliveryPolicy.from_config({"name": "erp", "maintenance": ["Sun 00:00-06:00"],
                                         "maintenance_tz": "Asia/Shanghai"})
    gate = Gate.fresh(policy)
    utc = dt.timezone.utc
    # Saturday 17:00 UTC is Sunday 01:00 in Shanghai: inside, until 06:00 there = 22:00 UTC.
    inside = dt.datetime(2026, 11, 28, 17, 0, tzinfo=utc)
    assert gate.maintenance_until(inside) == dt.datetime(2026, 11, 28, 22, 0, tzinfo=utc)
    # Sunday 01:00 UTC is Sunday 09:00 in Shanghai: outside, though inside the window in UTC.
    assert gate.maintenance_until(dt.datetime(2026, 11, 29, 1, 0, tzinfo=utc)) is None
    assert Gate.fresh(DeliveryPolicy.from_config({"name": "erp", "maintenance": ["Sun 00:00-06:00"]}),
                      tz=utc).maintenance_until(dt.datetime(2026, 11, 29, 1, 0, tzinfo=utc)) is not None


def test_an_unknown_time_zone_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="maintenance_tz: unknown time zone 'Asia/Beijing'"):
        DeliveryPolicy.from_config({"name": "erp", "maintenance_tz": "Asia/Beijing"})


def test_config_check_reports_bad_windows_and_zones_when_loading(tmp_path):
    from agent.config import load_config
    path = tmp_path / "c.toml"
    path.write_text('[[destination]]\nname = "erp"\nurl = "folder://out"\n'
                    'maintenance = ["Sun 25:00-06:00"]\nmaintenance_tz = "Mars/Olympus"\n')
    path.chmod(0o600)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = str(e.value).splitlines()
    assert any(l.startswith("destination[0].maintenance:") for l in lines), lines
    assert any(l.startswith("destination[0].maintenance_tz: unknown time zone 'Mars/Olympus'") for l in lines), lines
