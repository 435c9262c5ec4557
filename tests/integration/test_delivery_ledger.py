"""Delivery through the real ledger to a real misbehaving HTTP server on 127.0.0.1.

The step (claim, send, record) runs with `now` passed in, so each test walks
through time without sleeping; the server counts every newly stored invoice
by Idempotency-Key, so "exactly once" is checked where it matters.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time

import pytest
from click.testing import CliRunner

from agent import amend
from agent.deliver import open_destination
from agent.deliver.loop import Decision, Gate, Outcome, claim, deliver_step, record, send
from agent.deliver.retry import DeliveryPolicy
from agent.ledger import Ledger, utc
from agent.ledger.deliveries import summary_state
from agent.model import State
from agent.reconcile import reconcile
from agent.validate import ValidationSettings
from agent.vault import Vault
from service.delivery_timing import RateLimit
from tests.support.http_destination import FaultyFinanceServer, http_destination  # noqa: F401
from tests.support.queued import number_of, queue_invoice

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday


class Env:
    """A ledger, a vault, one HTTP destination and its gate, stepped at explicit times."""

    def __init__(self, tmp_path, server, **settings):
        self.ledger = Ledger(tmp_path / "ledger.sqlite3")
        self.vault = Vault(tmp_path / "vault")
        self.server = server
        self.cfg = {"name": "erp", "url": server.url, "timeout_s": 2, "base_delay_s": 5, "max_delay_s": 60,
                    "probe_interval_s": 30, **settings}
        self.dest = open_destination(self.cfg)
        self.policy = DeliveryPolicy.from_config(self.cfg)
        self.gate = Gate.fresh(self.policy, tz=UTC)
        self.rng = random.Random(7)

    def queue(self, i: int, at: dt.datetime = T0, destinations=("erp",)) -> int:
        return queue_invoice(self.ledger, self.vault, i, destinations=list(destinations), now=utc(at))

    def step(self, at: dt.datetime, dest=None, token: str = "w1"):
        return deliver_step(self.ledger, dest or self.dest, self.policy, self.gate, vault=self.vault, now=at,
                            rng=self.rng, lease_s=60, token=token, actor="test", tz=UTC)

    def row(self, doc_id: int, destination: str = "erp") -> dict:
        return next(r for r in self.ledger.deliveries_of(doc_id) if r["destination"] == destination)

    def state(self, doc_id: int) -> str:
        return self.ledger.get(doc_id).state


@pytest.fixture
def env(tmp_path, http_destination):
    e = Env(tmp_path, http_destination)
    yield e
    e.ledger.close()


@pytest.mark.parametrize("fault", ["500", "500-after-store", "reset", "503", "429"])
def test_transient_fault_is_retried_after_backoff_and_lands_once(env, fault):
    doc = env.queue(1)
    env.server.inject(fault, retry_after=37)
    first = env.step(T0)
    assert first.outcome == "transient" and first.row_state == "queued"
    assert env.state(doc) == "queued" and env.row(doc)["attempts"] == 1
    if fault in ("503", "429"):  # Retry-After wins over the 5 s backoff
        assert first.next_attempt_at == T0 + dt.timedelta(seconds=37)
    else:  # full jitter within base_delay_s * 2**0
        assert T0 <= first.next_attempt_at <= T0 + dt.timedelta(seconds=5)
    assert env.step(first.next_attempt_at - dt.timedelta(microseconds=1)) is None  # not due yet
    assert env.step(first.next_attempt_at).outcome == "delivered"
    assert env.state(doc) == "delivered"
    assert env.server.accepted[number_of(1)] == 1
    log = env.row(doc)["attempts_log"]
    assert [a["outcome"] for a in log] == ["transient", "delivered"]
    # A reset shows as "reset by peer" or "aborted", depending on when the RST lands.
    assert {"reset": "connection"}.get(fault, fault.split("-")[0]) in log[0]["error"].lower()


def test_slow_answer_past_the_timeout_is_retried_without_a_duplicate(tmp_path, http_destination):
    env = Env(tmp_path, http_destination, timeout_s=0.3)
    doc = env.queue(2)
    env.server.inject("slow", delay=1.0)
    first = env.step(T0)
    assert first.outcome == "transient" and "timed out" in first.error.lower()
    # The retry's deadline is not what is tested: 0.3 s was too short for a
    # healthy answer on a loaded machine (a second timeout; the suite failed so).
    patient = open_destination({**env.cfg, "timeout_s": 30})
    assert env.step(first.next_attempt_at, dest=patient).outcome == "delivered"
    assert env.server.accepted[number_of(2)] == 1 and env.server.posts == 2
    assert env.state(doc) == "delivered"


def test_409_already_exists_is_success(env):
    doc = env.queue(3)
    env.server.inject("409")
    result = env.step(T0)
    assert result.outcome == "delivered" and env.state(doc) == "delivered"
    assert json.loads(env.row(doc)["receipt"])["remote_id"] == "R0000001"


@pytest.mark.parametrize("damage", ["deleted", "altered"])
def test_an_original_gone_from_the_vault_is_not_called_a_refusal_and_accept_sends_it_once_restored(env, damage):
    # A careless admin deletes (or edits) a vault object: nothing may be
    # sent, and the quarantine must not blame the destination ("delivery
    # refused", "目标 erp 拒收此发票") that never saw it.
    doc = env.queue(7)
    path = env.vault.path(env.ledger.get(doc).sha256)
    original = path.read_bytes()
    path.chmod(0o600)
    if damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(original + b"x")
    result = env.step(T0)
    assert (result.outcome, result.row_state) == ("original", "quarantined") and env.server.posts == 0
    [problem] = [p for p in env.ledger.get(doc).problems if p["code"] == "delivery-rejected"]
    assert problem["message"].startswith("not sent to erp: ") and "refused nothing" in problem["message"]
    assert "backup restore" in problem["message"] and f"accept {doc}" in problem["message"]
    assert "不是目标拒收" in problem["message_zh"] and "拒收此发票" not in problem["message_zh"]
    assert not env.gate.paused_error, "the destination is not to blame: not paused"
    path.write_bytes(original)
    amend.accept(env.ledger, doc, reason="restored from the backup", destinations=["erp"],
                 now=utc(T0 + dt.timedelta(hours=1)), actor="test")
    assert env.step(T0 + dt.timedelta(hours=1)).outcome == "delivered"
    assert env.server.accepted[number_of(7)] == 1


def test_400_quarantines_with_the_servers_message_and_accept_brings_it_back(env):
    doc = env.queue(4)
    env.server.inject("400", message="购买方税号校验失败")
    result = env.step(T0)
    assert result.row_state == "quarantined"
    d = env.ledger.get(doc)
    assert d.state == "quarantined"
    [problem] = [p for p in d.problems if p["code"] == "delivery-rejected"]
    assert "购买方税号校验失败" in problem["message"] and problem["severity"] == "error"
    assert "购买方税号校验失败" in problem["message_zh"] and "erp" in problem["message_zh"]  # its reason, not a guess
    assert "购买方税号校验失败" in env.row(doc)["last_error"]
    assert env.step(T0 + dt.timedelta(hours=1)) is None  # a held document is not retried
    amend.accept(env.ledger, doc, reason="checked with the buyer", destinations=["erp"],
                 now=utc(T0 + dt.timedelta(hours=2)), actor="test")
    assert env.step(T0 + dt.timedelta(hours=2)).outcome == "delivered"
    assert env.state(doc) == "delivered" and env.server.accepted[number_of(4)] == 1


def test_lost_invoice_is_found_missing_requeued_and_then_confirmed(env):
    doc = env.queue(5)
    env.server.inject("lose")
    assert env.step(T0).outcome == "delivered"
    report = reconcile(env.ledger, {"erp": env.dest}, now=T0 + dt.timedelta(hours=1), actor="test",
                       requeue_missing=True)
    assert report.summary == {"checked": 1, "confirmed": 0, "missing": 1, "requeued": 1, "errors": 0,
                              "skipped": 0, "superseded": 0, "forgotten": 0, "landed": 0, "never_landed": 0,
                              "in_flight": 0}
    moves = [(e.from_state, e.to_state) for e in env.ledger.events(doc) if e.to_state]
    assert moves[-2:] == [("delivered", "missing"), ("missing", "queued")]
    assert env.step(T0 + dt.timedelta(hours=1)).outcome == "delivered"
    report = reconcile(env.ledger, {"erp": env.dest}, now=T0 + dt.timedelta(hours=2), actor="test",
                       requeue_missing=True)
    assert report.summary["confirmed"] == 1 and env.state(doc) == "confirmed"
    assert json.loads(env.row(doc)["receipt"])["remote_id"] == report.checks[0].remote_id == "R0000002"
    assert number_of(5) in env.server.held


def test_missing_stays_missing_when_requeue_is_off(env):
    doc = env.queue(6)
    env.server.inject("lose")
    env.step(T0)
    report = reconcile(env.ledger, {"erp": env.dest}, now=T0, actor="test", requeue_missing=False)
    assert report.summary["missing"] == 1 and report.summary["requeued"] == 0
    assert env.state(doc) == "missing" and env.step(T0 + dt.timedelta(days=1)) is None


def test_max_attempts_fails_with_last_error_and_retry_brings_it_back(tmp_path, http_destination):
    env = Env(tmp_path, http_destination, max_attempts=2)
    doc = env.queue(7)
    env.server.inject("500", times=2)
    first = env.step(T0)
    second = env.step(first.next_attempt_at)
    assert second.row_state == "failed" and env.state(doc) == "failed"
    assert "gave up (2 attempts)" in env.row(doc)["last_error"] and "500" in env.row(doc)["last_error"]
    assert env.step(T0 + dt.timedelta(days=1)) is None
    assert env.ledger.requeue_deliveries(doc, from_states=("failed",), now=utc(T0 + dt.timedelta(days=1)),
                                         actor="test", reason="retry") == ["erp"]
    assert env.state(doc) == "queued" and env.row(doc)["attempts"] == 0
    assert env.step(T0 + dt.timedelta(days=1)).outcome == "delivered"
    assert env.server.accepted[number_of(7)] == 1


def test_max_age_fails_even_with_attempts_left(tmp_path, http_destination):
    env = Env(tmp_path, http_destination, max_age_s=3600)
    doc = env.queue(8)
    env.server.inject("503", retry_after=7200)
    first = env.step(T0)
    env.server.inject("503")
    assert env.step(first.next_attempt_at).row_state == "failed"
    assert "still undelivered after 2.0 h" in env.row(doc)["last_error"]


def test_expired_lease_is_looked_up_and_not_put_again(env):
    doc = env.queue(9)
    [dead] = claim(env.ledger, "erp", now=T0, lease_s=60, token="dead", actor="test")
    send(env.dest, dead, env.vault)  # reached the server, then the worker died before recording
    assert env.state(doc) == "delivering"
    assert env.step(T0 + dt.timedelta(seconds=59)) is None  # lease still held
    posts = env.server.posts
    result = env.step(T0 + dt.timedelta(seconds=60))
    assert result.outcome == "found" and env.server.posts == posts
    assert env.state(doc) == "delivered" and env.server.accepted[number_of(9)] == 1
    # The dead worker's late record is refused: its lease was taken over.
    late = record(env.ledger, dead, Outcome("transient", error="x"), env.policy, now=T0, rng=env.rng,
                  actor="test", tz=UTC)
    assert late.recorded is False and env.state(doc) == "delivered"


def test_expired_lease_of_an_absent_invoice_is_put(env):
    doc = env.queue(10)
    claim(env.ledger, "erp", now=T0, lease_s=60, token="dead", actor="test")  # died before sending
    assert env.step(T0 + dt.timedelta(minutes=5)).outcome == "delivered"
    assert env.server.accepted[number_of(10)] == 1 and env.state(doc) == "delivered"
    assert [a["outcome"] for a in env.row(doc)["attempts_log"]] == ["delivered"]


def test_bad_credentials_pause_the_destination_and_quarantine_nothing(tmp_path):
    with FaultyFinanceServer(token="right") as server:
        env = Env(tmp_path, server, token="wrong")
        doc = env.queue(11)
        result = env.step(T0)
        assert result.outcome == "misconfigured" and "check token" in result.error
        assert env.state(doc) == "queued" and env.row(doc)["attempts"] == 0
        assert env.ledger.get(doc).problems == []
        waiting = env.step(T0 + dt.timedelta(seconds=1))
        assert waiting.kind == "wait" and waiting.reason.startswith("paused: ")
        assert env.step(T0 + dt.timedelta(seconds=30)).kind == "probe"  # still 401: stays paused
        assert env.gate.paused_error and server.posts == 1
        fixed = open_destination({**env.cfg, "token": "right"})
        assert env.step(T0 + dt.timedelta(seconds=60), dest=fixed).kind == "probe"
        assert env.gate.paused_error is None
        assert env.step(T0 + dt.timedelta(seconds=60), dest=fixed).outcome == "delivered"
        assert server.accepted[number_of(11)] == 1


def test_no_call_inside_a_maintenance_window_and_retries_land_after_it(tmp_path, http_destination):
    env = Env(tmp_path, http_destination, maintenance=["Wed 09:00-11:00", "daily 23:30-00:30"])
    doc = env.queue(12)
    decision = env.step(T0)
    assert decision == Decision("wait", T0.replace(hour=11), "in maintenance until 2026-03-04T11:00+00:00")
    assert http_destination.posts == 0 and env.row(doc)["attempts"] == 0
    env.server.inject("503", retry_after=600)
    result = env.step(T0.replace(hour=23, minute=25))  # Retry-After would land at 23:35, inside
    assert result.next_attempt_at == T0.replace(day=5, hour=0, minute=30)
    assert env.step(T0.replace(day=5, hour=0, minute=30)).outcome == "delivered"


def test_breaker_opens_after_consecutive_failures_and_a_probe_closes_it(tmp_path, http_destination):
    env = Env(tmp_path, http_destination, breaker_threshold=3, probe_interval_s=30)
    docs = [env.queue(20 + i) for i in range(4)]
    env.server.inject("500", times=3)
    for _ in range(3):
        assert env.step(T0).outcome == "transient"
    assert env.gate.breaker.state == "open"
    waiting = env.step(T0 + dt.timedelta(seconds=29))
    assert waiting.kind == "wait" and waiting.until == T0 + dt.timedelta(seconds=30)
    assert env.server.posts == 3
    assert env.step(T0 + dt.timedelta(seconds=30)).kind == "probe" and env.gate.breaker.state == "closed"
    at = T0 + dt.timedelta(minutes=5)
    while env.step(at) is not None:
        pass
    assert all(env.state(d) == "delivered" for d in docs)
    assert all(env.server.accepted[number_of(20 + i)] == 1 for i in range(4))


def test_gate_survives_a_restart_through_the_ledger(env):
    env.gate.observe(Outcome("misconfigured", error="erp: 401"), T0)
    env.ledger.save_destination_health("erp", now=utc(T0), **env.gate.to_health())
    again = Gate.from_health(env.ledger.destination_health("erp"), env.policy, tz=UTC)
    assert again.paused_error == "erp: 401" and again.paused_at == T0


def test_a_document_is_delivered_when_every_destination_has_it(env, tmp_path):
    folder = tmp_path / "import"
    folder.mkdir()
    second = open_destination({"name": "archive", "url": f"folder://{folder}"})
    doc = env.queue(30, destinations=("erp", "archive"))
    env.server.inject("500")
    assert env.step(T0).outcome == "transient"
    assert env.step(T0, dest=second).outcome == "delivered"
    assert env.state(doc) == "queued"  # erp still owes it
    assert env.step(T0 + dt.timedelta(minutes=1)).outcome == "delivered"
    assert env.state(doc) == "delivered"
    reconcile(env.ledger, {"erp": env.dest}, now=T0, actor="test", requeue_missing=True)
    assert env.state(doc) == "delivered"  # confirmed at one of two
    reconcile(env.ledger, {"archive": second}, now=T0, actor="test", requeue_missing=True)
    assert env.state(doc) == "confirmed"


def test_summary_state_picks_the_most_urgent_row():
    assert summary_state([]) is None
    assert summary_state(["delivered", "quarantined", "failed"]) == State.QUARANTINED
    assert summary_state(["delivered", "delivering"]) == State.DELIVERING
    assert summary_state(["confirmed", "missing"]) == State.MISSING
    assert summary_state(["confirmed", "delivered"]) == State.DELIVERED
    assert summary_state(["confirmed", "confirmed"]) == State.CONFIRMED


def test_rate_limit_spaces_call_starts():
    limit = RateLimit(4.0)
    assert [limit.reserve(10.0) for _ in range(3)] == [0.0, 0.25, 0.5]
    assert limit.reserve(11.0) == 0.0
    assert RateLimit(None).reserve(5.0) == 0.0


def test_delivery_threads_deliver_every_invoice_once_under_random_faults(tmp_path):
    from agent.config import parse_config
    from service.delivery import DeliveryService

    with FaultyFinanceServer(fail_rate=0.3, seed=11) as server:
        cfg = parse_config({"agent": {"state_dir": "state"}, "destination": [
            {"name": "erp", "url": server.url, "timeout_s": 2.0, "base_delay_s": 0.01, "max_delay_s": 0.2,
             "probe_interval_s": 0.2, "concurrency": 3}]}, base_dir=tmp_path)
        ledger, vault = Ledger(cfg.ledger_path), Vault(cfg.vault_dir)
        n = 60
        for i in range(n):
            queue_invoice(ledger, vault, i, destinations=["erp"], now=utc(dt.datetime.now(UTC)))
        service = DeliveryService(cfg).start()
        deadline = time.monotonic() + 30
        while ledger.counts()["delivered"] < n and time.monotonic() < deadline:
            time.sleep(0.05)
        service.stop()
        service.join(5)
        assert ledger.counts()["delivered"] == n
        assert sorted(server.accepted) == sorted(number_of(i) for i in range(n))
        assert set(server.accepted.values()) == {1} and sum(server.faults_served.values()) > 0
        ledger.close()


def test_cli_retry_requeue_reconcile_and_status(tmp_path, http_destination):
    from service.cli import main

    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[delivery]\nsla_hours = 1\n'
                      f'[[destination]]\nname = "erp"\nurl = "{http_destination.url}"\nmax_attempts = 1\n')
    env = Env(tmp_path / "state", http_destination, max_attempts=1)
    old = dt.datetime.now(UTC) - dt.timedelta(hours=3)
    failed, lost, late = env.queue(40, at=old), env.queue(41, at=old), env.queue(42, at=old)
    env.server.inject("500")
    env.server.inject("lose")
    env.step(old)
    env.step(old)
    assert (env.state(failed), env.state(lost)) == ("failed", "delivered")
    run = CliRunner().invoke
    status = json.loads(run(main, ["--config", str(config), "status", "--json"]).output)["delivery"]
    [erp] = status["destinations"]
    assert status["sla_breaches"] == 2 and erp["sla_breaches"] == 2  # failed and late, not the delivered one
    assert erp["backlog"] == 1 and erp["counts"]["failed"] == 1 and erp["health"] == "ok"
    human = run(main, ["--config", str(config), "status"]).output
    assert "2 LATE" in human and "backlog 1" in human
    out = run(main, ["--config", str(config), "retry", "--all-failed"])
    assert out.exit_code == 0 and "1 documents queued again" in out.output and env.state(failed) == "queued"
    out = run(main, ["--config", str(config), "requeue", str(late)])
    assert out.exit_code == 0 and env.row(late)["attempts"] == 0
    out = run(main, ["--config", str(config), "reconcile", "--json"])
    report = json.loads(out.output.splitlines()[-1])
    assert report["summary"] == {"checked": 1, "confirmed": 0, "missing": 1, "requeued": 1, "errors": 0,
                                 "skipped": 0, "superseded": 0, "forgotten": 0, "landed": 0, "never_landed": 0,
                                 "in_flight": 0}
    assert report["checks"][0]["invoice_number"] == number_of(41) and env.state(lost) == "queued"
    out = run(main, ["--config", str(config), "retry", "999"])
    assert out.exit_code == 1 and "no document" in out.output


def test_unattempted_claims_are_given_back_uncounted(env):
    fresh, crashed = env.queue(50), env.queue(51)
    claim(env.ledger, "erp", now=T0, lease_s=60, token="dead", actor="test", limit=1)  # 50 dies mid-put
    later = T0 + dt.timedelta(minutes=2)
    claims = claim(env.ledger, "erp", now=later, lease_s=60, token="w2", actor="test", limit=2)
    assert [(c.document_id, c.recovering) for c in claims] == [(fresh, True), (crashed, False)]
    from agent.deliver.loop import release
    assert all(release(env.ledger, c, now=later, actor="test") for c in claims)
    assert (env.row(fresh)["state"], env.row(fresh)["attempts"]) == ("delivering", 1)  # still looked up first
    assert (env.row(crashed)["state"], env.row(crashed)["attempts"]) == ("queued", 0)
    assert env.state(crashed) == "queued"
    again = claim(env.ledger, "erp", now=later, lease_s=60, token="w3", actor="test", limit=2)
    assert [c.recovering for c in again] == [True, False]


def test_sla_breach_is_logged_once(tmp_path, http_destination, caplog):
    from agent.config import parse_config
    from service.delivery import DeliveryService

    cfg = parse_config({"agent": {"state_dir": "state"}, "delivery": {"sla_hours": 2},
                        "destination": [{"name": "erp", "url": http_destination.url}]}, base_dir=tmp_path)
    env = Env(tmp_path / "state", http_destination)
    doc = env.queue(60, at=dt.datetime.now(UTC) - dt.timedelta(hours=3))
    env.queue(61, at=dt.datetime.now(UTC) - dt.timedelta(hours=1))
    service = DeliveryService(cfg)
    with caplog.at_level(logging.WARNING, logger="fapiao.delivery"):
        service.warn_sla(env.ledger)
        service.warn_sla(env.ledger)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SLA")]
    assert lines == [f"SLA: document {doc} ({number_of(60)}) not delivered to erp within 2 h of its arrival"]


def test_status_says_in_maintenance_until_and_reconcile_skips_it(tmp_path, http_destination):
    from service.cli import main

    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[[destination]]\nname = "erp"\n'
                      f'url = "{http_destination.url}"\nmaintenance = ["daily 00:00-24:00"]\n')
    env = Env(tmp_path / "state", http_destination)
    env.queue(70)
    env.step(T0)
    run = CliRunner().invoke
    [erp] = json.loads(run(main, ["--config", str(config), "status", "--json"]).output)["delivery"]["destinations"]
    assert erp["health"] == "in maintenance" and erp["maintenance_until"]
    assert "in maintenance until" in run(main, ["--config", str(config), "status"]).output
    out = run(main, ["--config", str(config), "reconcile", "--csv", "--sort", "amount"])
    assert "erp is in maintenance until" in out.output and "checked 0" in out.output
    assert http_destination.posts == 1 and env.state(env.ledger.ids_in_state("delivered")[0]) == "delivered"


def test_reconcile_pages_through_every_row_once(env, monkeypatch):
    import agent.reconcile

    monkeypatch.setattr(agent.reconcile, "PAGE", 2)
    docs = [env.queue(80 + i) for i in range(5)]
    while env.step(T0) is not None:
        pass
    report = reconcile(env.ledger, {"erp": env.dest}, now=T0, actor="test", requeue_missing=True)
    assert sorted(c.document_id for c in report.checks) == docs
    assert report.summary["confirmed"] == 5 and all(env.state(d) == "confirmed" for d in docs)


def test_show_prints_each_attempt_with_its_next_attempt(tmp_path, http_destination):
    from service.cli import main

    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[[destination]]\nname = "erp"\nurl = "{http_destination.url}"\n')
    env = Env(tmp_path / "state", http_destination)
    doc = env.queue(90)
    env.server.inject("503", retry_after=30)
    env.step(T0)
    out = CliRunner().invoke(main, ["--config", str(config), "show", str(doc)]).output
    assert "erp: queued, 1 attempts" in out and "503 in maintenance" in out
    from service.display import local_time

    assert f"(next attempt {local_time('2026-03-04T10:00:30.000000Z')})" in out   # shown local, with its offset


def test_rows_of_a_rejected_document_are_neither_due_nor_backlog(env):
    doc, other = env.queue(95), env.queue(96, at=T0 + dt.timedelta(minutes=1))
    assert env.ledger.next_due("erp") == utc(T0)
    amend.reject(env.ledger, doc, reason="not ours", settings=ValidationSettings(), destinations=["erp"],
                 today=T0.date(), now=utc(T0), actor="test")
    assert env.ledger.next_due("erp") == utc(T0 + dt.timedelta(minutes=1))
    backlog = env.ledger.delivery_backlog("erp")
    assert backlog["oldest_waiting"] == utc(T0 + dt.timedelta(minutes=1))
    # Counted apart: the backlog (and status, metrics, the unknown-destination
    # check) is what a loop will send, never a rejected document's row, which
    # is not "on hold" either (that is held for 补录): it is ended.
    counts = backlog["counts"]
    assert (counts["queued"], counts["on_hold"], counts["rejected"], counts["rejected_there"]) == (1, 0, 1, 0)
    assert env.ledger.waiting_by_destination() == {"erp": 1}
    assert env.step(T0 + dt.timedelta(minutes=1)).document_id == other
    assert env.step(T0 + dt.timedelta(minutes=1)) is None and env.ledger.next_due("erp") is None
    assert env.server.posts == 1


def test_requeue_of_a_row_still_queued_leaves_a_line_in_the_trail(env):
    # Its attempts are reset and it is due now, but the document does not
    # move: without a note, the operator's act would be in no trail.
    doc = env.queue(97)
    with env.ledger.transaction():
        env.ledger.conn.execute("UPDATE deliveries SET attempts = 3 WHERE document_id = ?", (doc,))
    events = len(env.ledger.events(doc))
    assert env.ledger.requeue_deliveries(doc, from_states=("queued",), now=utc(T0), actor="cli:ops",
                                         reason="requeued by an operator") == ["erp"]
    (note,) = env.ledger.events(doc)[events:]
    assert note.actor == "cli:ops" and note.to_state is None
    assert "erp (queued, 3 attempts) due now, attempts reset" in note.reason
