"""The fleet in the daemon: one thread that brings the shared store's claims
up to the ledger (delivered, released, claimed after the fact) and renews
the leases of documents still on their way every few seconds, and publishes this site's status.json every `status_interval_s`;
and the gate the delivery workers call before each put (agent/fleet/gate.py).
"""

from __future__ import annotations

import logging
import threading
import time

from agent.config import Config
from agent.deliver.loop import Claim
from agent.errors import AdapterError, AgentError
from agent.fleet.gate import FleetSettings, recheck_lost, renew_leases, screen, settle_claims
from agent.fleet.trust import doubt
from agent.judgement import judge
from agent.model import Invoice
from agent.fleet.status import publish_status
from agent.fleet.store import FleetStore, open_store
from agent.ledger import Ledger
from service.context import actor as actor_name, destination_names, now, now_dt, today, validation_settings
from service.display import local_time
from service.loops import RunnerGroup

log = logging.getLogger("fapiao.fleet")
SETTLE_S = 5.0
# Set by a delivery worker after a put: the fleet loop records `delivered` on
# the claim at once (other sites' waiting copies then become duplicates at
# their next ask), not at its next timed pass.
SETTLE_NOW = threading.Event()
# The same warning (an invalid claim that cannot be settled) is logged again after this long.
REPEAT_S = 600.0


class FleetGate:
    """What a delivery worker asks before a put (thread-safe: the store's
    client is, and each worker passes its own ledger)."""

    def __init__(self, cfg: Config):
        self.settings = FleetSettings.from_config(cfg.fleet)
        self.store: FleetStore = open_store(cfg.fleet)

    def screen(self, ledger: Ledger, claims: list[Claim], actor: str) -> list[Claim]:
        """The claimed rows this site may send now; the others are recorded
        (a duplicate of another site's claim, or held) and logged here."""
        out = []
        for s in screen(ledger, self.store, self.settings, claims, now=now_dt(), actor=actor, time_text=local_time):
            extra = {"document": s.claim.document_id, "destination": s.claim.destination}
            if s.kind == "go":
                out.append(s.claim)
                if s.note:
                    log.warning(s.note, extra=extra)
            elif s.kind == "lost":
                log.info(s.note, extra=extra)
            else:
                log.warning(s.note, extra=extra)
        return out

    @staticmethod
    def delivered() -> None:
        """A put succeeded: ask the fleet loop to settle the claims now."""
        SETTLE_NOW.set()


