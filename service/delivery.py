"""The delivery threads: per destination, `concurrency` workers running the
claim / send / record step of agent/deliver/loop.py, sharing one gate
(maintenance windows, pause on Misconfigured, circuit breaker) and one rate
limit; and one housekeeping thread for scheduled reconciliation and SLA warnings.

Each thread has its own ledger connection. Leases left by a dead process are
released at start (the daemon's lock says no other daemon runs), so a row
caught `delivering` by a SIGKILL is looked up, then put again only if absent.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
import uuid

from agent.config import Config
from agent.deliver.base import Destination, open_destination
from agent.deliver.loop import Gate, Outcome, claim, observe, record_safely, release, send
from agent.deliver.retry import CLOSED, DeliveryPolicy, Refusals
from agent.errors import AdapterError, AgentError
from agent.ledger import Ledger, utc
from agent.ledger.rows import parse_utc
from agent.reconcile import reconcile
from agent.vault import Vault
from service import pace
from service.loops import Runner, RunnerGroup
from service.context import actor as actor_name, now_dt
from service.delivery_timing import ClockWatch, RateLimit, log_clock_jump

log = logging.getLogger("fapiao.delivery")
IDLE_POLL_S = 5.0           # longest sleep with nothing due; kicks wake workers sooner
HEALTH_SAVE_S = 10.0        # last_ok_at / last_error are written at most this often
SLA_CHECK_S = 60.0
CLOCK_CHECK_S = 1.0         # how often the housekeeper compares the wall clock with the monotonic one
SLA_LOG_LINES = 20          # one line per late invoice up to this many per pass, then a count
# Document states before any delivery row: their lateness is counted, not per row.
HELD_BEFORE_DELIVERY = ("captured", "extracted", "valid", "quarantined")
# A worker claims up to this many rows at once when a backlog builds up (doubling
# from 1 while claims come back full), and records their outcomes in one commit.
MAX_BATCH = 8


class DestinationRunner(Runner):
    """The workers of one destination and the gate they share."""

    def __init__(self, cfg: Config, entry: dict, dest: Destination, policy: DeliveryPolicy,
                 stopping: threading.Event, fleet=None):
        super().__init__(stopping)
        self.fleet = fleet  # service.fleet.FleetGate: may this site deliver the key? (None: no fleet)
        self.cfg, self.entry, self.dest, self.policy = cfg, entry, dest, policy
        self.name = dest.name
        timeout = float(entry.get("timeout_s") or 30.0)
        # A lease shorter than a batch of puts could last would hand a live put to
        # a second worker (still no duplicate: the key is idempotent, but wasted work).
        # A recovered row costs a look-up and a put, each up to timeout_s.
        self.lease_s = max(float(cfg.delivery.get("lease_s") or 300), (2 * MAX_BATCH + 1) * timeout)
        self.rate = RateLimit(entry.get("rate_per_s"))
        self.actor = actor_name("daemon") + f":deliver:{self.name}"
        self.vault = Vault(cfg.vault_dir)
        with Ledger(cfg.ledger_path) as ledger:
            self.gate = Gate.from_health(ledger.destination_health(self.name), policy)
        self.refusals = Refusals()  # a refusal of one invoice is not a bad token (agent/deliver/loop.py)
        if self.gate.paused_error:
            log.error(f"destination {self.name} is still paused: {self.gate.paused_error}; "
                      "it resumes by itself once a probe succeeds", extra={"destination": self.name})
        self._saved_at = 0.0
        self.threads = [threading.Thread(target=self._work, args=(i,), name=f"deliver-{self.name}-{i}",
                                         daemon=True) for i in range(policy.concurrency)]

    def blocked(self, now: dt.datetime) -> str | None:
        """Why the destination must not be called now (maintenance, pause, open breaker), or None."""
        with self.cond:
            end = self.gate.maintenance_until(now)
            if end is not None:
                return f"in maintenance until {end.isoformat(timespec='minutes')}"
            if self.gate.paused_error:
                return f"paused: {self.gate.paused_error}"
            if self.gate.breaker.state != CLOSED:
                return f"breaker {self.gate.breaker.state}"
        return None

    # -- one worker ----------------------------------------------------------------

    def _work(self, index: int) -> None:
        token = f"{os.getpid()}:{self.name}:{index}:{uuid.uuid4().hex[:8]}"
        rng = random.Random()
        ledger = Ledger(self.cfg.ledger_path)
        failures, batch = 0, 1
        try:
            while not self.stopping.is_set():
                try:
                    batch = self._once(ledger, token, rng, batch)
                    failures = 0
                except Exception:  # a full disk or a bug: back off, never kill the daemon
                    failures += 1
                    log.exception("delivery worker step failed; backing off",
                                  extra={"destination": self.name, "failures": failures})
                    self.stopping.wait(min(60.0, 2.0 ** failures))
        finally:
            ledger.close()

    def _once(self, ledger: Ledger, token: str, rng: random.Random, batch: int) -> int:
        """One pass of a worker; returns how many rows to claim next time."""
        with self.cond:
            kicks = self._kicks
            decision = self.gate.decide(now_dt())
        if decision.kind == "wait":
            self._sleep(kicks, (decision.until - now_dt()).total_seconds() if decision.until else IDLE_POLL_S)
            return 1
        if decision.kind == "probe":
            self._probe(ledger)
            return 1
        now, began = now_dt(), time.monotonic()
        claims = claim(ledger, self.name, now=now, lease_s=self.lease_s, token=token, actor=self.actor,
                       limit=batch, max_delay_s=self.policy.max_delay_s)
        if not claims:
            due = ledger.next_due(self.name, now=utc(now), max_wait_s=self.policy.max_delay_s,
                                  lease_until=utc(now + dt.timedelta(seconds=self.lease_s)))
            self._sleep(kicks, (parse_utc(due) - now_dt()).total_seconds() if due else IDLE_POLL_S)
            return 1
        if self.fleet is not None:  # rows whose key another site holds, or held, are recorded there
            claims = self.fleet.screen(ledger, claims, self.actor)
        done: list[tuple] = []
        for c in claims:
            if self.stopping.is_set() or (done and self.blocked(now_dt())):
                break
            wait = self.rate.reserve(time.monotonic())
            if wait and self.stopping.wait(wait):
                break
            outcome = self._send(c)
            with self.cond:
                outcome, change = observe(self.gate, outcome, now_dt(), self.refusals, row=c.delivery_id)
            done.append((c, outcome, change))
            if outcome.kind == "misconfigured":
                break  # the rest would fail the same way
        with ledger.transaction():  # one commit (one fsync) for the whole batch
            at = now_dt()
            results = [record_safely(ledger, c, outcome, self.policy, now=at, rng=rng, actor=self.actor)
                       for c, outcome, _ in done]
            for c in claims[len(done):]:
                release(ledger, c, now=at, actor=self.actor)
        for (c, outcome, change), result in zip(done, results):
            self._after(ledger, outcome, change, result)
        # While intake works through a backlog, delivery keeps only its
        # share of the time (service/pace.py): capture goes first.
        pace.step_aside(self.stopping, time.monotonic() - began)
        # Grow while claims come back full. Failures do not shrink it: batching
        # only saves commits; keeping a failing destination from being hammered
        # is the breaker's job, checked before every put.
        if len(done) < len(claims) or len(claims) < batch:
            return max(1, len(claims))
        return min(MAX_BATCH, batch * 2)

    def _send(self, c) -> Outcome:
        try:
            return send(self.dest, c, self.vault)
        except Exception as e:  # an adapter bug: the row retries like a transient failure
            log.exception("delivery raised an unexpected error", extra={"destination": self.name,
                                                                        "document": c.document_id})
            # Made an AdapterError, like every message from an adapter: redacted of secrets.
            return Outcome("transient", error=str(AdapterError(f"internal error: {type(e).__name__}: {e}")))

    def _probe(self, ledger: Ledger) -> None:
        error: AdapterError | None = None
        try:
            self.dest.probe()
        except AdapterError as e:
            error = e
        except Exception as e:  # an adapter bug counts as an unhealthy probe
            log.exception("probe raised an unexpected error", extra={"destination": self.name})
            error = AdapterError(f"internal error: {type(e).__name__}: {e}")
        with self.cond:
            change = self.gate.probed(error, now_dt())
            self.cond.notify_all()
        if change in ("resumed", "closed"):
            log.info(f"destination {self.name} is healthy again; deliveries resume",
                     extra={"destination": self.name})
        elif change == "paused":
            self._log_pause(str(error))
        self._save_health(ledger, force=change is not None, error=str(error) if error else None)

    def _after(self, ledger: Ledger, outcome: Outcome, change: str | None, result) -> None:
        extra = {"destination": self.name, "document": result.document_id}
        if result.outcome == "unrecorded":
            log.error("a delivery outcome could not be recorded; the row is looked up again once its "
                      "lease expires", extra={**extra, "error": result.error})
        elif not result.recorded:
            log.warning("delivery lease was taken over; this outcome is dropped (the destination "
                        "deduplicates by invoice key)", extra={**extra, "outcome": outcome.kind})
        elif outcome.kind in ("delivered", "found"):
            log.info("delivered", extra={**extra, "outcome": outcome.kind,
                                         "receipt": outcome.receipt.remote_id or ""})
            if outcome.receipt.warning:
                log.warning(f"delivered, but {outcome.receipt.warning}", extra=extra)
            if ledger.state_of(result.document_id) == "rejected":
                # A put in flight when a person rejected the document (`reject
                # --acknowledge-delivered`): it landed all the same.
                log.warning(f"document {result.document_id} was rejected while its put to {self.name} was in "
                            f"flight, and {self.name} now holds it under key {outcome.receipt.key}: remove it "
                            "there by hand (`fapiao-agent reconcile` then finds it gone)", extra=extra)
            if self.fleet is not None:
                self.fleet.delivered()
        elif result.row_state == "queued" and outcome.kind in ("transient", "refused"):
            # refused: this invoice alone, while others are accepted (agent/deliver/loop.py `observe`)
            (log.warning if outcome.kind == "refused" else log.info)(
                "delivery will be retried", extra={**extra, "error": outcome.error,
                                                   "next_attempt_at": result.next_attempt_at})
        elif result.row_state == "failed":
            log.error(f"delivery of document {result.document_id} to {self.name} failed for good",
                      extra={**extra, "error": result.error})
        elif result.row_state == "quarantined":
            log.warning(f"{self.name} refused document {result.document_id}; quarantined",
                        extra={**extra, "error": outcome.error})
        if change == "paused":
            self._log_pause(outcome.error or "")
        elif change == "opened":
            log.warning(f"destination {self.name}: circuit breaker open after repeated failures; "
                        f"probing every {self.policy.probe_interval_s:g} s", extra={"destination": self.name})
        elif change == "closed":
            log.info(f"destination {self.name}: circuit breaker closed", extra={"destination": self.name})
        ok = outcome.kind in ("delivered", "found")
        self._save_health(ledger, force=change is not None, error=None if ok else outcome.error,
                          ok=ok)

    def _log_pause(self, error: str) -> None:
        log.error(f"destination {self.name} paused: {error}; no invoice is quarantined for this. "
                  f"Fix the destination's settings; deliveries resume once a probe succeeds "
                  f"(every {self.policy.probe_interval_s:g} s)", extra={"destination": self.name})

    def _save_health(self, ledger: Ledger, *, force: bool, error: str | None = None, ok: bool = False) -> None:
        if not force and time.monotonic() - self._saved_at < HEALTH_SAVE_S:
            return
        self._saved_at = time.monotonic()
        with self.cond:
            columns = self.gate.to_health()
        at = utc(now_dt())
        if ok:
            columns["last_ok_at"] = at
        elif error:
            columns.update(last_error=error, last_error_at=at)
        ledger.save_destination_health(self.name, now=at, **columns)

    def _sleep(self, kicks: int, seconds: float) -> None:
        # An idle worker still polls now and then: a row may fall due without a kick.
        super()._sleep(kicks, max(0.01, min(IDLE_POLL_S, seconds)))


class DeliveryService(RunnerGroup):
    """Everything delivery needs in the daemon, as one loop: start, kick, stop, join."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.actor = actor_name("daemon") + ":reconcile"
        self._held_late = 0  # late documents held before delivery, as last logged
        fleet = None
        if cfg.fleet.get("url"):
            from service.fleet import FleetGate

            fleet = FleetGate(cfg)
        for entry in cfg.destinations:
            try:
                dest = open_destination(entry)
                policy = DeliveryPolicy.from_config(entry)
            except AgentError as e:
                log.error(f"destination {entry.get('name')!r} is not started: {e}",
                          extra={"destination": entry.get("name")})
                continue
            self.runners.append(DestinationRunner(cfg, entry, dest, policy, self.stopping, fleet))
        self.housekeeper = threading.Thread(target=self._housekeeping, name="deliver-housekeeping", daemon=True)

    def start(self) -> "DeliveryService":
        """Release dead processes' leases, then start every worker and the housekeeper."""
        with Ledger(self.cfg.ledger_path) as ledger:
            released = ledger.release_leases(now=utc(now_dt()), keep_token_prefix=f"{os.getpid()}:")
        if released:
            log.info("deliveries interrupted by a crash are looked up before any new put",
                     extra={"rows": released})
        for r in self.runners:
            r.start()
        self.housekeeper.start()
        log.info("delivery started", extra={"destinations": ",".join(r.name for r in self.runners)})
        return self

    def threads(self) -> list[threading.Thread]:
        """Worker threads and the housekeeper. A put still in flight at stop is
        left; its lease is recovered at next start."""
        return super().threads() + [self.housekeeper]

    # -- housekeeping ------------------------------------------------------------------

    def _housekeeping(self) -> None:
        interval = float(self.cfg.delivery.get("reconcile_interval_s") or 0)
        next_reconcile = time.monotonic() + interval if interval else None
        next_sla = time.monotonic()
        clock = ClockWatch(now_dt)
        with Ledger(self.cfg.ledger_path) as ledger:
            while not self.stopping.is_set():
                try:
                    if (jump := clock.check()) is not None:
                        log_clock_jump(jump)
                    if time.monotonic() >= next_sla:
                        next_sla = time.monotonic() + SLA_CHECK_S
                        self.warn_sla(ledger)
                    if next_reconcile is not None and time.monotonic() >= next_reconcile:
                        next_reconcile = time.monotonic() + interval
                        self.reconcile_once(ledger)
                except Exception:
                    log.exception("delivery housekeeping failed; trying again later")
                waits = [t for t in (next_sla, next_reconcile) if t is not None]
                self.stopping.wait(max(0.05, min(min(waits) - time.monotonic(), CLOCK_CHECK_S)))

    def reconcile_once(self, ledger: Ledger) -> None:
        """Look up delivered and missing rows, rejected documents' rows held
        under an old key and their puts cut off (`agent.reconcile`), at every
        destination that may be called now."""
        now = now_dt()
        callable_ = {}
        for r in self.runners:
            why = r.blocked(now)
            if why:
                log.info("reconciliation skips a destination", extra={"destination": r.name, "why": why})
            else:
                callable_[r.name] = r.dest
        report = reconcile(ledger, callable_, now=now, actor=self.actor,
                           requeue_missing=bool(self.cfg.delivery.get("requeue_missing", True)))
        s = report.summary
        if s["checked"] or s["skipped"]:
            log.info("reconciled", extra=s)
        for c in report.checks:
            if c.result in ("missing", "requeued"):
                log.warning(f"document {c.document_id} ({c.invoice_number}) is missing at {c.destination}"
                            + ("; requeued" if c.result == "requeued" else ""),
                            extra={"destination": c.destination, "document": c.document_id})
            elif c.result == "landed":
                # The rejection's own warning named a put in flight; now it is known to be there.
                log.warning(f"document {c.document_id} ({c.invoice_number}) was rejected while a put to "
                            f"{c.destination} was cut off; {c.destination} holds it: remove it there by hand "
                            "(`fapiao-agent reconcile` then finds it gone)",
                            extra={"destination": c.destination, "document": c.document_id})
        if s["requeued"]:
            self.kick()

    def warn_sla(self, ledger: Ledger) -> None:
        """Log each newly late delivery once (at warning) and remember it was
        logged; late is counted from the document's ARRIVAL. Documents late
        before any delivery row (quarantined, still being read) are one
        warning with their count whenever that count grows."""
        hours = float(self.cfg.delivery.get("sla_hours") or 24)
        cutoff = utc(now_dt() - dt.timedelta(hours=hours))
        late = [r for r in ledger.sla_breaches(arrived_before=cutoff) if not r["sla_warned_at"]]
        for r in late[:SLA_LOG_LINES]:
            log.warning(f"SLA: document {r['document_id']} ({r['invoice_number']}) not delivered to "
                        f"{r['destination']} within {hours:g} h of its arrival",
                        extra={"state": r["state"], "received_at": r["received_at"],
                               "queued_at": r["queued_at"], "error": r["last_error"] or ""})
        if len(late) > SLA_LOG_LINES:
            log.warning(f"SLA: {len(late) - SLA_LOG_LINES} more invoices not delivered within {hours:g} h "
                        "(see `fapiao-agent status`)")
        if late:
            ledger.mark_sla_warned([r["delivery_id"] for r in late], now=utc(now_dt()))
        held = {s: n for s, n in ledger.late_documents(arrived_before=cutoff).items()
                if n and s in HELD_BEFORE_DELIVERY}
        total = sum(held.values())
        if total > self._held_late:
            log.warning(f"SLA: {total} documents not delivered within {hours:g} h of their arrival are "
                        "held before delivery (" + ", ".join(f"{n} {s}" for s, n in held.items())
                        + "); see `fapiao-agent list --state quarantined`", extra=held)
        self._held_late = total
