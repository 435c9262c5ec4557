"""Fixtures shared by every test folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real e-invoices in ../shared/samples (read-only)."""
    if not SAMPLES.is_dir():
        pytest.fail(f"real samples missing at {SAMPLES}; they ship beside the repo in shared/")
    return SAMPLES


@pytest.fixture(scope="session")
def expected_fields(samples_dir: Path) -> dict:
    """expected.json: sample path -> true fields (null = unknown)."""
    return json.loads((samples_dir / "expected.json").read_text(encoding="utf-8"))
