"""The short crash torture (200 invoices, 10 SIGKILLs); bench/torture.py runs
the long one (1,000 invoices, 50 kills)."""

from __future__ import annotations

import pytest

from tests.e2e import torture
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

# Long (10 SIGKILLs, ~35 s): started first, so it never runs alone at the end (tests/conftest.py).
pytestmark = pytest.mark.slow


def test_no_invoice_lost_or_delivered_twice_across_10_sigkills(tmp_path, samples_dir, seaweed):  # noqa: F811
    result = torture.run(tmp_path, samples_dir, seaweed, invoices=200, kills=10, seed=7,
                         settle_timeout=300, log=lambda *_: None)
    assert result["delivered_once"] == result["server_keys"] >= 200
    assert result["kills"] == 10
