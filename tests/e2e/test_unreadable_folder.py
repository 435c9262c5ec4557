"""A folder below a watched folder that the service cannot list (its mode
forbids it, as a scanner's share may): the files in it are never taken, so
it must not stay a log line. A real daemon, run as root without the
capabilities that ignore file modes (so modes decide, as for the service
account), says it in `status`, `status --check` (CRITICAL) and its metrics;
once the mode is fixed, the next rescan takes the invoice in and delivers it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from prometheus_client import generate_latest

from agent.config import load_config
from service.metrics import registry_for

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.e2e.test_extract_limits import drop, good_invoice
from tests.e2e.test_status_check import cli
from tests.support.audit import assert_ledger_sound

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv: the daemon runs as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, "
           "so a folder's mode can refuse it")

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def daemon_without_dac(tmp_path, rescan_s: int) -> DaemonUnderTest:
    """A daemon (not started) that file modes can refuse, rescanning every
    `rescan_s` seconds, with the folder destination "out" and backup "nas"."""
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d = DaemonUnderTest(tmp_path, extra=OUT_AND_NAS)
    d.config.write_text(d.config.read_text().replace("rescan_interval_s = 300", f"rescan_interval_s = {rescan_s}"))
    d.command_prefix = NO_DAC
    return d


def dept_holding(tmp_path, samples_dir, number: int, mode: int, where: str = "dept"):
    """scan/`where` holding invoice `number` as a.xml, then set to `mode`."""
    dept = tmp_path / "scan" / where
    dept.mkdir(parents=True)
    drop(dept, "a.xml", good_invoice(samples_dir, number))
    dept.chmod(mode)
    return dept


def beat_details(d: DaemonUnderTest) -> dict:
    r = cli(d, "status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(json.loads(r.stdout)["daemon"]["details"] or "{}")


def test_an_unlistable_folder_is_critical_until_fixed_then_its_invoice_is_delivered(tmp_path, samples_dir):
    d = daemon_without_dac(tmp_path, rescan_s=1)
    # Deep, beside a readable folder of the same name: named by its full path.
    (tmp_path / "scan" / "other" / "2026" / "dec").mkdir(parents=True)
    dept = dept_holding(tmp_path, samples_dir, 7101, 0, where="dept/2026/dec")
    d.start()
    try:
        d.wait_until(lambda: beat_details(d).get("folders_unreadable"), 30, "the heartbeat naming the folder")
        assert beat_details(d)["folders_unreadable"] == {str(dept): "Permission denied"}
        status = cli(d, "status").stdout
        assert f"UNREADABLE:        {dept}: Permission denied; its files are not taken" in status, status
        check = cli(d, "status", "--check")
        assert check.returncode == 2, check.stdout
        assert "1 folder in a watched folder cannot be read, so its files are not taken" in check.stdout
        metrics = generate_latest(registry_for(load_config(str(d.config)))).decode()
        assert "fapiao_folders_unreadable 1.0" in metrics
        assert d.documents() == []
        # The audit, run as the service would run it, cannot check that
        # folder either: it says so instead of passing it over.
        audit = subprocess.run([*NO_DAC, sys.executable, "-m", "service", "--config", str(d.config), "audit",
                                "ledger", "--json"], capture_output=True, text=True, timeout=120, cwd=d.root)
        found = [(v["code"], v["message"]) for v in json.loads(audit.stdout)["violations"]]
        assert audit.returncode == 1 and found == [
            ("folder-unreadable", f"{dept}: in a watched folder, cannot be listed (Permission denied): its files "
                                  "can be neither taken nor checked")], audit.stdout
        # Said once in the log, not at every rescan.
        d.wait_until(lambda: sum("cannot be read" in line for line in d.lines) >= 1, 10, "the log line")

        dept.chmod(0o755)
        docs = d.wait_documents(1, timeout=60, settled=True)
        d.wait_until(lambda: list((tmp_path / "out").rglob("*.xml")), 30, "the invoice delivered")
        assert docs[0].original_name == "a.xml"
        d.wait_until(lambda: "folders_unreadable" not in beat_details(d), 30, "the heartbeat clear of it")
        assert "UNREADABLE" not in cli(d, "status").stdout
        assert sum("cannot be read" in line for line in d.lines) == 1, "\n".join(d.lines)
        assert any("can be read again" in line for line in d.lines)
    finally:
        assert d.stop() == 0
    assert_ledger_sound(d.config)


def held_details(d: DaemonUnderTest) -> dict:
    return beat_details(d).get("files_held") or {}


def test_a_folder_listable_but_not_searchable_holds_its_files_with_the_true_reason(tmp_path, samples_dir):
    # Mode r-- on a folder: its names can be listed, its files cannot be
    # reached. The folder's fault, not the file's: held with that reason,
    # not refused again at every rescan (1 s here), taken once it is fixed.
    d = daemon_without_dac(tmp_path, rescan_s=1)
    dept = dept_holding(tmp_path, samples_dir, 7102, 0o644)
    d.start()
    try:
        why = d.wait_until(lambda: held_details(d).get(str(dept / "a.xml")), 30, "status naming the file")
        assert why.startswith("cannot be reached: a folder of its path lets the agent's user list it but not "
                              "open it (no search (x) permission); tried again in 30 s"), why
        time.sleep(3)   # three rescans
        refused = cli(d, "refused", "--json")
        assert refused.returncode == 0 and refused.stdout.strip() == "", refused.stdout   # JSON lines: none
        dept.chmod(0o755)
        d.wait_documents(1, timeout=45, settled=True)   # at the hold's next try (30 s)
        d.wait_until(lambda: list((tmp_path / "out").rglob("*.xml")), 30, "the invoice delivered")
    finally:
        assert d.stop() == 0
    assert_ledger_sound(d.config)


def test_a_watched_folder_unreadable_at_start_is_watched_by_events_once_readable(tmp_path, samples_dir):
    # inotify cannot watch a folder it cannot read, and does not try again:
    # once a scan can list the folder, its observer starts afresh, so new
    # files come in by their events, not only at each rescan (3 s here).
    d = daemon_without_dac(tmp_path, rescan_s=3)
    scan = tmp_path / "scan"
    scan.chmod(0)
    d.start()
    try:
        d.wait_until(lambda: str(scan) in (beat_details(d).get("folders_unreadable") or {}), 30,
                     "the watched folder said to be unreadable")
        assert "UNREADABLE:" in cli(d, "status").stdout
        scan.chmod(0o755)
        d.wait_for_line("watching again", timeout=10)
        dropped = time.monotonic()
        drop(scan, "after.xml", good_invoice(samples_dir, 7103))
        d.wait_documents(1, timeout=10)
        assert time.monotonic() - dropped < 2.0, "taken by the next rescan, not by its event"
        d.wait_until(lambda: list((tmp_path / "out").rglob("*.xml")), 30, "the invoice delivered")
    finally:
        assert d.stop() == 0
    assert_ledger_sound(d.config)


def test_a_kept_file_made_unreadable_after_its_capture_is_refused_saying_which_capture_it_was(
        tmp_path, samples_dir):
    # chmod 000 (or a chown) on a file already taken, kept in place: its
    # ctime changed, so a rescan looks again and cannot open it. The agent
    # cannot know whether only its mode changed or bytes were written over
    # it with the mtime kept (cp -p), so it is refused, never assumed the
    # same; the refusal names the capture it looks like.
    d = daemon_without_dac(tmp_path, rescan_s=1)
    d.start()
    try:
        drop(tmp_path / "scan", "kept.xml", good_invoice(samples_dir, 8801))
        drop(tmp_path / "scan", "before.xml", good_invoice(samples_dir, 8803))
        d.wait_until(lambda: len(list((tmp_path / "out").rglob("*.xml"))) == 2, 30, "the invoices delivered")
        (tmp_path / "scan" / "kept.xml").chmod(0)
        drop(tmp_path / "scan", "new.xml", good_invoice(samples_dir, 8802))
        (tmp_path / "scan" / "new.xml").chmod(0)
        # Renamed and made unreadable before the agent saw the new name.
        os.rename(tmp_path / "scan" / "before.xml", tmp_path / "scan" / "after.xml")
        (tmp_path / "scan" / "after.xml").chmod(0)

        def refusals():
            with d.ledger() as ledger:
                return {r["name"]: r["reason"] for r in ledger.refusals()}
        got = d.wait_until(lambda: len(r := refusals()) == 3 and r, 15, "the unreadable files refused")
        assert f"captured as {tmp_path / 'scan' / 'before.xml'} before (renamed since) (document " in \
            got["after.xml"], got
        assert "permission denied" in got["new.xml"] and "captured from here before" not in got["new.xml"]
        assert "permission denied" in got["kept.xml"]
        assert "looks like the file captured from here before (document 1" in got["kept.xml"], got
    finally:
        assert d.stop() == 0
    for name in ("kept.xml", "new.xml", "after.xml"):
        (tmp_path / "scan" / name).chmod(0o644)
    assert_ledger_sound(d.config)
