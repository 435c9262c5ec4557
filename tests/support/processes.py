"""No process left behind: which processes this test run started and left running.

A run is marked with a token in the environment (`FAPIAO_TEST_RUN`), which
every process it starts inherits, however it is started and whoever adopts
it after its parent dies (a SIGKILLed daemon's forkserver and workers).
Leftovers are the processes, other than pytest itself and those alive
before the run, that descend from pytest, carry the token, or name this
run's temporary folder in their command line or working directory.
Processes of other test runs on the machine carry neither and are never
listed, let alone killed.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

TOKEN_ENV = "FAPIAO_TEST_RUN"
PROC = Path("/proc")
# multiprocessing's own helpers of the pytest process (a test used a
# forkserver pool in-process): they live as long as pytest and end with it.
_OWN_HELPERS = ("from multiprocessing.forkserver import main", "from multiprocessing.resource_tracker import main")


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    start: int          # clock ticks after boot: tells a reused pid apart
    state: str
    cmdline: str
    cwd: str
    environ: bytes

    def line(self) -> str:
        """pid, parent, working folder and command line, for a listing."""
        return f"pid {self.pid} (parent {self.ppid}, cwd {self.cwd or '?'}): {self.cmdline[:300]}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone meanwhile, or another user's
        return b""


def processes() -> dict[int, Proc]:
    """Every process of the machine that can be read now."""
    out = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read(entry / "stat").decode(errors="replace")
        if not stat:
            continue
        # "pid (comm) state ppid ..." where comm may hold spaces and parentheses
        rest = stat[stat.rfind(")") + 2:].split()
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        out[int(entry.name)] = Proc(
            pid=int(entry.name), ppid=int(rest[1]), start=int(rest[19]), state=rest[0],
            cmdline=_read(entry / "cmdline").replace(b"\0", b" ").decode(errors="replace").strip(),
            cwd=cwd, environ=_read(entry / "environ"))
    return out


class RunGuard:
    """Before the run: note the living processes and mark the environment.
    After it: `leftovers()` lists what the run left, `kill()` ends them."""

    def __init__(self, token: str | None = None):
        self.token = token or uuid.uuid4().hex
        self.me = os.getpid()
        self.before = {(p.pid, p.start) for p in processes().values()}
        os.environ[TOKEN_ENV] = self.token
        self.basetemp: Path | None = None

    def leftovers(self) -> list[Proc]:
        """Processes of this run still alive (zombies, already dead, excluded)."""
        procs = processes()
        children: dict[int, list[int]] = {}
        for p in procs.values():
            children.setdefault(p.ppid, []).append(p.pid)
        descendants, todo = set(), [self.me]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in descendants:
                    descendants.add(child)
                    todo.append(child)
        marker = f"{TOKEN_ENV}={self.token}".encode()
        tmp = str(self.basetemp) if self.basetemp else None
        out = []
        for p in procs.values():
            if p.pid == self.me or (p.pid, p.start) in self.before or p.state in ("Z", "X"):
                continue
            if p.ppid == self.me and any(h in p.cmdline for h in _OWN_HELPERS):
                continue
            if (p.pid in descendants or marker in p.environ.split(b"\0")
                    or (tmp and (tmp in p.cmdline or p.cwd == tmp or p.cwd.startswith(tmp + "/")))):
                out.append(p)
        return sorted(out, key=lambda p: p.pid)

    def wait_for_none(self, grace_s: float) -> list[Proc]:
        """The leftovers still there after up to `grace_s` seconds."""
        deadline = time.monotonic() + grace_s
        while True:
            left = self.leftovers()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.2)

    def kill(self, procs: list[Proc]) -> None:
        """SIGKILL these processes, each by pid, only if it is still the same process."""
        alive = processes()
        for p in procs:
            now = alive.get(p.pid)
            if now is not None and now.start == p.start:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def extraction_workers(daemon_pid: int) -> list[int]:
    """The daemon's extraction workers now: the children of its
    multiprocessing forkserver (service/workers.py)."""
    procs = processes()
    servers = {p.pid for p in procs.values()
               if p.ppid == daemon_pid and "from multiprocessing.forkserver import main" in p.cmdline}
    return sorted(p.pid for p in procs.values() if p.ppid in servers and p.state not in ("Z", "X"))
