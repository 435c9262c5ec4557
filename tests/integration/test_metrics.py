"""The metrics collector over a real ledger: documents in several states, a
delivery retried then failed, a destination paused, a backup target
unreachable, an invoice past the SLA counted from arrival (quarantined).
Each figure must be the one `status --json` shows, read through the
collector's own connection, and the attempt counters must only grow.
Also the [metrics] service itself: a port in use reported at start and
taken once free; a textfile written whole and readable by node_exporter."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import stat
import time
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.config import parse_config
from agent.config_paths import check_paths
from agent.errors import ConfigError
from agent.ledger import Ledger, utc
from agent.model import State
from agent.vault import Vault
from service.commands.status import status_report
from service.metrics import MetricsService, registry_for, write_atomically
from tests.support.queued import queue_invoice, store_file

UTC = dt.timezone.utc


def samples(text: str) -> dict[tuple, float]:
    """{(name, (label pairs sorted)): value} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def _config(tmp_path, **metrics):
    return parse_config({"agent": {"state_dir": "state"}, "delivery": {"sla_hours": 2},
                         "health": {"sla_warn_fraction": 0.5},
                         "destination": [{"name": "erp", "url": "folder://out"},
                                         {"name": "archive", "url": "folder://archive"}],
                         "backup": [{"name": "nas", "url": "file://nas"}], "metrics": metrics},
                        base_dir=tmp_path)


def _attempt(ledger: Ledger, destination: str, *, state: str, outcome: str, now: dt.datetime,
             next_at: dt.datetime | None = None) -> None:
    # The delivery loop's own two steps: claim the due row, record the try.
    claimed = ledger.claim_deliveries(destination, now=utc(now), lease_until=utc(now + dt.timedelta(minutes=5)),
                                      token="t", actor="test")
    assert claimed, "a due row to try"
    assert ledger.finish_delivery(claimed[0]["delivery_id"], "t", state=state, now=utc(now), actor="test",
                                  outcome=outcome, error="HTTP 503" if outcome != "delivered" else None,
                                  next_attempt_at=utc(next_at) if next_at else None)


