"""Judging a reader against expected fields, shared by the accuracy test and the bench."""

from __future__ import annotations

from agent.model import FIELD_NAMES, Invoice

EXPECTED_KEYS = ("is_invoice",) + FIELD_NAMES


def mismatches(expected: dict | list[dict] | tuple[dict, ...], invoices: list[Invoice]) -> list[str]:
    """Every way `invoices` (what a reader returned for one file) differs from
    `expected`, one line each; empty when every non-null expected field was
    extracted exactly. `expected` is one record's fields, or a list of them
    for a file holding several invoices (a record per page, in order); the
    file must give exactly that many records."""
    records = [expected] if isinstance(expected, dict) else list(expected)
    if len(invoices) != len(records):
        return [f"expected {len(records)} record(s), got {len(invoices)}"]
    out = []
    for n, (want_fields, invoice) in enumerate(zip(records, invoices), 1):
        got = invoice.to_dict()
        where = f"page {n} " if len(records) > 1 else ""
        for key in EXPECTED_KEYS:
            want = want_fields.get(key)
            if want is not None and got.get(key) != want:
                out.append(f"{where}{key}: expected {want!r}, got {got.get(key)!r}")
    return out


def field_counts(expected: dict | list[dict] | tuple[dict, ...], invoices: list[Invoice]) -> tuple[int, int]:
    """(fields right, fields checked) over the non-null expected fields."""
    records = [expected] if isinstance(expected, dict) else list(expected)
    checked = sum(1 for r in records for k in EXPECTED_KEYS if r.get(k) is not None)
    if len(invoices) != len(records):
        return 0, checked
    return checked - len(mismatches(records, invoices)), checked
