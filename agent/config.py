"""TOML configuration: typed settings, environment overrides, clear errors.

The file's shape is an interface (scripts and ops docs depend on it): keys
may be added, never renamed. Every problem is reported as one line that
names the key, and all of them are reported at once.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config_adapters import SECRET_KEYS, URL_KEYS, check_adapter_entries
from agent.config_file import find_config_path, read_config_file
from agent.config_notify import NOTIFY_ENUMS, NOTIFY_SCHEMA, check_notify_entries
from agent.config_metrics import METRICS_SCHEMA, metrics_problems
from agent.config_sections import drill_problems, fleet_problems, health_problems, report_problems
from agent.errors import ConfigError

ENV_PREFIX = "FAPIAO_AGENT__"

# section -> key -> (type, default). `None` default means optional.
# Tables in a list (watch, destination, backup) use LIST_SCHEMAS.
_SCALAR_SCHEMAS: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "agent": {
        "state_dir": (str, "state"),
        "max_file_mb": (int, 100),
        "stop_timeout_s": (int, 20),
        "rescan_interval_s": (int, 300),
        "workers": (int, 0),            # 0: one per core
        "log_format": (str, "kv"),
    },
    "company": {"tax_ids": (list, []), "names": (list, [])},
    "validation": {"max_age_days": (int, 360), "expected_region": (str, None), "rules": (dict, {})},
    # sla_hours: counted from a document's arrival (its capture), whatever it waits for.
    "delivery": {"sla_hours": (float, 24.0), "reconcile_interval_s": (int, 3600),
                 "requeue_missing": (bool, True), "lease_s": (int, 300)},
    "backup_policy": {"min_copies": (int, 0), "snapshot_interval_s": (int, 3600),
                      "verify_fraction": (float, 0.01), "verify_minimum": (int, 20),
                      "verify_interval_s": (int, 86400), "retry_max_s": (float, 3600.0),
                      "probe_interval_s": (float, 60.0), "keep_hourly_days": (int, 2),
                      "keep_daily_days": (int, 60), "keep_monthly_years": (int, 2),
                      # Puts in flight per target (a pool: S3 latency, not CPU, bounds a put;
                      # the ledger is written by one thread per target, however many).
                      "workers": (int, 16),
                      # A snapshot for operators' actions (amend, accept, reject...)
                      # at most this often after the last one: within a minute.
                      "action_snapshot_gap_s": (float, 30.0),
                      # SIGTERM: at most this long for the last ledger snapshot to every
                      # target, after stop_timeout_s (both within the unit's TimeoutStopSec).
                      "shutdown_snapshot_s": (float, 8.0),
                      # The weekly restore drill (agent/backup/drill.py): weekday mon..sun
                      # or off, HH:MM in the host's local time, originals sampled, and
                      # the age after which `status --check` warns (0: never).
                      "drill_weekday": (str, "mon"), "drill_time": (str, "03:30"),
                      "drill_sample": (int, 20), "drill_max_age_days": (float, 8.0)},
    "mail": {"min_inline_image_kb": (int, 20), "max_attachments": (int, 50),
             "max_message_mb": (int, 50), "max_nested_messages": (int, 3)},
    # timeout_s: a document still being read after this is stopped and
    # quarantined (extract-timeout), so a hostile file holds a worker no longer.
    # ocr_idle_unload_s: a worker idle this long after OCR is replaced by a
    # fresh one, handing back what the engine keeps resident (0: never).
    "extract": {"ocr": (str, "auto"), "ocr_workers": (int, 1), "timeout_s": (float, 60.0),
                "ocr_idle_unload_s": (float, 120.0)},
    # `status --check` thresholds (agent/health.py); a count threshold of 0 is off.
    "health": {"sla_warn_fraction": (float, 0.8), "backup_unreachable_warn_minutes": (float, 30.0),
               "backup_unreachable_crit_minutes": (float, 120.0), "heartbeat_stale_s": (float, 120.0),
               "failed_warn": (int, 1), "failed_crit": (int, 10), "quarantined_warn": (int, 1),
               "quarantined_crit": (int, 0),
               # A 补录 application pending this long is a WARNING and an
               # `application-pending` alert (0: never); its document waits
               # for a person even when its state (duplicate) counts as finished.
               "application_pending_hours": (float, 24.0)},
    "metrics": METRICS_SCHEMA,  # Prometheus (service/metrics.py); agent/config_metrics.py checks it
    # Several sites, one shared store (agent/fleet/, docs/fleet.md). No url: no fleet,
    # and nothing changes. lease_s: how long a claim holds a key before another
    # site may take it over (its holder renews it while it lives). retry_s: how
    # often a copy waiting on another site's claim (or held) asks again;
    # settle_s: the fleet loop's pass (also run at once after a delivery).
    "fleet": {"url": (str, None), "site": (str, None), "lease_s": (float, 300.0),
              "on_unreachable": (str, "hold"), "status_interval_s": (float, 60.0), "retry_s": (float, 15.0),
              "settle_s": (float, 5.0), "endpoint_url": (str, None), "region": (str, None),
              "addressing_style": (str, None), "access_key_id": (str, None),
              "secret_access_key": (str, None)},
    # Roles by Unix group (service/access.py); root and service_user pass every check.
    "access": {"read_group": (str, "fapiao-read"), "amend_group": (str, "fapiao-amend"),
               "approve_group": (str, "fapiao-approve"), "service_user": (str, "fapiao"),
               "self_approve_empty_fields": (bool, True)},
    # The weekly check (service/report.py): when, where (dir: default <state_dir>/reports), how long kept.
    "report": {"enabled": (bool, True), "weekday": (str, "monday"), "time": (str, "08:00"),
               "time_zone": (str, "Asia/Shanghai"), "dir": (str, None), "keep_weeks": (int, 52),
               "expiry_warn_days": (int, 30)},
}

_S3_KEYS = {"endpoint_url": (str, None), "region": (str, None), "addressing_style": (str, None),
            "access_key_id": (str, None), "secret_access_key": (str, None)}
_LIST_SCHEMAS: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "watch": {"path": (str, ...), "kind": (str, "scanner"), "poll": (bool, None),
              "after": (str, "keep"), "settle_seconds": (float, 2.0), "quiet_seconds": (float, 30.0),
              "label": (str, None)},
    "destination": {"name": (str, ...), "url": (str, ...), "token": (str, None),
                    "username": (str, None), "password": (str, None), "timeout_s": (float, 30.0),
                    "max_attempts": (int, 20), "max_delay_s": (float, 3600.0),
                    "maintenance": (list, []), "maintenance_tz": (str, None),
                    "concurrency": (int, 2), "tls_verify": (bool, True),
                    "probe_interval_s": (float, 60.0), "breaker_threshold": (int, 5),
                    "base_delay_s": (float, 5.0), "max_age_s": (float, 7 * 86400.0),
                    "ca_file": (str, None), "rate_per_s": (float, None), **_S3_KEYS},
    "backup": {"name": (str, ...), "url": (str, ...), "sse": (str, None),
               "storage_class": (str, None), **_S3_KEYS},
    # [[notify]]: mailto: (SMTP) or http(s):// (a robot's webhook); agent/config_notify.py checks them.
    "notify": NOTIFY_SCHEMA,
}
_ENUMS = {("watch", "kind"): {"scanner", "email"}, ("watch", "after"): {"keep", "move", "delete"},
          ("agent", "log_format"): {"kv", "json"}, ("fleet", "on_unreachable"): {"hold", "deliver"},
          ("fleet", "addressing_style"): {"path", "virtual", "auto"}, ("extract", "ocr"): {"auto", "off"},
          ("destination", "addressing_style"): {"path", "virtual", "auto"},
          ("backup", "addressing_style"): {"path", "virtual", "auto"},
          ("backup", "sse"): {"AES256", "aws:kms"},
          ("report", "weekday"): {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"},
           **NOTIFY_ENUMS}
_ACCOUNT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
ACCESS_DEFAULTS = {k: v for k, (_, v) in _SCALAR_SCHEMAS["access"].items()}
HEALTH_DEFAULTS = {k: v for k, (_, v) in _SCALAR_SCHEMAS["health"].items()}
REPORT_DEFAULTS = {k: v for k, (_, v) in _SCALAR_SCHEMAS["report"].items()}


@dataclass
class WatchConfig:
    """One watched folder; `path` is absolute."""

    path: Path
    kind: str = "scanner"
    poll: bool | None = None
    after: str = "keep"
    settle_seconds: float = 2.0
    # A source is moved or deleted only once unchanged (its ctime) this long
    # (the config's default is 30 s; 0 here, in code, acts as soon as it is read).
    quiet_seconds: float = 0.0
    label: str | None = None


@dataclass
class Config:
    """Loaded settings. Paths are absolute; adapter sections stay dicts
    (with `base_dir` added) because adapters are chosen by URL at runtime."""

    path: Path | None
    base_dir: Path
    agent: dict[str, Any]
    company: dict[str, Any]
    validation: dict[str, Any]
    delivery: dict[str, Any]
    backup_policy: dict[str, Any]
    mail: dict[str, Any]
    extract: dict[str, Any] = field(default_factory=lambda: {"ocr": "auto", "ocr_workers": 1, "timeout_s": 60.0,
                                                             "ocr_idle_unload_s": 120.0})
    access: dict[str, Any] = field(default_factory=lambda: dict(ACCESS_DEFAULTS))
    metrics: dict[str, Any] = field(default_factory=lambda: {k: v for k, (_, v) in METRICS_SCHEMA.items()})
    health: dict[str, Any] = field(default_factory=lambda: dict(HEALTH_DEFAULTS))
    report: dict[str, Any] = field(default_factory=lambda: dict(REPORT_DEFAULTS))
    fleet: dict[str, Any] = field(default_factory=dict)
    watches: list[WatchConfig] = field(default_factory=list)
    destinations: list[dict[str, Any]] = field(default_factory=list)
    backups: list[dict[str, Any]] = field(default_factory=list)
    notify: list[dict[str, Any]] = field(default_factory=list)
    # The owner and mode of the very file that was read (load_config), for
    # service/access.py's trust check; None when not read from a file.
    file_owner: int | None = None
    file_mode: int | None = None
    # The bytes read (at most MAX_CONFIG_BYTES), for `file_sha256`.
    file_bytes: bytes | None = field(default=None, repr=False)

    @property
    def file_sha256(self) -> str | None:
        """The SHA-256 of the bytes read, or None when not read from a file:
        `status` tells the file on disk from the one the daemon loaded
        (service/config_state.py). Hashed when asked: most commands never
        hash anything (tests/unit/test_cli_startup.py)."""
        import hashlib

        return hashlib.sha256(self.file_bytes).hexdigest() if self.file_bytes is not None else None

    @property
    def ocr(self) -> bool:
        """Whether scans may be read by OCR (when the OCR extra is installed)."""
        return self.extract["ocr"] != "off"

    @property
    def state_dir(self) -> Path:
        """Where the ledger and the vault live (absolute)."""
        return self.base_dir / self.agent["state_dir"]

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger file."""
        return self.state_dir / "ledger.sqlite3"

    @property
    def vault_dir(self) -> Path:
        """The content-addressed vault's root folder."""
        return self.state_dir / "vault"


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Read, override from `env` (default os.environ) and type-check a config.

    Guarantees: the result's types match the schema; relative paths resolve
    against the file's folder. Raises ConfigError listing every bad key, one
    line each, and when a file holding secrets (token, password,
    secret_access_key) is readable by every user. Does not touch the
    filesystem beyond reading the file; see
    `check_paths` for that.
    """
    p = find_config_path(path)
    raw, read, data = read_config_file(p)
    cfg = parse_config(raw, base_dir=p.resolve().parent, path=p.resolve(),
                       env=os.environ if env is None else env)
    cfg.file_owner, cfg.file_mode, cfg.file_bytes = read.st_uid, read.st_mode, data
    return cfg


def parse_config(raw: dict[str, Any], *, base_dir: Path, path: Path | None = None,
                 env: dict[str, str] | None = None) -> Config:
    """Type-check an already parsed TOML document; see `load_config`."""
    errors: list[str] = []
    raw = _apply_env(dict(raw), env or {}, errors)
    allowed = set(_SCALAR_SCHEMAS) | set(_LIST_SCHEMAS)
    for key in raw:
        if key not in allowed:
            errors.append(f"[{key}]: unknown section (known: {', '.join(sorted(allowed))})")
    sections = {}
    for name, schema in _SCALAR_SCHEMAS.items():
        value = raw.get(name, {})
        if not isinstance(value, dict):
            errors.append(f"[{name}]: must be a table, not {type(value).__name__}")
            value = {}
        sections[name] = _check_table(name, value, schema, errors)
    lists = {}
    for name, schema in _LIST_SCHEMAS.items():
        value = raw.get(name, [])
        if not isinstance(value, list):
            errors.append(f"[[{name}]]: must be an array of tables ([[{name}]]), not {type(value).__name__}")
            value = []
        lists[name] = [_check_table(f"{name}[{i}]", t, schema, errors, enum_section=name)
                       for i, t in enumerate(value) if _is_table(f"{name}[{i}]", t, errors)]
    for name in ("destination", "backup"):
        check_adapter_entries(name, lists[name], errors)
    check_notify_entries(lists["notify"], errors)
    errors += health_problems(sections["health"]) + report_problems(sections["report"])
    errors += drill_problems(sections["backup_policy"])
    errors += metrics_problems(sections["metrics"], base_dir)
    errors += fleet_problems(sections["fleet"])
    if sections["extract"].get("timeout_s") == 0:
        errors.append("extract.timeout_s: must be more than 0 seconds (a document needs time to be read)")
    for key in ("read_group", "amend_group", "approve_group", "service_user"):
        if not _ACCOUNT_NAME.fullmatch(sections["access"].get(key, "x")):
            errors.append(f"access.{key}: {sections['access'][key]!r} is not a Unix user or group name")
    for i, w in enumerate(lists["watch"]):
        w["path"] = str(base_dir / w["path"]) if w.get("path") else w.get("path")
    if errors:
        raise ConfigError("\n".join(errors))
    for entry in lists["destination"] + lists["backup"] + lists["notify"]:
        entry["base_dir"] = str(base_dir)
    return Config(path=path, base_dir=base_dir, **sections,
                  watches=[WatchConfig(**{**w, "path": Path(w["path"])}) for w in lists["watch"]],
                  destinations=lists["destination"], backups=lists["backup"], notify=lists["notify"])


def _is_table(where: str, value: Any, errors: list[str]) -> bool:
    if isinstance(value, dict):
        return True
    errors.append(f"{where}: must be a table, not {type(value).__name__}")
    return False


def _check_table(where: str, table: dict[str, Any], schema: dict, errors: list[str],
                 enum_section: str | None = None) -> dict[str, Any]:
    section = enum_section or where
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in schema:
            errors.append(f"{where}.{key}: unknown key (known: {', '.join(sorted(schema))})")
            continue
        typ = schema[key][0]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            shown = ("the value is not shown: it is a secret" if key in SECRET_KEYS
                     else "the value is not shown: it may hold credentials" if key in URL_KEYS else repr(value))
            errors.append(f"{where}.{key}: must be {_type_name(typ)}, not {type(value).__name__} ({shown})")
            continue
        allowed = _ENUMS.get((section, key))
        if allowed and value not in allowed:
            errors.append(f"{where}.{key}: must be one of {', '.join(sorted(allowed))}, not {value!r}")
            continue
        if typ is float and not math.isfinite(value):
            # nan compares false with everything (a wait of nan is none);
            # inf waits forever: neither is a setting anyone means.
            errors.append(f"{where}.{key}: must be a finite number ({value})")
            continue
        if typ in (int, float) and value < 0:
            errors.append(f"{where}.{key}: must not be negative ({value})")
            continue
        out[key] = value
    for key, (_, default) in schema.items():
        if key not in out:
            if default is ... and key not in table:
                errors.append(f"{where}.{key}: missing (required)")
            elif default is not ...:
                out[key] = default
    return out


def _type_name(typ: type | tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return names.get(typ, str(typ))


_ENV_RE = re.compile(r"[^A-Z0-9]+")


def _apply_env(raw: dict[str, Any], env: dict[str, str], errors: list[str]) -> dict[str, Any]:
    """FAPIAO_AGENT__SECTION__KEY=value, or FAPIAO_AGENT__SECTION__NAME__KEY for
    a named [[destination]]/[[backup]] entry (NAME upper-cased, other chars as _)."""
    for var, text in sorted(env.items()):
        if not var.startswith(ENV_PREFIX):
            continue
        parts = var[len(ENV_PREFIX):].lower().split("__")
        schema = _SCALAR_SCHEMAS.get(parts[0]) or _LIST_SCHEMAS.get(parts[0]) or {}
        value = _env_value(schema.get(parts[-1], (None,))[0], text)
        if len(parts) == 2 and parts[0] in _SCALAR_SCHEMAS:
            raw.setdefault(parts[0], {})
            if isinstance(raw[parts[0]], dict):
                raw[parts[0]] = {**raw[parts[0]], parts[1]: value}
        elif len(parts) == 3 and parts[0] in ("destination", "backup", "notify"):
            entries = raw.get(parts[0], [])
            entries = entries if isinstance(entries, list) else []  # the bad type is reported later
            match = [e for e in entries if isinstance(e, dict)
                     and _ENV_RE.sub("_", str(e.get("name", "")).upper()) == parts[1].upper()]
            if not match:
                errors.append(f"{var}: no [[{parts[0]}]] named {parts[1]!r} to override")
                continue
            match[0][parts[2]] = value
        else:
            errors.append(f"{var}: not a known setting (use FAPIAO_AGENT__SECTION__KEY, "
                          "or FAPIAO_AGENT__DESTINATION__NAME__KEY, FAPIAO_AGENT__NOTIFY__NAME__KEY)")
    return raw


def _env_value(typ: Any, text: str) -> Any:
    # A string setting takes the text as it is (a token may look like a
    # number); others use TOML syntax for numbers, booleans and lists.
    if typ is str:
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
