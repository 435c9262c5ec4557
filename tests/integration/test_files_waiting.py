"""A file in a watched folder that never settles (its writer grows or
touches it forever) is never captured; it must not wait out of sight. The
watcher's account of it (`FolderWatcher.waits`, real files, a clock moved
by hand) goes into the heartbeat as the daemon writes it, and from there:
a `waiting:` line of `status` from 5 min on, a WARNING of `status --check`
and an `intake-stuck` alert from 30 min on, a resolved message once it is
taken. Names are a stranger's text: non-UTF-8 bytes and a newline included."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from agent.config import load_config
from agent.ledger import Ledger, utc
from agent.notify import open_faults, open_notifier, run_round, send_due
from service.commands.status import status_report
from service.watch import FolderWatcher
from tests.support.notify_servers import RobotServer

T0 = dt.datetime.now(dt.timezone.utc)
ACTOR = "daemon:test"


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def write_config(root: Path, robot_url: str) -> Path:
    (root / "scan").mkdir()
    (root / "out").mkdir()
    path = root / "agent.toml"
    path.write_text(f"""
[agent]
state_dir = "state"

[[watch]]
path = "scan"
kind = "scanner"
settle_seconds = 2

[[destination]]
name = "finance"
url = "folder://out"

[[notify]]
name = "wx"
url = "{robot_url}"
preset = "wecom"
events = ["intake-stuck"]
timeout_s = 2.0
resolve_after_minutes = 0
""", encoding="utf-8")
    path.chmod(0o600)   # it holds the robot's key
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)


def beat(ledger: Ledger, watcher: FolderWatcher) -> None:
    # What Daemon._beat writes of the watcher, now (the watcher's own clock
    # is moved by hand; the heartbeat must be fresh, however slow the run).
    ledger.beat(pid=os.getpid(), now=utc(dt.datetime.now(dt.timezone.utc)), activity="working",
                details=json.dumps(watcher.waits()))


def alert_round(ledger: Ledger, cfg, at: dt.datetime) -> None:
    report = status_report(ledger, cfg)
    for e in cfg.notify:
        run_round(ledger, e, open_faults(report, e, now=at), now=at, actor=ACTOR)
    send_due(ledger, {e["name"]: (open_notifier(e), e) for e in cfg.notify}, now=at, actor=ACTOR)


def test_a_file_being_written_forever_is_named_warned_of_and_alerted_until_taken(tmp_path):
    with RobotServer() as robot:
        config = write_config(tmp_path, robot.url)
        cfg = load_config(str(config))
        clock = Clock()
        watcher = FolderWatcher(cfg.watches, wake=lambda: None, clock=clock)
        scan = cfg.watches[0].path
        growing = Path(os.fsdecode(bytes(scan) + b"/log\xff\nfake.pdf"))
        growing.write_bytes(b"%PDF-1.4\n")
        watcher.note(growing)
        ledger = Ledger(cfg.ledger_path)

        def grow_until(t: float) -> None:
            while clock.t < t:
                clock.t += 10.0
                with open(growing, "ab") as out:
                    out.write(b"more\n")
                os.utime(growing, ns=(int(clock.t * 1e9), int(clock.t * 1e9)))
                assert watcher.ready() == []        # never settles, so never taken

        # Four minutes in: nothing said yet (a scan may take a while).
        grow_until(240.0)
        beat(ledger, watcher)
        r = cli(config, "status")
        assert r.returncode == 0, r.stderr
        assert "waiting:" not in r.stdout

        # Six minutes in: `status` names it, escaped, with why; no WARNING yet.
        grow_until(360.0)
        beat(ledger, watcher)
        r = cli(config, "status")
        line = next(x for x in r.stdout.splitlines() if x.startswith("waiting:"))
        assert "log\\xff\\nfake.pdf: still being written or changed (last changed 0 s ago): taken once unchanged for 2 s; " \
               "first seen 6 min ago" in line, r.stdout
        assert cli(config, "status", "--check").returncode == 0
        details = json.loads(json.loads(cli(config, "status", "--json").stdout)["daemon"]["details"])
        assert details["files_waiting_count"] == 1 and details["files_waiting_oldest_s"] == 360
        assert list(details["files_waiting"]) == [str(growing)]
        alert_round(ledger, cfg, T0 + dt.timedelta(minutes=2))
        assert robot.requests == []

        # Half an hour in: a WARNING, and one alert naming the file.
        grow_until(1810.0)
        beat(ledger, watcher)
        check = cli(config, "status", "--check")
        assert check.returncode == 1, check.stdout
        assert check.stdout.startswith("WARNING: 1 file in a watched folder not taken (") and \
            "log\\xff\\nfake.pdf: still being written or changed (last changed 0 s ago): taken once unchanged for 2 s; first " \
            "seen 30 min ago)" in check.stdout, check.stdout
        alert_round(ledger, cfg, T0 + dt.timedelta(minutes=26))
        alert_round(ledger, cfg, T0 + dt.timedelta(minutes=27))   # still open: no second message
        (opened,) = [r["json"]["markdown"]["content"] for r in robot.requests]
        assert opened.startswith("## [fapiao-agent] 1 个文件迟迟未收取 / 1 file(s) not taken\n"), opened
        assert "not taken for over 30 min (oldest: `" in opened and "log\\xff\\nfake.pdf`: `still being written" in opened

        # The writer stops: the file settles and is taken; the alert is resolved.
        clock.t += 3.0
        assert watcher.ready() == [growing]
        watcher.done(growing)
        beat(ledger, watcher)
        assert "waiting:" not in cli(config, "status").stdout
        assert cli(config, "status", "--check").returncode == 0
        alert_round(ledger, cfg, T0 + dt.timedelta(minutes=28))
        assert len(robot.requests) == 2
        assert robot.requests[1]["json"]["markdown"]["content"].startswith(
            "## [fapiao-agent] 已恢复 RESOLVED: 1 个文件迟迟未收取 / 1 file(s) not taken")
        ledger.close()


def test_every_way_intake_can_be_stuck_is_its_own_alert():
    details = {"intake_paused": "the vault cannot take files: No space left on device",
               "folders_not_watched": {"/srv/mail\udce4": "the folder is gone"},
               "folders_unreadable": {f"/srv/scan/d{i}": "Permission denied" for i in range(19)}
               | {"/srv/scan/x\n## RESOLVED <@all> [pay](http://evil.example)": "Permission denied"},
               "folders_unreadable_count": 25,
               "files_waiting": {"/srv/scan/big.pdf": "still being written or changed"}, "files_waiting_count": 2,
               "files_waiting_oldest_s": 1700,
               "files_held": {"/srv/scan/**urgent**.pdf": "cannot be read just now: locked"}, "files_held_count": 2,
               "files_held_oldest_s": 2000, "files_stuck_count": 3, "files_stuck_oldest_s": 2000}
    report = {"daemon": {"details": json.dumps(details)}}
    faults = open_faults(report, {"events": ["intake-stuck"]}, now=T0)
    # A non-UTF-8 byte is \xNN in the key the ledger keeps; 25 unreadable
    # folders are one message, not 25 (a robot takes 20 a minute).
    assert sorted(faults) == ["intake-stuck:folder:/srv/mail\\xe4", "intake-stuck:paused",
                              "intake-stuck:unreadable", "intake-stuck:waiting"]
    unreadable = faults["intake-stuck:unreadable"]
    assert unreadable.subject == "25 个文件夹无法读取 / 25 folder(s) cannot be read"
    assert "`/srv/scan/d0`: `Permission denied`; `/srv/scan/d1`" in unreadable.text
    assert "; and 20 more (`fapiao-agent status`)" in unreadable.text
    # The oldest stuck file is named (a held one here), the count is both kinds', in a code span.
    waiting = faults["intake-stuck:waiting"]
    assert "3 file(s) in a watched folder not taken for over 33 min (oldest: `/srv/scan/**urgent**.pdf`: `cannot " \
           "be read just now: locked`)" in waiting.text, waiting.text
    for fault in faults.values():
        fault.key.encode("utf-8")   # storable as it is
        assert "\n## RESOLVED" not in fault.text + fault.subject
    # Below 30 min, or for an entry that does not ask for it: nothing.
    del details["files_stuck_count"], details["files_stuck_oldest_s"]
    report = {"daemon": {"details": json.dumps(details)}}
    assert "intake-stuck:waiting" not in open_faults(report, {"events": ["intake-stuck"]}, now=T0)
    assert open_faults(report, {"events": ["disk-full"]}, now=T0) == {}
