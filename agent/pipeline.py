"""What happens to one captured document: read it, judge it, queue it.

`analyse` is pure and picklable (it runs in worker processes); `apply`
writes its outcome to the ledger in the main process. Both take `today`
and `now` from the caller: the pipeline never reads a clock.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import traceback
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Sequence

from agent.errors import AgentError, ExtractError
from agent.extract.plausible import drop_dates_after
from agent.judgement import judge, settle_duplicates
from agent.ledger import Ledger
from agent.ledger.documents import Due, Step
from agent.ledger.rows import parse_utc, utc
from agent.model import Invoice, Problem, State
from agent.validate import ValidationSettings
from agent.vault import Vault


@dataclass
class Analysis:
    """The outcome of reading one vault object: invoices (as dicts, so it
    pickles cheaply) or the reason it could not be read."""

    invoices: list[dict[str, Any]] = field(default_factory=list)
    error_reason: str | None = None
    error_message: str | None = None
    error_zh: str | None = None   # the reason said in Chinese, when the reader said it (ExtractError.zh)


# A reading that failed for a reason outside the file's content (a reader
# bug, a worker that died) is tried again: EXTRACT_MAX_ATTEMPTS in all,
# EXTRACT_FIRST_DELAY_S after the first failure, doubling up to
# EXTRACT_MAX_DELAY_S, then quarantined as `extract-failed`.
RETRYABLE_REASONS = frozenset({"internal"})
EXTRACT_MAX_ATTEMPTS = 5
EXTRACT_FIRST_DELAY_S = 2.0
EXTRACT_MAX_DELAY_S = 60.0
# Quarantine codes for analyses that did not read the file.
_ERROR_CODES = {"timeout": "extract-timeout"}


@dataclass
class Outcome:
    """What recording one analysis did. `touched`: the documents moved on.
    `already`: the state another process left the document in (nothing was
    done here). `failed`: the error when this attempt failed; `retry_at` is
    then when it is tried again, or None when it was quarantined for good."""

    touched: list[int] = field(default_factory=list)
    already: str | None = None
    failed: str | None = None
    retry_at: str | None = None


def analyse(data: bytes, *, ocr: bool = True) -> Analysis:
    """Extract every invoice in `data` (scans by OCR too when `ocr` and the
    OCR extra is installed). Never raises: an unreadable file comes back
    with `error_reason` set (a bug shows as reason "internal")."""
    from agent.extract import extract_bytes

    try:
        invoices = extract_bytes(data, ocr=ocr)
    except ExtractError as e:
        return Analysis(error_reason=e.reason, error_message=e.message, error_zh=e.zh)
    except AgentError as e:
        return Analysis(error_reason="corrupt", error_message=str(e))
    except Exception as e:  # the daemon must never die of a bad file
        return Analysis(error_reason="internal", error_message=_describe(e))
    if not invoices:
        return Analysis(error_reason="not-invoice", error_message="no invoice found in the file")
    return Analysis(invoices=[inv.to_dict() for inv in invoices])


def apply(ledger: Ledger, doc_id: int, analysis: Analysis, *, settings: ValidationSettings,
          destinations: Sequence[str], today: dt.date, now: str, actor: str) -> list[int]:
    """Record an analysis for a `captured` document and carry each invoice
    through validation to `queued` (or quarantined, duplicate, not_invoice).
    A file holding several invoices gets one document per invoice.
    Returns the ids of the documents touched; [] when the document is no
    longer `captured` (another process recorded it first: a compare-and-set
    in the same transaction, so two readers of one file never both write).
    Raises what recording raises, with nothing written."""
    # One transaction for the whole file: a crash can never leave a
    # document stranded half way (extracted but not judged, valid but not
    # queued), where no loop would pick it up again.
    with ledger.transaction():
        doc = ledger.get(doc_id)
        if doc.state != State.CAPTURED.value:
            return []
        return _apply(ledger, doc_id, analysis, settings=settings, destinations=destinations,
                      today=today, now=now, actor=actor, received_at=doc.received_at)


def _zh_of(reason: str) -> str:
    # What a person reads in Chinese when the reader said it in English
    # only: the reason and the way out (a timeout is the pool's, not a reader's).
    if reason == "timeout":
        return "读取超过时限（[extract] timeout_s），已停止读取：请检查文件，或通过补录（fapiao-agent amend）录入"
    from agent.extract.refusal_texts import way_out_zh

    return way_out_zh(reason)


def _apply(ledger: Ledger, doc_id: int, analysis: Analysis, *, settings: ValidationSettings,
           destinations: Sequence[str], today: dt.date, now: str, actor: str, received_at: str) -> list[int]:
    if analysis.error_reason:
        code = _ERROR_CODES.get(analysis.error_reason, "unreadable")
        problem = Problem(code=code, severity="error", field=None,
                          message=f"{analysis.error_reason}: {analysis.error_message}",
                          message_zh=analysis.error_zh or _zh_of(analysis.error_reason))
        ledger.transition(doc_id, State.QUARANTINED, now=now, actor=actor, expect=State.CAPTURED,
                          reason=problem.message, problems=[problem.to_dict()])
        return [doc_id]
    touched = []
    arrived = arrival_day(received_at)
    for i, inv_dict in enumerate(analysis.invoices):
        target = doc_id if i == 0 else ledger.add_part(doc_id, i + 1, now=now, actor=actor)
        invoice = Invoice.from_dict(inv_dict)
        if invoice.is_invoice and arrived is not None:
            drop_dates_after(invoice, arrived)
        if not invoice.is_invoice:
            ledger.transition(target, State.NOT_INVOICE, now=now, actor=actor, expect=State.CAPTURED,
                              reason=invoice.not_invoice_reason or "not an invoice",
                              fields=invoice.to_dict(), problems=[])
        else:
            # Read, judged and queued by one update of the row (`before`):
            # the trail still has one event for each of the three moves.
            extracted = Step(State.EXTRACTED, f"read {len(invoice.fields)} fields",
                             columns=invoice_columns(invoice))
            judge(ledger, target, invoice, settings=settings, destinations=destinations,
                  today=today, now=now, actor=actor, before=[extracted], expect=State.CAPTURED)
        touched.append(target)
    return touched


def arrival_day(received_at: str) -> dt.date | None:
    """The day a document's file arrived, in China (UTC+8), where invoice
    dates are written: a date read from the page may not be later. None
    when the stored moment is not in the ledger's format."""
    try:
        return (parse_utc(received_at) + dt.timedelta(hours=8)).date()
    except (TypeError, ValueError):
        return None


