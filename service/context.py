"""What every command needs: the config, the ledger, the clock, the actor.

The service layer owns the clock; `agent/` receives `now` from here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import TYPE_CHECKING, Any

import click

from agent.config import Config, load_config
from agent.errors import AgentError, ConfigError
from agent.ledger import Ledger, utc
from service import access
from service.textsafe import echo, json_text

# Every listing's --limit (0: all). Bounded so that the count, and search's
# one more to tell "more matched", stay within SQLite's 64-bit integers: 2**64
# was taken and every such command died with "datatype mismatch".
MAX_LIMIT = 2 ** 62
LIMIT = click.IntRange(min=0, max=MAX_LIMIT)

if TYPE_CHECKING:
    # Imported where used: every command loads this module, and the read
    # commands need none of the 补录, validation or vault code behind them.
    from agent.applications import Operator
    from agent.validate import ValidationSettings
    from agent.vault import Vault


def now_dt() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def now() -> str:
    """The current time in the ledger's timestamp format."""
    return utc(now_dt())


def today() -> dt.date:
    """Today's date where the invoices are issued (China, UTC+8)."""
    return (now_dt() + dt.timedelta(hours=8)).date()


def actor(prefix: str = "cli", service_user: str | None = None) -> str:
    """Who is acting, for the audit log: `cli:alice`, `cli:alice (sudo → fapiao)`
    or `daemon:fapiao`; from the effective uid, never from LOGNAME/USER
    (see service/access.py). `service_user` defaults to the running
    command's [access] service_user."""
    return access.actor(prefix, service_user or _service_user())


def operator(prefix: str = "cli") -> Operator:
    """Who is acting, for 补录 applications: the trail's actor (as `actor`)
    and the person four eyes compares (the account behind a trusted sudo,
    else the effective account; never LOGNAME/USER)."""
    from agent.applications import Operator

    who = access.identity(_service_user())
    return Operator(actor=f"{prefix}:{who.label()}", person=who.invoker or who.name)


def self_approve_empty_fields(cfg: Config) -> bool:
    """[access] self_approve_empty_fields (default true)."""
    return bool(cfg.access.get("self_approve_empty_fields", True))


def _service_user() -> str:
    ctx = click.get_current_context(silent=True)
    cfg = (ctx.obj or {}).get("config") if ctx else None
    return cfg.access["service_user"] if cfg else "fapiao"


def load(ctx: click.Context) -> Config:
    """The config named by --config / FAPIAO_AGENT_CONFIG / the search path;
    exits with status 2 and one line per problem when it is invalid. Read
    once per command: the access check's reading is used again by the
    command, unless the file changed in between (then it is read again)."""
    obj = ctx.ensure_object(dict)
    wanted = obj.get("config_path")
    held = obj.get("config")
    if held is not None and (seen := _identity(held.path)) is not None and obj.get("config_read") == (wanted, seen):
        return held
    try:
        cfg = load_config(wanted)
    except ConfigError as e:
        fail(str(e) + _running_hint(wanted), code=2)
    obj["config"] = cfg
    obj["config_read"] = (wanted, _identity(cfg.path))
    return cfg


def _running_hint(wanted) -> str:
    # A config that cannot be read says nothing of the daemon: a lock on its
    # folder may (service/config_hold.py). Never a second error for a hint.
    from agent.config_file import find_config_path
    from service.config_hold import still_running_hint

    try:
        return still_running_hint(find_config_path(wanted))
    except (ConfigError, OSError):
        return ""


def _identity(path) -> tuple | None:
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None   # unknown: read it again
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_ledger(cfg: Config) -> Ledger:
    """The ledger of this config. Read commands (access.READ) get it
    read-only and never create it (missing: one line, exit 2); write
    commands create it on first use, unless a daemon runs from a config in
    the same folder (service/config_hold.py): then it serves another state
    folder, and the command fails, creating nothing."""
    if access.current_role() == access.READ:
        return open_ledger_readonly(cfg)
    if not cfg.ledger_path.exists():
        from service.config_hold import served_elsewhere

        # Never a second ledger beside the one a running daemon serves: its
        # documents would be delivered by no one, and found by no `status`.
        if why := served_elsewhere(cfg.path, cfg.state_dir):
            fail(f"no ledger at {cfg.ledger_path}; {why}. Nothing was written.")
    try:
        return Ledger(cfg.ledger_path)
    except OSError as e:
        fail(f"cannot open ledger {cfg.ledger_path}: {e}")
    except Exception as e:  # sqlite3 errors: a read-only disk, a corrupt file
        fail(f"cannot open ledger {cfg.ledger_path}: {e}")


