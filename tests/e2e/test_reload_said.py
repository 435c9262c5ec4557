"""What a reload did is said where operators look, not only in the log.

A refused reload (here: every [[watch]] dropped, then a file that is not
TOML) keeps the daemon on its old config: `status` says so with the
reason, `status --check` warns, `--json` has it under `config`. A reload
that is taken applies what it can (max_file_mb, rescan_interval_s: they
were kept from the start) and names, in a warning and in `status`, the
settings that wait for a restart; before, it said "config reloaded"."""

from __future__ import annotations

import json
import signal

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.cli import run


def reload(d: DaemonUnderTest, expect: str) -> str:
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    line = d.wait_for_line("config reload", start=mark)
    assert expect in line, line
    return line


def status(d: DaemonUnderTest) -> dict:
    r = run(d.config, "status", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def fresh_status(d: DaemonUnderTest, since: str) -> dict:
    # The heartbeat after the reload (it beats at once after one).
    def beat():
        report = status(d)
        return report if report["daemon"]["at"] > since else None
    return d.wait_until(beat, 10, "a heartbeat after the reload")


def test_a_refused_reload_is_said_by_status_and_check_until_a_reload_is_taken(tmp_path):
    d = DaemonUnderTest(tmp_path)
    good = d.config.read_text()
    d.start()
    try:
        loaded = d.wait_until(lambda: (r := status(d))["config"] and r, 10, "this run's heartbeat")
        assert loaded["config"]["file_changed"] is False and loaded["config"]["reload"] is None
        assert not [r for r in loaded["health"]["reasons"] if "config" in r["text"]]

        # Valid TOML the daemon refuses: its reload is refused, the status
        # reading the file knows nothing else without the heartbeat.
        d.config.write_text(good[:good.index("[[watch]]")])
        at = status(d)["daemon"]["at"]
        reload(d, "config reload failed; keeping the old config")
        report = fresh_status(d, at)
        config = report["config"]
        assert config["file_changed"] is True and config["reload_refused"] is True
        assert "no [[watch]] folder" in config["reload"]["reason"]
        assert config["loaded_at"] == loaded["config"]["loaded_at"]
        text = run(d.config, "status").stdout
        assert "was REFUSED: the new config has no [[watch]] folder" in text, text
        check = run(d.config, "status", "--check")
        assert check.exit_code == 1 and "its reload at" in check.stdout and "was refused" in check.stdout, \
            check.stdout

        # Not TOML: the command cannot read it, and says the daemon goes on.
        d.config.write_text(good + "\n[[destination]\nname = \n")
        reload(d, "config reload failed; keeping the old config")
        r = run(d.config, "status")
        assert r.exit_code == 2
        assert "not valid TOML" in r.stderr and "a daemon is running from a config in" in r.stderr, r.stderr
        check = run(d.config, "status", "--check")
        assert check.exit_code == 3 and "not valid TOML" in check.stdout

        # The file back as it was: nothing to say, nothing to warn of.
        d.config.write_text(good)
        at = status(d)["daemon"]["at"]
        reload(d, "config reloaded")
        config = fresh_status(d, at)["config"]
        assert config["file_changed"] is False and config["reload_refused"] is False
        assert config["reload"]["outcome"] == "applied"
        assert run(d.config, "status", "--check").exit_code == 0
        assert "config:" not in run(d.config, "status").stdout
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_reload_applies_intake_limits_and_the_rescan_and_names_what_waits_for_a_restart(tmp_path):
    d = DaemonUnderTest(tmp_path)
    small = d.config.read_text().replace("rescan_interval_s = 300", "rescan_interval_s = 300\nmax_file_mb = 1")
    d.config.write_text(small)
    big = b"%PDF-1.4\n%" + b"x" * (2 * 1024 * 1024) + b"\n%%EOF\n"
    d.start()
    try:
        (d.root / "scan" / "big.pdf").write_bytes(big)
        d.wait_until(lambda: status(d)["refused"]["count"] == 1, 20, "big.pdf refused at 1 MB")

        d.config.write_text(small.replace("max_file_mb = 1", "max_file_mb = 5").replace(
            "rescan_interval_s = 300", "rescan_interval_s = 1") + "\n[extract]\ntimeout_s = 30\nocr_workers = 1\n")
        at = status(d)["daemon"]["at"]
        line = reload(d, "config reloaded in part: these settings take effect only at a restart")
        assert "level=warning" in line and "extract.timeout_s: 60.0 → 30.0" in line, line
        mark = len(d.lines)
        d.wait_for_line("msg=rescan", timeout=10, start=mark)   # every second now, not every 300 s

        (d.root / "scan" / "big.pdf").write_bytes(big + b"\n")   # written again: taken at 5 MB
        docs = d.wait_documents(1, timeout=30)
        assert docs[0].original_name == "big.pdf"

        report = fresh_status(d, at)
        assert report["config"]["restart_needed"] == ["extract.timeout_s: 60.0 → 30.0"]
        assert "these settings take effect only at a restart: extract.timeout_s" in run(d.config, "status").stdout
        check = run(d.config, "status", "--check")
        assert check.exit_code == 1 and "take effect only at a restart" in check.stdout, check.stdout

        # A restart takes them: nothing waits any more.
        assert d.stop() == 0
        d.start()
        config = d.wait_until(lambda: status(d)["config"], 10, "this run's heartbeat")
        assert config["restart_needed"] == [] and config["reload"] is None
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)