def test_collector_shows_each_fault_as_status_does(tmp_path):
    cfg = _config(tmp_path)
    now = dt.datetime.now(UTC)
    ledger, vault = Ledger(cfg.ledger_path), Vault(cfg.vault_dir)
    # Quarantined 3 h after arrival: past the 2 h SLA although never queued.
    stored = store_file(vault, 1)
    with ledger.transaction():
        held, _ = ledger.add_document(sha256=stored.sha256, size=stored.size, media_type="application/pdf",
                                      source_kind="ingest", source="test", original_name="held.pdf",
                                      original_path=None, now=utc(now - dt.timedelta(hours=3)), actor="test")
    ledger.transition(held, State.QUARANTINED, now=utc(now), actor="test",
                      problems=[{"code": "x", "severity": "error", "message": "m"}])
    # To erp only: tried, retried (HTTP 503), then failed for good.
    queue_invoice(ledger, vault, 2, destinations=["erp"], now=utc(now - dt.timedelta(minutes=70)))
    _attempt(ledger, "erp", state="queued", outcome="transient", now=now, next_at=now)
    _attempt(ledger, "erp", state="failed", outcome="transient", now=now)
    # To archive: delivered.
    queue_invoice(ledger, vault, 3, destinations=["archive"], now=utc(now))
    _attempt(ledger, "archive", state="delivered", outcome="delivered", now=now)
    ledger.save_destination_health("archive", now=utc(now), paused_error="401: token refused",
                                   paused_at=utc(now))
    ledger.backup_unreachable("nas", "connection refused", now=utc(now - dt.timedelta(minutes=5)))

    registry = registry_for(cfg)
    found = samples(generate_latest(registry).decode())
    report = status_report(ledger, cfg)

    assert value(found, "fapiao_ledger_readable") == 1
    for state, n in report["states"].items():
        assert value(found, "fapiao_documents", state=state) == n
    assert value(found, "fapiao_documents", state="quarantined") == 1
    assert value(found, "fapiao_documents", state="failed") == 1
    assert value(found, "fapiao_documents", state="delivered") == 1
    assert value(found, "fapiao_sla_past_invoices", state="quarantined") == 1
    assert value(found, "fapiao_sla_near_invoices") == 1            # the failed one, 70 min old
    assert 3 * 3600 - 60 < value(found, "fapiao_oldest_unfinished_age_seconds") < 3 * 3600 + 60
    assert value(found, "fapiao_destination_deliveries", destination="erp", state="failed") == 1
    assert value(found, "fapiao_delivery_attempts_total", destination="erp", outcome="transient") == 2
    assert value(found, "fapiao_delivery_failures_total", destination="erp") == 2
    assert value(found, "fapiao_delivery_retries_total", destination="erp") == 1
    assert value(found, "fapiao_delivery_attempts_total", destination="archive", outcome="delivered") == 1
    assert value(found, "fapiao_delivery_failures_total", destination="archive") == 0
    assert value(found, "fapiao_destination_paused", destination="archive") == 1
    assert value(found, "fapiao_destination_paused", destination="erp") == 0
    assert value(found, "fapiao_backup_unreachable", target="nas") == 1
    assert abs(value(found, "fapiao_backup_unreachable_since_timestamp_seconds", target="nas")
               - (now - dt.timedelta(minutes=5)).timestamp()) < 1
    assert value(found, "fapiao_backup_last_put_timestamp_seconds", target="nas") == 0   # never
    assert value(found, "fapiao_backup_backlog", target="nas") == report["backup"]["targets"][0]["backlog"] == 3
    assert value(found, "fapiao_health_level") == report["health"]["code"] == 2
    assert value(found, "fapiao_heartbeat_age_seconds") == float("inf")   # no daemon ever beat here

    # Later collections read what changed since, through the same own
    # connection; the counters only grow.
    queue_invoice(ledger, vault, 4, destinations=["erp"], now=utc(now))
    _attempt(ledger, "erp", state="delivered", outcome="delivered", now=now)
    ledger.backups_done("nas", [(stored.sha256, stored.size)], now=utc(now), day=now.date().isoformat())
    again = samples(generate_latest(registry).decode())
    assert value(again, "fapiao_delivery_attempts_total", destination="erp", outcome="delivered") == 1
    assert value(again, "fapiao_delivery_attempts_total", destination="erp", outcome="transient") == 2
    assert value(again, "fapiao_documents", state="delivered") == 2
    assert value(again, "fapiao_backup_unreachable", target="nas") == 0
    assert abs(value(again, "fapiao_backup_last_put_timestamp_seconds", target="nas") - now.timestamp()) < 1
    assert value(again, "fapiao_backup_last_restore_drill_timestamp_seconds", target="nas") == 0   # never
    assert ("fapiao_backup_last_restore_drill_ok", (("target", "nas"),)) not in again
    # A drill that passed, then one that failed: the time of the good one, ok 0.
    for at, ok in ((now - dt.timedelta(days=2), True), (now, False)):
        ledger.record_restore_drill({"target": "nas", "started_at": utc(at), "finished_at": utc(at), "ok": ok,
                                     "sampled": 5, "failed": 0 if ok else 1, "mismatch": False, "seed": 1,
                                     "snapshot": None, "snapshot_ok": None,
                                     "reason": None if ok else "object missing", "detail": {}}, actor="test")
    drilled = samples(generate_latest(registry).decode())
    assert abs(value(drilled, "fapiao_backup_last_restore_drill_timestamp_seconds", target="nas")
               - (now - dt.timedelta(days=2)).timestamp()) < 1
    assert value(drilled, "fapiao_backup_last_restore_drill_ok", target="nas") == 0
    ledger.close()


