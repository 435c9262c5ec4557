"""`fapiao-agent audit ...`: prove what the ledger promises. `audit ledger`
lists every violation of its invariants; exit 1 when there is one. `audit
verify` checks the hash chain of the events; `audit export` gives auditors
the trail as CSV or JSON."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import re
import sqlite3
import sys
import time

import click

from agent.audit import END_STATES, GOAL_STATES, audit_ledger
from agent.audit_rules import CHECKS, RULES, AuditSettings
from agent.ledger import Ledger, utc
from agent.ledger.rows import UTC_LAST, as_stored, utc_bound
from agent.ledger.audit import AUDIT_SCHEMA
from agent.ledger.trail import TRAIL_SCHEMA, TrailReader
from agent.trail import BREAKS, Walked, untraced_breaks, verify_chain
from agent.model import State
from service.context import echo_json, fail, load, now_dt, open_ledger_readonly
from service.csv_safe import write_csv
from service.display import local_time
from service.progress import wanted
from service.watch_names import TEMP_GRACE_S
from service.textsafe import echo, json_text


WAITING = [s.value for s in State if s not in END_STATES and s not in GOAL_STATES]


def _rules_help() -> str:
    lines = ["\b", "Checks and their rule codes:"]
    for number, title in CHECKS.items():
        lines.append(f"  {number}. {title}")
        lines += [f"       {code:<28} {text}" for code, (check, text) in RULES.items() if check == number]
    return "\n".join(lines) + """

\b
Notes:
  Files of e-mail folders map to their message objects (check 2), not paths.
  A valid document is an end state only when no destination is configured.
  End states (a person moves them on): """ + ", ".join(sorted(s.value for s in END_STATES)) + """.
  Late (check 7): in a state the machine owes a move (""" + ", ".join(WAITING) + """)
  for longer than [delivery] sla_hours, and not in the LATE figure of `status`.

\b
Examples:
  fapiao-agent audit ledger                 every violation, one line each
  fapiao-agent audit ledger --json | jq .   {"violations": [...], "counts": {...}}
  fapiao-agent audit ledger --no-hash       skip re-hashing the vault (fast)"""


@click.group("audit")
def command() -> None:
    """Prove what the ledger promises: no invoice on a silent path."""


@command.command("ledger", epilog=_rules_help())
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: ledger, vault, violations (code, check, document, object, "
                   "message) and counts per code.")
@click.option("--no-hash", is_flag=True, help="Do not re-hash vault objects (names and references only).")
@click.pass_context
def ledger_command(ctx: click.Context, as_json: bool, no_hash: bool) -> None:
    """Check the ledger and vault against the seven promises below and print
    every violation, one line each with its rule code. Exits 0 when there is
    none, 1 when there is any, 2 when the ledger cannot be read. Opens the
    ledger read-only and never creates one; safe beside a running daemon.
    Progress goes to stderr on a big ledger or vault, on a terminal only."""
    cfg = load(ctx)
    ledger = open_ledger_readonly(cfg)
    version = ledger.schema_version
    if version < AUDIT_SCHEMA:
        fail(f"ledger {cfg.ledger_path} has schema {version}; the audit needs {AUDIT_SCHEMA} or later "
             "(start the daemon of this version once to migrate it)", code=2)
    settings = AuditSettings(
        destinations=tuple(d["name"] for d in cfg.destinations),
        mail_roots=tuple(str(w.path) for w in cfg.watches if w.kind == "email"),
        sla_hours=float(cfg.delivery.get("sla_hours") or 24), hash_objects=not no_hash,
        watched=tuple((str(w.path), w.after) for w in cfg.watches if w.path.is_dir()),
        # A file is found by the next rescan, then may wait out a temporary name's grace.
        unhandled_after_s=cfg.agent["rescan_interval_s"] + TEMP_GRACE_S + 60,
        # A person reads local time; --json keeps the ledger's UTC, as everywhere.
        time_text=as_stored if as_json else local_time)
    found = []
    with ledger:
        try:
            for v in audit_ledger(ledger, cfg.vault_dir, settings, now=now_dt(), progress=_Progress(as_json=as_json)):
                found.append(v)
                if not as_json:
                    echo(v.line())
        except Exception as e:  # a ledger that is not ours, or damaged
            fail(f"cannot audit ledger {cfg.ledger_path}: {e}", code=2)
    counts: dict[str, int] = {}
    for v in found:
        counts[v.code] = counts.get(v.code, 0) + 1
    if as_json:
        echo_json({"ledger": str(cfg.ledger_path), "vault": str(cfg.vault_dir),
                   "violations": [v.to_dict() for v in found], "counts": counts})
    elif found:
        echo(f"{len(found)} violations: " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())),
                   err=True)
    else:
        echo("ledger sound: no violations", err=True)
    sys.exit(1 if found else 0)


class _Progress:
    """A line on stderr at most every 2 s, only once a check runs long, and
    only for a person at a terminal (progress.wanted): never into a pipe, a
    file, cron's mail or beside --json."""

    def __init__(self, *, as_json: bool):
        self.shown = wanted(as_json=as_json)
        self.start = self.last = time.monotonic()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.shown:
            return
        t = time.monotonic()
        if t - self.last >= 2.0:
            self.last = t
            echo(f"audit: {done}" + (f"/{total}" if total else "") + f" {stage} checked", err=True)


