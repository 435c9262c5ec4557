"""Roles by Unix group with real accounts (issue 14): users and groups are
created here with useradd/groupadd, the real CLI runs as them through
setpriv, and everything is removed afterwards, also on failure."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.ledger import Ledger
from tests.e2e.daemon_harness import DaemonUnderTest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "samples"


def _samples(n: int) -> list[Path]:
    found = sorted(p for p in SAMPLES.glob("*/*") if p.suffix.lower() in (".pdf", ".ofd", ".xml"))
    if len(found) < n:
        pytest.skip(f"needs {n} real samples under {SAMPLES}")
    return found[:n]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("useradd", "groupadd", "userdel", "groupdel", "setpriv")),
    reason="creating real accounts needs root and useradd/groupadd/setpriv")


@dataclass
class Accounts:
    svc: str
    reader: str
    amender: str
    read_group: str
    amend_group: str
    approve_group: str

    def uid(self, user: str) -> int:
        import pwd
        return pwd.getpwnam(user).pw_uid

    def access_toml(self) -> str:
        return (f'[access]\nread_group = "{self.read_group}"\namend_group = "{self.amend_group}"\n'
                f'approve_group = "{self.approve_group}"\nservice_user = "{self.svc}"\n')


@pytest.fixture
def accounts():
    tag = secrets.token_hex(3)
    acc = Accounts(svc=f"fsvc{tag}", reader=f"frd{tag}", amender=f"famd{tag}",
                   read_group=f"fread{tag}", amend_group=f"famend{tag}", approve_group=f"fappr{tag}")
    groups = [acc.read_group, acc.amend_group, acc.approve_group]
    made_groups, made_users = [], []
    try:
        for g in groups:
            subprocess.run(["groupadd", g], check=True)
            made_groups.append(g)
        for user, extra in ((acc.svc, []), (acc.reader, ["-G", acc.read_group]),
                            (acc.amender, ["-G", f"{acc.read_group},{acc.amend_group}"])):
            subprocess.run(["useradd", "-M", "-N", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", *extra, user],
                           check=True)
            made_users.append(user)
        yield acc
    finally:
        for user in made_users:
            subprocess.run(["userdel", user], check=False)
        for g in made_groups:
            subprocess.run(["groupdel", g], check=False)


@pytest.fixture
def site(accounts):
    """A folder every test account can traverse; state owned by the service
    user and group-readable by the read group (setgid: new files keep it)."""
    root = Path(tempfile.mkdtemp(prefix="fapiao-access-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _make_state(state: Path, acc: Accounts) -> None:
    state.mkdir(exist_ok=True)
    shutil.chown(state, acc.svc, acc.read_group)
    state.chmod(0o2750)


def _config(site: Path, acc: Accounts) -> Path:
    (site / "drop").mkdir()
    for i, sample in enumerate(_samples(4)):
        shutil.copy(sample, site / "drop" / f"{i}{sample.suffix}")
        (site / "drop" / f"{i}{sample.suffix}").chmod(0o644)
    _make_state(site / "state", acc)
    cfg = site / "agent.toml"
    cfg.write_text('[agent]\nstate_dir = "state"\n[validation]\nmax_age_days = 100000\n' + acc.access_toml(),
                   encoding="utf-8")
    cfg.chmod(0o644)
    return cfg


def cli(user: str | None, cfg: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI, as `user` (None: as root), with a clean environment."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
            **(env or {})}
    cmd = [sys.executable, "-m", "service", "--config", str(cfg), *args]
    if user is not None:
        cmd = [*_as(user), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=base, cwd=cfg.parent, timeout=120)


def _as(user: str) -> list[str]:
    import pwd
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]


def _root_owned(state: Path) -> list[str]:
    return [str(p) for p in [state, *state.rglob("*")] if p.lstat().st_uid == 0]


def _actors(cfg: Path) -> list[str]:
    with Ledger(cfg.parent / "state" / "ledger.sqlite3", readonly=True) as ledger:
        return [r[0] for r in ledger.conn.execute("SELECT actor FROM events ORDER BY id")]


def test_root_ingest_runs_as_the_service_user_and_a_reader_reads_but_cannot_amend(site, accounts):
    cfg = _config(site, accounts)
    taken = cli(None, cfg, "ingest", str(site / "drop"))
    assert taken.returncode == 0, taken.stderr
    assert _root_owned(site / "state") == []          # root re-ran itself as the service user
    assert f"cli:root (sudo → {accounts.svc})" in _actors(cfg)

    for args in (["status"], ["status", "--json"], ["show", "1"], ["list"], ["quarantine"],
                 ["search", "--date", "..2100-01-01", "--json"]):
        r = cli(accounts.reader, cfg, *args)
        assert r.returncode == 0, (args, r.stderr)
    found = cli(accounts.reader, cfg, "search", ".", "--json")    # every file name holds a dot
    assert found.returncode == 0 and found.stdout.count("\n") == 4, (found.stdout, found.stderr)
    denied = cli(accounts.reader, cfg, "amend", "1", "--set", "date=2026-01-01", "--reason", "try")
    assert denied.returncode == 3
    assert denied.stderr.count("\n") == 1 and accounts.amend_group in denied.stderr, denied.stderr
    # Through sudo (the service user with SUDO_UID): the person is still checked.
    via_sudo = cli(accounts.svc, cfg, "amend", "1", "--set", "date=2026-01-01", "--reason", "try",
                   env={"SUDO_UID": str(accounts.uid(accounts.reader))})
    assert via_sudo.returncode == 3 and accounts.amend_group in via_sudo.stderr, via_sudo.stderr
    assert not any("amend" in a or "2026-01-01" in a for a in _actors(cfg))


def test_an_amender_is_sent_to_sudo_and_recorded_as_themselves_whatever_logname_says(site, accounts):
    cfg = _config(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    fake = {"LOGNAME": "财务总监", "USER": "财务总监"}
    direct = cli(accounts.amender, cfg, "amend", "1", "--set", "date=2026-01-01", "--reason", "scan", env=fake)
    assert direct.returncode == 3
    assert f"sudo -u {accounts.svc} fapiao-agent --config {cfg} amend 1" in direct.stderr, direct.stderr
    before = len(_actors(cfg))
    done = cli(accounts.svc, cfg, "amend", "1", "--set", "date=2026-01-01", "--reason", "scan",
               env={**fake, "SUDO_UID": str(accounts.uid(accounts.amender))})
    assert done.returncode in (0, 1), done.stderr   # 1: still quarantined for another reason
    new = _actors(cfg)[before:]
    assert new and set(new) == {f"cli:{accounts.amender} (sudo → {accounts.svc})"}
    assert _root_owned(site / "state") == []


def test_sudo_uid_counts_only_for_root_and_the_service_user(site, accounts):
    cfg = _config(site, accounts)
    probe = ("from service.access import identity; import sys; "
             f"print(identity({accounts.svc!r}).label())")
    def label(user):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SUDO_UID": "0", "LOGNAME": "boss", "USER": "boss"}
        return subprocess.run([*_as(user), sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                               check=True).stdout.strip()
    assert label(accounts.reader) == accounts.reader       # a person cannot claim to be behind sudo
    assert label(accounts.svc) == f"root (sudo → {accounts.svc})"


def test_a_read_command_never_creates_a_ledger(site, accounts):
    cfg = _config(site, accounts)
    for user in (accounts.reader, None):
        for args in (["status"], ["list"], ["show", "1"], ["quarantine"], ["audit", "ledger"], ["search", "x"]):
            r = cli(user, cfg, *args)
            assert r.returncode == 2, (user, args, r.stdout, r.stderr)
            assert r.stderr.count("\n") == 1 and "no ledger at" in r.stderr, r.stderr
    assert list((site / "state").iterdir()) == []


def test_root_amend_leaves_no_root_owned_files(site, accounts):
    cfg = _config(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    r = cli(None, cfg, "amend", "1", "--set", "date=2026-01-01", "--reason", "root at night")
    assert r.returncode in (0, 1), r.stderr
    assert _root_owned(site / "state") == []
    assert _actors(cfg)[-1] == f"cli:root (sudo → {accounts.svc})"


def test_a_reader_reads_while_a_real_daemon_writes(site, accounts):
    # The daemon runs as root here with no service user on record: this
    # sandbox lets a non-root process exec the venv's python only directly
    # (its multiprocessing workers could not start), so the WAL sharing is
    # what is tested: root's ledger, group-readable through the setgid folder.
    state = site / "state"
    state.mkdir()
    shutil.chown(state, "root", accounts.read_group)
    state.chmod(0o2750)
    daemon = DaemonUnderTest(site, extra=accounts.access_toml().replace(accounts.svc, "nosuchsvc"))
    for d in ("scan", "mail"):
        (site / d).chmod(0o755)
    daemon.config.chmod(0o644)
    daemon.start()
    try:
        reads = []
        for i, sample in enumerate(_samples(10)):
            target = site / "scan" / f"{i}{sample.suffix}"
            shutil.copy(sample, target)
            r = cli(accounts.reader, daemon.config, "status", "--json")
            reads.append((r.returncode, r.stderr))
        daemon.wait_until(lambda: _settled(daemon.config, 10), 90, "all samples read")
        assert all(code == 0 for code, _ in reads), reads
        listed = cli(accounts.reader, daemon.config, "list", "--json")
        assert listed.returncode == 0 and len(listed.stdout.splitlines()) >= 10, listed.stderr
    finally:
        assert daemon.stop() == 0
    # Stopped: the ledger's -wal/-shm are kept, so the reader still reads.
    assert (state / "ledger.sqlite3-shm").exists()
    after = cli(accounts.reader, daemon.config, "status")
    assert after.returncode == 0, after.stderr


def _settled(cfg: Path, n: int) -> bool:
    ledger_path = cfg.parent / "state" / "ledger.sqlite3"
    if not ledger_path.exists():
        return False
    with Ledger(ledger_path, readonly=True) as ledger:
        row = ledger.conn.execute("SELECT count(*), sum(state IN ('captured', 'extracting', 'extracted')) "
                                  "FROM documents").fetchone()
    return row[0] >= n and not row[1]


def test_under_sudo_a_config_of_ones_own_grants_nothing(site, accounts):
    # An amender's own config saying `approve_group = <amend group>` must not
    # make them an approver through `sudo -u <service>`.
    cfg = _config(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    own = site / "mine.toml"
    own.write_text(cfg.read_text(encoding="utf-8").replace(accounts.approve_group, accounts.amend_group),
                   encoding="utf-8")
    shutil.chown(own, accounts.amender)
    r = cli(accounts.svc, own, "accept", "1", "--reason", "self-granted",
            env={"SUDO_UID": str(accounts.uid(accounts.amender))})
    assert r.returncode == 3 and "owned by" in r.stderr, r.stderr
    ok_cfg = cli(accounts.svc, cfg, "accept", "1", "--reason", "self-granted",
                 env={"SUDO_UID": str(accounts.uid(accounts.amender))})
    assert ok_cfg.returncode == 3 and accounts.approve_group in ok_cfg.stderr, ok_cfg.stderr


def test_under_sudo_nothing_writes_where_its_caller_says_with_the_services_rights(site, accounts):
    # `sudo -u <service> fapiao-agent config init --force <ledger>` wrote a
    # TOML template over the live ledger; `report --out` wrote into a folder
    # only the service may write. Both now run only as the person.
    cfg = _config(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    ledger = site / "state" / "ledger.sqlite3"
    before = ledger.read_bytes()
    sudo = {"SUDO_UID": str(accounts.uid(accounts.amender))}
    wiped = cli(accounts.svc, cfg, "config", "init", "--force", str(ledger), env=sudo)
    assert wiped.returncode == 3 and "without sudo" in wiped.stderr, wiped.stderr
    assert ledger.read_bytes() == before
    report = cli(accounts.svc, cfg, "report", "--out", str(site / "state"), env=sudo)
    assert report.returncode == 3 and "without sudo" in report.stderr, report.stderr
    assert not list((site / "state").glob("fapiao-report-*"))
    # As themselves, a reader writes the report into a folder of their own.
    mine = site / "reports"
    mine.mkdir()
    shutil.chown(mine, accounts.reader)
    own = cli(accounts.reader, cfg, "report", "--out", str(mine))
    assert own.returncode == 0, own.stderr
    assert len(list(mine.glob("fapiao-report-*"))) == 2


def test_a_monitor_that_cannot_read_the_config_is_told_unknown(site, accounts):
    """docs/monitoring.md: status --check exits 3 with an `UNKNOWN:` line when
    the config cannot be read, never click's usage text and 2 (CRITICAL)."""
    cfg = site / "agent.toml"
    cfg.write_text('[agent]\nstate_dir = "state"\n' + accounts.access_toml(), encoding="utf-8")
    shutil.chown(cfg, accounts.svc, accounts.amend_group)   # the reader is not in amend_group
    cfg.chmod(0o640)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}

    def as_reader(*args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*_as(accounts.reader), sys.executable, "-m", "service", *args], capture_output=True,
                              text=True, env={**env, **(extra or {})}, cwd=site, timeout=120)

    for r in (as_reader("--config", str(cfg), "status", "--check"),
              as_reader("status", "--check", "--config", str(cfg)),
              as_reader("status", "--check", extra={"FAPIAO_AGENT_CONFIG": str(cfg)})):
        assert r.returncode == 3, (r.stdout, r.stderr)
        assert r.stdout.startswith(f"UNKNOWN: fapiao-agent status could not read its state: {cfg}: cannot read: "), r
        assert "Usage:" not in r.stderr
    for args in (["status"], ["list"], ["config", "check"]):
        r = as_reader("--config", str(cfg), *args)
        assert r.returncode == 2 and r.stderr == f"error: {cfg}: cannot read: Permission denied\n", (args, r.stderr)
