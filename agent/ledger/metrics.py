"""Read-only queries for the Prometheus collector (service/metrics_collector.py).

Module functions over a `Ledger` (not a mixin): the collector holds its own
read-only connection and calls these from its thread. Everything else it
shows comes from the queries `status` already uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Attempt outcomes that are a failed try at a destination (the row is
# retried, failed for good, or quarantined); `delivered`/`found` are
# successes, `requeued`/`superseded`/`dropped`/`absent` are operator or reconcile notes.
FAILED_OUTCOMES = frozenset({"transient", "permanent", "conflict", "misconfigured"})


@dataclass
class AttemptTotals:
    """Running totals of the `attempts` table per destination, grown by
    `add_new_attempts` from the last id it saw (attempt lines are only ever
    added, so the totals only grow: Prometheus counters)."""

    last_id: int = 0
    by_outcome: dict[tuple[str, str], int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    def copy(self) -> "AttemptTotals":
        """A copy that later additions to this one leave alone."""
        return AttemptTotals(self.last_id, dict(self.by_outcome), dict(self.retries))

    def failures(self, destination: str) -> int:
        """Tries at `destination` whose outcome was a failure (FAILED_OUTCOMES)."""
        return sum(n for (d, o), n in self.by_outcome.items() if d == destination and o in FAILED_OUTCOMES)


def add_new_attempts(ledger, totals: AttemptTotals) -> AttemptTotals:
    """Add the attempt lines written since `totals.last_id` to `totals` (in
    place, returned): per (destination, outcome), and per destination the
    retries (a transient failure queued again for a later try). The first
    call reads the whole table once; later ones only the new lines (by
    primary key)."""
    upper = ledger.conn.execute("SELECT coalesce(max(id), 0) FROM attempts").fetchone()[0]
    if upper <= totals.last_id:
        return totals
    for destination, outcome, retried, n in ledger.conn.execute(
            "SELECT d.destination, a.outcome, "
            "a.outcome = 'transient' AND a.next_attempt_at IS NOT NULL, count(*) "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE a.id > ? AND a.id <= ? "
            "GROUP BY 1, 2, 3", (totals.last_id, upper)):
        key = (destination, outcome)
        totals.by_outcome[key] = totals.by_outcome.get(key, 0) + n
        if retried:
            totals.retries[destination] = totals.retries.get(destination, 0) + n
    totals.last_id = upper
    return totals
