"""Issue 15's acceptance: a real daemon with metrics on, a local SMTP server
and a local WeCom-style robot. A backup target and a destination are broken,
invoices are quarantined and the SLA (18 s here) lapses. Then:
- the metrics show each fault;
- `status --check` exits 2 with the reasons;
- exactly one message per fault reached each channel, with the right content;
- everything recovers once the faults are removed (with one "resolved"
  message per fault), and the ledger passes `audit ledger`.
"""

from __future__ import annotations

import pytest

import time
import urllib.request
from collections import Counter

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.e2e.test_extract_limits import drop, good_invoice
from tests.e2e.test_metrics_daemon import get, values
from tests.e2e.test_status_check import FAST_FAULTS, cli
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer
from tests.support.notify_servers import RobotServer, SmtpSink, free_port

# Long (an 18 s SLA lapses and recovers, ~30 s): started first, so it never runs alone at the end (tests/conftest.py).
pytestmark = pytest.mark.slow

# FAST_FAULTS: the SLA is 18 s, near it after 40 % of that; the backup target
# is CRITICAL after 6 s without an answer. Every notify round is 0.3 s apart
# and a fault is "resolved" as soon as it is clear (resolve_after_minutes = 0).
EXTRA = FAST_FAULTS + """
[backup_policy]
probe_interval_s = 1
retry_max_s = 1

[metrics]
listen = "127.0.0.1:{metrics_port}"

[[destination]]
name = "erp"
url = "{erp_url}"
token = "the-agent-token-0123456789"
probe_interval_s = 1

[[backup]]
name = "nas"
url = "file://nas"

[[notify]]
name = "mail"
url = "mailto:finance@example.com"
host = "127.0.0.1"
port = {smtp_port}
sender = "fapiao-agent@example.com"
events = ["quarantined", "sla-at-risk", "sla-breached", "destination-paused", "backup-failing"]
{timing}

[[notify]]
name = "wx"
url = "{robot_url}"
preset = "wecom"
events = ["quarantined", "sla-at-risk", "sla-breached", "destination-paused", "backup-failing"]
{timing}
"""
TIMING = """backup_failing_minutes = 0
resolve_after_minutes = 0
digest_minutes = 0.01
check_interval_s = 0.3
timeout_s = 2"""

# Each fault's words in its message (Chinese first, as sent).
FAULT_WORDS = {
    "backup-failing": "备份目标 `nas` 故障",
    "destination-paused": "投递目标 `erp` 已暂停",
    "sla-at-risk": "张发票即将超时",
    "sla-breached": "超过 0.005 小时未送达",
}


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return values(r.read().decode())


