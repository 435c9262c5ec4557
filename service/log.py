"""One line per event on stderr: `key=value` (default) or JSON.

Repeated identical errors are rate-limited, so a target that stays down
logs once a minute, not once per attempt. Every line is redacted of the
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
import time
from collections.abc import Mapping

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


class RateLimit(logging.Filter):
    """Let the same (logger, message) at warning or above through at most
    once per `interval_s`, counting what was suppressed. A record logged
    with extra `_unlimited` (an operator's one-off act, a failed reload)
    always passes."""

    def __init__(self, interval_s: float = 60.0):
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, "_unlimited", False):
            return True
        key = (record.name, record.getMessage())
        now = time.monotonic()
        last, suppressed = self._last.get(key, (None, 0))
        if last is not None and now - last < self.interval_s:
            self._last[key] = (last, suppressed + 1)
            return False
        if suppressed:
            record.suppressed = suppressed
        self._last[key] = (now, 0)
        if len(self._last) > 10_000:
            self._last.clear()
        return True


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
    syslog priority prefixes when stderr is the journal (`stderr_is_journal`)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else KeyValueFormatter()
    handler.setFormatter(JournalPrefix(formatter) if stderr_is_journal(sys.stderr) else formatter)
    handler.addFilter(RateLimit())
    root = logging.getLogger()
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
