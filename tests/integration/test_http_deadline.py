"""The HTTP destination's send is over within its timeout_s, whatever the
server does: the connect, the TLS handshake, the writing of the request and
the reading of the answer all under one deadline (agent/deadline.py).

Against real servers on 127.0.0.1 (tests/support/http_tarpits.py, a slow
front before a real FaultyFinanceServer), each case drags out one phase,
each pause far inside any socket timeout, on a connection the server took a
second to accept (a full listen queue: the SYN waits for the kernel's
retry). A timeout per phase let the phases add up (the accept's second plus
a whole timeout_s for the phase under attack, more when several are slow);
one deadline does not. Each attempt must end in time as a retryable
failure, never a delivery; and the retry, against the same server now
healthy, delivers the invoice once, also when the server had stored it
while its answer was being trickled (an unknown outcome: the Idempotency-Key
makes the second put the first's receipt).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time

import pytest

from agent.config import parse_config
from agent.deliver import open_destination
from agent.deliver.loop import Gate, Refusals, deliver_step
from agent.deliver.retry import DeliveryPolicy
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.delivery import DeliveryService
from tests.support.http_destination import FaultyFinanceServer
from tests.support.http_tarpits import SlowFront
from tests.support.notify_servers import self_signed
from tests.support.queued import number_of, queue_invoice

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
TIMEOUT_S = 2.0
SLACK_S = 0.8           # closing the connection, recording, a loaded machine
ACCEPT_AFTER_S = 0.8    # the listen queue full until then: the SYN gets in at its retry, 1 s after the first
BIG = 4 << 20           # more than the client's socket buffers take while the server reads nothing

# name: (what the front does, file size, whether the server has the request when the send gives up:
# None where that depends on how far the send got)
CASES = {
    "TLS handshake never answered": (dict(tls=True, handshake="silent"), 2000, False),
    "TLS handshake a byte at a time": (dict(tls=True, handshake="trickle"), 2000, False),
    "request body read a byte every 0.3 s": (dict(read_pace=(1, 0.3)), BIG, False),
    "status line and headers a byte at a time": (dict(answer="head"), 2000, True),
    "answer body a byte at a time": (dict(answer="body"), 2000, True),
    # Several phases slow, none too slow: the body read at ~1 MB/s, then the answer trickled.
    "slow everywhere over TLS": (dict(tls=True, read_pace=(65536, 0.02), answer="head"), 3_500_000, None),
}


class Env:
    """A ledger, a vault and one HTTP destination through a SlowFront."""

    def __init__(self, tmp_path, front: SlowFront, ca_file: str | None):
        self.ledger = Ledger(tmp_path / "ledger.sqlite3")
        self.vault = Vault(tmp_path / "vault")
        cfg = {"name": "fin", "url": front.url, "timeout_s": TIMEOUT_S, "base_delay_s": 5, "max_delay_s": 60,
               "max_attempts": 5, **({"ca_file": ca_file} if ca_file else {})}
        self.dest = open_destination(cfg)
        # The retry's deadline is not what is tested: megabytes through the
        # proxying front over TLS took more than TIMEOUT_S on a loaded
        # machine (CI failed so), a second timeout where a delivery was due.
        self.patient = open_destination({**cfg, "timeout_s": 60})
        self.policy = DeliveryPolicy.from_config(cfg)
        self.gate = Gate.fresh(self.policy, tz=UTC)
        self.rng = random.Random(3)

    def queue(self, size: int) -> int:
        body = b"%PDF-1.4\n% " + number_of(1).encode() + b"\n" + b"0" * size + b"\n%%EOF\n"
        return queue_invoice(self.ledger, self.vault, 1, destinations=["fin"], now=utc(T0),
                             stored=self.vault.put_bytes(body))

    def step(self, at: dt.datetime, *, patient: bool = False):
        return deliver_step(self.ledger, self.patient if patient else self.dest, self.policy, self.gate,
                            vault=self.vault, now=at, rng=self.rng, lease_s=60, token="w1", actor="test", tz=UTC,
                            refusals=Refusals())


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("case", CASES)
def test_a_slow_server_costs_one_timeout_and_the_retry_delivers_once(case, tmp_path, cert):
    how, size, stored = CASES[case]
    how = dict(how, tls=cert if how.get("tls") else None)
    key = number_of(1)
    with FaultyFinanceServer() as backend, SlowFront(backend, backlog_s=ACCEPT_AFTER_S, **how) as front:
        env = Env(tmp_path, front, cert[0] if how["tls"] else None)
        try:
            doc = env.queue(size)
            began = time.monotonic()
            result = env.step(T0)
            took = time.monotonic() - began
            assert took < TIMEOUT_S + SLACK_S, f"{case}: the send took {took:.2f} s with timeout_s={TIMEOUT_S:g}"
            # Retryable, never a delivery, never the destination's fault (no pause).
            assert (result.outcome, result.row_state) == ("transient", "queued"), result
            assert f"timed out: the request and its answer did not finish within {TIMEOUT_S:g} s" in result.error
            assert env.ledger.deliveries_of(doc)[0]["state"] == "queued"
            assert not env.gate.paused_error
            # Whether the server has it is what the client cannot know; here the test can.
            if stored is not None:
                assert backend.accepted[key] == (1 if stored else 0), case
            front.healthy = True
            again = env.step(T0 + dt.timedelta(days=1), patient=True)
            assert (again.outcome, again.row_state) == ("delivered", "delivered"), again
            row = env.ledger.deliveries_of(doc)[0]
            assert row["state"] == "delivered"
            assert backend.accepted[key] == 1 and backend.stats()["duplicates"] == {}
            assert json.loads(row["receipt"])["remote_id"] == backend.held[key]["id"]
        finally:
            env.ledger.close()


def test_a_lookup_and_a_probe_keep_to_the_deadline_too(tmp_path):
    # The recovering row's look-up and the breaker's probe are sends as well.
    with FaultyFinanceServer() as backend, SlowFront(backend, backlog_s=ACCEPT_AFTER_S, answer="head") as front:
        dest = open_destination({"name": "fin", "url": front.url, "timeout_s": TIMEOUT_S})
        for call in (lambda: dest.lookup(number_of(1)), dest.probe):
            began = time.monotonic()
            with pytest.raises(Exception) as e:
                call()
            took = time.monotonic() - began
            assert took < TIMEOUT_S + SLACK_S, f"took {took:.2f} s"
            assert type(e.value).__name__ == "Transient" and "timed out" in str(e.value)


def test_a_stop_waits_at_most_one_timeout_for_a_stuck_put(tmp_path, caplog):
    # The daemon's stop waits for the delivery worker's put in flight. The
    # queue stays full past the SYN's first retry (1 s) so the connect takes
    # 3 s, within the old connect timeout; then the answer trickles. Each
    # phase within its own timeout, the put used to last for their sum.
    timeout_s = 3.5
    with FaultyFinanceServer() as backend, SlowFront(backend, backlog_s=1.5, answer="head") as front:
        cfg = parse_config({"delivery": {"reconcile_interval_s": 0},
                            "destination": [{"name": "fin", "url": front.url, "timeout_s": timeout_s,
                                             "concurrency": 1}]}, base_dir=tmp_path)
        with Ledger(cfg.ledger_path) as ledger:
            doc = queue_invoice(ledger, Vault(cfg.vault_dir), 1, destinations=["fin"], now=utc(dt.datetime.now(UTC)))
        caplog.set_level(logging.INFO, logger="fapiao.delivery")
        svc = DeliveryService(cfg).start()
        try:
            until = time.monotonic() + 10
            while time.monotonic() < until:
                with Ledger(cfg.ledger_path) as ledger:
                    if ledger.deliveries_of(doc)[0]["state"] == "delivering":
                        break
                time.sleep(0.02)
            else:
                pytest.fail("the worker never took the invoice")
        finally:
            stop_at = time.monotonic()
            svc.stop()
            svc.join(20)
        waited = time.monotonic() - stop_at
        assert not any(t.is_alive() for t in svc.threads())
        assert waited < timeout_s + SLACK_S, f"the stop waited {waited:.1f} s with timeout_s={timeout_s:g}"
        with Ledger(cfg.ledger_path) as ledger:
            row = ledger.deliveries_of(doc)[0]
        assert row["state"] == "queued" and "timed out" in row["last_error"], row
        # The failed try is said once, as every retried delivery is.
        said = [r.getMessage() for r in caplog.records if r.name == "fapiao.delivery" and "retried" in r.getMessage()]
        assert len(said) == 1, said
