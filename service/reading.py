"""The daemon's reading stage: captured documents out to the extraction
pool, their results recorded in the ledger, documents an older run left
between stages carried on.

Apart from service/daemon.py because it is the one place the pool and the
ledger meet: the main loop only says when (feed, collect), this says how.
Main thread only; every ledger write goes through `agent.pipeline`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

from agent import pipeline
from agent.ledger import Ledger
from agent.validate import ValidationSettings
from service import pace
from service.context import now, today
from service.workers import ExtractionPool

log = logging.getLogger("fapiao.daemon")


# While intake has files waiting, recording results may take at most this
# share of the main thread: capture is what makes a file safe, a result
# waiting in memory is only a reading done again if the daemon dies. The
# rest of the time the backlog is recorded as fast as it comes. (Since the
# workers hold several documents each, results are always there to record
# during a burst, so the share is what recording takes: 0.25 cost capture
# a tenth of its pace.)
RECORD_SHARE = 0.15
# Results recorded in one transaction at most: one COMMIT (one WAL fsync)
# for many documents, while the write lock the delivery and backup threads
# also need is never held for long.
RECORD_CHUNK = 64
# Recording is the main thread's bottleneck (pace.reading_busy) when one
# collect recorded at least BUSY_RECORDED results and took BUSY_SHARE of the
# time since the one before.
BUSY_RECORDED = 8
BUSY_SHARE = 0.5
# Results waiting unrecorded at most: beyond it no document is handed out,
# so the workers pause instead of reading ahead of what can be recorded.
# While a burst is captured the main thread records little (RECORD_SHARE)
# and the other core is the workers': at 256 they stopped a tenth of the
# way into a 3,000-file burst and that core idled until capture was done.
# At 1,024 they read on (a result waiting is ~5 KB: 5 MB at most, and
# if the daemon dies its document is only read again): in bench/watch.py,
# bursts reached `queued` 10-18 % sooner (paired runs on a slow disk).
BUFFER_MAX = 16 * RECORD_CHUNK
# ... and at most this many results' worth of line items (a result weighs
# one plus its invoices' items): an invoice listing 1,000 lines is ~0.7 MB
# in memory, and a burst of such would hold gigabytes at BUFFER_MAX alone.
BUFFER_WEIGHT_MAX = 16_384


def result_weight(result: Any) -> int:
    """1 plus the line items of every invoice in an extraction result: what
    holding it in memory costs, in units of a one-line invoice's result."""
    return 1 + sum(len(inv.get("items") or ()) for inv in getattr(result, "invoices", None) or ()
                   if isinstance(inv, dict))


