"""Backup rounds and delivery step aside while intake takes a burst (service/pace.py)."""

from __future__ import annotations

import threading
import time

from service import pace


def test_quiet_intake_costs_no_wait():
    pace._busy_until = 0.0
    assert pace.yield_to_intake(threading.Event()) < 0.05


def test_busy_intake_is_waited_for_until_quiet(monkeypatch):
    monkeypatch.setattr(pace, "QUIET_S", 0.3)
    pace.intake_busy()
    waited = pace.yield_to_intake(threading.Event(), max_s=30)
    assert 0.2 <= waited < 10


def test_a_flood_that_never_stops_still_leaves_a_round_every_max_s():
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            pace.intake_busy()
            time.sleep(0.05)
    feeding = threading.Thread(target=flood, daemon=True)
    feeding.start()
    try:
        waited = pace.yield_to_intake(threading.Event(), max_s=0.5)
    finally:
        stop.set()
        feeding.join()
    assert 0.5 <= waited < 5


def test_a_stop_ends_the_wait_at_once():
    pace.intake_busy()
    stopping = threading.Event()
    stopping.set()
    assert pace.yield_to_intake(stopping, max_s=30) < 1


def test_step_aside_rests_nine_times_the_pass_while_intake_is_busy(monkeypatch):
    monkeypatch.setattr(pace, "QUIET_S", 30.0)
    pace.intake_busy()
    try:
        waited = pace.step_aside(threading.Event(), 0.05, share=0.1)
        assert 0.4 <= waited < 3
        assert pace.step_aside(threading.Event(), 10.0, share=0.1, max_s=0.2) < 2, "a long pass rests at most max_s"
        stopping = threading.Event()
        stopping.set()
        assert pace.step_aside(stopping, 5.0, share=0.1) < 1
    finally:
        pace._busy_until = 0.0


def test_step_aside_costs_nothing_while_intake_is_quiet():
    pace._busy_until = 0.0
    assert pace.step_aside(threading.Event(), 5.0) == 0.0
    assert not pace.busy()
