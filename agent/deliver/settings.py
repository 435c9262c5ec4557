"""Reading one [[destination]] table's keys: typed, with ConfigError messages
that name the destination and the key.

Apart from agent/deliver/base.py so that agent/deliver/retry.py (and through
it `status`) reads a delivery policy without loading the adapter interface
and the invoice model (issue 17: start-up). base.py re-exports these.
"""

from __future__ import annotations

from agent.errors import ConfigError


def where(cfg: dict) -> str:
    """Prefix for ConfigError messages: which destination's table is wrong."""
    return f"destination {cfg['name']!r}: " if isinstance(cfg.get("name"), str) else "destination: "


def config_str(cfg: dict, key: str, default: str | None = None) -> str | None:
    """cfg[key] as a string (default when absent or None); ConfigError naming the key otherwise."""
    value = _given(cfg, key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where(cfg)}{key}: expected a string, got {type(value).__name__}")
    return value


def config_number(cfg: dict, key: str, default: float, *, integer: bool = False,
                  minimum: float | None = None) -> float:
    """cfg[key] as a number (default when absent or None). Raises ConfigError naming
    the key when it is not a number, not whole when `integer`, or below `minimum`."""
    value = _given(cfg, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{where(cfg)}{key}: expected a number, got {value!r}")
    if integer and value != int(value):
        raise ConfigError(f"{where(cfg)}{key}: expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where(cfg)}{key}: must be at least {minimum}, got {value!r}")
    return value


def _given(cfg: dict, key: str, default):
    # The config loader fills every known key, unset ones with None.
    value = cfg.get(key)
    return default if value is None else value


def config_bool(cfg: dict, key: str, default: bool) -> bool:
    """cfg[key] as a bool (default when absent or None); ConfigError naming the key otherwise."""
    value = _given(cfg, key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where(cfg)}{key}: expected true or false, got {value!r}")
    return value
