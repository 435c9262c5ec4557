"""What a validation check receives and returns: the invoice's values read
once (`Context`) and a `Finding`.

Apart from `rules` (the table of codes) so that a family of checks in its
own module (`totals`) and the table can both use them without a cycle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterator

from agent.model import FIELD_NAMES, MONEY_FIELDS, Invoice
from agent.validate.settings import ValidationSettings


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: the field it concerns and what to tell people."""

    field: str | None
    message: str
    message_zh: str


@dataclass(frozen=True)
class Context:
    """What a check may consult besides the invoice, and the invoice's values
    read once: `text` (stripped strings or None for every field), `money`
    (finite Decimal, None, or the raw text when unreadable) and `date`."""

    settings: ValidationSettings
    today: dt.date
    duplicate_of: int | None
    text: dict[str, str | None]
    money: dict[str, Decimal | None | str]
    date: dt.date | None
    # The invoice of document `duplicate_of` (the copy this one duplicates), when known.
    original: Invoice | None = None

    @classmethod
    def of(cls, inv: Invoice, settings: ValidationSettings, today: dt.date,
           duplicate_of: int | None = None, original: Invoice | None = None) -> "Context":
        """The context for judging `inv`."""
        return cls(settings, today, duplicate_of,
                   text={name: _text(inv.get(name)) for name in FIELD_NAMES},
                   money={name: _money(inv, name) for name in MONEY_FIELDS},
                   date=_date(inv), original=original)


Check = Callable[[Invoice, Context], Iterator[Finding]]


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip() or None


def decimal_or_none(value: Any) -> Decimal | None:
    """A finite Decimal, or None for absent and unreadable values alike."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        return None
    # Beyond 10^15 is no invoice amount, and arithmetic on it could overflow.
    return number if number.is_finite() and number.adjusted() < 16 else None


def _money(inv: Invoice, name: str) -> Decimal | None | str:
    # A finite Decimal, None when absent, or the raw text when it is not a number.
    value = inv.get(name)
    # 免税 invoices print the tax as ***: no tax, not an unreadable one.
    if value is None or isinstance(value, str) and not value.strip().strip("*"):
        return None
    number = decimal_or_none(value)
    return number if number is not None else str(value)


def _date(inv: Invoice) -> dt.date | None:
    value = inv.get("date")
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None
