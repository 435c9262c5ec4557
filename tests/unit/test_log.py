"""Log lines: key=value or JSON, one per event; repeated errors rate-limited."""

from __future__ import annotations

import json
import logging

from service.log import JsonFormatter, KeyValueFormatter, RateLimit


def record(msg: str, level=logging.ERROR, **extra) -> logging.LogRecord:
    r = logging.makeLogRecord({"name": "fapiao.test", "levelno": level, "levelname": logging.getLevelName(level),
                               "msg": msg, **extra})
    return r


def test_key_value_line_quotes_only_what_needs_it():
    line = KeyValueFormatter().format(record("capture failed; will retry", path="/srv/扫描 1.pdf", document=7))
    assert "level=error" in line and "logger=fapiao.test" in line
    assert 'msg="capture failed; will retry"' in line
    assert 'path="/srv/扫描 1.pdf"' in line and "document=7" in line
    assert "\n" not in line


def test_json_line_carries_the_extras():
    obj = json.loads(JsonFormatter().format(record("refused", reason="is a FIFO")))
    assert obj["msg"] == "refused" and obj["reason"] == "is a FIFO" and obj["level"] == "error"


def test_same_error_passes_once_per_interval_then_reports_suppressed(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("service.log.time.monotonic", lambda: clock[0])
    limit = RateLimit(interval_s=60)
    assert limit.filter(record("target down"))
    assert not any(limit.filter(record("target down")) for _ in range(5))
    assert limit.filter(record("another error"))
    assert limit.filter(record("fine", level=logging.INFO))
    assert limit.filter(record("fine", level=logging.INFO))  # info is never limited
    clock[0] += 61
    again = record("target down")
    assert limit.filter(again)
    assert again.suppressed == 5
