"""One line per event on stderr: `key=value` (default) or JSON.

A repeated warning or error is rate-limited per event (its message and the
extras naming it: path, reason, problem, folder...), so a target that stays
down or a file retried in a loop logs once a minute, not once per attempt,
while distinct events (six files refused, four config problems) each get
their line; what was suppressed is counted (`RateLimit`). Every line is redacted of the
configured secrets (`agent.redact`), tracebacks of vendor exceptions included,
and holds no raw control character (`service.textsafe.json_text`).

When stderr is the journal (systemd sets `JOURNAL_STREAM` to the device
and inode of the stream it connected, systemd.exec(5)), each line starts
with its syslog priority, `<3>` for an error ... `<7>` for debug
(sd-daemon(3)), so `journalctl -p warning` finds the errors and warnings.
Anywhere else (a terminal, a file, a pipe) the lines stay plain text.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from agent.redact import redact, redact_data
from service.textsafe import json_text

_RESERVED = set(vars(logging.makeLogRecord({})))


def local_stamp(created: float) -> str:
    """A log line's time: local (TZ) with its offset, to the millisecond,
    `2026-12-04T06:05:06.123+08:00`. Without the offset a line read in
    another zone (or after a DST change) names the wrong moment."""
    return dt.datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=info logger=fapiao.daemon msg="..." key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={local_stamp(record.created)}", f"level={record.levelname.lower()}",
                 f"logger={record.name}", f"msg={_quote(redact(record.getMessage()))}"]
        parts += [f"{k}={_quote(redact(str(v)))}" for k, v in _extras(record).items()]
        if record.exc_info:
            parts.append(f"exc={_quote(redact(self.formatException(record.exc_info)))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with ts, level, logger, msg and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        obj = {"ts": local_stamp(record.created), "level": record.levelname.lower(),
               "logger": record.name, "msg": redact(record.getMessage()),
               **redact_data(_extras(record))}
        if record.exc_info:
            obj["exc"] = redact(self.formatException(record.exc_info))
        return json_text(json.dumps(obj, ensure_ascii=False, default=str))


# Extras that change from one try of the same event to the next (a counter, the
# time of the next try): left out of an event's identity, or a file retried in a
# loop would be a new event each time and flood the journal. Anything else in the
# extras (path, reason, problem, folder, document, destination, error) names the
# event, so two files refused for two reasons are two events, each logged.
VOLATILE_EXTRAS = frozenset({"retry_at", "retry_s", "next_attempt_at", "failures", "attempt", "attempts",
                             "wait_s", "jump_s", "suppressed", "suppressed_msg"})
# Events remembered at once; past it the oldest window is closed early (its
# summary written), so memory stays bounded and nothing is dropped uncounted.
MAX_EVENTS = 10_000


class RateLimit(logging.Filter):
    """Let each event at warning or above through at most once per
    `interval_s`; info and below, and a record with extra `_unlimited` (an
    operator's one-off act, a failed reload), always pass.

    An event is the logger, the message and the extras that name it (all but
    VOLATILE_EXTRAS): the same file refused again is the same event, another
    file or another reason is not. Nothing suppressed goes uncounted: the
    event's next line after its window carries `suppressed=N`, and a window
    that closes without one is told by a line of its own, `N similar lines
    suppressed` with the event's message (`suppressed_msg`) and extras, handed
    to `emit` (the handler) at the next record or at `close_all`."""

    def __init__(self, interval_s: float = 60.0, emit: Callable[[logging.LogRecord], object] | None = None,
                 max_events: int = MAX_EVENTS):
        super().__init__()
        self.interval_s = interval_s
        self.emit = emit
        self.max_events = max_events
        self._lock = threading.RLock()
        # key -> [window start, suppressed, the event's record (kept once one is suppressed)];
        # ordered by window start, so closed windows are at the front.
        self._windows: OrderedDict[tuple, list] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        limited = record.levelno >= logging.WARNING and not getattr(record, "_unlimited", False)
        now = time.monotonic()
        with self._lock:
            passes = self._admit(record, now) if limited else True
            closed = self._close(lambda start: now - start >= self.interval_s)
        self._tell(closed)
        return passes

    def close_all(self) -> None:
        """Write the summary of every window that has suppressed lines now
        (at shutdown: a count is never lost with the process)."""
        with self._lock:
            closed = self._close(lambda start: True)
        self._tell(closed)

    def _admit(self, record: logging.LogRecord, now: float) -> bool:
        key = _event_key(record)
        window = self._windows.get(key)
        if window is not None and now - window[0] < self.interval_s:
            window[1] += 1
            if window[2] is None:
                window[2] = record
            return False
        if window is not None and window[1]:
            record.suppressed = window[1]  # told on this line, not by a summary of its own
        self._windows.pop(key, None)
        self._windows[key] = [now, 0, None]
        return True

    def _close(self, is_closed: Callable[[float], bool]) -> list[logging.LogRecord]:
        summaries = []
        while self._windows:
            key, (start, suppressed, sample) = next(iter(self._windows.items()))
            if not (is_closed(start) or len(self._windows) > self.max_events):
                break
            del self._windows[key]
            if suppressed:
                summaries.append(_summary(sample, suppressed))
        return summaries

    def _tell(self, summaries: list[logging.LogRecord]) -> None:
        for summary in summaries:
            if self.emit is not None:
                self.emit(summary)


def _event_key(record: logging.LogRecord) -> tuple:
    extras = tuple(sorted((k, str(v)) for k, v in _extras(record).items() if k not in VOLATILE_EXTRAS))
    return (record.name, record.levelno, record.getMessage(), extras)


def _summary(sample: logging.LogRecord, suppressed: int) -> logging.LogRecord:
    """The line telling how many of `sample`'s event were suppressed: its
    logger and level (so `journalctl -p warning` finds it), its extras."""
    extras = {k: v for k, v in _extras(sample).items() if k not in VOLATILE_EXTRAS}
    return logging.makeLogRecord({
        "name": sample.name, "levelno": sample.levelno, "levelname": sample.levelname,
        "msg": f"{suppressed} similar line{'s' if suppressed != 1 else ''} suppressed",
        **extras, "suppressed": suppressed, "suppressed_msg": sample.getMessage(), "_unlimited": True})


class _LimitedHandler(logging.StreamHandler):
    """stderr's handler: at close (logging.shutdown, at exit) the rate
    limit's open windows are summarised first."""

    def __init__(self, stream, limit: RateLimit):
        super().__init__(stream)
        self.limit = limit
        limit.emit = self.handle
        self.addFilter(limit)

    def close(self) -> None:
        self.limit.close_all()
        super().close()


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 critical, 3 error,
    4 warning, 6 info, 7 debug (levels between round down to the lower one)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalPrefix(logging.Formatter):
    """Another formatter's line with its `<N>` priority prefix, which journald
    strips and keeps as the entry's PRIORITY. Lines are one line each (the
    formatters escape newlines), so every line carries its own prefix."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self.inner.format(record)}"


def stderr_is_journal(stream=None, env: Mapping[str, str] | None = None) -> bool:
    """True only when `stream` (default stderr) is the journal's own stream:
    `JOURNAL_STREAM` is `DEVICE:INODE` and they are the stream's (fstat). A
    variable inherited by a process whose stderr was redirected elsewhere
    (a shell, `2>file`) names another file, so that process writes plain text."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat((sys.stderr if stream is None else stream).fileno())
    except (ValueError, OSError, AttributeError, io.UnsupportedOperation):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup(fmt: str = "kv", level: int = logging.INFO) -> None:
    """Route all logging to stderr in the chosen format, rate-limited, with
    syslog priority prefixes when stderr is the journal (`stderr_is_journal`).
    Called again (the config's log_format), it keeps the rate limit's windows:
    nothing suppressed before is forgotten or let through twice."""
    root = logging.getLogger()
    kept = next((h.limit for h in root.handlers if isinstance(h, _LimitedHandler)), None)
    handler = _LimitedHandler(sys.stderr, kept or RateLimit())
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else KeyValueFormatter()
    handler.setFormatter(JournalPrefix(formatter) if stderr_is_journal(sys.stderr) else formatter)
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")
            and k not in ("message", "asctime")}


# One plain word: letters and digits (str.isalnum, which \w adds "_" to) and -_./:@+.
_BARE = re.compile(r"[\w\-./:@+]+")


def _quote(text: str) -> str:
    """`text` bare when it is one plain word, else as a JSON string with every
    control character escaped (a file name cannot break or forge a line, or
    send the terminal tailing the log an escape sequence)."""
    if _BARE.fullmatch(text):
        return text
    return json_text(json.dumps(text, ensure_ascii=False))
