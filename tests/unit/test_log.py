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


def test_distinct_events_with_one_message_each_get_their_line(monkeypatch):
    """Six files refused, four config problems, two folders not watched: the
    message is the same, the extras name different events; each is logged."""
    monkeypatch.setattr("service.log.time.monotonic", lambda: 100.0)
    limit = RateLimit(interval_s=60)
    assert all(limit.filter(record("refused", level=logging.WARNING, path=f"/in/empty-{i}.pdf",
                                   reason="empty file")) for i in range(6))
    assert all(limit.filter(record("config problem", problem=p)) for p in ("a missing", "b missing", "c", "d"))
    assert all(limit.filter(record("not watched", watch=w, reason="missing")) for w in ("/x", "/y"))
    # the same file refused for another reason is another event too
    assert limit.filter(record("refused", level=logging.WARNING, path="/in/empty-1.pdf", reason="is a FIFO"))


def test_one_file_retried_in_a_loop_is_one_event_whatever_its_counters(monkeypatch):
    monkeypatch.setattr("service.log.time.monotonic", lambda: 100.0)
    limit = RateLimit(interval_s=60)
    assert limit.filter(record("reading failed", level=logging.WARNING, document=7, error="boom",
                               retry_at="2026-01-01T00:00:01Z", failures=1))
    assert not any(limit.filter(record("reading failed", level=logging.WARNING, document=7, error="boom",
                                       retry_at=f"2026-01-01T00:00:0{i}Z", failures=i)) for i in range(2, 9))


def test_a_window_that_closes_with_suppressed_lines_is_summarised(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("service.log.time.monotonic", lambda: clock[0])
    told: list[logging.LogRecord] = []
    limit = RateLimit(interval_s=60, emit=told.append)
    assert limit.filter(record("refused", level=logging.WARNING, path="/in/a.pdf", reason="empty"))
    for _ in range(3):
        assert not limit.filter(record("refused", level=logging.WARNING, path="/in/a.pdf", reason="empty"))
    assert told == []
    clock[0] += 61
    assert limit.filter(record("unrelated", level=logging.INFO))  # any later line closes the window
    [summary] = told
    assert summary.getMessage() == "3 similar lines suppressed" and summary.levelno == logging.WARNING
    assert summary.suppressed == 3 and summary.suppressed_msg == "refused"
    assert summary.path == "/in/a.pdf" and summary.reason == "empty"
    assert 'suppressed_msg=refused' in KeyValueFormatter().format(summary)
    assert limit.filter(summary)  # the summary itself is never held back
    assert limit.filter(record("refused", level=logging.WARNING, path="/in/a.pdf", reason="empty"))


def test_open_windows_are_summarised_at_close_and_memory_is_bounded(monkeypatch):
    monkeypatch.setattr("service.log.time.monotonic", lambda: 100.0)
    told: list[logging.LogRecord] = []
    limit = RateLimit(interval_s=60, emit=told.append, max_events=3)
    for i in range(5):  # five events, each twice: the oldest windows close early, counted
        assert limit.filter(record("refused", path=f"/in/{i}"))
        assert not limit.filter(record("refused", path=f"/in/{i}"))
    assert [t.path for t in told] == ["/in/0", "/in/1"]
    limit.close_all()
    assert [t.path for t in told] == [f"/in/{i}" for i in range(5)]
    assert all(t.suppressed == 1 for t in told)


def test_logging_set_up_twice_keeps_the_windows(monkeypatch, capsys):
    from service import log as logmod
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)
    logmod.setup()
    logging.getLogger("fapiao.test").error("target down", extra={"destination": "erp"})
    logmod.setup("json")
    logging.getLogger("fapiao.test").error("target down", extra={"destination": "erp"})
    logging.getLogger("fapiao.test").error("target down", extra={"destination": "crm"})
    handler = logging.getLogger().handlers[0]
    handler.close()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "destination=erp" in err[0] and '"crm"' in err[1]
    assert json.loads(err[2])["suppressed"] == 1 and json.loads(err[2])["destination"] == "erp"