class FleetService(RunnerGroup):
    """The fleet's background loop, started by `start_loops` when [fleet] has a url."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.settings = FleetSettings.from_config(cfg.fleet)
        self.store = open_store(cfg.fleet)
        self.interval_s = float(cfg.fleet.get("status_interval_s") or 60.0)
        self.settle_s = float(cfg.fleet.get("settle_s") or SETTLE_S)
        self.actor = actor_name("daemon") + ":fleet"
        self.validation = validation_settings(cfg)
        self._next_status = time.monotonic()
        self._said: dict[str, float] = {}
        self._vanished = 0
        self._doubt: str | None = None
        self.thread = threading.Thread(target=self._run, name="fleet", daemon=True)

    def start(self) -> "FleetService":
        """Start the thread; the first status is published at once."""
        self.thread.start()
        return self

    def threads(self) -> list[threading.Thread]:
        """The one fleet thread."""
        return [self.thread]

    def _run(self) -> None:
        self._next_status = time.monotonic()
        # Several passes per half lease, so a claim is renewed well before it runs out.
        pause = min(self.settle_s, self.settings.lease_s / 4)
        with Ledger(self.cfg.ledger_path) as ledger:
            while not self.stopping.is_set():
                SETTLE_NOW.clear()
                self.step(ledger)
                SETTLE_NOW.wait(pause)

    def stop(self) -> None:
        """Ask the thread to end (woken from its pause)."""
        super().stop()
        SETTLE_NOW.set()

    def step(self, ledger: Ledger) -> None:
        """One pass: claims settled, live leases renewed, fleet duplicates
        rechecked; when due, the store looked at (check_store) and the
        status published. Logs every failure; raises nothing."""
        try:
            for line in [*settle_claims(ledger, self.store, self.settings, now=now_dt(), actor=self.actor),
                         *renew_leases(ledger, self.store, self.settings, now=now_dt(), actor=self.actor)]:
                if not line.startswith("!"):
                    log.info(line)
                elif self._said.get(line, -REPEAT_S) <= time.monotonic() - REPEAT_S:
                    self._said[line] = time.monotonic()   # a standing problem: said every REPEAT_S, not every pass
                    log.warning(line[1:])
            self.reopen(ledger)
            if time.monotonic() >= self._next_status:
                self._next_status = time.monotonic() + self.interval_s
                self.check_store(ledger)      # first: the status published says a doubt it finds
                self.publish(ledger)
        except AdapterError as e:
            log.warning(f"fleet store: {e}; trying again in {self.settle_s:g} s")
        except Exception:
            log.exception("fleet loop step failed; trying again later")

    def check_store(self, ledger: Ledger) -> None:
        """Whether the store still holds the fleet's claims (its epoch, this
        site's newest and oldest marks: agent/fleet/trust.py), with each
        status publish (at start, then every status_interval_s: three LISTs,
        a cost per minute, not per pass; the gate looks too before each claim
        from nothing). A doubt is logged when it begins or changes, its end
        when it ends. A store that does not answer is left to the next time
        (the gate and `status` say it is unreachable)."""
        try:
            why = doubt(ledger, self.store, site=self.settings.site, now=now_dt(), actor=self.actor,
                        oldest_mark=True)
        except AdapterError:
            return
        if why and why != self._doubt:
            log.warning(f"the fleet store may have lost its claims: {why}; every new claim here looks every "
                        "destination up before any put until an operator runs `fapiao-agent fleet acknowledge "
                        "--reason ...` (docs/fleet.md)")
        elif why is None and self._doubt:
            log.info(f"the fleet store is trusted again: {ledger.fleet_epoch()['named']}")
        self._doubt = why

    def reopen(self, ledger: Ledger) -> None:
        """Judge again the fleet duplicates whose original let the key go (a
        copy queued here is picked up by the delivery workers' next poll)."""
        for doc_id, why in recheck_lost(ledger, self.store, now=now_dt(), actor=self.actor):
            at = now()
            try:
                with ledger.transaction():
                    ledger.fleet_reopen(doc_id, now=at, actor=self.actor, reason=why)
                    state = judge(ledger, doc_id, Invoice.from_dict(ledger.get(doc_id).fields or {}),
                                  settings=self.validation, destinations=destination_names(self.cfg),
                                  today=today(), now=at, actor=self.actor)
            except (AgentError, ValueError) as e:
                # One document that cannot be judged again never holds up
                # the others behind it, nor this pass's status.json.
                log.error(f"{why}: document {doc_id} could not be judged again here: {e}; it stays a "
                          "duplicate, looked at again later", extra={"document": doc_id})
                ledger.touch_fleet_claim(doc_id, now=at)   # not at every pass
                continue
            log.info(f"{why}: document {doc_id} judged again here ({state.value})", extra={"document": doc_id})
        vanished = ledger.fleet_summary()["vanished"]
        if vanished > self._vanished:
            # Said when it grows; `status --check` warns as long as it lasts.
            log.warning(f"the fleet store lost the claims of {vanished} invoice(s) this site knew claimed "
                        "(an expiry rule on claims/, a bucket made anew, another [fleet] url?): none is "
                        "delivered again on that alone; `fapiao-agent status` names them")
        self._vanished = vanished

    def publish(self, ledger: Ledger) -> None:
        """Write this site's status.json (raises AdapterError when the store does not answer)."""
        from service.commands.status import status_report

        warning = publish_status(self.store, self.settings.site, ledger.fleet_holder(now=now()),
                                 status_report(ledger, self.cfg), now=now_dt(), interval_s=self.interval_s)
        # For `status --check` here: else only `fleet status` shows it.
        ledger.note_same_name(warning, now=now())
        if warning:
            log.warning(warning)
