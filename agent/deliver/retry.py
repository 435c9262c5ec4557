"""When to try a delivery again: backoff, Retry-After, maintenance windows, breaker.

Pure: nothing here reads the clock, sleeps or draws its own random numbers.
`now` and `rng` come from the caller, so a restart that re-reads the ledger
computes the same answers and the tests can walk through time.

The wall clock can jump (a VM resumed, NTP stepping a clock that was days
off). Every stored moment is therefore read with `is_due`: a moment further
ahead than the longest wait that could have set it was set before the clock
went back, and is due now instead of after the jump.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from agent.deliver.settings import config_number, where
from agent.errors import ConfigError

if TYPE_CHECKING:   # the caller brings its rng; `status` reads policies and draws none
    import random

_DAY_NAMES_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# 2**62 already exceeds any sane cap; stopping here keeps float maths finite.
_MAX_EXPONENT = 62
# Moments written by one thread and read with a `now` taken a little earlier
# by another may lie this far ahead without a jump of the clock.
CLOCK_SLACK_S = 1.0
# A server's Retry-After is honoured up to a day (above max_delay_s too): a
# server asking for more (1e12, inf, a date years ahead) is not believed.
RETRY_AFTER_MAX_S = 86400.0
# No wait is longer, whatever the config or a server says: keeps the date
# arithmetic in range (a datetime ends in year 9999).
_LONGEST_WAIT_S = 366 * 86400.0


def is_due(at: dt.datetime, now: dt.datetime, longest_wait_s: float) -> bool:
    """True when `at` has come, or lies more than `longest_wait_s` (plus
    CLOCK_SLACK_S) ahead of `now`: no schedule sets a wait that long, so
    the clock went back since `at` was set, and waiting for it would stall
    for the whole jump. A forward jump needs nothing: `at` has simply come."""
    ahead = (at - now).total_seconds()
    return ahead <= 0 or ahead > max(longest_wait_s, 0.0) + CLOCK_SLACK_S


def backoff(attempt: int, *, base_s: float, max_delay_s: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 = the first).

    Exponential with full jitter: uniform in [0, min(max_delay_s, base_s * 2**(attempt-1))].
    Never negative, never above `max_delay_s`, whatever `attempt` is.
    """
    if attempt < 1:
        attempt = 1
    ceiling = min(max_delay_s, base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return rng.uniform(0.0, max(ceiling, 0.0))


def next_attempt_at(
    now: dt.datetime,
    attempt: int,
    retry_after: float | None,
    *,
    base_s: float,
    max_delay_s: float,
    rng: random.Random,
    windows: Iterable["Window"] = (),
) -> dt.datetime:
    """When the next attempt may start after failed attempt `attempt` at `now`.

    Jittered backoff, but never earlier than the remote's Retry-After (which
    wins over `max_delay_s`: the server knows its own state) up to
    RETRY_AFTER_MAX_S. If that moment falls inside a maintenance window, the
    answer is the window's end. Never raises for any number given: a NaN or
    negative Retry-After is no advice, an infinite one is capped, and no wait
    exceeds a year.
    """
    delay = _bounded(backoff(attempt, base_s=base_s, max_delay_s=max_delay_s, rng=rng), _LONGEST_WAIT_S)
    if retry_after is not None and retry_after > delay:     # False for NaN
        delay = _bounded(retry_after, max(min(max_delay_s, _LONGEST_WAIT_S), RETRY_AFTER_MAX_S))
    at = now + dt.timedelta(seconds=delay)
    return in_maintenance(windows, at) or at


def _bounded(seconds: float, most: float) -> float:
    # NaN fails every comparison: it becomes 0, as a negative does.
    if seconds > most:
        return most
    return seconds if seconds >= 0 else 0.0


@dataclass(frozen=True)
class Window:
    """A weekly maintenance window: starts on `days` (0 = Monday) at `start`
    minutes past midnight and lasts `minutes` (may run past midnight)."""

    days: frozenset[int]
    start: int
    minutes: int
    text: str = ""

    def __str__(self) -> str:
        return self.text or f"{sorted(self.days)} {self.start}+{self.minutes}"


# A pattern, not compiled here: re compiles and caches it on the first window
# read, and `status` without maintenance windows reads none.
_WINDOW_RE = r"^\s*(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"


def parse_window(text: str) -> Window:
    """Read "Sun 00:00-06:00", "daily 23:30-00:30", "Mon-Fri 12:00-13:00" or "Sat,Sun 01:00-02:00".

    An end at or before the start means the window runs past midnight into
    the next day; "00:00-24:00" is a whole day. Raises ConfigError on anything else.
    """
    if not isinstance(text, str):
        raise ConfigError(f"maintenance: window must be a string like 'Sun 00:00-06:00', got {text!r}")
    m = re.match(_WINDOW_RE, text)
    if not m:
        raise ConfigError(f"maintenance: cannot read window {text!r}; expected e.g. 'Sun 00:00-06:00'")
    days = _parse_days(m["days"], text)
    start = _parse_clock(m["start"], text, allow_24=False)
    end = _parse_clock(m["end"], text, allow_24=True)
    minutes = end - start if end > start else end + 24 * 60 - start
    if minutes == 24 * 60 and end != 24 * 60:
        raise ConfigError(f"maintenance: window {text!r} starts and ends at the same time; write 00:00-24:00 for a whole day")
    return Window(days=days, start=start, minutes=minutes, text=text.strip())


def _parse_days(spec: str, text: str) -> frozenset[int]:
    spec = spec.lower()
    if spec in ("daily", "everyday", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in spec.split(","):
        ends = part.split("-")
        if len(ends) > 2:
            raise ConfigError(f"maintenance: bad day range {part!r} in window {text!r}")
        first, last = (_day_index(e, text) for e in (ends[0], ends[-1]))
        i = first
        while True:  # a range like Fri-Mon wraps over the week's end
            days.add(i)
            if i == last:
                break
            i = (i + 1) % 7
    return frozenset(days)


def _day_index(word: str, text: str) -> int:
    if len(word) >= 3:
        for i, name in enumerate(_DAY_NAMES_FULL):
            if name.startswith(word):
                return i
    raise ConfigError(f"maintenance: unknown day {word!r} in window {text!r}; use Mon..Sun or daily")


def _parse_clock(hhmm: str, text: str, *, allow_24: bool) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    if (h == 24 and m == 0 and allow_24) or (0 <= h <= 23 and 0 <= m <= 59):
        return h * 60 + m
    raise ConfigError(f"maintenance: bad time {hhmm!r} in window {text!r}")


def parse_timezone(name: str | None, where: str = "") -> dt.tzinfo | None:
    """The IANA zone `name` ("Asia/Shanghai"), or None for None (host time).
    Raises ConfigError naming maintenance_tz for an unknown zone."""
    if name is None:
        return None
    # Here, not at the top: zoneinfo loads sysconfig to find the zone files,
    # which `status` pays for nothing when no maintenance_tz is set.
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"{where}maintenance_tz: unknown time zone {name!r}; "
                          f"use an IANA name such as 'Asia/Shanghai'") from None


def in_maintenance(windows: Iterable[Window], now: dt.datetime) -> dt.datetime | None:
    """The end of the maintenance that `now` falls in, or None when outside all windows.

    Starts are inclusive, ends exclusive. Windows are read in `now`'s own
    clock (pass local time, naive or aware). When one window's end lies in
    another window, the answer is the end of the chain, so the caller never
    wakes up inside a window.
    """
    windows = list(windows)
    end: dt.datetime | None = None
    at = now
    for _ in range(8 * max(1, len(windows))):  # a chain cannot be longer than a week of windows
        found = _latest_end(windows, at)
        if found is None:
            return end
        end = found
        at = found
    return end


def _latest_end(windows: list[Window], now: dt.datetime) -> dt.datetime | None:
    best: dt.datetime | None = None
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for w in windows:
        for back in (0, 1):  # a window begun yesterday may still run today
            day_start = midnight - dt.timedelta(days=back)
            if day_start.weekday() not in w.days:
                continue
            start = day_start + dt.timedelta(minutes=w.start)
            end = start + dt.timedelta(minutes=w.minutes)
            if start <= now < end and (best is None or end > best):
                best = end
    return best


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass
class Breaker:
    """A circuit breaker for one destination, driven by the caller's clock.

    Closed: calls flow. After `threshold` consecutive transient failures it
    opens: no calls until `probe_interval_s` has passed, then half-open, which
    lets exactly one trial call through (again every `probe_interval_s` if its
    outcome never arrives). A success closes it; a failure re-opens it.
    Only transient failures should be recorded: a 400 says nothing about health.
    State is plain data (`to_dict`/`from_dict`) so the ledger can keep it.
    """

    threshold: int = 5
    probe_interval_s: float = 60.0
    failures: int = 0
    state: str = CLOSED
    opened_at: dt.datetime | None = None
    trial_at: dt.datetime | None = None

    def allow(self, now: dt.datetime) -> bool:
        """True if a call may be made at `now`; in half-open, True once per probe
        interval (read with `is_due`: a clock gone back does not silence it)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self.opened_at is None or is_due(self.opened_at + self._interval, now, self.probe_interval_s):
                self.state, self.trial_at = HALF_OPEN, now
                return True
            return False
        if self.trial_at is None or is_due(self.trial_at + self._interval, now, self.probe_interval_s):
            self.trial_at = now
            return True
        return False

    def record_success(self, now: dt.datetime) -> None:
        """A call succeeded: close and forget past failures."""
        self.failures, self.state, self.opened_at, self.trial_at = 0, CLOSED, None, None

    def record_failure(self, now: dt.datetime) -> None:
        """A call failed transiently: count it; open at the threshold or after a failed trial."""
        self.failures += 1
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
            self.state, self.opened_at, self.trial_at = OPEN, now, None

    def next_probe_at(self) -> dt.datetime | None:
        """When the next trial call will be allowed, or None if calls flow (closed)."""
        if self.state == OPEN and self.opened_at is not None:
            return self.opened_at + self._interval
        if self.state == HALF_OPEN and self.trial_at is not None:
            return self.trial_at + self._interval
        return None

    @property
    def _interval(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.probe_interval_s)

    def to_dict(self) -> dict:
        """JSON-ready state (datetimes as ISO strings) for a ledger column."""
        return {"failures": self.failures, "state": self.state,
                "opened_at": self.opened_at.isoformat() if self.opened_at else None,
                "trial_at": self.trial_at.isoformat() if self.trial_at else None}

    @classmethod
    def from_dict(cls, d: dict, *, threshold: int = 5, probe_interval_s: float = 60.0) -> "Breaker":
        """Inverse of `to_dict`; settings come from config, not from the stored state."""
        def when(v):
            return dt.datetime.fromisoformat(v) if v else None
        state = d.get("state", CLOSED)
        if state not in (CLOSED, OPEN, HALF_OPEN):
            state = CLOSED
        return cls(threshold=threshold, probe_interval_s=probe_interval_s,
                   failures=int(d.get("failures", 0)), state=state,
                   opened_at=when(d.get("opened_at")), trial_at=when(d.get("trial_at")))


@dataclass
class Refusals:
    """Whose fault a refusal is (401/403 or a redirect: `Misconfigured`): the
    destination's, or one invoice's. A bad token refuses every invoice, so
    nothing is delivered between two refusals; a finance system that refuses
    one invoice (a business permission answered 403) goes on accepting the
    others. So a refusal is the invoice's when a delivery went through since
    the previous refusal, or when this row was refused before and another
    was delivered after that (it is singled out: refused again later, even
    with nothing else to deliver, it is still its own). Otherwise it is the
    destination's, and a destination's refusal forgets which rows were singled
    out (a token revoked since then refuses them all alike). Plain data driven
    by the caller's clock; not thread-safe (the service holds the gate's lock)."""

    refused_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    pending: dict = field(default_factory=dict)      # row -> None: refused, not yet judged
    singled: dict = field(default_factory=dict)      # row -> None: refused while others were not

    def delivered(self, now: dt.datetime) -> None:
        """A delivery (or an "already there") went through at `now`."""
        self.delivered_at = now
        self.singled.update(self.pending)
        self.pending.clear()
        while len(self.singled) > _MAX_REMEMBERED:   # oldest first: a dict keeps its order
            del self.singled[next(iter(self.singled))]

    def refused(self, row: object, now: dt.datetime) -> bool:
        """Note that `row` was refused at `now`; True when the refusal is the
        invoice's, not the destination's."""
        invoices = row in self.singled or (self.delivered_at is not None and self.refused_at is not None
                                           and self.delivered_at >= self.refused_at)
        self.refused_at = now
        if not invoices:
            self.singled.clear()
            if len(self.pending) < _MAX_REMEMBERED:
                self.pending[row] = None
        return invoices


_MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the delivery loop treats one destination, read from its config table."""

    max_attempts: int = 10
    max_delay_s: float = 3600.0
    base_delay_s: float = 2.0
    max_age_s: float = 7 * 86400.0
    concurrency: int = 4
    breaker_threshold: int = 5
    probe_interval_s: float = 60.0
    maintenance: tuple[Window, ...] = ()
    # The zone maintenance windows are written in (the finance system's,
    # which need not be this server's); None: the host's local time.
    timezone: dt.tzinfo | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "DeliveryPolicy":
        """Read the fixed keys (max_attempts, max_delay_s, maintenance,
        maintenance_tz, concurrency) and the extra ones (base_delay_s,
        max_age_s, breaker_threshold, probe_interval_s); missing keys keep the
        defaults above.
        Raises ConfigError naming the key on a wrong type or range."""
        d = cls()
        windows = cfg.get("maintenance") or []
        if isinstance(windows, str):
            windows = [windows]
        if not isinstance(windows, (list, tuple)):
            raise ConfigError(f"{where(cfg)}maintenance: expected a list of windows like ['Sun 00:00-06:00']")
        return cls(
            max_attempts=int(config_number(cfg, "max_attempts", d.max_attempts, integer=True, minimum=1)),
            max_delay_s=config_number(cfg, "max_delay_s", d.max_delay_s, minimum=0),
            base_delay_s=config_number(cfg, "base_delay_s", d.base_delay_s, minimum=0),
            max_age_s=config_number(cfg, "max_age_s", d.max_age_s, minimum=0),
            concurrency=int(config_number(cfg, "concurrency", d.concurrency, integer=True, minimum=1)),
            breaker_threshold=int(config_number(cfg, "breaker_threshold", d.breaker_threshold, integer=True, minimum=1)),
            probe_interval_s=config_number(cfg, "probe_interval_s", d.probe_interval_s, minimum=0),
            maintenance=tuple(parse_window(w) for w in windows),
            timezone=parse_timezone(cfg.get("maintenance_tz"), where(cfg)),
        )

    def breaker(self) -> Breaker:
        """A fresh closed breaker with this policy's threshold and probe interval."""
        return Breaker(threshold=self.breaker_threshold, probe_interval_s=self.probe_interval_s)

