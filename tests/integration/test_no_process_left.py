"""The session check of tests/conftest.py: a test run that leaves a process
running fails, lists it and ends it; a run that cleans up passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


def inner_run(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    """A pytest run of one test with `body`, under the project's conftest hooks."""
    (tmp_path / "test_inner.py").write_text("import os, subprocess, time\n\n\ndef test_inner():\n" + body,
                                            encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAPIAO_LEFTOVER_GRACE_S": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           *args, "test_inner.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_leaked_child_fails_the_run_is_listed_and_killed(tmp_path):
    r = inner_run(tmp_path, "    subprocess.Popen(['sleep', '307'])\n")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed" in r.stdout  # the test itself passed: the leak alone fails the run
    assert "processes left behind" in r.stdout
    [pid] = [int(m) for m in re.findall(r"pid (\d+) \(parent \d+, cwd [^)]*\): sleep 307", r.stdout)]
    assert not _alive(pid)


def test_an_orphan_adopted_by_init_is_found_too(tmp_path):
    # sh exits at once; its background sleep is reparented and is no
    # descendant of pytest any more, like a SIGKILLed daemon's workers.
    r = inner_run(tmp_path, "    subprocess.run(['sh', '-c', 'cd / && sleep 308 >/dev/null 2>&1 &'])\n")
    assert r.returncode == 1, r.stdout + r.stderr
    [pid] = [int(m) for m in re.findall(r"pid (\d+) \(parent \d+, cwd /\): sleep 308", r.stdout)]
    assert not _alive(pid)


def test_a_run_that_ends_its_processes_passes(tmp_path):
    r = inner_run(tmp_path, "    p = subprocess.Popen(['sleep', '309'])\n    p.kill()\n    p.wait()\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "processes left behind" not in r.stdout


# `make test` runs under pytest-xdist: each worker checks its own processes
# and the controller fails the run for them.
def test_a_child_leaked_in_an_xdist_worker_fails_the_run_is_listed_and_killed(tmp_path):
    pytest.importorskip("xdist")  # in the test extra; an older shared venv may lack it
    r = inner_run(tmp_path, "    subprocess.Popen(['sleep', '310'])\n", "-n", "2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed" in r.stdout
    assert "processes left behind" in r.stdout
    [pid] = [int(m) for m in re.findall(r"gw\d: pid (\d+) \(parent \d+, cwd [^)]*\): sleep 310", r.stdout)]
    assert not _alive(pid)


def test_an_xdist_worker_never_takes_the_other_workers_processes_for_its_own(tmp_path):
    pytest.importorskip("xdist")
    # Every worker runs the test (--dist each); gw0 still holds its sleep when
    # gw1 has finished and checked: gw1 must neither list nor kill it.
    body = ("    p = subprocess.Popen(['sleep', '311'])\n"
            "    time.sleep(4 if os.environ['PYTEST_XDIST_WORKER'] == 'gw0' else 0)\n"
            "    assert p.poll() is None, 'killed by the other worker'\n"
            "    p.kill()\n    p.wait()\n")
    r = inner_run(tmp_path, body, "-n", "2", "--dist", "each")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout
    assert "processes left behind" not in r.stdout
