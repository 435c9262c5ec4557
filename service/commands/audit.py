"""`fapiao-agent audit ...`: prove what the ledger promises. `audit ledger`
lists every violation of its invariants; exit 1 when there is one."""

from __future__ import annotations

import sys
import time

import click

from agent.audit import CHECKS, END_STATES, GOAL_STATES, RULES, AuditSettings, audit_ledger
from agent.ledger import Ledger
from agent.ledger.audit import AUDIT_SCHEMA
from agent.model import State
from service.context import echo_json, fail, load, now_dt
from service.textsafe import echo


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
    Progress goes to stderr on a big ledger or vault."""
    cfg = load(ctx)
    if not cfg.ledger_path.is_file():
        fail(f"no ledger at {cfg.ledger_path} (nothing was ever captured with this config?)", code=2)
    try:
        ledger = Ledger(cfg.ledger_path, readonly=True)
        version = ledger.schema_version
    except Exception as e:  # sqlite3 errors: not a database, unreadable
        fail(f"cannot open ledger {cfg.ledger_path}: {e}", code=2)
    if version < AUDIT_SCHEMA:
        fail(f"ledger {cfg.ledger_path} has schema {version}; the audit needs {AUDIT_SCHEMA} or later "
             "(start the daemon of this version once to migrate it)", code=2)
    settings = AuditSettings(
        destinations=tuple(d["name"] for d in cfg.destinations),
        mail_roots=tuple(str(w.path) for w in cfg.watches if w.kind == "email"),
        sla_hours=float(cfg.delivery.get("sla_hours") or 24), hash_objects=not no_hash)
    found = []
    with ledger:
        try:
            for v in audit_ledger(ledger, cfg.vault_dir, settings, now=now_dt(), progress=_Progress()):
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
    """A line on stderr at most every 2 s, only once a check runs long."""

    def __init__(self):
        self.start = self.last = time.monotonic()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        t = time.monotonic()
        if t - self.last >= 2.0:
            self.last = t
            echo(f"audit: {done}" + (f"/{total}" if total else "") + f" {stage} checked", err=True)
