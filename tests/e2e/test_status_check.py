"""`status` and `status --check` on a real daemon with real faults: a backup
target never reached since start (its disk not mounted), an invoice
quarantined past the SLA (counted from arrival), the daemon stopped; then
the faults removed. The check follows the monitoring-plugin convention
(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

import email.message
import json
import os
import subprocess
import sys

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.e2e.test_extract_limits import drop, good_invoice
from tests.support.audit import assert_ledger_sound

# The SLA is 18 s here, near it after 40 % of that; the backup target is
# CRITICAL after 6 s without an answer, WARNING at once (also the monitoring
# acceptance test's timings).
FAST_FAULTS = """
[delivery]
reconcile_interval_s = 0
sla_hours = 0.005

[health]
sla_warn_fraction = 0.4
backup_unreachable_warn_minutes = 0
backup_unreachable_crit_minutes = 0.1
"""
EXTRA = FAST_FAULTS + OUT_AND_NAS


def cli(d: DaemonUnderTest, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), *args],
                          capture_output=True, text=True, timeout=60, cwd=d.root)


def status_json(d: DaemonUnderTest) -> dict:
    r = cli(d, "status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def mail_with(attachment: bytes) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "seller@example.cn", "发票", "<sla-test@example.cn>"
    msg.set_content("invoice attached")
    msg.add_attachment(attachment, maintype="application", subtype="xml", filename="mailed.xml")
    return msg.as_bytes()


def test_status_check_names_each_fault_and_recovers(tmp_path, samples_dir):
    (tmp_path / "out").mkdir()
    d = DaemonUnderTest(tmp_path, extra=EXTRA)   # no tmp_path/nas: the disk is "not mounted"
    d.start()
    try:
        good = good_invoice(samples_dir, 7001)
        drop(tmp_path / "scan", "good.xml", good)
        drop(tmp_path / "scan", "half.xml", good[: len(good) // 2])   # unreadable: quarantined
        drop(tmp_path / "mail", "mail.eml", mail_with(good_invoice(samples_dir, 7002)))

        def settled():
            docs = {doc.original_name: doc.state for doc in d.documents()}
            return docs if docs == {"good.xml": "delivered", "half.xml": "quarantined",
                                    "mailed.xml": "delivered"} else None

        d.wait_until(settled, 60, "two invoices delivered and the half one quarantined")

        # The target was never reached: UNREACHABLE since its first failure, not "ok".
        nas = d.wait_until(lambda: (t := status_json(d)["backup"]["targets"][0])["unreachable_since"] and t,
                           30, "the backup target's outage recorded")
        assert nas["reachable"] == "unreachable" and "does not exist" in nas["last_error"]
        human = cli(d, "status")
        assert human.returncode == 0, "status without --check exits 0 whatever it shows"
        from service.display import local_time   # shown local, with its offset; --json keeps UTC

        assert f"UNREACHABLE since {local_time(nas['unreachable_since'])}" in human.stdout, human.stdout
        assert "UNREACHABLE since" in cli(d, "backup", "status").stdout

        # Past the SLA (from arrival) with the target down for longer than 6 s: CRITICAL.
        def critical():
            r = cli(d, "status", "--check")
            return r if r.returncode == 2 and "1 invoice past the 0.005 h SLA" in r.stdout else None

        r = d.wait_until(critical, 60, "status --check CRITICAL for the SLA and the target")
        summary, *reasons = r.stdout.splitlines()
        assert summary.startswith("CRITICAL: ") and "backup target nas unreachable for " in summary, summary
        assert "1 invoice past the 0.005 h SLA (1 quarantined)" in summary  # quarantine counts against the SLA
        assert "  WARNING: 1 invoice quarantined (waiting for a person)" in reasons, reasons
        assert all(line.startswith(("  CRITICAL: ", "  WARNING: ")) for line in reasons), reasons
        report = status_json(d)
        assert report["health"]["code"] == 2 and report["health"]["summary"].startswith("CRITICAL: ")
        assert {r["text"].split(" for ")[0] for r in report["health"]["reasons"]} == {
            line.split(": ", 1)[1].split(" for ")[0] for line in reasons}
        assert report["delivery"]["sla_breaches"] == 1 and report["delivery"]["late_by_state"] == {"quarantined": 1}
        assert report["delivery"]["sla_counted_from"] == "arrival"
        json_check = cli(d, "status", "--check", "--json")
        assert json_check.returncode == 2 and json.loads(json_check.stdout)["health"]["status"] == "CRITICAL"

        # The faults removed: the disk mounted, the quarantined file rejected by a person.
        (tmp_path / "nas").mkdir()
        half_id = next(doc.id for doc in d.documents() if doc.original_name == "half.xml")
        assert cli(d, "reject", str(half_id), "--reason", "half a file from a broken scanner", "--yes").returncode == 0

        def ok():
            r = cli(d, "status", "--check")
            return r if r.returncode == 0 else None

        r = d.wait_until(ok, 60, "status --check OK once the faults are gone")
        assert r.stdout.startswith("OK: daemon alive"), r.stdout
        backup = d.wait_until(lambda: (b := status_json(d)["backup"])["backed_up"] == b["objects"] and b, 30,
                              "every original backed up")
        # Three documents' files plus the raw e-mail they came in: counted apart.
        assert (backup["objects"], backup["documents"]) == (4, 3)
        assert (backup["backed_up"], backup["documents_backed_up"]) == (4, 3)
        assert backup["targets"][0]["reachable"] == "ok" and backup["targets"][0]["unreachable_since"] is None
        assert "backed up:         4/4 originals" in cli(d, "status").stdout
    finally:
        d.stop()

    stopped = cli(d, "status", "--check")
    assert stopped.returncode == 2 and stopped.stdout.startswith("CRITICAL: the daemon is stopped (for "), stopped.stdout
    assert_ledger_sound(d.config)


def test_status_check_is_unknown_when_the_ledger_cannot_be_read(tmp_path):
    d = DaemonUnderTest(tmp_path)
    r = cli(d, "status", "--check")
    assert r.returncode == 3 and r.stdout.startswith("UNKNOWN: ") and "no ledger at" in r.stdout, r
    assert cli(d, "status").returncode == 2

    (tmp_path / "state" / "ledger.sqlite3").write_bytes(b"not a database, a bad copy\n" * 100)
    r = cli(d, "status", "--check", "--json")
    assert r.returncode == 3 and r.stdout.startswith("UNKNOWN: "), r
    assert cli(d, "status").returncode == 2  # without --check: an error, as before

    d.config.write_text("[agent]\nstate_dir = 7\n")
    r = cli(d, "status", "--check")
    assert r.returncode == 3 and "agent.state_dir" in r.stdout, r


def test_status_help_teaches_the_exit_codes(tmp_path):
    r = subprocess.run([sys.executable, "-m", "service", "status", "--help"], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env={**os.environ, "FAPIAO_AGENT_CONFIG": str(tmp_path / "none")})
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN" in text and "[health]" in text
