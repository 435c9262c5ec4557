"""`fapiao-agent check FILE...`: extract and validate, without the ledger.

Ops use it to answer "why was this invoice rejected?": it applies the same
rules, with the same config, as the daemon, and prints every reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from typing import Any

import click


from agent.config import find_config_path
from agent.config_file import NoConfigFound
from agent.errors import ConfigError
from agent.model import FIELD_NAMES
from agent.validate import RULES, ValidationSettings, has_errors, validate
from service.textsafe import echo, json_text


def _settings(ctx: click.Context) -> tuple[ValidationSettings, bool]:
    # The validation rules and whether OCR reads scans, as the daemon would.
    # An explicit --config must load; without one, a config found on the
    # search path is used and its absence means defaults.
    from service.context import load, validation_settings

    explicit = ctx.obj.get("config_path") if ctx.obj else None
    if explicit is None:
        try:
            find_config_path(None)
        except NoConfigFound:
            return ValidationSettings(), True
        except ConfigError:
            pass   # one there but unreadable or refused: an error (load says it), never the defaults
    cfg = load(ctx)
    # [extract] ocr = "off": the daemon never reads a scan by OCR, so neither
    # does this, or a scan it would quarantine would be called VALID here.
    return validation_settings(cfg), cfg.ocr


def _print_human(file: str, index: int, rec: dict[str, Any]) -> None:
    head = f"== {file}" + (f" [{index}]" if index > 1 or rec.get("page") else "")
    if rec.get("page"):
        head += f" page {rec['page']}"
    if not rec["is_invoice"]:
        echo(f"{head}: NOT AN INVOICE: {rec.get('not_invoice_reason') or 'no reason given'}")
        return
    problems = rec["problems"]
    verdict = ("QUARANTINE" if any(p["severity"] == "error" for p in problems)
               else "VALID" + (" with warnings" if problems else ""))
    echo(f"{head}: {verdict}")
    for name in FIELD_NAMES:
        if rec.get(name) is not None:
            echo(f"    {name:<15} {rec[name]}  [{rec['sources'].get(name, '?')}]")
    if rec.get("region"):
        echo(f"    {'region':<15} {' '.join(rec['region'])}")
    for p in problems:
        where = f" ({p['field']})" if p.get("field") else ""
        echo(f"  {p['severity'].upper():<7} {p['code']}{where}: {p['message']}")
        if p.get("message_zh"):
            echo(f"          {p['message_zh']}")


def _rules_help() -> str:
    return "\n".join(f"  {r.code:<22} {r.severity:<8} {r.description}" for r in RULES.values())


@click.command("check", epilog="\b\nRules (code, default severity, what it checks):\n" + _rules_help())
@click.argument("files", nargs=-1, required=True, metavar="FILE...", type=click.Path())
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per invoice per line: the `extract --json` object with "
                   "`problems` filled ({code, severity, field, message, message_zh}).")
@click.option("--max-age-days", type=click.IntRange(min=1), default=None,
              help="Override validation.max_age_days (invoices older than this are `expired`).")
@click.option("--today", "today_", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Judge as of this date (YYYY-MM-DD) instead of today in China; for reproducible checks.")
@click.pass_context
def command(ctx: click.Context, files: tuple[str, ...], as_json: bool, max_age_days: int | None,
            today_: dt.datetime | None) -> None:
    """Extract and validate invoice FILEs without touching the ledger.

    Prints each invoice's fields and every problem found, each with its
    rule code, severity and message in English and Chinese. Settings come
    from the config (--config, FAPIAO_AGENT_CONFIG or the search path) when
    there is one, else the defaults; with [extract] ocr = "off" scans are
    read as the daemon reads them, without OCR. The `duplicate` rule needs the ledger
    and is not applied here.

    Exit status: 0 when every invoice is valid (warnings allowed), 1 when an
    invoice has errors or a file cannot be read, 2 for a bad config.

    \b
    Examples:
      fapiao-agent check scan.pdf invoice.ofd
      fapiao-agent check --today 2025-12-01 --json inbox/*.pdf | jq '.problems[].code'
    """
    from agent.errors import ExtractError
    from agent.extract import extract_path
    from service.commands.extract import invoice_record
    from service.context import today as china_today

    settings, ocr = _settings(ctx)
    if max_age_days is not None:
        settings = dataclasses.replace(settings, max_age_days=max_age_days)
    today = today_.date() if today_ else china_today()
    bad = 0
    for file in files:
        try:
            invoices = extract_path(file, ocr=ocr)
        except ExtractError as e:
            bad += 1
            echo(f"{file}: FAILED {e.reason}: {e.message}", err=True)
            continue
        for index, invoice in enumerate(invoices, 1):
            invoice.problems = validate(invoice, settings, today=today)
            bad += has_errors(invoice.problems)
            rec = invoice_record(invoice, file)
            if as_json:
                click.echo(json_text(json.dumps(rec, ensure_ascii=False)))
            else:
                _print_human(file, index, rec)
    if bad:
        if not as_json:
            echo(f"{bad} invoice(s) or file(s) with errors", err=True)
        sys.exit(1)
