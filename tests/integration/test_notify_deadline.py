"""A send is over within its entry's timeout_s, whatever the server does
(docs/monitoring.md), against real tarpits on 127.0.0.1: an SMTP greeting
of endless "220-" lines, a status line and headers a byte at a time, a TLS
handshake a byte at a time, a connect nothing answers. Each keeps its
client busy with pauses far inside timeout_s, so only a deadline for the
whole send ends it. Then what that means for the outbox (a stuck entry
costs one timeout, the healthy one is sent in the same pass, `status` shows
the stuck one failing) and for a stop (one send waited for, not one per
stuck entry)."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import time

import pytest

from agent.config import parse_config
from agent.errors import NotifyPermanent, NotifyRetryable
from agent.ledger import Ledger, utc
from agent.notify import Message, enqueue, open_notifier, send_due
from service.commands.status import status_report
from service.notify import NotifyService
from tests.support.notify_servers import RobotServer, Tarpit, greeting_trickle, header_trickle, self_signed

TIMEOUT_S = 1.0
MARGIN_S = 2.5           # closing the session, a loaded machine; the tarpits hold a client for 8 s
ACTOR = "daemon:test"
T0 = dt.datetime.now(dt.timezone.utc)

# (channel, what the tarpit does): each one held the send for as long as the
# server liked before the deadline (the black hole excepted: a connect was
# bounded already; it is here so that it stays so).
CASES = {
    "smtp greeting trickle": ("smtp", dict(speak=greeting_trickle)),
    "smtp greeting trickle inside TLS": ("smtps", dict(speak=greeting_trickle, tls=True)),
    "smtp TLS handshake trickle": ("smtps", dict(tls=True, handshake_trickle=True)),
    "webhook header trickle": ("http", dict(speak=header_trickle)),
    "webhook header trickle inside TLS": ("https", dict(speak=header_trickle, tls=True)),
    "webhook TLS handshake trickle": ("https", dict(tls=True, handshake_trickle=True)),
    "smtp connect to a black hole": ("smtp", dict(black_hole=True)),
    "webhook connect to a black hole": ("http", dict(black_hole=True)),
}


def _entry(kind: str, port: int, cert: str | None = None, **extra) -> dict:
    if kind.startswith("smtp"):
        entry = {"url": "mailto:ops@example.com", "host": "127.0.0.1", "port": port, "ssl": kind == "smtps"}
    else:
        entry = {"url": f"{kind}://127.0.0.1:{port}/hook/0123456789abcdef0123", "preset": "generic"}
    if cert:
        entry["ca_file"] = cert
    return {"name": f"n-{kind}", "timeout_s": TIMEOUT_S, **entry, **extra}


@pytest.mark.parametrize("case", CASES)
def test_a_send_gives_up_at_timeout_s_whatever_the_server_trickles(case, tmp_path):
    kind, how = CASES[case]
    cert = None
    if how.get("tls"):
        cert, key = self_signed(tmp_path)
        how = {**how, "tls": (cert, key)}
    with Tarpit(**how) as pit:
        notifier = open_notifier(_entry(kind, pit.port, cert))
        started = time.monotonic()
        with pytest.raises(NotifyRetryable) as e:
            notifier.send(Message(subject="s", text="t"))
        took = time.monotonic() - started
    assert took < TIMEOUT_S + MARGIN_S, f"{case}: the send took {took:.1f} s with timeout_s={TIMEOUT_S:g}"
    assert f"did not finish within {TIMEOUT_S:g} s (timeout_s)" in str(e.value), str(e.value)


def _config(tmp_path, *entries):
    return parse_config({"notify": [dict(e) for e in entries]}, base_dir=tmp_path)


def test_a_tarpit_costs_one_timeout_and_the_healthy_entry_is_sent_in_the_same_pass(tmp_path):
    with Tarpit(greeting_trickle) as pit, RobotServer() as robot:
        # The stuck entry first: the outbox sends rows in order.
        cfg = _config(tmp_path, {**_entry("smtp", pit.port), "name": "mail"},
                      {"name": "wx", "url": robot.url, "preset": "wecom", "timeout_s": TIMEOUT_S})
        ledger = Ledger(cfg.ledger_path)
        enqueue(ledger, cfg.notify, event="backup-failing", key="backup:s3main", subject="备份失败 backup failing",
                text="s3main: 45 min", now=T0)
        started = time.monotonic()
        out = {o.entry: o for o in send_due(ledger, {e["name"]: (open_notifier(e), e) for e in cfg.notify},
                                            now=T0, actor=ACTOR)}
        took = time.monotonic() - started
        assert took < TIMEOUT_S + MARGIN_S, f"one pass took {took:.1f} s"
        assert out["wx"].result == "sent" and len(robot.requests) == 1
        assert out["mail"].result == "retry" and out["mail"].next_attempt_at > utc(T0)
        # What `status` reads: the stuck channel failing, with why.
        shown = {n["name"]: n for n in status_report(ledger, cfg)["notify"]}
        assert shown["mail"]["failing"] and shown["mail"]["pending"] == 1
        assert f"did not finish within {TIMEOUT_S:g} s (timeout_s)" in shown["mail"]["last_error"]
        assert not shown["wx"]["failing"] and shown["wx"]["sent"] == 1
        ledger.close()


def test_a_stop_waits_for_one_stuck_send_not_for_every_stuck_entry(tmp_path, caplog):
    timeout_s = 2.0
    with Tarpit(greeting_trickle) as first, Tarpit(greeting_trickle) as second:
        cfg = _config(tmp_path, {**_entry("smtp", first.port), "name": "mail", "timeout_s": timeout_s},
                      {**_entry("smtp", second.port), "name": "mail2", "timeout_s": timeout_s})
        ledger = Ledger(cfg.ledger_path)
        enqueue(ledger, cfg.notify, event="backup-failing", key="backup:s3main", subject="备份失败 backup failing",
                text="s3main: 45 min", now=T0)
        caplog.set_level(logging.WARNING, logger="fapiao.notify")
        svc = NotifyService(cfg, check_interval_s=3600, send_poll_s=0.05).start()
        try:
            until = time.monotonic() + 5
            while not first.connections and time.monotonic() < until:
                time.sleep(0.02)
            assert first.connections, "the notify thread never tried to send"
        finally:
            stop_at = time.monotonic()
            svc.stop()
            svc.join(20)
        waited = time.monotonic() - stop_at
        assert not any(t.is_alive() for t in svc.threads())
        assert second.connections == 0, "a row was tried after the stop"    # left due for the next start
        assert waited < timeout_s + MARGIN_S, f"the stop waited {waited:.1f} s with timeout_s={timeout_s:g}"
        # The stuck send is a failed try, logged once, not a silent hang.
        warned = [r.getMessage() for r in caplog.records if r.name == "fapiao.notify"]
        assert len(warned) == 1 and f"did not finish within {timeout_s:g} s" in warned[0], warned
        assert [n["failing"] for n in ledger.notify_summary(["mail", "mail2"])] == [True, False]
        ledger.close()


def test_a_robot_over_https_is_sent_to_when_trusted_and_refused_for_good_when_not(tmp_path):
    # Not a tarpit: a guard that the webhook's TLS, now the deadline's
    # context, checks certificates as urllib3's own did.
    cert, key = self_signed(tmp_path)
    with RobotServer() as robot:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        robot.httpd.socket = context.wrap_socket(robot.httpd.socket, server_side=True)
        url = robot.url.replace("http://", "https://")
        entry = {"name": "wx", "url": url, "preset": "wecom", "timeout_s": 5.0}
        open_notifier({**entry, "ca_file": cert}).send(Message(subject="s", text="trusted"))
        open_notifier({**entry, "tls_verify": False}).send(Message(subject="s", text="unchecked"))
        with pytest.raises(NotifyPermanent) as e:
            open_notifier(entry).send(Message(subject="s", text="untrusted"))
        assert "TLS failed" in str(e.value), str(e.value)
        assert [r["json"]["markdown"]["content"].split("\n")[-1] for r in robot.requests] == ["trusted", "unchecked"]
