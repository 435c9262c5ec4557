"""The shipped Prometheus rules and Grafana dashboard (docs/monitoring/):
promtool accepts the rules, and every series they name is one a real
collector over a real ledger exports (the e2e test checks the same against
a running daemon, tests/e2e/test_metrics_daemon.py)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from agent.config import parse_config
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.metrics import registry_for
from tests.support.monitoring import ALERTS, alert_rules, plain_rules, series_names, unexported
from tests.support.queued import queue_invoice

REPO = Path(__file__).resolve().parents[2]


def promtool() -> str | None:
    """promtool from `make test-deps` (Debian's prometheus package unpacked
    under the venv, never installed as a service), else from PATH."""
    for venv in (Path(sys.prefix), REPO / ".venv"):
        found = venv / "prometheus" / "usr" / "bin" / "promtool"
        if found.is_file() and os.access(found, os.X_OK):
            return str(found)
    return shutil.which("promtool")


def test_promtool_accepts_the_alert_rules():
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not found (`make test-deps` unpacks Debian's prometheus package under "
                    ".venv/prometheus); the expressions are still checked by test_every_series_named_is_exported")
    r = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in r.stdout


def test_each_fault_fires_its_alert_in_promtool_unit_tests():
    # docs/monitoring/alerts.test.yml and alerts-days.test.yml: synthetic
    # series for each fault, the alerts expected at given times (not before
    # their `for:`), with labels and rendered texts.
    tool = promtool()
    if tool is None:
        pytest.skip("promtool not found (`make test-deps` unpacks Debian's prometheus package under .venv/prometheus)")
    r = subprocess.run([tool, "test", "rules", "alerts.test.yml", "alerts-days.test.yml"], capture_output=True,
                       text=True, timeout=120, cwd=ALERTS.parent)
    assert r.returncode == 0 and r.stdout.count("SUCCESS") == 2, r.stdout + r.stderr


def test_each_rule_says_how_bad_and_what_to_do():
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules) >= 20
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning"), r
        assert r["annotations"]["summary"] and r["annotations"]["description"], r
    # The plain reader (for machines without PyYAML) sees the same rules.
    assert [(r["alert"], r["expr"]) for r in plain_rules()] == [(r["alert"], r["expr"]) for r in rules]


def test_series_names_are_found_in_promql():
    assert series_names('sum without (state) (fapiao_sla_past_invoices{state!="x"}) > 0') == {
        "fapiao_sla_past_invoices"}
    assert series_names("histogram_quantile(0.95, sum by (le) (rate(fapiao_ocr_duration_seconds_bucket[15m])))"
                        ) == {"fapiao_ocr_duration_seconds_bucket"}
    assert series_names("a_total and time() - b_seconds > 2 * 86400") == {"a_total", "b_seconds"}


def test_every_series_named_is_exported(tmp_path):
    cfg = parse_config({"agent": {"state_dir": "state"}, "destination": [{"name": "erp", "url": "folder://out"}],
                        "backup": [{"name": "nas", "url": "file://nas"}]}, base_dir=tmp_path)
    now = dt.datetime.now(dt.timezone.utc)
    with Ledger(cfg.ledger_path) as ledger:
        queue_invoice(ledger, Vault(cfg.vault_dir), 1, destinations=["erp"], now=utc(now))
        claimed = ledger.claim_deliveries("erp", now=utc(now), lease_until=utc(now + dt.timedelta(minutes=5)),
                                          token="t", actor="test")
        ledger.finish_delivery(claimed[0]["delivery_id"], "t", state="delivered", now=utc(now), actor="test",
                               outcome="delivered")
    text = generate_latest(registry_for(cfg)).decode()
    assert unexported(text) == {}
    # And the check can fail: a series the agent does not export is named.
    assert unexported(text.replace("fapiao_backup_paused", "fapiao_renamed"))