def open_ledger_readonly(cfg: Config) -> Ledger:
    """The ledger opened read-only: works for a member of the read group who
    cannot write the state folder (WAL: see Ledger.close). Exits 2 with one
    line when there is no ledger or it cannot be read."""
    path = cfg.ledger_path
    try:
        if not path.is_file():
            from service.config_hold import served_elsewhere

            why = served_elsewhere(cfg.path, cfg.state_dir)
            fail(f"no ledger at {path}" + (f"; {why}" if why else
                                           " (nothing was captured with this config yet, or the wrong --config)"),
                 code=2)
        ledger = Ledger(path, readonly=True)
        if ledger.schema_version == 0:  # the first read: opens the WAL
            fail(f"the ledger at {path} is still being created (no tables yet); try again", code=2)
        return ledger
    except OSError as e:
        fail(f"cannot read ledger {path}: {e.strerror or e}", code=2)
    except Exception as e:  # sqlite3 errors: no -wal/-shm beside it, not a database
        from agent.ledger.damage import damage_phrase

        # A damaged file first: "start the daemon" would not help, as it
        # refuses such a ledger too.
        hint = damage_phrase(path)
        if not hint and not path.with_name(path.name + "-shm").exists():
            hint = " (its -wal/-shm files are missing: start the daemon, which keeps them for readers)"
        fail(f"cannot read ledger {path}: {e}{hint}", code=2)


def open_vault(cfg: Config) -> Vault:
    """The vault of this config (created on first use)."""
    from agent.vault import Vault

    try:
        return Vault(cfg.vault_dir)
    except OSError as e:
        fail(f"cannot open vault {cfg.vault_dir}: {e.strerror or e}")


def validation_settings(cfg: Config) -> ValidationSettings:
    """The validation rules as configured; exits on a bad [validation] section."""
    from agent.validate import ValidationSettings

    try:
        return ValidationSettings.from_config(cfg.validation, cfg.company)
    except AgentError as e:
        fail(str(e), code=2)


def destination_names(cfg: Config) -> list[str]:
    """Names of the configured destinations, in config order."""
    return [d["name"] for d in cfg.destinations]


class CommandFailed(SystemExit):
    """The exit `fail` raises: a SystemExit with `code` that keeps its
    `message` (so `status --check` can name why it is UNKNOWN)."""

    def __init__(self, code: int, message: str):
        super().__init__(code)
        self.message = message


def fail(message: str, code: int = 1) -> None:
    """Print `message` as an error line (or lines) and exit with `code`."""
    for line in message.splitlines() or [message]:
        echo(f"error: {line}", err=True)
    raise CommandFailed(code, message)


def echo_json(obj: Any) -> None:
    """One JSON document on stdout (UTF-8, not ASCII-escaped; DEL, C1 and
    bidi controls as \\uXXXX, see `service.textsafe.json_text`)."""
    click.echo(json_text(json.dumps(obj, ensure_ascii=False, default=str)))


_SPAN_UNITS = {"d": dt.timedelta(days=1), "h": dt.timedelta(hours=1), "w": dt.timedelta(weeks=1)}


def span_of(text: str) -> dt.timedelta | None:
    """A span an operator types for "that long before now" ("7d", "36h",
    "2w"), or None when `text` is not one. Raises ValueError for a span too
    long for a date (the caller says what is accepted)."""
    text = text.strip()
    if len(text) < 2 or text[-1] not in _SPAN_UNITS or not text[:-1].strip().isdecimal() \
            or not text[:-1].strip().isascii():
        return None
    try:
        return int(text[:-1]) * _SPAN_UNITS[text[-1]]
    except OverflowError:
        raise ValueError(f"{text!r} is too long a span") from None


def age_seconds(timestamp: str | None, at: dt.datetime) -> float | None:
    """Seconds from a ledger timestamp to `at`, or None."""
    from agent.ledger.rows import parse_utc

    return None if not timestamp else (at - parse_utc(timestamp)).total_seconds()


def human_age(seconds: float | None) -> str:
    """'3d 4h', '2h 5m', '5m 10s', '7s', or '-' for None."""
    if seconds is None:
        return "-"
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s}s" if m else f"{s}s"
