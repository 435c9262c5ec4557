"""One line per event on stderr: `key=value` (default) or JSON.

Repeated identical errors are rate-limited, so a target that stays down
logs once a minute, not once per attempt. Every line is redacted of the
configured secrets (`agent.redact`), tracebacks of vendor exceptions included,
and holds no raw control character (`service.textsafe.json_text`).
"""

from __future__ import annotations

import json
import logging
import sys
import time

from agent.redact import redact, redact_data
from service.textsafe import json_text

_RESERVED = set(vars(logging.makeLogRecord({})))


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=info logger=fapiao.daemon msg="..." key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}", f"level={record.levelname.lower()}",
                 f"logger={record.name}", f"msg={_quote(redact(record.getMessage()))}"]
        parts += [f"{k}={_quote(redact(str(v)))}" for k, v in _extras(record).items()]
        if record.exc_info:
            parts.append(f"exc={_quote(redact(self.formatException(record.exc_info)))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with ts, level, logger, msg and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        obj = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
               "logger": record.name, "msg": redact(record.getMessage()),
               **redact_data(_extras(record))}
        if record.exc_info:
            obj["exc"] = redact(self.formatException(record.exc_info))
        return json_text(json.dumps(obj, ensure_ascii=False, default=str))


class RateLimit(logging.Filter):
    """Let the same (logger, message) at warning or above through at most
    once per `interval_s`, counting what was suppressed."""

    def __init__(self, interval_s: float = 60.0):
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
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


def setup(fmt: str = "kv", level: int = logging.INFO) -> None:
    """Route all logging to stderr in the chosen format, rate-limited."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")
            and k not in ("message", "asctime")}


def _quote(text: str) -> str:
    """`text` bare when it is one plain word, else as a JSON string with every
    control character escaped (a file name cannot break or forge a line, or
    send the terminal tailing the log an escape sequence)."""
    if text and all(c.isalnum() or c in "-_./:@+" for c in text):
        return text
    return json_text(json.dumps(text, ensure_ascii=False))
