"""Backup rows: one per vault object and backup target."""

from __future__ import annotations


class BackupsMixin:
    """Part of `Ledger`: backup state per object per target."""
