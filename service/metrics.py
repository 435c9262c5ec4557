"""Prometheus metrics: an HTTP endpoint, a textfile for node_exporter, or both.

Two kinds of series (every name starts `fapiao_`; docs/monitoring.md lists them):
- measured in this process: extraction and OCR durations (the workers report
  their own elapsed time with each result, service/workers.py) and workers
  alive: the instruments below, in `PROCESS`;
- read from the ledger at collection time (service/metrics_collector.py), with
  the collector's own read-only connection, never the daemon's.

`MetricsService` is a background loop (service/loops.py): it binds the
endpoint at start and rewrites the textfile every `[metrics] interval_s`. A
failure (port taken, folder unwritable) is logged once, retried every
interval, and never stops intake or delivery: nothing here touches them.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, Histogram, disable_created_metrics, generate_latest

log = logging.getLogger("fapiao.metrics")

# `_created` series double every counter and histogram for nothing the
# alerts or the dashboard use; the textfile stays half as long.
disable_created_metrics()

PROCESS = CollectorRegistry(auto_describe=True)
# Most documents read in well under a second; scans with OCR take 1-10 s;
# [extract] timeout_s (60 by default) stops the rest.
_READ_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
EXTRACTION_SECONDS = Histogram(
    "fapiao_extraction_duration_seconds",
    "Time a worker spent reading one document (waits for an OCR slot excluded), by outcome: "
    "ok (read, invoice or not), failed (the reader gave an error), timeout ([extract] timeout_s "
    "reached, the worker killed), crashed (the worker died on it).",
    ["outcome"], buckets=_READ_BUCKETS, registry=PROCESS)
OCR_SECONDS = Histogram(
    "fapiao_ocr_duration_seconds",
    "Time the OCR engine spent on one page (after its OCR slot was taken), measured in the worker.",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60), registry=PROCESS)
WORKERS_ALIVE = Gauge("fapiao_workers_alive", "Extraction worker processes that exist now.", registry=PROCESS)
WORKERS = Gauge("fapiao_workers", "Extraction worker processes configured ([agent] workers).", registry=PROCESS)
for _outcome in ("ok", "failed", "timeout", "crashed"):
    EXTRACTION_SECONDS.labels(_outcome)  # every outcome present from the start, at 0


def observe_reading(outcome: str, seconds: float | None, ocr_pages=()) -> None:
    """Record one document's reading time (None: not measured, nothing
    recorded) and each of its OCR pages' times."""
    if seconds is not None and seconds >= 0:
        EXTRACTION_SECONDS.labels(outcome).observe(seconds)
    for page in ocr_pages:
        OCR_SECONDS.observe(page)


def watch_pool(pool) -> None:
    """Report `pool`'s workers: how many are configured, and (read at each
    collection, from any thread) how many of its processes exist."""
    WORKERS.set(pool.workers)
    WORKERS_ALIVE.set_function(pool.alive_count)


class _Process:
    # The process's instruments inside each service's own registry.
    def collect(self):
        return PROCESS.collect()


def registry_for(cfg, ledger_collector=None) -> CollectorRegistry:
    """A registry holding every series: the process's instruments and the
    ledger's figures (read with their own connection at each collection;
    `ledger_collector`, or a new one for `cfg`)."""
    from service.metrics_collector import LedgerCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())
    registry.register(ledger_collector or LedgerCollector(cfg))
    return registry


class MetricsService:
    """The loop that serves `[metrics] listen` and writes `[metrics] textfile`
    (service/loops.py starts it when either is set)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.listen: str = cfg.metrics["listen"]
        self.textfile = Path(cfg.metrics["textfile"]) if cfg.metrics["textfile"] else None
        self.interval = float(cfg.metrics["interval_s"])
        from service.metrics_collector import LedgerCollector

        self.collector = LedgerCollector(cfg)
        self.registry = registry_for(cfg, self.collector)
        self.stopping = threading.Event()
        self.server = None
        self._problems: dict[str, str] = {}  # part -> the error last logged
        self._working: set[str] = set()      # parts whose success was logged
        self._thread = threading.Thread(target=self._run, name="fapiao-metrics", daemon=True)

    def start(self) -> "MetricsService":
        """Bind the endpoint now (a port in use is logged at start), then
        write the textfile every interval in a thread."""
        if self.listen:
            self._bind()
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            if self.listen and self.server is None:
                self._bind()
            if self.textfile is not None:
                self._write_textfile()
            if self.stopping.wait(self.interval):
                return

    def _bind(self) -> None:
        from prometheus_client import start_http_server

        from agent.config_metrics import listen_address

        host, port = listen_address(self.listen)
        try:
            self.server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            self._problem("listen", f"metrics endpoint not serving: cannot listen on {self.listen}: "
                          f"{e.strerror or e}; retried every {self.interval:g} s (intake and delivery go on)")
            return
        self._solved("listen", "metrics endpoint listening", url=f"http://{self.listen}/metrics")

    def _write_textfile(self) -> None:
        try:
            write_atomically(self.textfile, generate_latest(self.registry))
        except Exception as e:  # noqa: BLE001 - metrics must never stop the daemon; said once
            self._problem("textfile", f"metrics textfile not written: {type(e).__name__}: {e}; retried "
                          f"every {self.interval:g} s (intake and delivery go on)")
            return
        self._solved("textfile", "metrics textfile written", path=str(self.textfile))

    def _problem(self, part: str, text: str) -> None:
        # Logged when it starts or changes, not at every retry.
        if self._problems.get(part) != text:
            log.error(text, extra={"part": part})
        self._problems[part] = text

    def _solved(self, part: str, text: str, **extra) -> None:
        # Logged the first time, and when it works again after a problem.
        if part in self._problems or part not in self._working:
            log.info(text, extra=extra)
        self._problems.pop(part, None)
        self._working.add(part)

    def kick(self) -> None:
        """Nothing to do: figures are read when collected."""

    def stop(self) -> None:
        """Stop writing; the endpoint closes in `join`."""
        self.stopping.set()

    def join(self, timeout: float) -> None:
        """Close the endpoint, wait for the writer (up to `timeout` s), and
        close the collector's connection (a reload starts a new service)."""
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self._thread.join(timeout)
        self.collector.close()

    def finish(self, timeout: float) -> dict[str, str]:
        """Nothing is owed at a clean stop."""
        return {}


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a reader (node_exporter) sees the old
    file or the new one, never half of one: written to a hidden name in the
    same folder (not *.prom, so never read), then renamed over it. Mode
    0644 whatever the umask (the unit's UMask=0027 would hide it from
    node_exporter's user); no fsync: a file lost in a crash is rewritten
    within one interval."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        try:
            os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
