"""[metrics] on a real daemon: the endpoint scraped over HTTP and the
textfile read as node_exporter would, both parsed with prometheus_client's
own parser; real values change as files arrive; the port taken at start is
said at start and taken once free; a textfile folder that disappears is
logged once and never stops intake or delivery; every series the shipped
alert rules and dashboard name is exported."""

from __future__ import annotations

import shutil
import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.e2e.test_extract_limits import drop, good_invoice
from tests.support.audit import assert_ledger_sound
from tests.support.monitoring import unexported


def values(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def get(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_daemon_metrics_follow_files_and_faults(tmp_path, samples_dir):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    (tmp_path / "out").mkdir()
    (tmp_path / "collector").mkdir()
    textfile = tmp_path / "collector" / "fapiao.prom"
    d = DaemonUnderTest(tmp_path, extra=f"""
[metrics]
listen = "127.0.0.1:{port}"
textfile = "collector/fapiao.prom"
interval_s = 1
""" + OUT_AND_NAS)   # no tmp_path/nas: the backup disk is "not mounted"
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> dict:
        try:
            return values(urllib.request.urlopen(url, timeout=10).read().decode())
        except (urllib.error.URLError, ConnectionError):
            return {}

    d.start(wait_ready=False)
    try:
        # The port is taken: said before the daemon reports itself started,
        # and the daemon starts anyway.
        taken = d.wait_for_line("metrics endpoint not serving", timeout=30)
        assert f"cannot listen on 127.0.0.1:{port}" in taken
        started = d.wait_for_line("msg=started", timeout=30)
        assert d.lines.index(taken) < d.lines.index(started)
        blocker.close()
        first = d.wait_until(scrape, 20, "the endpoint once the port is free")
        assert get(first, "fapiao_ledger_readable") == 1
        assert get(first, "fapiao_documents", state="delivered") == 0
        workers = get(first, "fapiao_workers")
        assert workers >= 1 and d.wait_until(lambda: get(scrape(), "fapiao_workers_alive") == workers, 20,
                                             "every worker alive")
        assert get(first, "fapiao_extraction_duration_seconds_count", outcome="ok") == 0

        drop(tmp_path / "scan", "good.xml", good_invoice(samples_dir, 8101))
        good = good_invoice(samples_dir, 8102)
        drop(tmp_path / "scan", "half.xml", good[: len(good) // 2])   # unreadable: quarantined

        def settled():
            found = scrape()
            return found if (get(found, "fapiao_documents", state="delivered") == 1
                             and get(found, "fapiao_documents", state="quarantined") == 1
                             and get(found, "fapiao_backup_unreachable", target="nas") == 1) else None

        found = d.wait_until(settled, 60, "one delivered, one quarantined, the backup target unreachable")
        # Each reading timed by its worker: the good file read, the half one
        # an error of the reader (it says why; the pipeline quarantines it).
        assert get(found, "fapiao_extraction_duration_seconds_count", outcome="ok") == 1
        assert get(found, "fapiao_extraction_duration_seconds_count", outcome="failed") == 1
        assert 0 < get(found, "fapiao_extraction_duration_seconds_sum", outcome="ok") < 60
        assert get(found, "fapiao_extraction_duration_seconds_bucket", outcome="ok", le="+Inf") == 1
        assert get(found, "fapiao_delivery_attempts_total", destination="out", outcome="delivered") == 1
        assert get(found, "fapiao_delivery_failures_total", destination="out") == 0
        assert get(found, "fapiao_backup_backlog", target="nas") >= 1
        assert get(found, "fapiao_heartbeat_age_seconds") < 30
        assert get(found, "fapiao_intake_paused") == 0
        assert unexported(urllib.request.urlopen(url, timeout=10).read().decode()) == {}

        # The textfile says the same, rewritten every interval.
        on_disk = d.wait_until(lambda: (v := values(textfile.read_text()))
                               and get(v, "fapiao_documents", state="delivered") == 1 and v,
                               10, "the textfile with the delivered invoice")
        assert get(on_disk, "fapiao_documents", state="quarantined") == 1
        stamp = get(on_disk, "fapiao_collection_timestamp_seconds")
        d.wait_until(lambda: get(values(textfile.read_text()), "fapiao_collection_timestamp_seconds") > stamp,
                     10, "the textfile rewritten")

        # Its folder gone: said once, and files are still taken and delivered.
        shutil.rmtree(tmp_path / "collector")
        d.wait_for_line("metrics textfile not written", timeout=10)
        drop(tmp_path / "scan", "later.xml", good_invoice(samples_dir, 8103))
        d.wait_until(lambda: get(scrape(), "fapiao_documents", state="delivered") == 2, 60,
                     "the later invoice delivered while the textfile cannot be written")
        assert sum("metrics textfile not written" in line for line in d.lines) == 1
        (tmp_path / "collector").mkdir()
        d.wait_until(textfile.exists, 10, "the textfile written again once its folder is back")
    finally:
        blocker.close()
        assert d.stop() == 0
    try:
        urllib.request.urlopen(url, timeout=5)
        raise AssertionError("the endpoint still answers after the daemon stopped")
    except (urllib.error.URLError, ConnectionError):
        pass
    assert_ledger_sound(d.config)
