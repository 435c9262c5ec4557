"""The moment and the two steps the intake tests share: take a file from a
watched folder, and read every captured document as the daemon's workers
would (in-process, OCR off). A test's Site sets `intake`, `watch`, `ledger`
and `vault`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agent.pipeline import process_captured
from agent.validate import ValidationSettings

TODAY = dt.date(2026, 12, 3)
NOW = "2026-12-03T10:00:00.000000Z"


class IntakeSite:
    """Base of the intake tests' Site: `take` and `read_all` on its parts."""

    def take(self, path: Path):
        """The daemon's intake of `path` from this site's watched folder."""
        return self.intake.take(path, self.watch, now=NOW, today=TODAY)

    def read_all(self) -> None:
        """Read and judge every captured document (no destinations)."""
        for doc_id in self.ledger.ids_in_state("captured"):
            process_captured(self.ledger, self.vault, doc_id, settings=ValidationSettings(max_age_days=100000),
                             destinations=[], today=TODAY, now=NOW, actor="t", ocr=False)
