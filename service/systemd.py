"""Tell systemd how the daemon is doing: the sd_notify datagram protocol.

Spoken directly (one `AF_UNIX` datagram per message) rather than through a
library: the protocol is a few lines, and the daemon must not gain a
dependency for it. Outside systemd `NOTIFY_SOCKET` is unset and every call
is a no-op, so the same code runs under a terminal, a test or a unit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

_ENV_SOCKET = "NOTIFY_SOCKET"


def notify(env: Mapping[str, str] | None = None, **fields: object) -> bool:
    """Send `KEY=value` lines (e.g. `READY=1`, `STATUS=...`) in one datagram.

    Returns True when systemd's socket took the message, False when
    `NOTIFY_SOCKET` is unset or unusable or the send failed. Never raises:
    a lost status line must not stop the daemon (a lost watchdog ping shows
    up anyway, as a restart by systemd). Newlines inside values become
    spaces, since a newline separates fields in the protocol.
    """
    address = _address((os.environ if env is None else env).get(_ENV_SOCKET, ""))
    if address is None or not fields:
        return False
    lines = []
    for key, value in fields.items():
        text = str(value).replace("\r", " ").replace("\n", " ")
        lines.append(f"{key.upper()}={text}")
    payload = ("\n".join(lines) + "\n").encode("utf-8", errors="replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError:
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """Say start-up is done (`READY=1`), with an optional first status line."""
    if status_text is None:
        return notify(READY=1)
    return notify(READY=1, STATUS=status_text)


def status(text: str) -> bool:
    """Set the line `systemctl status` shows, e.g. queue counts."""
    return notify(STATUS=text)


def watchdog() -> bool:
    """Ping the watchdog (`WATCHDOG=1`); call it from the main loop only."""
    return notify(WATCHDOG=1)


def stopping(status_text: str | None = None) -> bool:
    """Say shutdown has begun (`STOPPING=1`), so systemd waits instead of guessing."""
    if status_text is None:
        return notify(STOPPING=1)
    return notify(STOPPING=1, STATUS=status_text)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds systemd waits for a `WATCHDOG=1` before it kills us, or None.

    None when the watchdog is off, `WATCHDOG_USEC` is not a positive integer,
    or `WATCHDOG_PID` names another process (the variable was inherited).
    Ping at half this interval or more often.
    """
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _address(value: str) -> str | None:
    # "@name" is Linux's abstract namespace: the kernel wants a leading NUL.
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None