def test_unreadable_ledger_gives_no_figures_only_readable_0(tmp_path):
    cfg = _config(tmp_path)
    cfg.ledger_path.parent.mkdir(parents=True)
    cfg.ledger_path.write_bytes(b"not a database" * 100)
    found = samples(generate_latest(registry_for(cfg)).decode())
    assert value(found, "fapiao_ledger_readable") == 0
    assert not any(name == "fapiao_documents" for name, _ in found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_in_use_is_said_at_start_and_taken_once_free(tmp_path, caplog):
    Ledger(tmp_path / "state" / "ledger.sqlite3").close()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    cfg = _config(tmp_path, listen=f"127.0.0.1:{port}", interval_s=1)
    with caplog.at_level(logging.INFO, logger="fapiao.metrics"):
        service = MetricsService(cfg).start()
        try:
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0], errors
            time.sleep(1.3)   # a retry (every interval_s): not logged again
            assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
            blocker.close()
            deadline = time.monotonic() + 10
            while service.server is None and time.monotonic() < deadline:
                time.sleep(0.1)
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            assert value(samples(body), "fapiao_ledger_readable") == 1
            assert any(r.getMessage() == "metrics endpoint listening" for r in caplog.records)
        finally:
            blocker.close()
            service.stop()
            service.join(10)
    with pytest.raises(OSError):   # closed at join
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_textfile_is_replaced_whole_and_readable_by_others(tmp_path):
    path = tmp_path / "fapiao.prom"
    path.write_text("old\n")
    old_umask = os.umask(0o027)   # the unit's UMask
    try:
        write_atomically(path, b"fapiao_documents{state=\"queued\"} 1\n")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "fapiao_documents{state=\"queued\"} 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fapiao.prom"]   # no temp file left
    # A write that fails (here: the name is taken by a folder) leaves no
    # temporary file behind, and what was there stays whole.
    (tmp_path / "taken.prom").mkdir()
    with pytest.raises(OSError):
        write_atomically(tmp_path / "taken.prom", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fapiao.prom", "taken.prom"]


@pytest.mark.parametrize("metrics, problem", [
    ({"listen": "9464"}, "must be host:port"),
    ({"listen": "::1:9464"}, "written in brackets: [::1]:9464"),
    ({"listen": "127.0.0.1:70000"}, "port '70000' must be a number from 1 to 65535"),
    ({"textfile": "/var/lib/node_exporter/fapiao.txt"}, "must end in .prom"),
    ({"interval_s": 0}, "metrics.interval_s: must be at least 1 second"),
])
def test_bad_metrics_settings_are_config_errors(tmp_path, metrics, problem):
    with pytest.raises(ConfigError) as e:
        _config(tmp_path, **metrics)
    assert problem in str(e.value)


def test_textfile_folder_missing_is_a_path_problem(tmp_path):
    assert _config(tmp_path, listen="[::1]:9464").metrics["listen"] == "[::1]:9464"
    cfg = _config(tmp_path, textfile="collector/fapiao.prom")
    assert cfg.metrics["textfile"] == str(tmp_path / "collector" / "fapiao.prom")
    assert any(p.startswith(f"metrics.textfile: folder {tmp_path / 'collector'} does not exist")
               for p in check_paths(cfg))
    (tmp_path / "collector").mkdir()
    assert not any(p.startswith("metrics.") for p in check_paths(cfg))


def test_reading_and_ocr_times_are_the_workers_own_without_slot_waits(tmp_path):
    # Two workers, one OCR slot, two documents whose reader holds the OCR
    # gate for HOLD_S: the second waits HOLD_S for the slot. Each worker
    # reports its own time, the wait left out: 2 x HOLD_S in all, not 3 x.
    from service import metrics
    from service.workers import ExtractionPool
    from tests.integration.test_ocr_slots import HOLD_S, gated_reader

    def sample(name, **labels):
        return metrics.PROCESS.get_sample_value(name, labels) or 0.0

    before = {k: sample(k, **labels) for k, labels in (
        ("fapiao_ocr_duration_seconds_count", {}), ("fapiao_ocr_duration_seconds_sum", {}),
        ("fapiao_extraction_duration_seconds_count", {"outcome": "failed"}),
        ("fapiao_extraction_duration_seconds_sum", {"outcome": "failed"}))}
    pool = ExtractionPool(str(tmp_path), workers=2, reader=gated_reader, ocr_slots=1, slot_dir=str(tmp_path))
    try:
        assert sample("fapiao_workers") == 2
        deadline = time.monotonic() + 20
        while pool.alive_count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sample("fapiao_workers_alive") == 2
        assert pool.submit(1, "a") and pool.submit(2, "b")
        done = []
        while len(done) < 2 and time.monotonic() < deadline:
            done += pool.collect(0.5)
        assert len(done) == 2
    finally:
        pool.shutdown(5)
    assert sample("fapiao_workers_alive") == 0   # shut down: no process left

    def grew(name, **labels):
        return sample(name, **labels) - before[name]

    assert grew("fapiao_ocr_duration_seconds_count") == 2
    assert 2 * HOLD_S <= grew("fapiao_ocr_duration_seconds_sum") < 2 * HOLD_S + 0.3
    assert grew("fapiao_extraction_duration_seconds_count", outcome="failed") == 2   # the reader's error
    read = grew("fapiao_extraction_duration_seconds_sum", outcome="failed")
    assert 2 * HOLD_S <= read < 3 * HOLD_S - 0.2, read   # 3 x HOLD_S had the wait been counted
