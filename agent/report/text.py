"""The weekly check as CSV rows and as a one-paragraph summary for chat robots.

Pure formatting of `Figures`: the CSV rows are mappings the service writes
through its one CSV writer (service/csv_safe.py: no cell a spreadsheet would
run); the summary is plain text with light markdown (bold numbers), which
WeCom, DingTalk and Feishu robots all show.
"""

from __future__ import annotations

from typing import Any, Iterator

from agent.notify.base import code_span
from agent.report.figures import OUTCOMES, Figures, duration_text

CSV_COLUMNS = ("section", "key", "item", "value", "detail")


def csv_rows(fig: Figures) -> Iterator[dict[str, Any]]:
    """One row per figure of the page, long format (section, key, item,
    value, detail), so a spreadsheet can filter by section: period,
    arrivals (per day and outcome, and totals), timing, quarantine codes
    and oldest cases, pending 补录 applications (age in seconds), duplicates,
    missing, expiry, backup targets."""
    yield {"section": "period", "key": "since", "value": fig.since.isoformat()}
    yield {"section": "period", "key": "until", "value": fig.until.isoformat()}
    yield {"section": "period", "key": "time_zone", "value": fig.tz}
    for d in fig.days:
        for o in OUTCOMES:
            yield {"section": "arrivals", "key": d["day"].isoformat(), "item": o.key, "value": d[o.key]}
        yield {"section": "arrivals", "key": d["day"].isoformat(), "item": "total", "value": d["total"]}
    for o in OUTCOMES:
        yield {"section": "arrivals_total", "key": o.key, "value": fig.totals[o.key], "detail": f"{o.zh} {o.en}"}
    yield {"section": "arrivals_total", "key": "total", "value": fig.totals["total"]}
    yield {"section": "arrivals_total", "key": "same_file_again", "value": fig.repeat_arrivals}
    for what, t in fig.timing.items():
        yield {"section": "timing", "key": f"to_{what}", "item": "count", "value": t["count"]}
        for q in ("p50_s", "p95_s"):
            value = None if t[q] is None else round(t[q], 1)
            yield {"section": "timing", "key": f"to_{what}", "item": q, "value": value,
                   "detail": duration_text(t[q])}
    q = fig.quarantine
    yield {"section": "quarantine", "key": "open_total", "value": q["total"]}
    for code, n in q["by_code"].items():
        yield {"section": "quarantine_code", "key": code, "value": n}
    for r in q["oldest"]:
        yield {"section": "quarantine_oldest", "key": r["id"], "item": r["original_name"], "value": r["codes"],
               "detail": _join(r["received_at"], r["invoice_number"], r["seller_name"])}
    a = fig.applications
    yield {"section": "applications", "key": "pending", "value": a["pending"]}
    yield {"section": "applications", "key": "waiting_for_a_person", "value": a["waiting"],
           "detail": f"{q['total']} quarantined, {a['held_elsewhere']} held by a pending application in another state"}
    for state, n in a["held"].items():
        yield {"section": "applications_held", "key": state, "value": n}
    for r in a["rows"]:
        yield {"section": "application", "key": r["number"], "item": r["document_id"],
               "value": round(r["age_s"], 1), "detail": _join(r["kind"], r["filer"], r["filed_at"],
                                                              r["doc_state_now"], r["reason"])}
    yield {"section": "duplicates", "key": "count", "value": fig.duplicates["count"]}
    for r in fig.duplicates["examples"]:
        yield {"section": "duplicate", "key": r["id"], "item": r["invoice_number"], "value": r["duplicate_of"],
               "detail": _join(r["seller_name"], r["original_name"])}
    m = fig.missing
    yield {"section": "missing", "key": "count", "value": m["count"]}
    yield {"section": "missing", "key": "resent", "value": m["resent"]}
    for r in m["rows"]:
        yield {"section": "missing_row", "key": r["document_id"], "item": r["destination"],
               "value": r["resent_at"] or "", "detail": _join(r["invoice_number"], r["absent_at"], r["state"])}
    x = fig.expiry
    yield {"section": "expiry", "key": "count", "value": x["count"],
           "detail": f"max_age_days {x['max_age_days']}, warn within {x['warn_days']} days, as of {x['today']}"}
    for r in x["rows"]:
        yield {"section": "expiry_row", "key": r["id"], "item": r["invoice_date"], "value": r["days_left"],
               "detail": _join(r["state"], r["invoice_number"], r["seller_name"], r["original_name"])}
    for t in fig.backup.get("targets", []):
        drill = fig.drills.get(t["name"])
        yield {"section": "backup", "key": t["name"], "item": "state", "value": t.get("reachable"),
               "detail": t.get("unreachable_since") or t.get("paused_error") or ""}
        for k in ("objects", "backlog", "failed", "last_put_at", "last_verify_at", "last_snapshot_at"):
            yield {"section": "backup", "key": t["name"], "item": k, "value": t.get(k)}
        yield {"section": "backup", "key": t["name"], "item": "restore_drill",
               "value": "none yet" if not drill else ("ok" if drill.get("ok") else "FAILED"),
               "detail": "" if not drill else _join(drill.get("at"), drill.get("detail"))}


def _join(*parts: Any) -> str:
    return " | ".join("" if p is None else str(p) for p in parts)


def summary(fig: Figures) -> str:
    """One paragraph with the key numbers (markdown bold), the period first;
    names no invoice, file or seller (chat robots are not the place). The
    names it does give (backup targets, the time zone: the config's words,
    not ours) are code spans, so a robot shows them as text."""
    t, conf, a = fig.totals, fig.timing["confirmed"], fig.applications
    targets = fig.backup.get("targets", [])
    failing = [code_span(x["name"]) for x in targets if x.get("reachable") in ("unreachable", "paused", "not keeping")]
    ok = [x["name"] for x in targets if x.get("reachable") == "ok"]
    undrilled = [code_span(x["name"]) for x in targets if x["name"] not in fig.drills]
    drill_failed = [code_span(n) for n, d in fig.drills.items() if not d.get("ok")]
    period = f"{fig.days[0]['day']} – {fig.days[-1]['day']}" if fig.days else "-"
    text = (f"发票每周检查 Weekly invoice check {period} ({code_span(fig.tz)}): "
            f"**{t['total']}** arrived (到达), **{t['delivered']}** delivered (已送达), "
            f"**{t['in_progress']}** in progress, **{t['failed']}** failed (失败), "
            f"**{t['refused']}** refused; **{fig.quarantine['total']}** quarantined now (待人工处理)"
            + (f", **{a['held_elsewhere']}** more held by a pending 补录 application" if a["held_elsewhere"] else "")
            + (f", **{a['pending']}** 补录 applications pending (待审批)" if a["pending"] else "") + "; "
            f"**{fig.duplicates['count']}** duplicates caught (重复); "
            f"**{fig.missing['count']}** missing at reconciliation, **{fig.missing['resent']}** re-sent; "
            f"**{fig.expiry['count']}** undelivered within {fig.expiry['warn_days']} days of "
            f"max_age_days (过期提醒); arrival to confirmed p50 {duration_text(conf['p50_s'])}, "
            f"p95 {duration_text(conf['p95_s'])}. ")
    if not targets:
        text += "Backups: none configured."
    else:
        text += (f"Backups: {len(ok)}/{len(targets)} targets ok"
                 + (f", FAILING: {', '.join(failing)}" if failing else "")
                 + (f"; restore drill FAILED: {', '.join(drill_failed)}" if drill_failed else "")
                 + (f"; no restore drill yet: {', '.join(undrilled)}" if undrilled else "") + ".")
    return text
