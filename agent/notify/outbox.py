"""When to notify, and the sending of what is due: the rules over the
ledger's notify rows. Pure: no threads, no sleeps, `now` passed in; the
notify loop (service/notify.py) calls `run_round` and `send_due`.

Faults are level-triggered: each round compares what the ledger shows now
(agent/notify/faults.py) with the faults the entry was told about
(`notify_faults`, kept in the ledger, so a restart repeats nothing):
- a fault not yet told: ONE message ("opened");
- a fault still open: nothing, except a reminder every `repeat_hours` (0: never);
- a told fault no longer seen: nothing yet; once it has stayed clear for
  `resolve_after_minutes`, ONE "resolved" message. Seen again before that
  (a flapping target) it simply stays open: a flap sends one message, not a
  storm. This is the damping chosen over a per-key rate limit: it never
  drops a new fault, it only waits before calling one over.
Quarantines are not faults but arrivals: each entry gets one digest per
`digest_minutes` at most, listing the documents quarantined since its last
digest (a new entry starts from the present, not the ledger's history).
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from agent.errors import NotifyPermanent, NotifyRetryable
from agent.ledger.rows import TimeText, as_stored, parse_utc, utc
from agent.notify.base import Attachment, Message, Notifier, code_span
from agent.notify.events import EVENTS
from agent.notify.faults import Fault

PREFIX = "[fapiao-agent] "
BASE_DELAY_S = 30.0
MAX_DELAY_S = 3600.0
_DIGEST_LIST = 30            # documents listed by name in one digest; the rest counted


def enqueue(ledger, entries: Sequence[dict[str, Any]], *, event: str, key: str, subject: str, text: str,
            now: dt.datetime, html: str | None = None,
            attachments: Iterable[tuple[str, bytes, str]] = (), kind: str = "report") -> list[int]:
    """Queue one message for every [[notify]] entry (of `entries`, e.g.
    cfg.notify) whose `events` include `event`; returns the new rows' ids
    (none when no entry wants it).

    Guarantee: when this returns, each message is a pending row committed
    in the ledger (one transaction for all). The notify loop then sends it
    at least once (a crash between the send and its record sends it again),
    retrying with backoff for `give_up_hours`, and records the outcome; it
    never raises here for a channel's trouble and never blocks the caller
    on the network. E-mail gets `html` and `attachments` ((filename, bytes,
    mimetype)); webhooks get `text` as markdown. Raises ValueError for an
    event not in EVENTS."""
    if event not in EVENTS:
        raise ValueError(f"unknown notify event {event!r} (known: {', '.join(EVENTS)})")
    files = [{"filename": n, "mimetype": m, "data": base64.b64encode(d).decode("ascii")} for n, d, m in attachments]
    messages = [{"entry": e["name"], "event": event, "key": key, "kind": kind, "subject": PREFIX + subject,
                 "body": text, "html": html, "attachments": files}
                for e in entries if event in (e.get("events") or ())]
    return ledger.enqueue_notifications(messages, now=utc(now)) if messages else []


def run_round(ledger, entry: dict[str, Any], faults: dict[str, Fault], *, now: dt.datetime, actor: str,
              time_text: TimeText = as_stored) -> int:
    """One round for one entry: open, remind and resolve its faults against
    `faults` (what is open now), and its quarantine digest; written in one
    transaction with the messages it queues, a stored time in their texts
    written by `time_text` (the daemon passes local time). Returns how many
    it queued."""
    name, at = entry["name"], utc(now)
    told = ledger.notify_faults(name)
    opened, reminded, seen_again, clearing, resolved, messages = [], [], [], [], [], []
    repeat_s = float(entry.get("repeat_hours") or 0) * 3600
    for key, f in faults.items():
        row = told.get(key)
        if row is None:
            opened.append({"key": key, "event": f.event, "subject": f.subject})
            messages.append(_message(name, f.event, key, "opened", f.subject, f.text))
            continue
        if row["clear_since"]:
            seen_again.append(key)
        elif repeat_s and not _within(now, row["notified_at"], repeat_s):
            reminded.append(key)
            messages.append(_message(name, f.event, key, "reminder", "仍未解决 STILL OPEN: " + f.subject,
                                     f"{f.text}\n\n自 {time_text(row['opened_at'])} 起 / open since {time_text(row['opened_at'])}"))
    hold_s = float(entry.get("resolve_after_minutes") or 0) * 60
    for key, row in told.items():
        if key in faults:
            continue
        if not row["clear_since"]:
            clearing.append(key)
            if hold_s:
                continue
        elif _within(now, row["clear_since"], hold_s):
            continue
        resolved.append(key)
        messages.append(_message(name, row["event"], key, "resolved", "已恢复 RESOLVED: " + row["subject"],
                                 f"已恢复 / resolved: {row['subject']}\n"
                                 f"open {time_text(row['opened_at'])} → clear {time_text(row['clear_since'] or at)}"))
    cursor = _digest(ledger, entry, now, messages, time_text)
    if opened or reminded or seen_again or clearing or resolved or cursor or messages:
        ledger.save_notify_round(name, opened=opened, reminded=reminded, seen_again=seen_again,
                                 clearing=[k for k in clearing if k not in resolved], resolved=resolved,
                                 cursor=cursor, messages=messages, now=at, actor=actor)
    return len(messages)


def _digest(ledger, entry: dict[str, Any], now: dt.datetime, messages: list[dict],
            time_text: TimeText) -> tuple[int, str] | None:
    # The cursor to store (or None: unchanged); appends the digest to `messages`.
    if "quarantined" not in (entry.get("events") or ()):
        return None
    cursor = ledger.notify_cursor(entry["name"])
    if cursor is None:
        return ledger.last_event_id(), utc(now)
    if _within(now, cursor["digest_at"], float(entry.get("digest_minutes") or 0) * 60):
        return None
    # Named: the first _DIGEST_LIST; counted: every one since the cursor (a
    # storm of thousands is one digest that says how many, not a low count).
    rows = ledger.quarantines_after(cursor["quarantine_event_id"], limit=_DIGEST_LIST)
    if not rows:
        return None
    n, last_id = ledger.quarantines_count_after(cursor["quarantine_event_id"])
    n, last_id = max(n, len(rows)), max(last_id or 0, rows[-1]["event_id"])
    # File names and reasons come from strangers: one line each, as code
    # (a reason may quote a server's or a file's text).
    lines = [f"- #{r['document_id']} {code_span(r['original_name']) if r['original_name'] else '?'}: "
             f"{code_span(', '.join(c for c in r['codes'] if c) or r['reason'] or '?')}"
             f" ({time_text(r['at'])}, now {r['state']})" for r in rows]
    if n > len(rows):
        lines.append(f"- … {n - len(rows)} more / 另有 {n - len(rows)} 张")
    text = (f"{n} 张发票被隔离, 等待人工处理 / {n} invoice(s) quarantined, waiting for a person:\n"
            + "\n".join(lines) + "\n\n`fapiao-agent quarantine` shows them; `fapiao-agent show ID` each one.")
    messages.append(_message(entry["name"], "quarantined", f"quarantined:{last_id}", "digest",
                             f"{n} 张发票被隔离 / {n} invoices quarantined", text))
    return last_id, utc(now)


def _within(now: dt.datetime, since: str, window_s: float) -> bool:
    # True while `now` is less than `window_s` after `since`. A `since` in the
    # future (the clock was set back after it was written) counts as the
    # window over: at worst one message early, never a day of silence.
    elapsed = (now - parse_utc(since)).total_seconds()
    return 0 <= elapsed < window_s


def _message(entry: str, event: str, key: str, kind: str, subject: str, text: str) -> dict:
    return {"entry": entry, "event": event, "key": key, "kind": kind, "subject": PREFIX + subject, "body": text}


def as_message(row: dict) -> Message:
    """The Message a notifier sends for an outbox row."""
    files = tuple(Attachment(a["filename"], base64.b64decode(a["data"]), a.get("mimetype") or "application/octet-stream")
                  for a in row.get("attachments") or ())
    return Message(subject=row["subject"], text=row["body"], html=row.get("html"), attachments=files,
                   event=row["event"], key=row["key"])


@dataclass(frozen=True)
class Outcome:
    """What became of one row this round: sent, retry (with when) or failed."""

    id: int
    entry: str
    kind: str
    key: str
    result: str
    error: str | None = None
    next_attempt_at: str | None = None


def send_due(ledger, channels: dict[str, tuple[Notifier, dict[str, Any]]], *, now: dt.datetime, actor: str,
             rng: random.Random | None = None, limit: int = 20,
             stopping: Callable[[], bool] = lambda: False) -> list[Outcome]:
    """Try every due pending row once (`channels`: entry name → (notifier,
    entry)) and record each outcome: sent; retried later with exponential
    backoff (30 s doubling to 1 h, +-20 %) after a NotifyRetryable, other
    rows of that entry left for the next round (one dead server costs one
    timeout per round); failed after a NotifyPermanent, once the row is
    older than the entry's give_up_hours, or when its entry is gone from
    the config. An unexpected exception from a notifier (a bug) counts as a
    retryable failure of that row, so no row can stall the others. Each
    send takes at most its entry's timeout_s (the notifiers' guarantee), and
    once `stopping()` is true no further row is tried (they stay due), so a
    stop waits for one send at most, not one per stuck entry. Returns the
    outcomes, for the loop to log once each."""
    rng = rng or random.Random()
    at, out, resting = utc(now), [], set()
    for row in ledger.due_notifications(now=at, limit=limit):
        if stopping():
            break
        name = row["entry"]
        if name in resting:
            continue
        if name not in channels:
            error = f"no [[notify]] entry named {name!r} in the config any more"
            ledger.notification_failed(row["id"], error=error, now=at, actor=actor)
            out.append(Outcome(row["id"], name, row["kind"], row["key"], "failed", error))
            continue
        notifier, entry = channels[name]
        try:
            try:
                notifier.send(as_message(row))
            except (NotifyRetryable, NotifyPermanent):
                raise
            except Exception as bug:   # one odd row must not stall every later one: counted as a failed try
                raise NotifyRetryable(f"notify {name}: unexpected {type(bug).__name__}: {bug}") from bug
        except NotifyRetryable as e:
            age_s = (now - parse_utc(row["created_at"])).total_seconds()
            if age_s >= float(entry.get("give_up_hours") or 24) * 3600:
                ledger.notification_failed(row["id"], error=f"given up after {row['attempts'] + 1} tries: {e}",
                                           now=at, actor=actor)
                out.append(Outcome(row["id"], name, row["kind"], row["key"], "failed", str(e)))
            else:
                delay = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** min(row["attempts"], 10)) * rng.uniform(0.8, 1.2)
                when = utc(now + dt.timedelta(seconds=delay))
                ledger.notification_retry(row["id"], error=str(e), now=at, next_attempt_at=when)
                out.append(Outcome(row["id"], name, row["kind"], row["key"], "retry", str(e), when))
            resting.add(name)
        except NotifyPermanent as e:
            ledger.notification_failed(row["id"], error=str(e), now=at, actor=actor)
            out.append(Outcome(row["id"], name, row["kind"], row["key"], "failed", str(e)))
        else:
            ledger.notification_sent(row["id"], now=at, actor=actor)
            out.append(Outcome(row["id"], name, row["kind"], row["key"], "sent"))
    return out


def send_test(ledger, entries: Sequence[dict[str, Any]], *, now: dt.datetime, actor: str,
              host: str = "", time_text: TimeText = as_stored) -> list[dict]:
    """Send one test message to each of `entries` now (not through the
    outbox: the operator waits for the answer), saying when as `time_text`
    writes it, and record each as a sent or failed row, so `status` shows
    it. Returns per entry: name, ok, error (redacted). Never raises for a
    channel's trouble."""
    from agent.errors import AgentError
    from agent.notify.base import open_notifier

    out = []
    for entry in entries:
        # The host and the entry's name are no text of ours: code spans.
        message = _message(entry["name"], "weekly-report", "test", "test",
                           f"测试通知 test notification {code_span(host) if host else ''}".strip(),
                           f"这是一条来自 fapiao-agent 的测试通知 ({time_text(utc(now))}).\n"
                           f"A test notification from fapiao-agent to [[notify]] {code_span(entry['name'])}; "
                           "if you read this, the channel works.")
        message["event"] = "test"
        error = None
        try:
            open_notifier(entry).send(as_message(message))
        except AgentError as e:
            error = str(e)
        ledger.record_notification(message, sent=error is None, error=error, now=utc(now), actor=actor)
        out.append({"name": entry["name"], "ok": error is None, "error": error})
    return out