def test_every_fault_is_measured_checked_told_once_and_recovers(tmp_path, samples_dir):
    metrics_port = free_port()
    with SmtpSink() as smtp, RobotServer() as robot, FaultyFinanceServer(token="another-token") as erp:
        d = DaemonUnderTest(tmp_path, extra=EXTRA.format(
            metrics_port=metrics_port, erp_url=erp.url, smtp_port=smtp.port, robot_url=robot.url, timing=TIMING))
        d.config.chmod(0o600)        # the robot's url and the destination's token are secrets
        d.start()                    # no tmp_path/nas: the backup disk is "not mounted"

        def robot_texts() -> list[str]:
            return [r["json"]["markdown"]["content"] for r in robot.requests]

        def mail_texts() -> list[str]:
            return [f"{m['message']['Subject']}\n{m['message'].get_body(('plain',)).get_content()}"
                    for m in smtp.messages]

        try:
            # A new entry's digests start from the present: wait for its first round.
            def cursors_set():
                with d.ledger() as ledger:
                    return all(ledger.notify_cursor(n) for n in ("mail", "wx"))

            d.wait_until(cursors_set, 30, "the notify thread's first round")
            good = good_invoice(samples_dir, 7301)
            drop(tmp_path / "scan", "good.xml", good)        # the destination refuses the token: paused
            drop(tmp_path / "scan", "half-1.xml", good[: len(good) // 2])   # unreadable: quarantined
            drop(tmp_path / "scan", "half-2.xml", good_invoice(samples_dir, 7302)[:300])

            # -- the metrics show each fault
            def faults_measured():
                m = scrape(metrics_port)
                late = sum(v for (name, _), v in m.items() if name == "fapiao_sla_past_invoices")
                return m if (get(m, "fapiao_destination_paused", destination="erp") == 1
                             and get(m, "fapiao_backup_unreachable", target="nas") == 1
                             and get(m, "fapiao_documents", state="quarantined") == 2
                             and late == 3 and get(m, "fapiao_health_level") == 2) else None

            m = d.wait_until(faults_measured, 90, "every fault in the metrics")
            assert get(m, "fapiao_documents", state="queued") == 1
            assert get(m, "fapiao_backup_unreachable_since_timestamp_seconds", target="nas") > 0

            # -- status --check: CRITICAL with each reason
            r = cli(d, "status", "--check")
            assert r.returncode == 2, r.stdout + r.stderr
            summary = r.stdout.splitlines()[0]
            assert summary.startswith("CRITICAL: "), summary
            for words in ("backup target nas unreachable for", "3 invoices past the 0.005 h SLA",
                          "destination erp paused"):
                assert words in r.stdout, r.stdout

            # -- exactly one message per fault on each channel, with its content
            def all_told():
                return all(any(w in t for t in texts) for texts in (robot_texts(), mail_texts())
                           for w in FAULT_WORDS.values()) and \
                    all(sum(t.count("half-") for t in texts) >= 2 for texts in (robot_texts(), mail_texts()))

            d.wait_until(all_told, 60, "a message for every fault on both channels")
            time.sleep(1.5)                         # five more rounds while every fault stays open
            for texts in (robot_texts(), mail_texts()):
                opened = Counter(w for t in texts for w in FAULT_WORDS.values() if w in t and "RESOLVED" not in t)
                assert opened == Counter(FAULT_WORDS.values()), texts
                # each quarantined file told once, in a digest that counts it
                told = Counter(name for t in texts for name in ("half-1.xml", "half-2.xml") if name in t)
                assert told == {"half-1.xml": 1, "half-2.xml": 1}, texts
                assert any("张发票被隔离" in t for t in texts), texts
            (mail,) = [m for m in smtp.messages if FAULT_WORDS["destination-paused"] in m["message"]["Subject"]]
            assert mail["to"] == ["finance@example.com"]
            body = mail["message"].get_body(("plain",)).get_content()
            assert "401" in body and "the-agent-token" not in body   # why it paused, never the secret

            # -- the faults removed: the disk mounted, the token accepted, the quarantined rejected
            (tmp_path / "nas").mkdir()
            erp.token = "the-agent-token-0123456789"
            for doc in d.documents():
                if doc.state == "quarantined":
                    rejected = cli(d, "reject", str(doc.id), "--reason", "half a file from a broken scanner",
                                   "--yes")
                    assert rejected.returncode == 0, rejected.stderr

            def recovered():
                m = scrape(metrics_port)
                late = sum(v for (name, _), v in m.items() if name == "fapiao_sla_past_invoices")
                return (get(m, "fapiao_destination_paused", destination="erp") == 0
                        and get(m, "fapiao_backup_unreachable", target="nas") == 0
                        and get(m, "fapiao_documents", state="delivered") == 1
                        and late == 0 and get(m, "fapiao_health_level") == 0)

            d.wait_until(recovered, 90, "every fault gone from the metrics")
            d.wait_until(lambda: cli(d, "status", "--check").returncode == 0, 30, "status --check OK")
            for texts in (robot_texts, mail_texts):
                d.wait_until(lambda: all(sum(1 for t in texts() if "RESOLVED" in t and w in t) == 1
                                         for w in FAULT_WORDS.values()), 30, "one resolved message per fault")
            assert list(erp.stats()["accepted"].values()) == [1]     # the invoice, once
        finally:
            d.stop()
    assert_ledger_sound(d.config)