def record(ledger: Ledger, doc_id: int, analysis: Analysis, *, settings: ValidationSettings,
           destinations: Sequence[str], today: dt.date, now: str, actor: str) -> Outcome:
    """`apply`, or count a failed attempt: an analysis with a retryable
    reason, or a recording that raised, leaves the document `captured` with
    its attempt, error and next due time in the ledger (`record_failure`).
    Never raises for a bad document; re-raises when the ledger itself cannot
    be written (its disk), so the caller backs off instead."""
    if analysis.error_reason in RETRYABLE_REASONS:
        return record_failure(ledger, doc_id, f"{analysis.error_reason}: {analysis.error_message}",
                              now=now, actor=actor)
    try:
        touched = apply(ledger, doc_id, analysis, settings=settings, destinations=destinations,
                        today=today, now=now, actor=actor)
    except Exception as e:  # a value the ledger cannot hold, a bug: never a spin
        if ledger_unavailable(e):
            raise
        return record_failure(ledger, doc_id, _describe(e), now=now, actor=actor)
    if not touched:
        return Outcome(already=ledger.state_of(doc_id))
    return Outcome(touched=touched)


def record_failure(ledger: Ledger, doc_id: int, error: str, *, now: str, actor: str,
                   max_attempts: int = EXTRACT_MAX_ATTEMPTS) -> Outcome:
    """Count one failed reading or recording of a `captured` document, in
    one transaction: before `max_attempts` it stays `captured`, due again
    after a doubling delay; at `max_attempts` it is quarantined as
    `extract-failed` with the error. A document no longer `captured` is
    left alone (`Outcome.already`)."""
    with ledger.transaction():
        state, attempts = ledger.extraction_attempts(doc_id)
        if state != State.CAPTURED.value:
            return Outcome(already=state)
        attempt = attempts + 1
        retry_at = None
        if attempt < max_attempts:
            delay = min(EXTRACT_MAX_DELAY_S, EXTRACT_FIRST_DELAY_S * 2 ** (attempt - 1))
            retry_at = utc(parse_utc(now) + dt.timedelta(seconds=delay))
        ledger.note_extract_failure(doc_id, attempt=attempt, error=error, retry_at=retry_at,
                                    now=now, actor=actor, max_attempts=max_attempts)
        if retry_at is None:
            message = f"reading or recording failed {attempt} times; last error: {error}"
            problem = Problem(code="extract-failed", severity="error", field=None, message=message,
                              message_zh=f"读取或记录失败 {attempt} 次")
            ledger.transition(doc_id, State.QUARANTINED, now=now, actor=actor, expect=State.CAPTURED,
                              reason=f"extract-failed: {message}", problems=[problem.to_dict()])
        return Outcome(touched=[doc_id] if retry_at is None else [], failed=error, retry_at=retry_at)


