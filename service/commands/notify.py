"""`fapiao-agent notify test`: send a test message to [[notify]] entries."""

from __future__ import annotations

import socket

import click

from agent.notify.outbox import send_test
from service.context import actor, echo_json, fail, load, now_dt, open_ledger
from service.display import local_time
from service.textsafe import echo


def _events_help() -> str:
    # Written from EVENTS (agent/notify/events.py: no imports), so the list
    # a person reads is the one the config checks.
    from agent.notify.events import EVENTS, FAULT_EVENTS

    import textwrap

    def listed(events) -> str:   # never cut at a hyphen: `disk-full` is one name
        return "\n".join(textwrap.wrap(", ".join(events), 74, initial_indent="  ", subsequent_indent="  ",
                                        break_on_hyphens=False))

    return ("\b\nEvents an entry's `events` may list (default: all; docs/monitoring.md).\n"
            "Faults, told once when one opens and once when it is resolved:\n"
            f"{listed(e for e in EVENTS if e in FAULT_EVENTS)}\n"
            f"Others:\n{listed(e for e in EVENTS if e not in FAULT_EVENTS)}")


@click.group("notify", epilog=_events_help())
def command() -> None:
    """Notifications ([[notify]] entries: e-mail, WeCom, DingTalk, Feishu)."""


@command.command("test")
@click.option("--entry", "name", metavar="NAME", help="Only this [[notify]] entry (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry: name, ok, error.")
@click.pass_context
def test_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Send a test message now and say whether each channel took it (exit 1
    when one did not). Recorded in the ledger: `status` shows it.

    \b
    Examples:
      fapiao-agent notify test
      fapiao-agent notify test --entry wecom-finance"""
    cfg = load(ctx)
    entries = [e for e in cfg.notify if name is None or e["name"] == name]
    if not entries:
        fail(f"no [[notify]] entry named {name!r}" if name else "no [[notify]] entries in the config", code=2)
    with open_ledger(cfg) as ledger:
        results = send_test(ledger, entries, now=now_dt(), actor=actor(), host=socket.gethostname(),
                            time_text=local_time)
    for r in results:
        if as_json:
            echo_json(r)
        else:
            echo(f"{r['name']}: " + ("sent" if r["ok"] else f"FAILED: {r['error']}"))
    if not all(r["ok"] for r in results):
        raise SystemExit(1)
