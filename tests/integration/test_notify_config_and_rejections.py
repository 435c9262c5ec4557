"""Two things `status` showed and nobody was told of, now [[notify]] faults:
a config reload the daemon refused (`config-refused`: open while it runs
other bytes than the file, resolved once a reload is taken or the file is
put back) and a rejected invoice a destination still holds
(`rejected-at-destination`: resolved once `reconcile` finds it gone).

Each through the notify thread's own round (service/notify.py NotifyRunner:
status_report with the config the daemon runs, the outbox in a real ledger)
to a real robot on 127.0.0.1: told once, nothing while it stays, resolved
once."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading

import pytest
from prometheus_client import generate_latest

from agent.config import load_config
from agent.ledger import Ledger, utc
from agent.notify import open_faults
from service.config_state import RunningConfig, config_report
from service.display import local_time
from service.metrics import registry_for
from tests.integration.test_metrics import samples, value
from service.notify import NotifyRunner
from tests.integration.test_reject_delivered import remove_by_hand
from tests.support.judged import NUMBER, Site, invoice
from tests.support.notify_servers import RobotServer

WHO = "daemon:test"


def notify_entry(url: str, event: str) -> str:
    return (f'\n[[notify]]\nname = "wx"\nurl = "{url}"\npreset = "wecom"\nevents = ["{event}"]\n'
            "timeout_s = 2.0\nresolve_after_minutes = 0\n")


def told(robot: RobotServer) -> list[str]:
    return [r["json"]["markdown"]["content"] for r in robot.requests]


def round_trip(runner: NotifyRunner, ledger: Ledger) -> int:
    """What the notify thread does at each check: the round, then the sends."""
    queued = runner.check(ledger, WHO)
    runner.send(ledger, WHO, random.Random(1))
    return queued


@pytest.fixture
def robot():
    with RobotServer() as server:
        yield server


def beat(ledger: Ledger, running: RunningConfig) -> None:
    # What Daemon._beat writes: this process stands in for the live daemon.
    ledger.beat(pid=os.getpid(), now=utc(dt.datetime.now(dt.timezone.utc)), activity="idle",
                details=json.dumps({"config": running.details()}))


def test_the_config_a_daemon_runs_sees_its_own_refused_reload(tmp_path):
    # The daemon's notify and metrics threads hold the config it runs: the
    # bytes it loaded. Compared with those, a refused reload never showed.
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[[watch]]\npath = "scan"\nkind = "scanner"\n',
                      encoding="utf-8")
    cfg = load_config(config)
    running = RunningConfig(cfg, at="2026-12-05T01:12:01Z")
    daemon = {"alive": True}
    assert config_report(cfg, daemon, {"config": running.details()})["reload_refused"] is False
    good = config.read_text()
    config.write_text(good + "[extract]\ntimeout_s = 30\n", encoding="utf-8")
    running.refused("no good", at="2026-12-05T02:00:00Z", path=config)
    report = config_report(cfg, daemon, json.loads(json.dumps({"config": running.details()})))
    assert report["file_changed"] is True and report["reload_refused"] is True
    config.write_text(good, encoding="utf-8")            # put back: nothing to say
    report = config_report(cfg, daemon, {"config": running.details()})
    assert report["file_changed"] is False and report["reload_refused"] is False
    config.unlink()                                      # gone: not what the daemon runs
    assert config_report(cfg, daemon, {"config": running.details()})["reload_refused"] is True


@pytest.mark.parametrize("put", ["fifo", "dev-zero", "folder", "too-large"])
def test_whatever_takes_the_config_s_place_never_hangs_the_check(tmp_path, put):
    # The notify and metrics threads compare the file with the heartbeat at
    # every check: a pipe in its place (read until a writer comes) or
    # /dev/zero (read for ever) hung them; now it is not what the daemon runs.
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[[watch]]\npath = "scan"\nkind = "scanner"\n',
                      encoding="utf-8")
    cfg = load_config(config)
    running = RunningConfig(cfg, at="2026-12-05T01:12:01Z")
    config.unlink()
    if put == "fifo":
        os.mkfifo(config)
    elif put == "dev-zero":
        config.symlink_to("/dev/zero")
    elif put == "folder":
        config.mkdir()
    else:
        config.write_bytes(b"#" * (2 * 1024 * 1024))
    got: list = []

    def check() -> None:  # what a reload refused, then a notify check, do with the file
        running.refused("no good", at="2026-12-05T02:00:00Z", path=config)
        got.append(config_report(cfg, {"alive": True}, {"config": running.details()}))

    checker = threading.Thread(target=check, daemon=True)
    checker.start()
    checker.join(10)
    assert not checker.is_alive(), f"config_report hung on a {put} in the config's place"
    assert got[0]["file_sha256"] is None
    assert got[0]["file_changed"] is True and got[0]["reload_refused"] is True


def test_a_refused_reload_is_told_once_and_resolved_when_the_file_is_put_back(tmp_path, robot):
    (tmp_path / "scan").mkdir()
    (tmp_path / "out").mkdir()
    config = tmp_path / "agent.toml"
    good = ('[agent]\nstate_dir = "state"\n[[watch]]\npath = "scan"\nkind = "scanner"\n'
            '[[destination]]\nname = "finance"\nurl = "folder://out"\n' + notify_entry(robot.url, "config-refused"))
    config.write_text(good, encoding="utf-8")
    config.chmod(0o600)                    # it holds the robot's key
    cfg = load_config(config)              # what the daemon runs, and its notify thread holds
    ledger = Ledger(cfg.ledger_path)
    try:
        running = RunningConfig(cfg, at="2026-12-05T01:12:01Z")
        runner = NotifyRunner(cfg, threading.Event())
        beat(ledger, running)
        assert round_trip(runner, ledger) == 0 and told(robot) == []

        # Edited, SIGHUP, refused: the daemon goes on with `cfg`. Its reason
        # holds the config's lines (a stranger may have written them).
        config.write_text(good.replace('state_dir = "state"', 'state_dir = "state2"'), encoding="utf-8")
        running.refused("state_dir: not the folder the daemon opened; restart for that\n"
                        "notify[0].name: `x` @all <b>", at="2026-12-05T02:40:17Z", path=config)
        beat(ledger, running)
        assert round_trip(runner, ledger) == 1
        [opened] = told(robot)
        assert f"config reload refused: `{config}`" in opened
        # When, in the local time the office reads (as `status` shows it).
        assert local_time("2026-12-05T02:40:17Z") in opened and local_time("2026-12-05T01:12:01Z") in opened
        # As code, on one line; a WeCom robot's markdown specials inside made inert.
        assert ("`state_dir: not the folder the daemon opened; restart for that; notify［0］.name: 'x' @all ＜b＞`"
                in opened), opened
        assert "配置重新加载被拒绝" in opened and "`fapiao-agent config check`" in opened
        for _ in range(3):                 # the loop goes on: nothing told twice
            assert round_trip(runner, ledger) == 0
        assert len(told(robot)) == 1
        # The daemon's metrics (its own config too) say it, and its health warns.
        registry = registry_for(cfg)
        assert refused_gauge(registry) == 1

        # The file put back as the daemon runs it: resolved, once.
        config.write_text(good, encoding="utf-8")
        assert round_trip(runner, ledger) == 1
        resolved = told(robot)[-1]
        assert "已恢复 RESOLVED" in resolved and "config reload refused" in resolved
        assert round_trip(runner, ledger) == 0 and len(told(robot)) == 2
        assert refused_gauge(registry) == 0
    finally:
        ledger.close()


def refused_gauge(registry) -> float:
    found = samples(generate_latest(registry).decode())
    assert value(found, "fapiao_health_level") == (1 if value(found, "fapiao_config_reload_refused") else 0)
    return value(found, "fapiao_config_reload_refused")


def test_a_reload_taken_after_one_refused_resolves_it_and_waiting_settings_are_no_fault(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[[watch]]\npath = "scan"\nkind = "scanner"\n',
                      encoding="utf-8")
    cfg = load_config(config)
    running = RunningConfig(cfg, at="2026-12-05T01:12:01Z")
    config.write_text(config.read_text() + "[extract]\ntimeout_s = 30\n", encoding="utf-8")
    running.refused("no good", at="2026-12-05T02:00:00Z", path=config)
    daemon = {"alive": True, "details": json.dumps({"config": running.details()})}

    def faults() -> dict:
        report = {"config": config_report(cfg, daemon, {"config": running.details()}), "daemon": daemon}
        return open_faults(report, {"events": ["config-refused"]}, now=dt.datetime.now(dt.timezone.utc))

    assert list(faults()) == ["config-refused"]
    # Taken: only a restart-only setting waits, which `status --check` warns of; no alert.
    assert running.applied(load_config(config), at="2026-12-05T02:05:00Z") == ["extract.timeout_s: 60.0 → 30.0"]
    assert faults() == {}


def test_a_rejected_invoice_at_a_destination_is_told_once_and_resolved_once_reconciled(tmp_path, robot):
    (tmp_path / "import").mkdir()
    site = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
    try:
        site.config_path.write_text(site.config_path.read_text() + notify_entry(robot.url, "rejected-at-destination"))
        runner = NotifyRunner(load_config(site.config_path), threading.Event())
        doc = site.add(invoice(dt.date.today()), "first")
        site.deliver()
        assert site.cli("requeue", str(doc)).exit_code == 0
        assert round_trip(runner, site.ledger) == 0
        done = site.cli("reject", str(doc), "--reason", "paper copy booked", "--yes", "--acknowledge-delivered")
        assert done.exit_code == 0, done.output

        assert round_trip(runner, site.ledger) == 1
        [opened] = told(robot)
        assert "1 rejected invoice(s) still at a destination" in opened and "1 张已驳回的发票仍在投递目标" in opened
        assert f"#{doc} `inbox` (delivered under key `{NUMBER}`)" in opened, opened
        assert "Remove each there by hand, then run `fapiao-agent reconcile`" in opened
        for _ in range(3):
            assert round_trip(runner, site.ledger) == 0
        assert len(told(robot)) == 1
        registry = registry_for(site.cfg)
        assert value(samples(generate_latest(registry).decode()), "fapiao_rejected_at_destination") == 1

        remove_by_hand(tmp_path / "import")
        assert site.cli("reconcile").exit_code == 0
        assert round_trip(runner, site.ledger) == 1
        assert "已恢复 RESOLVED" in told(robot)[-1] and "rejected invoice(s)" in told(robot)[-1]
        assert round_trip(runner, site.ledger) == 0 and len(told(robot)) == 2
        assert value(samples(generate_latest(registry).decode()), "fapiao_rejected_at_destination") == 0
    finally:
        site.close()


def test_the_rejected_fault_names_the_first_few_and_counts_the_rest():
    there = {"count": 7, "documents": [
        {"document_id": i, "at": [{"destination": "erp", "state": "delivering", "key": f"k{i}`@all"},
                                  {"destination": "nas", "state": "superseded", "key": "old"}]} for i in range(1, 8)]}
    faults = open_faults({"rejected_there": there}, {"events": ["rejected-at-destination"]},
                         now=dt.datetime.now(dt.timezone.utc))
    fault = faults["rejected-at-destination"]
    assert fault.subject == "7 张已驳回的发票仍在投递目标 / 7 rejected invoice(s) still at a destination"
    assert "#1 `erp` (a put in flight, maybe under key `k1'@all`), `nas` (under its old key `old`)" in fault.text
    assert "#5 " in fault.text and "#6 " not in fault.text and "; and 2 more (`fapiao-agent status`)" in fault.text
    # None rejected, or an entry that does not ask: nothing.
    assert open_faults({"rejected_there": {"count": 0, "documents": []}}, {"events": ["rejected-at-destination"]},
                       now=dt.datetime.now(dt.timezone.utc)) == {}
    assert open_faults({"rejected_there": there}, {"events": ["config-refused"]},
                       now=dt.datetime.now(dt.timezone.utc)) == {}