class Reading:
    """Feeds `pool` from `ledger` and records what comes back. After each
    recorded batch, `on_read(doc_ids)` runs (the waiting move/delete of the
    sources, a kick of the delivery loops)."""

    def __init__(self, ledger: Ledger, pool: ExtractionPool, *, actor: str,
                 on_read: Callable[[list[int]], None], clock: Callable[[], float] = time.monotonic):
        self.ledger, self.pool, self.actor, self.on_read = ledger, pool, actor, on_read
        self.settings: ValidationSettings | None = None
        self.destinations: Sequence[str] = ()
        self.clock = clock
        # Results in from the workers, not recorded yet: their documents are
        # still `captured` in the ledger, and are not handed out again.
        self._results: list[tuple[int, Any]] = []
        # Documents handed out as likely invoices, until recorded: their
        # results are recorded ahead of the others waiting.
        self._urgent: set[int] = set()
        self._weights: dict[int, int] = {}  # result_weight of each result waiting
        self._record_after = 0.0  # while intake is busy: when the next chunk may be recorded
        self._last_collect = clock()

    def configure(self, settings: ValidationSettings, destinations: Sequence[str]) -> None:
        """Judge results from now on with `settings`, queueing for `destinations` (a reload)."""
        self.settings, self.destinations = settings, list(destinations)

    @property
    def unrecorded(self) -> int:
        """Results received and not recorded yet (kept in memory)."""
        return len(self._results)

    def feed(self) -> int:
        """Hand due documents to idle workers; returns how many started.
        Only documents due: one whose reading failed waits out its backoff
        (ledger columns) instead of being handed out again at once. Never a
        document whose result waits to be recorded. Likely invoices go
        first and ahead of what waits for a worker; other documents only
        while fewer than BUFFER_MAX results (weighing less than
        BUFFER_WEIGHT_MAX, `result_weight`) wait, likely invoices while
        their own do: a backlog of junk (not of a format
        invoices come in, or under 128 bytes) never holds an invoice back.
        Among likely invoices it is oldest first: slow ones ahead delay it."""
        if not self.pool.has_room():
            return 0
        urgent = [w for doc_id, w in self._weights.items() if doc_id in self._urgent]
        if len(urgent) >= BUFFER_MAX or sum(urgent) >= BUFFER_WEIGHT_MAX:
            return 0
        full = len(self._results) >= BUFFER_MAX or sum(self._weights.values()) >= BUFFER_WEIGHT_MAX
        busy = self.pool.in_flight_ids() | {doc_id for doc_id, _ in self._results}
        room = self.pool.capacity - self.pool.in_flight
        started = 0
        # Busy documents are still `captured`, so they are among the due:
        # room + busy rows hold every one that can start now, and no more
        # (called twice a main-loop step, often with room for one or two).
        for due in pipeline.due_for_extraction(self.ledger, now=now(), limit=room + len(busy)):
            if full and not due.likely_invoice:
                break  # likely invoices come first: none is left
            if due.id in busy:
                continue
            if not self.pool.submit(due.id, due.sha256, urgent=due.likely_invoice):
                break
            if due.likely_invoice:
                self._urgent.add(due.id)
            started += 1
        return started

    def collect(self, timeout: float, *, intake_busy: bool = False) -> list:
        """Take the results the workers have ready (waiting up to `timeout`)
        and record them, likely invoices first, RECORD_CHUNK to a
        transaction (`record_all`). While `intake_busy`, at most one chunk,
        and only once the last chunk's time is paid back (recording keeps
        RECORD_SHARE of the main thread); the others wait in memory, each
        recorded exactly once later (or read again after a crash: its
        document is still `captured`). Returns the results recorded now."""
        # Called idle too: the pool replaces workers idle with OCR loaded.
        got = self.pool.collect(timeout=timeout)
        if got:
            # Likely invoices first (stable: otherwise in the order read), so
            # an invoice is never recorded behind a backlog of junk results.
            self._results += got
            self._results.sort(key=lambda r: r[0] not in self._urgent)
            self._weights.update((doc_id, result_weight(result)) for doc_id, result in got)
        done: list = []
        recording = 0.0
        while self._results:
            if intake_busy and self.clock() < self._record_after:
                break
            chunk, self._results = self._results[:RECORD_CHUNK], self._results[RECORD_CHUNK:]
            start = self.clock()
            self._urgent.difference_update(doc_id for doc_id, _ in chunk)
            for doc_id, _ in chunk:
                self._weights.pop(doc_id, None)
            self.record_all(chunk)
            done += chunk
            took = self.clock() - start
            recording += took
            if intake_busy:
                self._record_after = self.clock() + took * (1 - RECORD_SHARE) / RECORD_SHARE
                break
            # A chunk takes tens of milliseconds: the workers are handed
            # more before the next, or they idle once what they hold is read.
            self.feed()
        self._note_load(len(done), recording)
        return done

    def _note_load(self, recorded: int, took: float) -> None:
        # Recording a burst's results to `queued` is the main thread's
        # bottleneck when it took most of the time since the last call, for
        # more than a handful: backup rounds then wait (service/pace.py). A
        # backlog of slow scans leaves the main thread idle: no mark.
        now = self.clock()
        since, self._last_collect = now - self._last_collect, now
        if recorded >= BUSY_RECORDED and took >= BUSY_SHARE * since:
            pace.reading_busy()

    def record_all(self, finished: list) -> None:
        """Record (doc_id, analysis) results in ONE transaction: one commit
        for all of them, each document's writes still undone alone when its
        recording fails (a savepoint, `pipeline.record`). Every outcome lands
        in the ledger (a failure is retried with backoff, then quarantined);
        only the ledger's own disk failing raises (nothing of the batch is
        kept, the documents are read again), so the main loop backs off
        instead of reading again in a spin. After the COMMIT: the log lines,
        then `on_read` (a source is moved or deleted only once its reading is
        durable)."""
        if not finished:
            return
        outcomes = []
        with self.ledger.transaction(memory_journals=True):
            for doc_id, analysis in finished:
                outcomes.append((doc_id, pipeline.record(
                    self.ledger, doc_id, analysis, settings=self.settings, destinations=self.destinations,
                    today=today(), now=now(), actor=self.actor)))
        read = []
        briefs = self.ledger.briefs([d for _, outcome in outcomes for d in outcome.touched])
        for doc_id, outcome in outcomes:
            self._log(doc_id, outcome, briefs)
            if not outcome.already:
                read.append(doc_id)
        if read:
            self.on_read(read)

    def _log(self, doc_id: int, outcome: pipeline.Outcome, briefs: dict) -> None:
        if outcome.already:
            log.info("document was already read elsewhere; result dropped",
                     extra={"document": doc_id, "state": outcome.already})
            return
        if outcome.failed:
            if outcome.retry_at:
                log.warning("reading or recording a document failed; it is tried again later",
                            extra={"document": doc_id, "retry_at": outcome.retry_at, "error": outcome.failed})
            else:
                log.error("reading or recording a document failed too often; quarantined (extract-failed)",
                          extra={"document": doc_id, "error": outcome.failed})
        for d in outcome.touched:
            state, number, codes = briefs.get(d, ("?", None, []))
            # A second copy that reads otherwise is no mere duplicate: said louder.
            log.log(logging.WARNING if "conflicting-copy" in codes else logging.INFO, "processed",
                    extra={"document": d, "state": state, "number": number or "", "problems": ",".join(codes)})

    def drain(self, timeout: float) -> None:
        """Stop the pool within `timeout`, recording every result that comes
        in and every one still waiting, a chunk to a transaction."""
        results, self._results = self._results + self.pool.shutdown(timeout), []
        self._urgent.clear()
        self._weights.clear()
        for i in range(0, len(results), RECORD_CHUNK):
            self.record_all(results[i:i + RECORD_CHUNK])


def resume_stranded(ledger: Ledger, *, settings: ValidationSettings, destinations: Sequence[str],
                    actor: str) -> dict[str, int]:
    """Carry on documents an older version left between stages, valid ones
    a new destination should now receive, and documents still on their way
    a destination added since gets a row for (said by a log line each);
    one that cannot be judged stays where it is with an error line, and
    never stops the others. Returns {destination: documents given a row}."""
    failures: list[tuple[int, str]] = []
    added: dict[str, int] = {}
    moved = pipeline.resume_stranded(ledger, settings=settings, destinations=destinations,
                                     today=today(), now=now(), actor=actor, failures=failures, added_to=added)
    for name, n in added.items():
        log.info("documents on their way queued for a destination they had no delivery to",
                 extra={"destination": name, "documents": n})
    if moved > sum(added.values()):
        log.info("resumed documents left between stages", extra={"documents": moved - sum(added.values())})
    for doc_id, error in failures:
        log.error("could not judge a document left extracted; it stays there (amend or reject it)",
                  extra={"document": doc_id, "error": error})
    return added
