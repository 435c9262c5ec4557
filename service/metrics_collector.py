"""The ledger's figures as Prometheus series, read at each collection.

The same figures `status` shows and `status --check` judges (service/commands/
status.py `status_report`, agent/health.py), so a metric never disagrees with
the CLI: documents by state, the SLA counted from arrival, each destination
and backup target, the heartbeat and the health level; plus attempt totals
(agent/ledger/metrics.py). The collector opens its OWN read-only connection
(the endpoint's threads never touch the daemon's) and reads under a lock, in
one read transaction, so a collection is one consistent moment.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agent.health import heartbeat_details
from agent.ledger import Ledger
from agent.ledger.delivery_reports import LATE_DOCUMENT_STATES
from agent.ledger.metrics import AttemptTotals, add_new_attempts
from agent.ledger.rows import parse_utc

log = logging.getLogger("fapiao.metrics")

BREAKER_LEVELS = {"closed": 0, "half-open": 1, "open": 2}


def _stamp(text: str | None) -> float:
    # A ledger timestamp as unix seconds; 0 for never (the Prometheus habit).
    return parse_utc(text).timestamp() if text else 0.0


class LedgerCollector:
    """A prometheus_client collector over the ledger of `cfg`."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._attempts = AttemptTotals()
        self._failing = False

    def collect(self):
        """Every ledger series, read now. When the ledger cannot be read,
        only `fapiao_ledger_readable 0` (no stale or made-up figures)."""
        from service.commands.status import status_report

        readable = GaugeMetricFamily("fapiao_ledger_readable", "1 when the metrics could read the ledger "
                                     "at this collection, else 0 (and no ledger series are given).")
        with self._lock:
            try:
                if self._ledger is None:
                    self._ledger = Ledger(self.cfg.ledger_path, readonly=True)
                conn = self._ledger.conn
                conn.execute("BEGIN")
                try:
                    report = status_report(self._ledger, self.cfg)
                    add_new_attempts(self._ledger, self._attempts)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as e:
                if not self._failing:
                    log.error("metrics cannot read the ledger; its series are left out until it can",
                              extra={"error": f"{type(e).__name__}: {e}", "ledger": str(self.cfg.ledger_path)})
                self._failing = True
                self._close()
                readable.add_metric([], 0)
                yield readable
                return
            self._failing = False
            attempts = self._attempts.copy()   # the next collection grows the original
        readable.add_metric([], 1)
        yield readable
        yield from _documents(report)
        yield from _daemon(report)
        yield from _destinations(report["delivery"], attempts)
        yield from _backups(report["backup"])
        yield from _fleet(report.get("fleet"))
        collected = GaugeMetricFamily("fapiao_collection_timestamp_seconds", "When these series were read "
                                      "(unix time): with the textfile, an old value means the daemon stopped "
                                      "writing it.")
        collected.add_metric([], time.time())
        yield collected

    def close(self) -> None:
        """Close the collector's own connection (a later collection opens it again)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._ledger is not None:
            try:
                self._ledger.close()
            except sqlite3.Error:
                pass
            self._ledger = None


def _gauge(name: str, doc: str, labels=(), rows=()) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=list(labels))
    for values, value in rows:
        g.add_metric(list(values), value)
    return g


def _documents(report: dict):
    yield _gauge("fapiao_documents", "Documents in the ledger by state (docs/states.md); every state present.",
                 ["state"], [((s,), n) for s, n in report["states"].items()])
    yield _gauge("fapiao_oldest_unfinished_age_seconds", "Age since arrival of the oldest document not yet "
                 "delivered nor ended (0 when none).", rows=[((), report["oldest_unfinished_age_s"] or 0)])
    delivery = report["delivery"]
    yield _gauge("fapiao_sla_hours", "[delivery] sla_hours: an invoice must be delivered this long after "
                 "ARRIVAL.", rows=[((), delivery["sla_hours"])])
    late = delivery.get("late_by_state") or {}
    yield _gauge("fapiao_sla_past_invoices", "Documents that arrived more than sla_hours ago and are not "
                 "delivered, by the state they wait in (quarantined ones count: the clock starts at arrival). "
                 "0 without destinations.", ["state"], [((s,), late.get(s, 0)) for s in LATE_DOCUMENT_STATES])
    yield _gauge("fapiao_sla_near_invoices", "Documents waiting longer than [health] sla_warn_fraction of "
                 "sla_hours since arrival, not yet past it.", rows=[((), delivery.get("near_sla") or 0)])
    # 补录 applications waiting for their second person: a held document may
    # be a `duplicate`, which no state count or SLA series above shows waiting.
    applications = report.get("applications") or {}
    yield _gauge("fapiao_applications_pending", "补录 applications filed and not yet approved or declined "
                 "(`fapiao-agent requests --state pending`); each holds its document (quarantined, or a "
                 "duplicate) until decided.", rows=[((), applications.get("pending") or 0)])
    yield _gauge("fapiao_applications_pending_oldest_age_seconds", "How long the oldest pending 补录 application "
                 "has waited since it was filed (0 when none); [health] application_pending_hours is a WARNING.",
                 rows=[((), applications.get("oldest_age_s") or 0)])
    # As the rejected-at-destination alert: a rejection takes nothing back.
    yield _gauge("fapiao_rejected_at_destination", "Rejected documents a destination holds or may hold (a "
                 "put in flight): a person removes each there, then `fapiao-agent reconcile` finds it gone.",
                 rows=[((), (report.get("rejected_there") or {}).get("count") or 0)])
    # As the held-under-old-key alert: a copy under a 号码 an amend corrected since.
    yield _gauge("fapiao_held_under_old_key", "Documents a destination holds under an old key (an amend "
                 "corrected the 号码 after it went there): a person removes each copy there, then `fapiao-agent "
                 "forget-key` (or `reconcile` finds it gone).",
                 rows=[((), (report.get("old_keys_held") or {}).get("count") or 0)])
    refused = report.get("refused") or {}
    yield _gauge("fapiao_refused_files", "Files and attachments refused at intake (each with its reason; "
                 "`fapiao-agent audit ledger`).", rows=[((), refused.get("count") or 0)])


def _daemon(report: dict):
    d = report.get("daemon") or {}
    details = heartbeat_details(d) if d else {}
    yield _gauge("fapiao_heartbeat_age_seconds", "Seconds since the daemon's main loop last wrote its "
                 "heartbeat (it does every 5 s; a large value with fresh metrics means the loop is stuck).",
                 rows=[((), d.get("age_s") if d.get("age_s") is not None else float("inf"))])
    yield _gauge("fapiao_intake_paused", "1 while intake is paused (the vault cannot take files; sources "
                 "stay where they are), else 0.", rows=[((), 1 if details.get("intake_paused") else 0)])
    yield _gauge("fapiao_folders_not_watched", "Configured watched folders the daemon refused to watch "
                 "(see `status`).", rows=[((), len(details.get("folders_not_watched") or {}))])
    yield _gauge("fapiao_folders_unreadable", "Folders below a watched folder the last scan could not list "
                 "(no permission, an I/O error): their files are not taken (see `status`).",
                 rows=[((), details.get("folders_unreadable_count") or 0)])
    held_or_waiting = (details.get("files_waiting_count") or 0) + (details.get("files_held_count") or 0)
    oldest = max(details.get("files_waiting_oldest_s") or 0, details.get("files_held_oldest_s") or 0)
    yield _gauge("fapiao_files_waiting", "Files in watched folders not taken yet because they are held (cannot "
                 "be read just now) or still being written 5 min after first seen (`status` names them).",
                 rows=[((), held_or_waiting)])
    yield _gauge("fapiao_files_waiting_oldest_seconds", "How long ago the oldest of them was first seen (0: "
                 "none); 30 min is an intake-stuck alert.", rows=[((), oldest)])
    # As the config-refused alert (service/config_state.py: the file as it is now).
    yield _gauge("fapiao_config_reload_refused", "1 while the daemon runs the config it loaded before because "
                 "the file was changed and its reload refused (`fapiao-agent status` says why), else 0.",
                 rows=[((), 1 if (report.get("config") or {}).get("reload_refused") else 0)])
    yield _gauge("fapiao_health_level", "The verdict of `status --check`: 0 OK, 1 WARNING, 2 CRITICAL "
                 "(the reasons: `fapiao-agent status --check`).", rows=[((), report["health"]["code"])])


def _destinations(delivery: dict, attempts: AttemptTotals):
    dests = delivery["destinations"]
    names = [d["name"] for d in dests]
    yield _gauge("fapiao_destination_backlog", "Deliveries queued or in flight per destination.",
                 ["destination"], [((d["name"],), d["backlog"]) for d in dests])
    yield _gauge("fapiao_destination_deliveries", "Delivery rows per destination by state (failed: retries "
                 "exhausted; quarantined: refused by the destination).", ["destination", "state"],
                 [((d["name"], s), n) for d in dests for s, n in d["counts"].items()])
    yield _gauge("fapiao_destination_paused", "1 while a destination is paused until a person fixes its "
                 "settings or credentials, else 0.", ["destination"],
                 [((d["name"],), 1 if d["paused_error"] else 0) for d in dests])
    yield _gauge("fapiao_destination_breaker_state", "A destination's circuit breaker: 0 closed, "
                 "1 half-open (probing), 2 open (not answering).", ["destination"],
                 [((d["name"],), BREAKER_LEVELS.get(d["breaker"]["state"] or "closed", 2)) for d in dests])
    yield _gauge("fapiao_destination_in_maintenance", "1 inside a configured maintenance window.",
                 ["destination"], [((d["name"],), 1 if d["maintenance_until"] else 0) for d in dests])
    tries = CounterMetricFamily("fapiao_delivery_attempts", "Delivery tries (and reconcile checks) per "
                                "destination by outcome: delivered, found, transient, permanent, conflict, "
                                "misconfigured, absent, requeued, superseded.", labels=["destination", "outcome"])
    for (name, outcome), n in sorted(attempts.by_outcome.items()):
        tries.add_metric([name, outcome], n)
    yield tries
    failures = CounterMetricFamily("fapiao_delivery_failures", "Delivery tries that failed (transient, "
                                   "permanent, conflict, misconfigured) per destination.", labels=["destination"])
    retries = CounterMetricFamily("fapiao_delivery_retries", "Failed delivery tries queued again for a "
                                  "later try, per destination.", labels=["destination"])
    for name in sorted(set(names) | {d for d, _ in attempts.by_outcome}):
        failures.add_metric([name], attempts.failures(name))
        retries.add_metric([name], attempts.retries.get(name, 0))
    yield failures
    yield retries


def _backups(backup: dict):
    targets = backup["targets"]

    def per_target(name: str, doc: str, value):
        return _gauge(name, doc, ["target"], [((t["name"],), value(t)) for t in targets])

    yield per_target("fapiao_backup_backlog", "Originals and sidecars not yet on a backup target.",
                     lambda t: t["backlog"])
    yield per_target("fapiao_backup_failed_objects", "Objects that cannot be backed up (the vault copy is "
                     "missing or corrupt): a person must look.", lambda t: t.get("failed") or 0)
    yield per_target("fapiao_backup_unreachable", "1 while a backup target does not answer (no put, "
                     "snapshot or verify has since unreachable_since), else 0.",
                     lambda t: 1 if t["reachable"] == "unreachable" else 0)
    yield per_target("fapiao_backup_paused", "1 while a backup target is paused until a person fixes it "
                     "(credentials, bucket), else 0.", lambda t: 1 if t["reachable"] == "paused" else 0)
    yield per_target("fapiao_backup_unreachable_since_timestamp_seconds", "When the running outage of a "
                     "target began (unix time; 0 while it answers).", lambda t: _stamp(t.get("unreachable_since")))
    yield per_target("fapiao_backup_last_put_timestamp_seconds", "Last successful object put (unix time; "
                     "0: never).", lambda t: _stamp(t.get("last_put_at")))
    yield per_target("fapiao_backup_last_snapshot_timestamp_seconds", "Last ledger snapshot stored on the "
                     "target (unix time; 0: never).", lambda t: _stamp(t.get("last_snapshot_at")))
    yield per_target("fapiao_backup_last_verify_timestamp_seconds", "Last sampled verification of the "
                     "target (unix time; 0: never).", lambda t: _stamp(t.get("last_verify_at")))
    yield per_target("fapiao_backup_last_verify_bad_objects", "Objects the last verification found "
                     "missing or different on the target (repaired ones included).",
                     lambda t: (t["last_verify"] or {}).get("missing", 0) + (t["last_verify"] or {}).get("mismatch", 0))
    yield per_target("fapiao_backup_last_restore_drill_timestamp_seconds", "Last restore drill that passed "
                     "(unix time; 0: none yet): a sample and the ledger snapshot restored and checked.",
                     lambda t: _stamp((t.get("last_drill") or {}).get("last_ok_at")))
    drilled = [t for t in targets if t.get("last_drill")]
    yield _gauge("fapiao_backup_last_restore_drill_ok", "1 when a target's latest restore drill passed, 0 when "
                 "it failed (targets never drilled have no sample).", ["target"],
                 [((t["name"],), 1 if t["last_drill"].get("ok") else 0) for t in drilled])
    other, other_held = backup["objects"] - backup["documents"], backup["backed_up"] - backup["documents_backed_up"]
    yield _gauge("fapiao_originals", "Originals the vault keeps, counted apart: documents' files, and raw "
                 "e-mails and refused files.", ["kind"], [(("documents",), backup["documents"]), (("other",), other)])
    yield _gauge("fapiao_originals_backed_up", "Originals held by at least [backup_policy] min_copies "
                 "targets, counted apart as fapiao_originals.", ["kind"],
                 [(("documents",), backup["documents_backed_up"]), (("other",), other_held)])


def _fleet(fleet: dict | None):
    # The store's lost claims, 0 without [fleet] (one alert rule for every
    # agent); only with [fleet]: this site's claim rows, and the held ones' cause.
    yield _gauge("fapiao_fleet_store_doubted", "1 while this site doubts the fleet store still holds the fleet's "
                 "claims (its epoch gone, another or older, or a claim seen there gone): every new claim looks "
                 "every destination up first until `fapiao-agent fleet acknowledge`; 0 without [fleet].",
                 rows=[((), 1 if (fleet or {}).get("doubt") else 0)])
    yield _gauge("fapiao_fleet_claims_vanished", "Invoices this site knew claimed of which the fleet store holds "
                 "no claim any more (docs/fleet.md); 0 without [fleet].",
                 rows=[((), (fleet or {}).get("vanished") or 0)])
    if not fleet:
        return
    yield _gauge("fapiao_fleet_claims", "This site's fleet claim rows by state (held: the fleet store does not "
                 "answer, or the key's claim is invalid).", ["state"],
                 [((state,), n) for state, n in sorted(fleet["claims"].items())])
    yield _gauge("fapiao_fleet_invalid_claims", "Deliveries held because their key's claim in the fleet store is "
                 "not one a site writes (docs/fleet.md: `fleet repair`).", rows=[((), fleet.get("invalid", 0))])
