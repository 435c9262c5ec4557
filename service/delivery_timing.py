"""Timing for the delivery threads (service/delivery.py): the rate limit a
destination's workers share, and the watch on the wall clock that says in
the log when it jumped (ages and SLA warnings read it; retries do not)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Callable


log = logging.getLogger("fapiao.delivery")
CLOCK_JUMP_S = 60.0         # a difference this large is logged as a jump of the wall clock


class RateLimit:
    """At most `per_s` call starts per second, shared by a destination's
    workers. `reserve(t)` books the next slot at monotonic time `t` and
    returns how long to wait for it (0 when unlimited)."""

    def __init__(self, per_s: float | None):
        self.interval = 1.0 / per_s if per_s else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self, t: float) -> float:
        """Book a slot; the caller sleeps the returned seconds, then calls."""
        if not self.interval:
            return 0.0
        with self._lock:
            slot = max(t, self._next)
            self._next = slot + self.interval
            return slot - t


class ClockWatch:
    """Notices jumps of the wall clock (`wall`) against the monotonic clock,
    so an operator reads in the log why times in `status` look odd."""

    def __init__(self, wall: Callable[[], dt.datetime], threshold_s: float = CLOCK_JUMP_S):
        self.wall, self.threshold_s = wall, threshold_s
        self._base: tuple[dt.datetime, float] | None = None

    def check(self) -> float | None:
        """Seconds the wall clock jumped since the last call (+ forward,
        - back), or None when it kept pace within `threshold_s`."""
        wall, mono = self.wall(), time.monotonic()
        base, self._base = self._base, (wall, mono)
        if base is None:
            return None
        drift = (wall - base[0]).total_seconds() - (mono - base[1])
        return drift if abs(drift) >= self.threshold_s else None


def log_clock_jump(seconds: float) -> None:
    """One warning line for a jump of the wall clock, saying what it does to the schedules."""
    log.warning(f"the wall clock jumped {'forward' if seconds > 0 else 'back'} by {abs(seconds) / 3600:.1f} h; "
                "no delivery fails or stalls for it (retries keep their own waits), but ages and "
                "SLA warnings read the wall clock and are off by as much", extra={"jump_s": round(seconds)})
