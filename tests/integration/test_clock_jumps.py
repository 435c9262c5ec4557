"""Jumps of the wall clock (+8 days, -2 days) against every retry schedule:
delivery rows, leases, the breaker and the pause of a destination, backup
rows and the backup thread's snapshot schedule.

The ledger tests drive the real claim / send / record step with `now`
passed in; the daemon-level test runs the real delivery threads against a
real HTTP server while the clock they read (service.delivery.now_dt) jumps.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest

from agent.backup.base import open_target
from agent.backup.mirror import mirror_step
from agent.deliver.loop import Outcome, claim
from agent.deliver.retry import OPEN
from agent.ledger import Ledger, utc
from agent.vault import Vault
from tests.integration.test_delivery_ledger import T0, UTC, Env
from tests.support.http_destination import FaultyFinanceServer, http_destination  # noqa: F401
from tests.support.queued import number_of, queue_invoice

DAY = dt.timedelta(days=1)


@pytest.fixture
def env(tmp_path, http_destination):
    e = Env(tmp_path, http_destination, max_attempts=10, max_delay_s=60, base_delay_s=5)
    yield e
    e.ledger.close()


def test_a_forward_jump_does_not_fail_a_delivery_with_attempts_left(env):
    doc = env.queue(1)
    env.server.inject("503", times=2)
    first = env.step(T0)
    assert first.row_state == "queued"
    later = env.step(T0 + 8 * DAY)  # 8 days on the wall clock; max_age_s is 7 days
    assert later.outcome == "transient" and later.row_state == "queued", later
    assert env.state(doc) == "queued" and env.row(doc)["attempts"] == 2
    done = env.step(later.next_attempt_at)
    assert done.outcome == "delivered" and env.server.accepted[number_of(1)] == 1


def test_max_age_counts_the_waits_the_schedule_set_not_the_wall_clock(tmp_path, http_destination):
    env = Env(tmp_path, http_destination, max_attempts=100, max_delay_s=60, base_delay_s=5, max_age_s=3600)
    doc = env.queue(2)
    env.server.inject("503", retry_after=1800, times=3)
    at = T0 + 30 * DAY  # a jump before the first attempt adds nothing either
    first = env.step(at)
    second = env.step(first.next_attempt_at)
    assert second.row_state == "queued"  # 30 min of waits so far
    third = env.step(second.next_attempt_at)
    assert third.row_state == "failed"  # 1 h of waits: max_age_s reached
    assert "still undelivered after 1.0 h of retry waits" in env.row(doc)["last_error"]


def test_a_backward_jump_does_not_stall_a_due_retry(env):
    doc = env.queue(3)
    env.server.inject("500")
    first = env.step(T0)
    assert first.row_state == "queued" and first.next_attempt_at <= T0 + dt.timedelta(seconds=5)
    back = T0 - 2 * DAY
    result = env.step(back)  # before the fix: nothing due for two days
    assert result is not None and result.outcome == "delivered", result
    assert env.state(doc) == "delivered"


def test_a_backward_jump_within_max_delay_waits_no_longer_than_it(env):
    doc = env.queue(4)
    env.server.inject("500")
    first = env.step(T0)
    back = T0 - dt.timedelta(seconds=50)  # less than max_delay_s: the row keeps its time
    assert env.step(back) is None
    assert env.step(first.next_attempt_at).outcome == "delivered" and env.state(doc) == "delivered"


def test_retry_after_above_max_delay_is_still_honoured_without_a_jump(env):
    doc = env.queue(5)
    env.server.inject("503", retry_after=7200)
    first = env.step(T0)
    assert first.next_attempt_at == T0 + dt.timedelta(seconds=7200)
    assert env.step(T0 + dt.timedelta(seconds=61)) is None
    assert env.step(T0 + dt.timedelta(seconds=7199)) is None
    assert env.step(first.next_attempt_at).outcome == "delivered" and env.state(doc) == "delivered"
    # ...and after a jump back it is due at once, not 2 days and 2 hours later.
    doc2 = env.queue(6, at=T0 + dt.timedelta(hours=3))
    env.server.inject("503", retry_after=7200)
    env.step(T0 + dt.timedelta(hours=3))
    assert env.step(T0 - 2 * DAY).outcome == "delivered" and env.state(doc2) == "delivered"


def test_a_lease_taken_before_a_backward_jump_expires(env):
    doc = env.queue(7)
    claim(env.ledger, "erp", now=T0, lease_s=60, token="dead", actor="test")  # died before sending
    result = env.step(T0 - 2 * DAY)
    assert result is not None and result.outcome == "delivered", result
    assert env.state(doc) == "delivered" and env.server.accepted[number_of(7)] == 1


def test_an_open_breaker_probes_after_a_backward_jump(env):
    for _ in range(env.policy.breaker_threshold):
        env.gate.observe(Outcome("transient", error="503"), T0)
    assert env.gate.breaker.state == OPEN
    assert env.gate.decide(T0 + dt.timedelta(seconds=1)).kind == "wait"
    assert env.gate.decide(T0 - 2 * DAY).kind == "probe"  # before the fix: no probe for two days


def test_a_paused_destination_is_probed_after_a_backward_jump(env):
    env.gate.observe(Outcome("misconfigured", error="401 bad token"), T0)
    assert env.gate.decide(T0 + dt.timedelta(seconds=1)).kind == "wait"
    assert env.gate.decide(T0 - 2 * DAY).kind == "probe"


def test_backup_rows_put_off_before_a_backward_jump_are_due(tmp_path):
    ledger, vault = Ledger(tmp_path / "ledger.sqlite3"), Vault(tmp_path / "vault")
    stored = vault.put_bytes(b"%PDF-1.4 clock\n%%EOF\n")
    with ledger.transaction():
        ledger.add_document(sha256=stored.sha256, size=stored.size, media_type="application/pdf",
                            source_kind="ingest", source="t", original_name="a.pdf", original_path=None,
                            now=utc(T0), actor="t")
    (tmp_path / "nas-away").mkdir()
    target = open_target({"name": "nas", "url": f"file://{tmp_path / 'nas'}"})
    out = mirror_step(ledger, vault, target, now=T0, rng=random.Random(1), retry_max_s=600)
    assert out.unavailable and out.put == 0
    (tmp_path / "nas-away").rename(tmp_path / "nas")
    out = mirror_step(ledger, vault, target, now=T0 - 2 * DAY, rng=random.Random(1), retry_max_s=600)
    assert out.put == 1, out  # before the fix: nothing due for two days
    ledger.close()


def test_the_backup_schedule_runs_after_a_backward_jump():
    from service.backup import _due

    last = utc(T0)
    assert not _due(last, 3600, T0 + dt.timedelta(minutes=5))
    assert _due(last, 3600, T0 + dt.timedelta(hours=2))
    assert _due(last, 3600, T0 - 2 * DAY)  # before the fix: no snapshot for two days


class JumpingClock:
    """The wall clock the delivery threads read, shifted by `offset`."""

    def __init__(self):
        self.offset = dt.timedelta(0)
        self.lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self.lock:
            return dt.datetime.now(UTC) + self.offset


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("jump", [8 * DAY, -2 * DAY], ids=["plus-8-days", "minus-2-days"])
def test_delivery_threads_ride_out_a_jump_of_the_clock(tmp_path, monkeypatch, caplog, jump):
    from agent.config import parse_config
    from service import delivery

    clock = JumpingClock()
    monkeypatch.setattr(delivery, "now_dt", clock)
    with FaultyFinanceServer() as server:
        cfg = parse_config({"agent": {"state_dir": "state"}, "destination": [
            {"name": "erp", "url": server.url, "timeout_s": 2.0, "base_delay_s": 1.0, "max_delay_s": 2.0,
             "max_attempts": 50, "probe_interval_s": 1.0, "breaker_threshold": 1000, "concurrency": 2}]},
            base_dir=tmp_path)
        ledger, vault = Ledger(cfg.ledger_path), Vault(cfg.vault_dir)
        docs = [queue_invoice(ledger, vault, i, destinations=["erp"], now=utc(clock())) for i in range(5)]
        server.inject("503", times=1000)
        service = delivery.DeliveryService(cfg).start()
        try:
            assert wait_for(lambda: all(r["attempts"] >= 2 for d in docs for r in ledger.deliveries_of(d)), 20)
            before = {d: ledger.deliveries_of(d)[0]["attempts"] for d in docs}
            with clock.lock:
                clock.offset = jump
            # Still failing after the jump: each row gets another attempt and stays queued.
            assert wait_for(lambda: all(ledger.deliveries_of(d)[0]["attempts"] > before[d]
                                        or ledger.deliveries_of(d)[0]["state"] == "failed" for d in docs), 10)
            server.clear()
            # Every row is retried within max_delay_s (plus a poll), and none fails.
            assert wait_for(lambda: ledger.counts().get("delivered", 0) == len(docs), 10), ledger.counts()
            assert wait_for(lambda: any("wall clock jumped" in r.getMessage() for r in caplog.records), 5)
        finally:
            service.stop()
            service.join(5)
        assert not ledger.counts().get("failed")
        assert all(server.accepted[number_of(i)] == 1 for i in range(5))
        ledger.close()
    # The jump itself is logged once, with its direction and size.
    jumps = [r.getMessage() for r in caplog.records if "wall clock jumped" in r.getMessage()]
    direction = "forward by 192.0 h" if jump > dt.timedelta(0) else "back by 48.0 h"
    assert len(jumps) == 1 and direction in jumps[0], jumps
