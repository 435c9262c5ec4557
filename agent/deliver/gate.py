"""Whether one destination may be called now: the gate of the delivery loop.

Plain data driven by the caller's clock, kept in the ledger between runs
(`to_health` / `from_health`). Its own module, apart from agent/deliver/loop.py,
because `status` rebuilds every destination's gate to report its breaker
and maintenance, and must not load the delivery loop, the adapters' base
or the invoice model to do it (issue 17: start-up).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.deliver.retry import CLOSED, Breaker, DeliveryPolicy, in_maintenance, is_due
from agent.ledger.rows import parse_utc, utc

if TYPE_CHECKING:
    from agent.deliver.loop import Outcome
    from agent.errors import AdapterError


@dataclass(frozen=True)
class Decision:
    """What a worker may do now: "deliver", "probe" (one health check), or
    "wait" until `until` (maintenance, pause or open breaker; `reason` says which)."""

    kind: str
    until: dt.datetime | None = None
    reason: str = ""


@dataclass
class Gate:
    """Whether one destination may be called at `now`: its maintenance
    windows, a pause after Misconfigured, and its circuit breaker.

    Plain data driven by the caller's clock; not thread-safe (the service
    holds a lock around it). `to_health`/`from_health` keep it in the ledger.
    """

    policy: DeliveryPolicy
    breaker: Breaker
    paused_error: str | None = None
    paused_at: dt.datetime | None = None
    next_probe_at: dt.datetime | None = None
    tz: dt.tzinfo | None = None

    @classmethod
    def fresh(cls, policy: DeliveryPolicy, tz: dt.tzinfo | None = None) -> "Gate":
        """A gate that lets calls through: closed breaker, not paused."""
        return cls(policy=policy, breaker=policy.breaker(), tz=tz)

    def maintenance_until(self, now: dt.datetime) -> dt.datetime | None:
        """The end (UTC) of the maintenance `now` falls in, or None."""
        end = in_maintenance(self.policy.maintenance, now.astimezone(self.tz or self.policy.timezone))
        return end.astimezone(dt.timezone.utc) if end else None

    def decide(self, now: dt.datetime) -> Decision:
        """Deliver, probe once, or wait. Maintenance wins (no call at all, not
        even a probe); a paused destination is probed every probe_interval_s;
        an open breaker lets one probe through per interval."""
        end = self.maintenance_until(now)
        if end is not None:
            return Decision("wait", end, f"in maintenance until {end.isoformat(timespec='minutes')}")
        if self.paused_error is not None:
            if self.next_probe_at is None or is_due(self.next_probe_at, now, self.policy.probe_interval_s):
                self.next_probe_at = now + dt.timedelta(seconds=self.policy.probe_interval_s)
                return Decision("probe", reason="paused")
            return Decision("wait", self.next_probe_at, f"paused: {self.paused_error}")
        if self.breaker.state == CLOSED:
            return Decision("deliver")
        if self.breaker.allow(now):
            return Decision("probe", reason=f"breaker {self.breaker.state}")
        return Decision("wait", self.breaker.next_probe_at(), f"breaker {self.breaker.state}")

    def observe(self, outcome: Outcome, now: dt.datetime) -> str | None:
        """Learn from a delivery outcome. Returns "paused", "opened" or
        "closed" when the gate's state changed (worth a log line), else None."""
        if outcome.kind == "misconfigured":
            was = self.paused_error
            self._pause(outcome.error or "misconfigured", now)
            return "paused" if was is None else None
        if outcome.kind == "transient":
            before = self.breaker.state
            self.breaker.record_failure(now)
            return "opened" if self.breaker.state != before and self.breaker.state != CLOSED else None
        if outcome.kind in ("delivered", "found"):
            before = self.breaker.state
            self.breaker.record_success(now)
            return "closed" if before != CLOSED else None
        return None  # a 400 says nothing about the destination's health

    def probed(self, error: AdapterError | None, now: dt.datetime) -> str | None:
        """Learn from a probe (None: healthy). Returns "resumed", "closed",
        "paused" or "opened" on a change, else None."""
        if error is None:
            if self.paused_error is not None:
                self.paused_error, self.paused_at, self.next_probe_at = None, None, None
                self.breaker.record_success(now)
                return "resumed"
            before = self.breaker.state
            self.breaker.record_success(now)
            return "closed" if before != CLOSED else None
        from agent.deliver.base import Misconfigured  # not at the top: `status` loads no adapter code

        if isinstance(error, Misconfigured):
            was = self.paused_error
            self._pause(str(error), now)
            return "paused" if was is None else None
        if self.paused_error is None:
            before = self.breaker.state
            self.breaker.record_failure(now)
            return "opened" if before == CLOSED and self.breaker.state != CLOSED else None
        return None

    def _pause(self, error: str, now: dt.datetime) -> None:
        if self.paused_error is None:
            self.paused_at = now
        self.paused_error = error
        self.next_probe_at = now + dt.timedelta(seconds=self.policy.probe_interval_s)

    def to_health(self) -> dict:
        """Ledger columns for `Ledger.save_destination_health`."""
        return {"breaker": self.breaker.to_dict(), "paused_error": self.paused_error,
                "paused_at": utc(self.paused_at) if self.paused_at else None}

    @classmethod
    def from_health(cls, health: dict | None, policy: DeliveryPolicy,
                    tz: dt.tzinfo | None = None) -> "Gate":
        """Rebuild from `Ledger.destination_health` (None: a fresh gate).
        A stored pause is kept: a restart does not forget bad credentials
        before a probe shows them fixed."""
        gate = cls.fresh(policy, tz)
        if not health:
            return gate
        if health.get("breaker"):
            gate.breaker = Breaker.from_dict(health["breaker"], threshold=policy.breaker_threshold,
                                             probe_interval_s=policy.probe_interval_s)
        if health.get("paused_error"):
            gate.paused_error = health["paused_error"]
            gate.paused_at = parse_utc(health["paused_at"]) if health.get("paused_at") else None
        return gate
