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


# -- slow files first -------------------------------------------------------------------
# `make test` hands whole files to its two workers (--dist loadfile) in
# collection order (--no-loadscope-reorder; xdist's own reorder puts the files
# with the most tests first, which left a 2-minute OCR file to start last
# while the other worker sat idle). A file with a test marked `slow` goes
# first, so the long files run side by side from the start and the many
# short ones fill in around them: the run ends when both workers do.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: otherwise collection order


# -- no process left behind -----------------------------------------------------------
# `make test` must end every process it starts: daemons, their forkserver and
# workers, weed, sleeps. The guard notes what lives before the run and marks
# the run's environment; at the end, whatever of this run is still alive after
# a grace period is listed, killed (by pid, only ours) and fails the session.
#
# Under pytest-xdist (`make test` runs `-n 3`) each worker is a run of its own:
# its own token, its own basetemp, its own descendants, so one worker never
# lists (let alone kills) what the other is still running. A worker hands what
# it found to the controller in `workeroutput`, and the controller, which runs
# no test itself, lists and fails the session as a plain run does.
LEFTOVER_GRACE_S = float(os.environ.get("FAPIAO_LEFTOVER_GRACE_S", "5"))
_LEFTOVERS_KEY = "fapiao_leftovers"


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.get_plugin("dsession") is not None


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, OCR in each worker on one core, as the daemon's pool
    does (service/workers.py): `make test` runs two workers on two cores,
    and two OCR engines each spinning a thread on every core fight (0.53
    pages/s against 0.84 on one core each). What OCR reads is the same."""
    if hasattr(config, "workerinput"):
        from agent.extract.ocr import set_threads

        set_threads(1)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_xdist_controller(session.config):
        session.config.stash[_WORKER_LEFTOVERS] = []
        return
    session.config.stash[_GUARD] = RunGuard()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """In the xdist controller: keep what a finished worker left behind."""
    found = getattr(node, "workeroutput", {}).get(_LEFTOVERS_KEY) or []
    node.config.stash.setdefault(_WORKER_LEFTOVERS, []).extend(
        f"{node.gateway.id}: {line}" for line in found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_xdist_controller(config):
        lines = config.stash.get(_WORKER_LEFTOVERS, [])
        if lines:
            _fail_with(session, [f"{len(lines)} processes started by this test run's workers were still "
                                 f"running {LEFTOVER_GRACE_S:g} s after their tests ended (now killed):"]
                       + [f"  {line}" for line in lines])
        return
    guard = config.stash.get(_GUARD, None)
    if guard is None:
        return
    factory = getattr(config, "_tmp_path_factory", None)
    guard.basetemp = getattr(factory, "_basetemp", None)
    left = guard.wait_for_none(LEFTOVER_GRACE_S)
    if not left:
        return
    guard.kill(left)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports it
        workeroutput[_LEFTOVERS_KEY] = [p.line() for p in left]
        return
    _fail_with(session, [f"{len(left)} processes started by this test run were still running "
                         f"{LEFTOVER_GRACE_S:g} s after it ended (now killed):"] + [f"  {p.line()}" for p in left])


def _fail_with(session: pytest.Session, lines: list[str]) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "processes left behind", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


_GUARD = pytest.StashKey[RunGuard]()
_WORKER_LEFTOVERS = pytest.StashKey[list]()
