"""`fapiao-agent status`, `list` and `show`: read the ledger."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3

import click

from agent.ledger.rows import RESTORED_ACTIVITY, TimeText, as_stored, yuan
from agent.ledger import Ledger, utc
from agent.states import State
from service.context import LIMIT, age_seconds, echo_json, fail, human_age, load, now_dt, open_ledger, span_of
from service.display import Column, local_time, table
from service.textsafe import echo


def status_report(ledger: Ledger, cfg, *, time_text: TimeText = as_stored) -> dict:
    """Everything `status` shows, as one JSON-ready dict, with `health`: the
    verdict of `status --check` (agent/health.py) on the rest, a stored time
    in its reasons written by `time_text` (the ledger's UTC unless a person
    reads it)."""
    # Here, not at the top: `list` and `show` live in this module too and
    # report no delivery, backup or health (issue 17: start-up).
    from agent.health import Thresholds, evaluate
    from service.backup_figures import backup_report
    from service.delivery_figures import delivery_report

    from agent.health import heartbeat_details
    from service.config_state import config_report

    at = now_dt()
    limits = Thresholds.from_config(cfg)
    oldest = ledger.oldest_unfinished()
    daemon = daemon_state(ledger.heartbeat(), at, stale_s=limits.heartbeat_stale_s)
    report = {
        "states": ledger.counts(),
        "refused": ledger.refusal_summary(),
        "applications": _applications(ledger, at, limits.application_pending_hours),
        "source_steps": ledger.source_steps_summary(),
        # Rejected, and yet a destination holds (or may hold) them: a person removes them there.
        "rejected_there": ledger.rejected_there(),
        # Held at a destination under an old key (an amend corrected the 号码
        # after it went there): a person removes each copy there.
        "old_keys_held": ledger.old_keys_held(),
        "oldest_unfinished": oldest,
        "oldest_unfinished_age_s": age_seconds(oldest, at),
        "last_activity": ledger.last_activity(),
        "daemon": daemon,
        # The config the daemon runs against this file: a refused reload, a
        # setting waiting for a restart (service/config_state.py).
        "config": config_report(cfg, daemon, heartbeat_details(daemon) if daemon else {}),
        "ledger": str(cfg.ledger_path),
        "vault": str(cfg.vault_dir),
        "delivery": delivery_report(ledger, cfg, at),
        "backup": backup_report(ledger, cfg),
        # [[notify]] entries: counts, last success, last error, failing.
        "notify": ledger.notify_summary([e["name"] for e in cfg.notify]),
    }
    if cfg.fleet.get("url"):
        report["fleet"] = {"site": cfg.fleet["site"], "url": cfg.fleet["url"], **ledger.fleet_summary()}
    report["health"] = evaluate(report, limits, now=at, time_text=time_text).to_dict()
    return report


# Overdue applications named in the report (each an `application-pending`
# alert, agent/notify/faults.py); more are counted, and named as the older
# ones are decided.
OVERDUE_LISTED = 20


def _applications(ledger: Ledger, at: dt.datetime, hours: float) -> dict:
    # Pending 补录 applications: counts, the documents they hold by state, and
    # those waiting longer than [health] application_pending_hours (0: none is).
    cutoff = utc(at - dt.timedelta(hours=hours)) if hours else None
    out = ledger.pending_summary(filed_before=cutoff)
    out["oldest_age_s"] = age_seconds(out["oldest_filed_at"], at)
    out["overdue_hours"] = hours
    out["overdue_applications"] = (ledger.pending_applications(filed_before=cutoff, limit=OVERDUE_LISTED)
                                   if out["overdue"] else [])
    return out


ALIVE_WITHIN_S = 120  # the default of [health] heartbeat_stale_s


def daemon_state(beat: dict | None, at, stale_s: float = ALIVE_WITHIN_S) -> dict | None:
    """The heartbeat with `age_s` and `alive`. Alive only when it is fresh
    (younger than `stale_s`), says the daemon is working (not `stopped`, not
    `restored`: a restored ledger carries the old agent's last beat), and its
    pid exists here."""
    if not beat:
        return None
    age = age_seconds(beat["at"], at)
    alive = (age is not None and age < stale_s and beat["activity"] not in ("stopped", RESTORED_ACTIVITY)
             and _pid_exists(beat["pid"]))
    return {**beat, "age_s": age, "alive": alive, "stale_after_s": stale_s}


def _pid_exists(pid) -> bool:
    # The ledger is a local file, so its daemon runs on this host. A beat
    # whose pid is gone was copied here (a restore, a copied state folder).
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # it exists, as another user
    return True


class _Verdict(SystemExit):
    """`status --check`'s own exit: its level, already printed."""


class _CheckCommand(click.Command):
    # With --check every way out is a plugin status: whatever ends the
    # command before a verdict (config invalid, access denied, ledger
    # unreadable) is UNKNOWN (3), said on stdout where the monitor reads.
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except _Verdict:
            raise
        except SystemExit as e:
            if not ctx.params.get("check") or e.code in (0, None):
                raise
            from agent.health import UNKNOWN

            why = getattr(e, "message", None) or "see the error on stderr"
            from service.textsafe import echo   # the error may name a stranger's file

            echo(f"UNKNOWN: fapiao-agent status could not read its state: {why.splitlines()[0]}")
            raise SystemExit(UNKNOWN) from None


@click.command("status", cls=_CheckCommand, epilog="""\b
Exit status:
  without --check   0, or 2 when the config or the ledger cannot be read
  with --check      the monitoring-plugin convention (Nagios, Icinga, Zabbix):
                    0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (ledger or config unreadable)
  thresholds: [health] in the config (sla_warn_fraction, backup_unreachable_warn_minutes,
  backup_unreachable_crit_minutes, heartbeat_stale_s, failed_warn/crit, quarantined_warn/crit
  (documents held by a pending 补录 application count with the quarantined), application_pending_hours)
  and [delivery] sla_hours, counted from each invoice's arrival.

\b
Examples:
  fapiao-agent status --check      CRITICAL: backup target s3 unreachable for 2 h; 3 invoices past the 24 h SLA
  fapiao-agent status --json | jq .health""")
@click.option("--check", is_flag=True, help="Judge the figures against [health]: print one line "
              "`OK|WARNING|CRITICAL|UNKNOWN: reason; reason`, then one line per reason, and exit 0, 1, 2 "
              "or 3 (monitoring-plugin convention).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: states (every state, zeros "
              "included), refused (count, last_at), applications (pending, oldest_filed_at, oldest_age_s, held: the "
              "documents they hold by state, overdue: pending over overdue_hours, overdue_applications: the "
              "oldest of those), rejected_there (count, documents [{document_id, at: [{destination, state, key}]}]: "
              "rejected documents a destination holds or may hold), old_keys_held (count, by_destination, documents "
              "[{document_id, state, at: [{destination, key, since}]}]: documents a destination holds under an old "
              "key, an amend having changed it since), oldest_unfinished, last_activity, daemon, "
              "config (the config a live daemon runs against this file: loaded_at, file_changed, reload, "
              "reload_refused, restart_needed; null without one), ledger, vault, delivery "
              "(sla_breaches and late_by_state counted from arrival, near_sla, and per destination backlog, "
              "health, breaker, maintenance_until), backup (per target backlog, pause, reachable, "
              "unreachable_since, last put, verify and snapshot; originals and documents backed up, apart), "
              "notify (per [[notify]] entry: pending, sent, failed, last_sent_at, last_error, failing), "
              "health (status, code, summary, reasons). With --check the exit status is the verdict's.")
@click.pass_context
def command(ctx: click.Context, check: bool, as_json: bool) -> None:
    """How many documents are in each state, how old the oldest unfinished one
    is, when anything last happened, whether the daemon is alive, whether
    every backup target answers; with --check, a verdict for monitoring."""
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        try:
            # A person reads local time; --json keeps the ledger's UTC, as everywhere.
            report = status_report(ledger, cfg, time_text=as_stored if as_json else local_time)
        except sqlite3.Error as e:  # a ledger that opened but cannot be read through
            fail(f"cannot read ledger {cfg.ledger_path}: {e}", code=2)
    health = report["health"]
    if as_json:
        echo_json(report)
    elif check:
        echo(health["summary"])
        for r in health["reasons"]:
            echo(f"  {r['level']}: {r['text']}")
    else:
        _print_status(report)
    if check:
        raise _Verdict(health["code"])


def _print_status(report: dict) -> None:
    from agent.health import heartbeat_details, held_elsewhere
    from service.backup_figures import backed_up_line, drill_line, target_state
    from service.delivery_figures import print_delivery
    from service.config_state import config_lines

    for state, n in report["states"].items():
        if n or state in ("captured", "quarantined", "queued", "failed", "missing"):
            echo(f"{state:>12}  {n}")
    refused = report["refused"]
    echo(f"{'refused':>12}  {refused['count']}" + (f"  (files and attachments not taken, each "
               f"with its reason: `fapiao-agent refused`; the last at {local_time(refused['last_at'])})"
               if refused["count"] else ""))
    pending = report["applications"]
    if pending["pending"]:
        # A held duplicate's state counts as finished: said here, or nothing would say it waits.
        held = "".join(f", holding {n} {s}" for s, n in held_elsewhere(pending).items())
        echo(f"{'applications':>12}  {pending['pending']} pending  (补录 waiting for an approver{held}; the oldest "
             f"filed {local_time(pending['oldest_filed_at'])}: `fapiao-agent requests --state pending`)")
    there = report["rejected_there"]
    if there["count"]:
        from agent.ledger.rejections import where_held

        named = "; ".join(f"document {d['document_id']} at {where_held(d['at'])}" for d in there["documents"])
        more = f"; {there['count'] - len(there['documents'])} more" if there["count"] > len(there["documents"]) else ""
        echo(f"{'REJECTED':>12}  {there['count']} yet at a destination: {named}{more}. A rejection takes nothing "
             "back: remove each there by hand; `fapiao-agent reconcile` then finds it gone")
    old = report.get("old_keys_held") or {}
    if old.get("count"):
        named = "; ".join(f"document {d['document_id']} at " + ", ".join(f"{a['destination']} ({a['key']})"
                                                                           for a in d["at"])
                          for d in old["documents"])
        more = f"; {old['count'] - len(old['documents'])} more" if old["count"] > len(old["documents"]) else ""
        echo(f"{'OLD KEYS':>12}  {old['count']} held at a destination under an old key: {named}{more}. Remove each "
             "copy there by hand, then `fapiao-agent forget-key ID --destination NAME --key KEY --reason TEXT` "
             "(`fapiao-agent reconcile` finds it gone too; `fapiao-agent show ID` names each)")
    steps = report["source_steps"]
    if steps["waiting"]:
        echo(f"{'to move':>12}  {steps['waiting']}  (sources to be moved or deleted once read and unchanged for "
             f"their folder's quiet_seconds; the oldest since {local_time(steps['oldest_at'])})")
    echo(f"oldest unfinished: {human_age(report['oldest_unfinished_age_s'])}"
               + (f" (since {local_time(report['oldest_unfinished'])})" if report["oldest_unfinished"] else ""))
    echo(f"last activity:     {local_time(report['last_activity']) or 'never'}")
    d = report["daemon"]
    if not d:
        daemon_line = "never ran"
    elif d["activity"] == RESTORED_ACTIVITY:
        details = heartbeat_details(d)
        daemon_line = (f"not run here since restored from {details.get('from') or 'a backup'} at {local_time(d['at'])}"
                       + (f" ({details['snapshot']})" if details.get("snapshot") else ""))
    elif d["activity"] == "stopped":
        daemon_line = f"stopped cleanly {human_age(d['age_s'])} ago (pid {d['pid']})"
    else:
        verdict = ("alive" if d["alive"] else "NOT RUNNING (no heartbeat)"
                   if d["age_s"] is None or d["age_s"] >= d["stale_after_s"] else "NOT RUNNING (no such pid here)")
        daemon_line = (f"{verdict} (pid {d['pid']}, "
                       f"{d['activity']}, last seen {human_age(d['age_s'])} ago)")
    echo(f"daemon:            {daemon_line}")
    details = heartbeat_details(d) if d else {}
    for path, reason in (details.get("folders_not_watched") or {}).items():
        echo(f"NOT WATCHED:       {path}: {reason}")
    if details.get("state_dir_moved"):
        echo(f"STATE FOLDER:      {details['state_dir_moved']}")
    for line in config_lines(report.get("config"), local_time):
        echo(f"config:            {line}")
    # Files in a watched folder not taken yet, each with why: intake holds
    # it (an e-mail still being written), it has not settled in minutes, or
    # a folder of them cannot be listed.
    for kind, label, after, noun in (("files_held", "held:", "", "files"), ("files_waiting", "waiting:", "", "files"),
                                     ("folders_unreadable", "UNREADABLE:", "; its files are not taken", "folders")):
        named = details.get(kind) or {}
        for path, reason in named.items():
            echo(f"{label:<19}{path}: {reason}{after}")
        if (details.get(f"{kind}_count") or 0) > len(named):
            echo(f"{label:<19}... {details[f'{kind}_count']} {noun} in all")
    echo(f"ledger:            {report['ledger']}")
    echo(f"vault:             {report['vault']}")
    print_delivery(report["delivery"])
    b = report["backup"]
    if b["targets"]:
        echo(f"backed up:         {backed_up_line(b)}")
        for t in b["targets"]:
            echo(f"  {t['name']:<12} backlog {t['backlog']}, failed {t.get('failed', 0)}, "
                       f"last snapshot {local_time(t.get('last_snapshot_at')) or 'never'}, {target_state(t)}")
            echo(f"  {'':<12} restore drill {drill_line(t.get('last_drill'))}")
    for n in report.get("notify") or []:
        echo(f"notify {n['name']:<11} " + ("FAILING" if n["failing"] else "ok")
             + f": last sent {local_time(n['last_sent_at']) or 'never'}, {n['pending']} pending, {n['failed']} given up"
             + (f"; last error {local_time(n['last_error_at'])}: {n['last_error']}" if n["failing"] else ""))
    if report.get("fleet"):
        f = report["fleet"]
        counts = ", ".join(f"{n} {s}" for s, n in f["claims"].items() if n) or "no claims yet"
        echo(f"fleet:             site {f['site']} at {f['url']}: {counts}")
        if f["held_reason"]:
            echo(f"  HELD since {local_time(f['held_since'])}: {f['held_reason']}")
        if f.get("doubt"):
            echo(f"  CLAIMS MAY BE LOST since {local_time(f['doubt_since'])}: {f['doubt']}; every new claim here "
                 "looks every destination up before any put until `fapiao-agent fleet acknowledge` (fleet epoch)")
        if f.get("vanished"):
            echo(f"  CLAIMS LOST: the fleet store holds no claim of {f['vanished']} invoice(s) this site knew "
                 "claimed; none is delivered again on that alone (`show ID` gives each one's reason)")
    echo(f"health:            {report['health']['summary']}")


LIST_COLUMNS = ("id", "state", "received_at", "invoice_number", "invoice_date", "total", "buyer", "seller",
                "label", "original_name", "problems")
LIST_TABLE = (Column("id", "id", ">"), Column("state", "state"), Column("received", "received (local)"),
              Column("invoice_number", "number"), Column("invoice_date", "date"), Column("total", "total", ">"),
              Column("buyer", "buyer", max_width=20), Column("seller", "seller", max_width=20),
              Column("label", "label", max_width=12), Column("errors", "problems"),
              Column("original_name", "file"))   # last and whole: a file name is how people tell files apart


def _row(doc, label: str | None) -> dict:
    fields = doc.fields or {}
    return {
        "id": doc.id, "state": doc.state, "received_at": doc.received_at,
        "invoice_number": doc.invoice_number, "invoice_date": doc.invoice_date,
        "total": yuan(doc.total_cents),
        "buyer": fields.get("buyer_name"), "seller": fields.get("seller_name"), "label": label,
        "original_name": doc.original_name,
        # As `quarantine --json`: every problem with its code, severity, field and both messages.
        "problems": doc.problems,
    }


def _error_codes(row: dict) -> str:
    # Each code once, in the order first found: a rule failing on several
    # fields (amount-range on the total and the tax) is one reason to read.
    return ";".join(dict.fromkeys(p["code"] for p in row["problems"] if p.get("severity") == "error"))


@click.command("list")
@click.option("--state", type=click.Choice([s.value for s in State]), help="Only this state.")
@click.option("--since", metavar="WHEN", help="Only documents received on or after WHEN: a day (YYYY-MM-DD, "
              "as search --date reads one; from midnight local time) or a span before now (7d, 36h, 2w).")
@click.option("--sort", type=click.Choice(["received", "date", "amount"]), default="received",
              show_default=True, help="Newest received, newest invoice date, or largest amount first.")
@click.option("--limit", type=LIMIT, default=50, show_default=True,
              help="At most this many (0: all). When more match, a last line on stderr says how many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: id, state, received_at (UTC), "
              "invoice_number, invoice_date, total, buyer, seller, label, original_name, problems [{code, "
              "severity, field, message, message_zh}].")
@click.option("--csv", "as_csv", is_flag=True, help="CSV (UTF-8 with a BOM, for Excel) with a header row; "
              "problems as the error codes joined by `;`, each once.")
@click.pass_context
def list_command(ctx, state, since, sort, limit, as_json, as_csv) -> None:
    """List documents, filtered by state and date and sorted by arrival, invoice date or amount.

    Times are shown in local time with their offset; --json and --csv keep
    the ledger's UTC.

    \b
    Examples:
      fapiao-agent list --state quarantined --sort amount
      fapiao-agent list --state failed --json
      fapiao-agent list --since 2026-11-01 --csv > november.csv
    """
    if as_json and as_csv:   # as `search` and `audit export`: never one of them silently dropped
        fail("choose one of --json and --csv", code=2)
    since_utc = _since_local_midnight(since)
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        docs = ledger.list_documents(state=state, since=since_utc, sort=sort, limit=limit)
        labels = ledger.labels_of([d.id for d in docs])
        matching = ledger.count_documents(state=state, since=since_utc) if limit and len(docs) >= limit else len(docs)
    rows = [_row(d, labels.get(d.id)) for d in docs]
    if as_json:
        for r in rows:
            echo_json(r)
    elif as_csv:
        from service.csv_safe import echo_csv   # only for --csv: it loads csv and unicodedata

        echo_csv(({**r, "problems": _error_codes(r)} for r in rows), LIST_COLUMNS)
    elif rows:
        for line in table(({**r, "received": local_time(r["received_at"]), "errors": _error_codes(r)}
                           for r in rows), LIST_TABLE):
            echo(line)
    else:
        echo("no documents match", err=True)
    if matching > len(rows):
        echo(f"{len(rows):,} of {matching:,} shown; --limit 0 for all", err=True)


def _since_local_midnight(text: str | None) -> str | None:
    """--since DATE as the ledger's UTC text of that day's local midnight,
    the day read exactly as `search --date` reads one (agent.search.parse_day),
    or a span before now (7d, 36h, 2w, as `report` takes); exits 2 on
    anything else, an empty value included: `--since ''` is a filter that
    could not be read, never none at all."""
    if text is None:
        return None
    from agent.search import BadSearch, parse_day   # here: `status` loads this module and reads no day

    if not text.strip():
        fail("--since: empty; give a day (YYYY-MM-DD) or a span before now (7d, 36h, 2w), "
             "or leave --since out for every document", code=2)
    try:
        span = span_of(text)
        if span is not None:
            return utc(now_dt() - span)
    except (ValueError, OverflowError):
        fail(f"--since: expected a date like 2026-03-01 or a span like 7d, 36h, 2w; got {text!r}", code=2)
    try:
        day = parse_day(text)
    except BadSearch as e:
        fail(f"--since: {e}; or a span before now like 7d, 36h, 2w", code=2)
    # The calendar's first and last days are moved one day in: a naive
    # datetime's local conversion probes a day either side and raised
    # (0001-01-01: "year 0 is out of range"). No document was received on
    # them, so the listing is the same.
    day = min(max(day, dt.date.min + dt.timedelta(days=1)), dt.date.max - dt.timedelta(days=1))
    return utc(dt.datetime.combine(day, dt.time()).astimezone())


extra_commands = (list_command,)
