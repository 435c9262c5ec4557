"""Fixtures shared by every test folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.processes import RunGuard

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


# -- no process left behind -----------------------------------------------------------
# `make test` must end every process it starts: daemons, their forkserver and
# workers, weed, sleeps. The guard notes what lives before the run and marks
# the run's environment; at the end, whatever of this run is still alive after
# a grace period is listed, killed (by pid, only ours) and fails the session.
LEFTOVER_GRACE_S = float(os.environ.get("FAPIAO_LEFTOVER_GRACE_S", "5"))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_GUARD] = RunGuard()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    guard = session.config.stash.get(_GUARD, None)
    if guard is None:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    guard.basetemp = getattr(factory, "_basetemp", None)
    left = guard.wait_for_none(LEFTOVER_GRACE_S)
    if not left:
        return
    guard.kill(left)
    lines = [f"{len(left)} processes started by this test run were still running "
             f"{LEFTOVER_GRACE_S:g} s after it ended (now killed):"] + [f"  {p.line()}" for p in left]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "processes left behind", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


_GUARD = pytest.StashKey[RunGuard]()
