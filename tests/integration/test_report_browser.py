"""The weekly report's page in a real browser: Debian's headless Chromium.

The page of the realistic week (tests/support/report_week.py) is opened from
a file:// URL: its DOM, as Chromium built it, holds the key numbers; a
screenshot shows it drawn (a PNG of the window's size, many colours, the
chart's bar colours among them); Chromium's own network log shows the page
asked for nothing (the browser's background requests, "not an origin", are
its own and never leave: every host name resolves to nothing here). A page
that does load from the network is caught by the same check. Chromium runs
in a session of its own, killed as a group whatever happens.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from agent.ledger import Ledger
from service.report import build_report, write_report
from tests.support.report_week import DRILLS, EXPECTED, NOW, SCRIPT_SELLER, SINCE, UNTIL, build_week, week_config

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(make test-deps installs it: DEBIAN_TEST_PKGS)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-crash-reporter", "--host-resolver-rules=MAP * ~NOTFOUND")


def _chromium(tmp: Path, *args: str) -> str:
    """Run Chromium once in its own session; its whole group is SIGKILLed
    afterwards (a renderer or zygote it left would outlive the test)."""
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out.decode("utf-8", errors="replace")


def _page_requests(net_log: Path) -> list[str]:
    """URLs Chromium started loading for a page (initiator set: the file's
    null origin), not the browser's own background requests ("not an origin")."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    cfg = week_config(tmp)
    with Ledger(cfg.ledger_path) as ledger:
        build_week(ledger)
        report = build_report(ledger, cfg, since=SINCE, until=UNTIL, now=NOW, drills=DRILLS)
    write_report(report, tmp / "out", "fapiao-report-2026-11-30")
    return tmp, report


def test_dom_holds_the_key_numbers_and_no_request_left_the_page(page):
    tmp, report = page
    net_log = tmp / "net.json"
    dom = _chromium(tmp, f"--log-net-log={net_log}", "--dump-dom", report.html_path.as_uri())
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))
    for label, n in (("到达 arrivals", EXPECTED["totals"]["total"]), ("已送达 delivered", EXPECTED["totals"]["delivered"]),
                     ("waiting for a person", EXPECTED["quarantine_total"]),
                     ("missing at reconciliation", EXPECTED["missing"]), ("near expiry", EXPECTED["expiry"])):
        assert re.search(rf"\b{n} [^0-9]*{re.escape(label)}", text), (label, n)
    assert "3.0 h / 4.0 d" in text
    assert "合计 total 6 2 3 1 1 1 2 16" in text            # the arrivals table's total row
    assert "tax-id-check-digit 2" in text
    assert "尚未演练 no drill yet" in text
    assert SCRIPT_SELLER in text                             # shown as text ...
    assert "<script" not in dom.lower()                      # ... never an element
    assert "<svg" in dom and dom.count("<rect") >= 12
    assert _page_requests(net_log) == []


def test_screenshot_is_a_drawn_page(page):
    from PIL import Image

    tmp, report = page
    shot = tmp / "r.png"
    _chromium(tmp, f"--screenshot={shot}", "--window-size=1200,2000", report.html_path.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as im:
        assert im.size == (1200, 2000)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert len(colours) > 500, f"only {len(colours)} colours: a blank or unstyled page"
    present = {c for _, c in colours}
    for bar in ("#2e7d32", "#f9a825", "#c62828", "#8e24aa", "#6d4c41"):   # delivered ... refused
        assert tuple(int(bar[i:i + 2], 16) for i in (1, 3, 5)) in present, bar


def test_the_network_check_catches_a_page_that_loads_from_the_net(tmp_path):
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><p>x</p><img src="http://127.0.0.1:9/pixel.png">')
    net_log = tmp_path / "net.json"
    _chromium(tmp_path, f"--log-net-log={net_log}", "--dump-dom", leaky.as_uri())
    assert _page_requests(net_log) == ["http://127.0.0.1:9/pixel.png"]