def _open_trail(ctx: click.Context) -> tuple[str, Ledger]:
    """The config's ledger opened read-only (never created), or exit 2."""
    cfg = load(ctx)
    ledger = open_ledger_readonly(cfg)
    version = ledger.schema_version
    if version < TRAIL_SCHEMA:
        ledger.close()
        fail(f"ledger {cfg.ledger_path} has schema {version}: its events are not chained yet (schema "
             f"{TRAIL_SCHEMA}; start the daemon of this version once to migrate and chain them)", code=2)
    return str(cfg.ledger_path), ledger


_VERIFY_HELP = """\b
What it finds (each break: event id, code, what is wrong):
""" + "\n".join(f"  {code:<10} {text}" for code, text in BREAKS.items()) + """

\b
What it cannot find: the hash is not keyed. Someone who can write the
ledger file and recomputes the hash of every later event and the trail
head leaves a chain that verifies. Keep the head line printed here (or
`--json` .head) somewhere else, e.g. in the audit file, and pass it back
as --anchor ID:HASH: a rewritten trail then breaks at that anchor. Deleting
the whole ledger, or restoring an older copy, is not a break of the chain.

\b
Examples:
  fapiao-agent audit verify                      one line per break
  fapiao-agent audit verify --json | jq .head    keep this elsewhere
  fapiao-agent audit verify --anchor 1207:9f86d08188…  (full hash)"""


def _anchor(ctx, param, values: tuple[str, ...]) -> dict[int, str]:
    anchors = {}
    for text in values:
        m = re.fullmatch(r"(\d+):([0-9a-f]{64})", text.strip().lower())
        if not m:
            raise click.BadParameter(f"expected EVENT_ID:SHA256 (64 hex digits), got {text!r}")
        anchors[int(m.group(1))] = m.group(2)
    return anchors


@command.command("verify", epilog=_VERIFY_HELP)
@click.option("--anchor", multiple=True, callback=_anchor, metavar="ID:HASH",
              help="An event's hash kept outside the ledger (from an earlier verify); repeatable.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: ledger, events, head {event, hash}, breaks (event, code, message).")
@click.pass_context
def verify_command(ctx: click.Context, anchor: dict[int, str], as_json: bool) -> None:
    """Walk the hash chain of the audit events, oldest first, and list
    every break: an edited, deleted, inserted or reordered event, or a tail
    cut or extended behind the trail head's back. Exits 0 when the chain is
    whole, 1 with each break listed, 2 when there is no ledger (or one too
    old to be chained). Opens the ledger read-only and never creates one;
    safe beside a running daemon (reads one snapshot)."""
    path, ledger = _open_trail(ctx)
    walked, found = Walked(), []
    with ledger:
        reader = TrailReader(ledger)
        try:
            with reader.snapshot():
                for b in itertools.chain(verify_chain(reader.chain(), reader.head(), anchor, walked),
                                         untraced_breaks(reader.untraced_documents(),
                                                         reader.untraced_applications())):
                    found.append(b)
                    if not as_json:
                        echo(b.line())
        except Exception as e:  # a ledger that is not ours, or damaged
            fail(f"cannot verify ledger {path}: {e}", code=2)
    head = {"event": walked.last_id, "hash": walked.last_hash}
    if as_json:
        echo_json({"ledger": path, "events": walked.events, "head": head,
                   "breaks": [b.to_dict() for b in found]})
    elif found:
        echo(f"{len(found)} breaks in a trail of {walked.events} events", err=True)
    else:
        echo(f"trail whole: {walked.events} events, last {walked.last_id}:{walked.last_hash}", err=True)
    sys.exit(1 if found else 0)