def due_for_extraction(ledger: Ledger, *, now: str, limit: int) -> list[Due]:
    """`captured` documents to read now, likely invoices first, then oldest
    first: never tried, or past their retry time. A retry time further
    ahead than the longest delay means the clock went back: due now rather
    than stalled."""
    latest = utc(parse_utc(now) + dt.timedelta(seconds=EXTRACT_MAX_DELAY_S))
    return ledger.due_for_extraction(now=now, latest=latest, limit=limit)


def ledger_unavailable(e: BaseException) -> bool:
    """True for an error of the ledger itself (its disk is full or read-only,
    the file is locked or damaged), which no document causes and waiting
    may cure; False for anything one document's values can cause."""
    return isinstance(e, sqlite3.Error) and not isinstance(
        e, (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError))


def _describe(e: BaseException) -> str:
    last = traceback.extract_tb(e.__traceback__)[-1:]
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    return f"{type(e).__name__}: {e}{where}"


def resume_stranded(ledger: Ledger, *, settings: ValidationSettings, destinations: Sequence[str],
                    today: dt.date, now: str, actor: str,
                    failures: list[tuple[int, str]] | None = None,
                    added_to: dict[str, int] | None = None) -> int:
    """Carry on documents left between stages by an older version or a
    changed config: `extracted` ones are judged, `valid` ones queued when
    there are destinations, duplicates of no live copy judged again
    (`settle_duplicates`), and documents still on their way (queued,
    delivering, failed) given a row for each of `destinations` they have
    none for (a destination added: `Ledger.queue_added_destinations`;
    delivered ones are not). Returns how many moved, plus the rows added.
    A document that cannot be judged (fields the model cannot rebuild, moved meanwhile by another
    process) stays where it is and is appended to `failures` as (id, error):
    one such document never stops the others, nor the daemon's start.
    `added_to` gets {destination: documents given a row for it}."""
    moved = settle_duplicates(ledger, settings=settings, destinations=destinations, today=today,
                              now=now, actor=actor)
    for doc_id in ledger.ids_in_state(State.EXTRACTED):
        try:
            with ledger.transaction():
                doc = ledger.get(doc_id)
                if doc.state != State.EXTRACTED.value:
                    continue
                judge(ledger, doc_id, Invoice.from_dict(doc.fields or {}), settings=settings,
                      destinations=destinations, today=today, now=now, actor=actor, reason_prefix="resumed: ")
        except Exception as e:
            if ledger_unavailable(e):
                raise
            if failures is not None:
                failures.append((doc_id, _describe(e)))
            continue
        moved += 1
    if destinations:
        for doc_id in ledger.ids_in_state(State.VALID):
            ledger.queue_deliveries(doc_id, destinations, now=now, actor=actor)
            moved += 1
        added = ledger.queue_added_destinations(destinations, now=now, actor=actor)
        if added_to is not None:
            added_to.update(added)
        moved += sum(added.values())
    return moved


def process_captured(ledger: Ledger, vault: Vault, doc_id: int, *, settings: ValidationSettings,
                     destinations: Sequence[str], today: dt.date, now: str, actor: str,
                     ocr: bool = True) -> Outcome:
    """`analyse` + `record` in this process (one-shot ingest, tests). A
    document no longer `captured` is not read again (`Outcome.already`)."""
    doc = ledger.get(doc_id)
    if doc.state != State.CAPTURED.value:
        return Outcome(already=doc.state)
    return record(ledger, doc_id, analyse(vault.read(doc.sha256), ocr=ocr), settings=settings,
                  destinations=destinations, today=today, now=now, actor=actor)


def invoice_columns(invoice: Invoice) -> dict[str, Any]:
    """The ledger columns derived from an invoice: fields JSON, identity and
    sort keys. Never raises: a total the INTEGER column cannot hold (absurd,
    NaN, infinite) gets no `total_cents`, and the `amount-range` rule
    quarantines the invoice."""
    date = invoice.get("date")
    return {
        "fields": invoice.to_dict(),
        "invoice_key": invoice.key,
        "invoice_number": invoice.get("number"),
        "invoice_date": date.isoformat() if isinstance(date, dt.date) else None,
        "total_cents": total_cents(invoice.get("total")),
    }


# SQLite INTEGER is 64-bit signed.
_MAX_CENTS = 2 ** 63 - 1
_CENT = Decimal("0.01")


def total_cents(total: Any) -> int | None:
    """`total` in whole cents, or None when absent, not a number, not
    whole cents, or beyond what an INTEGER column holds."""
    if total is None or isinstance(total, bool):
        return None
    try:
        value = total if isinstance(total, Decimal) else Decimal(str(total))
        if not value.is_finite() or value.adjusted() > 18:
            return None
        whole = value.quantize(_CENT)
    except (InvalidOperation, ValueError):
        return None
    if whole != value:
        return None
    cents = int(whole.scaleb(2))
    return cents if abs(cents) <= _MAX_CENTS else None
