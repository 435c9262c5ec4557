"""Capture first: background loops step aside while a backlog is taken in.

The main thread capturing files is what makes them safe; a backup round
copying originals, or a delivery thread writing invoices out, at the same
moment competes for the same cores, the GIL and the same disk flushes (a
group's `syncfs` waits for every dirty page on the filesystem, the other
loops' copies included). A burst was captured at a third of the pace it
reached without a backup target, and the two delivery threads of a folder
destination still took a quarter of the main thread's time.

The intake step marks intake busy after each step that left ready files
for the next one (files still settling, or a few taken at once, are no
backlog: capture is not what holds them up); the reading stage marks
reading busy while recording results takes most of the main thread (a
burst on its way to `queued`, sharing the main thread and the GIL with the
same loops; slow scans, which leave the main thread waiting, are no such
backlog). Then:
- a backup round first waits until intake and reading have been quiet for
  QUIET_S, or at most MAX_YIELD_S, so a flood that never stops still leaves
  it a round every MAX_YIELD_S (`yield_to_intake`);
- delivery goes on, at a share: after each pass it rests so that its passes
  take at most DELIVERY_SHARE of its time (`step_aside`). An invoice read
  while a flood of junk is refused is still delivered at once, not after
  the flood; a burst's deliveries no longer crowd out its capture.
Nothing waits in memory: the backlog is rows in the ledger.
"""

from __future__ import annotations

import threading
import time

QUIET_S = 1.0
MAX_YIELD_S = 30.0
DELIVERY_SHARE = 0.1
MAX_STEP_ASIDE_S = 5.0
_POLL_S = 0.2

_busy_until = 0.0      # intake has a backlog until then
_reading_until = 0.0   # reading has a backlog until then
_lock = threading.Lock()


def intake_busy() -> None:
    """Intake took files just now and left ready ones for its next step (main thread)."""
    global _busy_until
    with _lock:
        _busy_until = time.monotonic() + QUIET_S


def reading_busy() -> None:
    """Recording results took most of the main thread just now (main
    thread): a burst just captured is on its way to `queued`. Backup rounds
    wait for it; delivery does not (delivering the first invoices of a burst
    while the rest are read is what a pipeline is for)."""
    global _reading_until
    with _lock:
        _reading_until = time.monotonic() + QUIET_S


def yield_to_intake(stopping: threading.Event, *, max_s: float = MAX_YIELD_S) -> float:
    """Wait while intake or reading is busy, at most `max_s` seconds,
    returning early when `stopping` is set. Returns the seconds waited (0
    when both were quiet)."""
    start = time.monotonic()
    while not stopping.is_set():
        with _lock:
            left = max(_busy_until, _reading_until) - time.monotonic()
        waited = time.monotonic() - start
        if left <= 0 or waited >= max_s:
            return waited
        stopping.wait(min(_POLL_S, left, max_s - waited))
    return time.monotonic() - start


def busy() -> bool:
    """Intake has a backlog now (marked within the last QUIET_S)."""
    with _lock:
        return _busy_until > time.monotonic()


def step_aside(stopping: threading.Event, took: float, *, share: float = DELIVERY_SHARE,
               max_s: float = MAX_STEP_ASIDE_S) -> float:
    """After a pass of background work that took `took` seconds: while
    intake is busy, wait `took * (1 - share) / share` seconds (at most
    `max_s`), so the work keeps at most `share` of the time; returns at once
    when intake is quiet or `stopping` is set. Returns the seconds waited."""
    if took <= 0 or not busy():
        return 0.0
    start = time.monotonic()
    stopping.wait(min(max_s, took * (1 - share) / share))
    return time.monotonic() - start
