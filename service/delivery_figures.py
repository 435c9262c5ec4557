"""The delivery part of `status`: each destination's backlog, health,
breaker, maintenance and SLA, as `status` and `status --check` show them.
Apart from the delivery commands (retry, requeue, reconcile:
service/commands/deliver.py), so `status` imports none of them; the
delivery gate and policy only when the report is made."""

from __future__ import annotations

import datetime as dt

from agent.errors import AgentError
from agent.health import Thresholds
from agent.ledger import Ledger, utc
from service.context import age_seconds, human_age
from service.display import local_time
from service.textsafe import echo


def delivery_report(ledger: Ledger, cfg, at: dt.datetime) -> dict:
    """Per destination: backlog, oldest waiting age, health, breaker, maintenance
    and SLA breaches (its rows not delivered, of documents that arrived more
    than [delivery] sla_hours ago); plus `sla_breaches`, the number of late
    documents counted from ARRIVAL (quarantined and unread ones too),
    `late_by_state`, and `near_sla`, those waiting longer than
    [health] sla_warn_fraction of it, not yet late; `unknown_destinations`,
    rows waiting for a destination the config no longer has; per destination
    `overdue_leases`, rows still being delivered past their lease, and
    `old_keys`, documents it holds under an old key. JSON-ready.
    Without destinations there is no delivery, so no SLA: the counts are 0."""
    from agent.deliver.gate import Gate
    from agent.deliver.retry import DeliveryPolicy

    limits = Thresholds.from_config(cfg)
    hours = limits.sla_hours
    late_by_state: dict[str, int] = {}
    late = near = 0
    per_destination: dict[str, int] = {}
    if cfg.destinations:
        late_by_state = ledger.late_documents(arrived_before=utc(at - dt.timedelta(hours=hours)))
        late = sum(late_by_state.values())
        waiting = ledger.late_documents(arrived_before=utc(at - dt.timedelta(hours=limits.sla_warn_hours)))
        near = sum(waiting.values()) - late
        per_destination = ledger.count_sla_breaches(arrived_before=utc(at - dt.timedelta(hours=hours)))
    old_keys = ledger.old_keys_held(limit=0)["by_destination"] if cfg.destinations else {}
    out = []
    for entry in cfg.destinations:
        name = entry["name"]
        backlog = ledger.delivery_backlog(name)
        health = ledger.destination_health(name) or {}
        try:
            gate = Gate.from_health(health, DeliveryPolicy.from_config(entry))
            maintenance = gate.maintenance_until(at)
        except AgentError as e:
            gate, maintenance = None, None
            health = {**health, "paused_error": f"invalid settings: {e}"}
        breaker = gate.breaker if gate else None
        next_probe = breaker.next_probe_at() if breaker else None
        counts = backlog["counts"]
        state = ("paused" if health.get("paused_error") else "in maintenance" if maintenance
                 else f"breaker {breaker.state}" if breaker and breaker.state != "closed" else "ok")
        out.append({
            "name": name, "health": state, "backlog": counts["queued"] + counts["delivering"],
            "counts": counts, "oldest_waiting": backlog["oldest_waiting"],
            "oldest_waiting_age_s": age_seconds(backlog["oldest_waiting"], at),
            "paused_error": health.get("paused_error"), "paused_at": health.get("paused_at"),
            "maintenance_until": maintenance.isoformat() if maintenance else None,
            "breaker": {"state": breaker.state if breaker else None,
                        "failures": breaker.failures if breaker else None,
                        "next_probe_at": next_probe.isoformat() if next_probe else None},
            "last_ok_at": health.get("last_ok_at"), "last_error": health.get("last_error"),
            "last_error_at": health.get("last_error_at"), "sla_breaches": per_destination.get(name, 0),
            "overdue_leases": ledger.overdue_leases(name, now=utc(at)),
            # Documents it holds under an old key (status's OLD KEYS line).
            "old_keys": old_keys.get(name, 0),
        })
    # Rows waiting for a destination the config no longer has (renamed or
    # removed in a reload): no loop will ever deliver them.
    names = {entry["name"] for entry in cfg.destinations}
    unknown = {name: n for name, n in ledger.waiting_by_destination().items() if name not in names}
    return {"sla_hours": hours, "sla_counted_from": "arrival", "sla_breaches": late,
            "late_by_state": {k: v for k, v in late_by_state.items() if v}, "near_sla": near,
            "sla_warn_hours": limits.sla_warn_hours, "destinations": out, "unknown_destinations": unknown}


def print_delivery(report: dict) -> None:
    """The human lines of `status` for delivery (nothing when no destination is configured)."""
    if not report["destinations"]:
        return
    late, near = report["sla_breaches"], report.get("near_sla") or 0
    held = ", ".join(f"{n} {state}" for state, n in (report.get("late_by_state") or {}).items())
    echo(f"delivery:          SLA {report['sla_hours']:g} h from arrival"
         + (f", {late} LATE (not delivered within it: {held})" if late else ", none late")
         + (f", {near} near it (waiting over {report['sla_warn_hours']:g} h)" if near else ""))
    for d in report["destinations"]:
        c = d["counts"]
        line = (f"  {d['name']:<14} backlog {d['backlog']}"
                + (f" (oldest {human_age(d['oldest_waiting_age_s'])})" if d["backlog"] else "")
                + f", failed {c['failed']}, missing {c['missing']}, quarantined {c['quarantined']}"
                + (f", superseded {c['superseded']}" if c.get("superseded") else "")
                + (f", on hold {c['on_hold']} (its document waits for a person: not sent)" if c.get("on_hold") else "")
                + (f", {c['rejected_there']} REJECTED YET HELD THERE (remove by hand)" if c.get("rejected_there")
                   else "")
                + (f", {d['overdue_leases']} PAST THEIR LEASE" if d.get("overdue_leases") else "")
                + (f", {d['old_keys']} HELD UNDER AN OLD KEY (remove by hand)" if d.get("old_keys") else "")
                + f"; breaker {d['breaker']['state']}")
        if d["maintenance_until"]:
            line += f"; in maintenance until {_minute(dt.datetime.fromisoformat(d['maintenance_until']))}"
        if d["paused_error"]:
            line += f"; PAUSED: {d['paused_error']}"
        elif d["breaker"]["next_probe_at"]:
            line += f" (next probe {_minute(dt.datetime.fromisoformat(d['breaker']['next_probe_at']))})"
        if d["sla_breaches"]:
            line += f"; {d['sla_breaches']} late"
        echo(line)


def _minute(moment: dt.datetime) -> str:
    return local_time(moment, seconds=False)
