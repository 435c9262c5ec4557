"""A real daemon with a [[notify]] robot on 127.0.0.1: a backup target that
cannot be reached and a quarantined invoice each send exactly one message
(the target's while it stays down for many checks), and the target mended
sends one "resolved" message. A reload the daemon refuses (it goes on with
the config it had) is told once, and resolved once a reload is taken. The
ledger then passes `audit ledger`."""

from __future__ import annotations

import signal
import time

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.e2e.test_extract_limits import drop, good_invoice
from tests.support.audit import assert_ledger_sound
from tests.support.notify_servers import RobotServer

EXTRA = OUT_AND_NAS + """
[[notify]]
name = "wx"
url = "{url}"
preset = "wecom"
events = ["backup-failing", "quarantined"]
backup_failing_minutes = 0
resolve_after_minutes = 0
digest_minutes = 0.01
check_interval_s = 0.3
timeout_s = 2
"""


def test_a_daemon_sends_one_message_per_fault_and_one_when_it_is_resolved(tmp_path, samples_dir):
    (tmp_path / "out").mkdir()
    with RobotServer() as robot:
        d = DaemonUnderTest(tmp_path, extra=EXTRA.format(url=robot.url))   # no tmp_path/nas: unreachable
        d.config.chmod(0o600)                 # the webhook url is the robot's key
        d.start()
        try:
            # A new entry's digests start from the present: wait until its first round has run.
            def cursor_set():
                with d.ledger() as ledger:
                    return ledger.notify_cursor("wx")

            d.wait_until(cursor_set, 30, "the notify thread's first round")
            good = good_invoice(samples_dir, 7101)
            drop(tmp_path / "scan", "half.xml", good[: len(good) // 2])    # unreadable: quarantined

            def contents():
                return [r["json"]["markdown"]["content"] for r in robot.requests]

            d.wait_until(lambda: any("备份目标 `nas` 故障" in c for c in contents())
                         and any("half.xml" in c for c in contents()), 30, "both messages")
            time.sleep(1.0)                              # three more checks while the faults stay
            sent = contents()
            assert len([c for c in sent if "备份目标 `nas` 故障" in c]) == 1, sent
            (digest,) = [c for c in sent if "half.xml" in c]
            assert "1 张发票被隔离" in digest
            (tmp_path / "nas").mkdir()
            d.wait_until(lambda: any("已恢复 RESOLVED" in c and "nas" in c for c in contents()), 30, "resolved")
            assert len(contents()) == 3, contents()
        finally:
            d.stop()
    assert any("notification sent" in line for line in d.lines)
    assert_ledger_sound(d.config)


REFUSED = """
[[notify]]
name = "ops"
url = "{url}"
preset = "wecom"
events = ["config-refused"]
resolve_after_minutes = 0
check_interval_s = 0.3
timeout_s = 2
"""


def test_a_reload_the_daemon_refuses_is_told_and_resolved_once_a_reload_is_taken(tmp_path):
    with RobotServer() as robot:
        d = DaemonUnderTest(tmp_path, extra=REFUSED.format(url=robot.url))
        d.config.chmod(0o600)
        good = d.config.read_text()
        d.start()
        try:
            def contents():
                return [r["json"]["markdown"]["content"] for r in robot.requests]

            d.config.write_text(good.replace('state_dir = "state"', 'state_dir = "state2"'))
            mark = len(d.lines)
            d.signal(signal.SIGHUP)
            d.wait_for_line("config reload failed; keeping the old config", start=mark)
            d.wait_until(lambda: any("config reload refused" in c for c in contents()), 30, "the refusal told")
            time.sleep(1.0)                              # three more checks while it stays refused
            [told] = contents()
            assert str(d.config) in told and "not the folder the daemon opened" in told, told

            d.config.write_text(good)
            mark = len(d.lines)
            d.signal(signal.SIGHUP)
            d.wait_for_line("config reloaded", start=mark)
            d.wait_until(lambda: any("已恢复 RESOLVED" in c for c in contents()), 30, "resolved")
            assert len(contents()) == 2, contents()
            assert d.stop() == 0
        finally:
            d.stop()
    assert_ledger_sound(d.config)
