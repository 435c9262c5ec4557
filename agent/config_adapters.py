"""The [[destination]] and [[backup]] entries of the configuration: their
urls checked when the file is parsed, the entries shown without secrets, and
opened by the daemon's own calls for `config check`.

Apart from `config` (loading, env overrides, typing of every section)
because these checks know the adapters' urls and secrets: schemes, hosts,
buckets, credentials that would end up in logs, maintenance windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent.errors import ConfigError
from agent.redact import has_credentials, has_password, shown_url

if TYPE_CHECKING:
    from agent.config import Config

SCHEMES = {"destination": {"folder", "http", "https", "s3"}, "backup": {"file", "s3"}}
SECRET_KEYS = frozenset({"token", "password", "secret_access_key", "secret"})
URL_KEYS = frozenset({"url", "endpoint_url"})


def check_adapter_entries(kind: str, entries: list[dict[str, Any]], errors: list[str]) -> None:
    """Append to `errors` one line per problem of the [[destination]] or
    [[backup]] `entries` (`kind`), naming the key: a duplicate name, a url or
    endpoint_url holding credentials, a scheme, host, bucket or path that
    cannot work, a maintenance window or time zone that does not parse. No
    line ever shows a credential, a query or a fragment."""
    seen: set[str] = set()
    for i, e in enumerate(entries):
        name, url = e.get("name"), e.get("url")
        if name in seen:
            errors.append(f"{kind}[{i}].name: duplicate name {name!r}")
        seen.add(name)
        endpoint = e.get("endpoint_url")
        if isinstance(endpoint, str) and has_credentials(endpoint):
            errors.append(f"{kind}[{i}].endpoint_url: holds credentials (user:password@), which would end up "
                          "in logs; remove them and set access_key_id and secret_access_key instead")
        if not isinstance(url, str):
            continue
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if has_credentials(url) and (scheme not in ("folder", "file") or has_password(url)):
            # Checked before the scheme: a typo'd scheme must not print them either.
            keys = "access_key_id and secret_access_key" if scheme == "s3" else "username and password (or token)"
            errors.append(f"{kind}[{i}].url: {shown_url(url)!r} holds credentials, which would end up in "
                          f"logs; remove them from the url and set {keys} instead")
        elif parts.scheme not in SCHEMES[kind]:
            # Only the scheme is shown: a mistyped url may hold anything after it.
            got = f"{parts.scheme}://" if parts.scheme else "a url without one"
            errors.append(f"{kind}[{i}].url: scheme must be one of "
                          f"{', '.join(s + '://' for s in sorted(SCHEMES[kind]))}, not {got}")
        elif parts.scheme in ("http", "https", "s3") and not parts.netloc:
            errors.append(f"{kind}[{i}].url: {_no_query(url)!r} has no host or bucket")
        elif parts.scheme == "s3" and len(parts.netloc) < 3:
            errors.append(f"{kind}[{i}].url: bucket name {parts.netloc!r} is too short (3 characters at least)")
        elif parts.scheme in ("folder", "file") and not (parts.netloc or parts.path):
            errors.append(f"{kind}[{i}].url: {_no_query(url)!r} has no path")
    if kind == "destination":
        for i, e in enumerate(entries):
            _check_maintenance(f"{kind}[{i}].", e, errors)


def _no_query(url: str) -> str:
    """`url` safe to print: no credentials, and no query or fragment (where a
    token would be)."""
    return shown_url(url).split("?", 1)[0].split("#", 1)[0]


def _check_maintenance(prefix: str, entry: dict[str, Any], errors: list[str]) -> None:
    # Found at config check, not when the delivery thread starts at 3 a.m.
    if not entry.get("maintenance") and entry.get("maintenance_tz") is None:
        return   # nothing to check, and every command loads a config: no import of the delivery code
    from agent.deliver.retry import parse_timezone, parse_window

    for window in entry.get("maintenance") or []:
        try:
            parse_window(window)
        except ConfigError as e:
            errors.append(f"{prefix}{e}")
    try:
        parse_timezone(entry.get("maintenance_tz"))
    except ConfigError as e:
        errors.append(f"{prefix}{e}")


def redacted(entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of an adapter entry with secrets replaced, safe to log or print."""
    return {k: ("***" if k in SECRET_KEYS and v else shown_url(v) if k in URL_KEYS and isinstance(v, str)
                else v) for k, v in entry.items()}


def local_folder(entry: dict[str, Any]) -> Path | None:
    """The folder behind a folder:// or file:// URL (relative to the config), else None."""
    parts = urlsplit(entry["url"])
    if parts.scheme not in ("folder", "file"):
        return None
    rel = (parts.netloc + parts.path) if parts.netloc else parts.path
    return Path(entry.get("base_dir", ".")) / rel


def adapter_problems(cfg: Config) -> list[str]:
    """What `run` would refuse to start, one line each naming the entry:
    every destination opened with its retry policy, every backup target and
    every [[notify]] entry (its password_file read),
    by the same calls the daemon makes (so `config check` cannot say ok to a
    destination the daemon refuses). Opening makes no network call and
    touches no file; the lines never hold a secret (the adapters' errors
    show urls without credentials or query)."""
    from agent.backup.base import open_target
    from agent.deliver.base import open_destination
    from agent.deliver.retry import DeliveryPolicy
    from agent.errors import AgentError

    problems = []
    for i, entry in enumerate(cfg.destinations):
        try:
            open_destination(entry)
            DeliveryPolicy.from_config(entry)
        except AgentError as e:
            problems.append(f"destination[{i}]: {e}")
    for i, entry in enumerate(cfg.backups):
        try:
            open_target(entry)
        except AgentError as e:
            problems.append(f"backup[{i}]: {e}")
    from agent.notify import open_notifier   # reads password_file, as the daemon does

    for i, entry in enumerate(cfg.notify):
        try:
            open_notifier(entry)
        except AgentError as e:
            problems.append(f"notify[{i}]: {e}")
    return problems
