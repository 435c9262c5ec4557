"""The [[notify]] entries of the configuration: which keys each takes, and
the checks made when the file is parsed (url scheme, events, preset, SMTP
keys), with errors that never show a secret.

A webhook's url IS its credential (WeCom `?key=`, DingTalk
`?access_token=`, Feishu `/hook/<token>`), so it is treated like a
password: never printed (only its scheme and host), refused in a
world-readable file, and it may come from the environment
(FAPIAO_AGENT__NOTIFY__<NAME>__URL) like `password` and `secret`.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import unquote, urlsplit

from agent.notify.events import EVENTS, PRESET_HOSTS, PRESETS, SIGNED_PRESETS

NOTIFY_SCHEMA: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "name": (str, ...), "url": (str, ...), "events": (list, None), "preset": (str, None),
    # mailto: (SMTP)
    "host": (str, None), "port": (int, None), "starttls": (bool, False), "ssl": (bool, False),
    "username": (str, None), "password": (str, None), "password_file": (str, None), "sender": (str, None),
    # webhooks: the robot's signing secret (DingTalk 加签, Feishu 签名校验)
    "secret": (str, None),
    "timeout_s": (float, 10.0), "tls_verify": (bool, True), "ca_file": (str, None),
    # when to tell (agent/notify/faults.py, agent/notify/outbox.py)
    "digest_minutes": (float, 15.0), "repeat_hours": (float, 24.0), "resolve_after_minutes": (float, 10.0),
    "backup_failing_minutes": (float, 30.0), "disk_free_percent": (float, 5.0), "give_up_hours": (float, 24.0),
    # how often the faults are looked for (the notify thread uses the smallest of all entries')
    "check_interval_s": (float, 30.0),
}
NOTIFY_ENUMS = {("notify", "preset"): set(PRESETS)}
_SMTP_KEYS = ("host", "port", "starttls", "ssl", "username", "password", "password_file", "sender")
_LOOPBACK_NAMES = ("localhost",)


def shown_notify_url(url: str) -> str:
    """What may be printed of a notify url: `mailto:a@b` whole, a webhook's
    scheme and host only (its path and query are the robot's key)."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "mailto":
        return url.split("?", 1)[0]
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if _port(parts) else "") + "/…"


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def mail_recipients(url: str) -> list[str]:
    """The addresses of a mailto: url (comma separated, RFC 6068)."""
    return [unquote(a).strip() for a in urlsplit(url).path.split(",") if a.strip()]


def webhook_preset(entry: dict[str, Any]) -> str:
    """The entry's preset: as given, else named by the robot's host, else generic."""
    if entry.get("preset"):
        return entry["preset"]
    return PRESET_HOSTS.get((urlsplit(entry["url"]).hostname or "").lower(), "generic")


def check_notify_entries(entries: list[dict[str, Any]], errors: list[str]) -> None:
    """Append to `errors` one line per problem of the [[notify]] `entries`,
    naming the key; sets each valid webhook entry's `preset` (given or
    inferred) and each entry's `events` (all when not given). No line shows
    a password, a secret or a webhook's path or query."""
    seen: set[str] = set()
    for i, e in enumerate(entries):
        where = f"notify[{i}]"
        name, url = e.get("name"), e.get("url")
        if name in seen:
            errors.append(f"{where}.name: duplicate name {name!r}")
        seen.add(name)
        _check_events(where, e, errors)
        for key in ("digest_minutes", "timeout_s", "check_interval_s"):
            if e.get(key) == 0:
                errors.append(f"{where}.{key}: must be more than 0")
        if not isinstance(url, str):
            continue
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "mailto":
            _check_mail(where, e, errors)
        elif scheme in ("http", "https"):
            _check_webhook(where, e, parts, errors)
        else:
            got = f"{parts.scheme}:" if parts.scheme else "a url without one"
            errors.append(f"{where}.url: scheme must be mailto: (e-mail) or https:// (a webhook), not {got}")


def _check_events(where: str, e: dict[str, Any], errors: list[str]) -> None:
    events = e.get("events")
    if events is None:
        # All, those added since included (config-refused, rejected-at-destination,
        # held-under-old-key):
        # each is something only a person can mend, and an entry that lists
        # its events keeps exactly those.
        e["events"] = list(EVENTS)
        return
    if not events:
        errors.append(f"{where}.events: is empty; name the events to send (known: {', '.join(EVENTS)}) "
                      "or remove the entry")
    for ev in events:
        if ev not in EVENTS:
            errors.append(f"{where}.events: unknown event {ev!r} (known: {', '.join(EVENTS)})")


def _check_mail(where: str, e: dict[str, Any], errors: list[str]) -> None:
    recipients = mail_recipients(e["url"])
    if not recipients or any("@" not in r or any(c in r for c in " <>\r\n") for r in recipients):
        errors.append(f"{where}.url: {e['url'].split('?', 1)[0]!r} must name one or more addresses, "
                      "e.g. mailto:finance@example.com,ops@example.com")
    if "?" in e["url"]:
        errors.append(f"{where}.url: mailto: headers (?subject=...) are not supported; the agent writes them")
    for key in ("preset", "secret"):
        if e.get(key) is not None:
            errors.append(f"{where}.{key}: is for webhooks (https://), not mailto:")
    if e.get("ssl") and e.get("starttls"):
        errors.append(f"{where}.ssl: give ssl (implicit TLS, port 465) or starttls (port 587), not both")
    if e.get("password") and e.get("password_file"):
        errors.append(f"{where}.password_file: give password or password_file, not both")
    if (e.get("password") or e.get("password_file")) and not e.get("username"):
        errors.append(f"{where}.username: a password is given without username")
    if e.get("port") is not None and not 0 < e["port"] < 65536:
        errors.append(f"{where}.port: must be 1..65535, not {e['port']}")


def _check_webhook(where: str, e: dict[str, Any], parts, errors: list[str]) -> None:
    for key in _SMTP_KEYS:
        if e.get(key) not in (None, False):
            errors.append(f"{where}.{key}: is for mailto: entries, not webhooks")
    shown = shown_notify_url(e["url"])
    if "@" in parts.netloc:
        errors.append(f"{where}.url: {shown!r} holds credentials (user:password@), which would end up in logs")
        return
    if not parts.hostname:
        errors.append(f"{where}.url: {shown!r} has no host")
        return
    if parts.scheme.lower() == "http" and not _loopback(parts.hostname):
        errors.append(f"{where}.url: {shown!r}: use https://; over plain http the robot's key in the url "
                      "is readable on the way (http:// is allowed only to this host)")
    preset = webhook_preset(e)
    e["preset"] = preset
    if e.get("secret") and preset not in SIGNED_PRESETS:
        errors.append(f"{where}.secret: only the {' and '.join(SIGNED_PRESETS)} presets sign messages "
                      f"(this entry's preset is {preset})")


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def notify_secrets_held(raw_entries: Any) -> list[str]:
    """`notify[i].key` for each secret written in the file (password,
    secret, a webhook url): for the refusal of a world-readable config."""
    held = []
    for i, e in enumerate(raw_entries if isinstance(raw_entries, list) else []):
        if not isinstance(e, dict):
            continue
        held += [f"notify[{i}].{k}" for k in ("password", "secret") if e.get(k)]
        if isinstance(e.get("url"), str) and e["url"].lower().startswith(("http:", "https:")):
            held.append(f"notify[{i}].url")
    return held
