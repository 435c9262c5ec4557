"""The `daemon` fixture: a DaemonUnderTest in tmp_path, killed if a test
leaves it running."""

from __future__ import annotations

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest


@pytest.fixture
def daemon(tmp_path):
    d = DaemonUnderTest(tmp_path)
    yield d
    d.ensure_gone()
