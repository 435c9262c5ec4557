"""Run the rules over one invoice: the pure `extracted -> valid | quarantined` judgement."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from agent.model import Invoice, Problem
from agent.validate.context import Context
from agent.validate.rules import RULES
from agent.validate.settings import ValidationSettings


def validate(invoice: Invoice, settings: ValidationSettings, *, today: dt.date,
             duplicate_of: int | None = None, original: Invoice | None = None) -> list[Problem]:
    """Every problem with `invoice`, severities after `settings.rules`.

    Pure: reads no clock (`today` is given) and no ledger (`duplicate_of`
    is the id of an earlier document with the same invoice key, if any;
    `original` that document's invoice, which a copy must agree with).
    Problems already on the invoice are kept, except those of rules run
    here (recomputed, so an amended invoice loses its stale problems) and
    those of rules switched off; the result has no duplicates. Not-invoices
    get no rules. Raises nothing on any field values.
    """
    overrides = settings.rules
    ctx = Context.of(invoice, settings, today, duplicate_of, original)
    out: list[Problem] = []
    seen: set[tuple[str, str | None, str]] = set()

    def add(problem: Problem) -> None:
        key = (problem.code, problem.field, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)

    for p in invoice.problems:
        rule = RULES.get(p.code)
        if rule is not None and rule.check is not None:
            continue
        severity = overrides.get(p.code, p.severity)
        if severity != "off":
            add(p if severity == p.severity else
                Problem(p.code, severity, p.message, field=p.field, message_zh=p.message_zh))
    if not invoice.is_invoice:
        return out
    for rule in RULES.values():
        severity = overrides.get(rule.code, rule.severity)
        if rule.check is None or severity == "off":
            continue
        for f in rule.check(invoice, ctx):
            add(Problem(rule.code, severity, f.message, field=f.field, message_zh=f.message_zh))
    return out


def has_errors(problems: Iterable[Problem]) -> bool:
    """True when any problem has severity "error" (the invoice must be quarantined)."""
    return any(p.severity == "error" for p in problems)
