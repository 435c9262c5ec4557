"""Judging a reader against expected fields, shared by the accuracy test and the bench."""

from __future__ import annotations

from agent.model import FIELD_NAMES, Invoice

EXPECTED_KEYS = ("is_invoice",) + FIELD_NAMES


def mismatches(expected: dict, invoices: list[Invoice]) -> list[str]:
    """Every way `invoices` (what a reader returned for one file) differs from
    `expected`, one line each; empty when every non-null expected field was
    extracted exactly. A file must give exactly one record."""
    if len(invoices) != 1:
        return [f"expected one record, got {len(invoices)}"]
    got = invoices[0].to_dict()
    out = []
    for key in EXPECTED_KEYS:
        want = expected.get(key)
        if want is not None and got.get(key) != want:
            out.append(f"{key}: expected {want!r}, got {got.get(key)!r}")
    return out


def field_counts(expected: dict, invoices: list[Invoice]) -> tuple[int, int]:
    """(fields right, fields checked) over the non-null expected fields."""
    checked = sum(1 for k in EXPECTED_KEYS if expected.get(k) is not None)
    if len(invoices) != 1:
        return 0, checked
    return checked - len(mismatches(expected, invoices)), checked
