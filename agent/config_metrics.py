"""[metrics]: where the Prometheus series go (service/metrics.py), checked.

Apart from config.py so that file stays about its general rules. A typo here
would silently leave ops without metrics, so every problem is a config error
at load (the address, the file's name) or a `check_paths` problem (its folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# listen and textfile empty: metrics off (the default).
METRICS_SCHEMA: dict[str, tuple[type, Any]] = {
    "listen": (str, ""), "textfile": (str, ""), "interval_s": (float, 15.0)}


def listen_address(text: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port` for IPv6) as (host, port). Raises ValueError
    saying what is wrong: no host (write 0.0.0.0 to listen on every address,
    on purpose), an IPv6 address without brackets, or a port outside 1..65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError('must be host:port, e.g. "127.0.0.1:9464" (0.0.0.0:9464 listens on every '
                         "address, [::1]:9464 is IPv6)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address is written in brackets: [{host}]:{port}")
    if not host or any(c in host for c in "[]/@ "):
        raise ValueError(f"host {host!r} is not an address or a host name")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port {port!r} must be a number from 1 to 65535")
    return host, int(port)


def metrics_problems(metrics: dict[str, Any], base_dir: Path) -> list[str]:
    """The section's problems, one line each naming the key; `textfile` is
    made absolute (against the config's folder) in place."""
    out = []
    if metrics.get("listen"):
        try:
            listen_address(metrics["listen"])
        except ValueError as e:
            out.append(f"metrics.listen: {metrics['listen']!r} {e}")
    if metrics.get("textfile"):
        if not metrics["textfile"].endswith(".prom"):
            out.append(f"metrics.textfile: {metrics['textfile']!r} must end in .prom (node_exporter's "
                       "textfile collector reads only *.prom files)")
        metrics["textfile"] = str(base_dir / metrics["textfile"])
    if metrics.get("interval_s", 15.0) < 1:
        out.append(f"metrics.interval_s: must be at least 1 second, not {metrics['interval_s']!r}")
    return out


def textfile_problems(metrics: dict[str, Any]) -> list[str]:
    """The textfile's folder missing or not writable (the file is written
    beside itself and renamed into place, so the folder must take new files)."""
    if not metrics.get("textfile"):
        return []
    folder = Path(metrics["textfile"]).parent
    if not folder.is_dir():
        return [f"metrics.textfile: folder {folder} does not exist (node_exporter's "
                "--collector.textfile.directory; create it, writable by the agent)"]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [f"metrics.textfile: folder {folder} is not writable by this user (the file is "
                "written beside itself, then renamed into place)"]
    return []