EXPORT_COLUMNS = ("event", "at", "actor", "document", "invoice_number", "from_state", "to_state", "reason",
                  "application", "prev_hash", "hash")


def _moment(text: str | None, *, end: bool) -> str | None:
    """DATE (YYYY-MM-DD, a UTC day; `--until` includes it whole) or an ISO
    timestamp (UTC unless it has an offset) as ledger timestamp text."""
    if not text:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc)
            if end and day.date() == dt.date.max:
                return UTC_LAST       # the day after is beyond the calendar
            return utc(day + dt.timedelta(days=1) if end else day)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"expected a date like 2026-12-01 or a time like 2026-12-01T08:00+08:00, got {text!r}", code=2)
    # 0001-01-01T00:00+08:00 is before year 1 in UTC: before everything, not a traceback.
    return utc_bound(moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc))


@command.command("export", epilog="""\b
Columns: """ + ", ".join(EXPORT_COLUMNS) + """.
Times are UTC, as in the ledger. `application` is the 补录 application
number of an operator action, empty for the machine's own events. The CSV
starts with a UTF-8 BOM (Excel then shows the Chinese) and no cell can run
as a spreadsheet formula. Rows are streamed: any size of ledger.

\b
Examples:
  fapiao-agent audit export --since 2026-12-01 --csv > trail-december.csv
  fapiao-agent audit export --since 2026-12-01 --until 2026-12-31 --json""")
@click.option("--since", required=True, metavar="DATE", help="First day (YYYY-MM-DD, UTC) or an ISO time.")
@click.option("--until", metavar="DATE", help="Last day, included whole (YYYY-MM-DD, UTC), or an ISO time (excluded).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a UTF-8 BOM.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"since", "until", "events": [...]}, events with the columns below.')
@click.pass_context
def export_command(ctx: click.Context, since: str, until: str | None, as_csv: bool, as_json: bool) -> None:
    """Write the audit trail from --since (to --until) for auditors: every
    event in chain order with its time, actor, document, invoice number,
    states, reason, application number and hashes. Exactly one of --csv and
    --json. Read-only; never creates a ledger; exit 2 when there is none."""
    if as_csv == as_json:
        fail("choose one of --csv and --json", code=2)
    start, end = _moment(since, end=False), _moment(until, end=True)
    path, ledger = _open_trail(ctx)
    # UTF-8 whatever the locale says: under zh_CN.GB18030 the "BOM" came out
    # as GB18030 bytes (Excel then garbles the Chinese), under latin-1 the
    # export died. newline="": the bytes are exactly what is written here.
    out = io.TextIOWrapper(click.get_binary_stream("stdout"), encoding="utf-8", newline="")
    try:
        _export(out, ledger, path, start, end, as_csv)
    finally:
        out.flush()
        out.detach()  # stdout itself stays open


def _export(out: io.TextIOWrapper, ledger: Ledger, path: str, start: str | None, end: str | None,
            as_csv: bool) -> None:
    with ledger:
        reader = TrailReader(ledger)
        try:
            with reader.snapshot():
                rows = (_export_row(r) for r in reader.export(since=start, until=end))
                if as_csv:
                    write_csv(out, rows, EXPORT_COLUMNS)   # BOM first
                else:
                    # json_text: a reason or a file name's bidi, C1 or zero-width
                    # character as \uXXXX, the same JSON value, never raw on a terminal.
                    out.write(json_text(json.dumps({"since": start, "until": end}, ensure_ascii=False))[:-1]
                              + ', "events": [')
                    for i, row in enumerate(rows):
                        out.write(("," if i else "") + "\n" + json_text(json.dumps(row, ensure_ascii=False)))
                    out.write("\n]}\n")
        except sqlite3.Error as e:  # damaged mid-way: the output is cut, and says so by the exit status
            out.flush()
            fail(f"cannot export from ledger {path}: {e}", code=2)


def _export_row(r: dict) -> dict:
    return {"event": r["id"], "at": r["at"], "actor": r["actor"], "document": r["document_id"],
            "invoice_number": r["invoice_number"], "from_state": r["from_state"], "to_state": r["to_state"],
            "reason": r["reason"], "application": r["application"], "prev_hash": r["prev_hash"], "hash": r["hash"]}
