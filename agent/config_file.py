"""The config file on disk: which one is used (--config, or the search path
from the current folder up to /etc) and reading it (size bound, UTF-8 with
or without BOM, TOML, no secrets in a file every user can read).

Apart from agent/config.py, which types and checks what was read: this is
the only part that touches the file, and its refusals name the file, not
a key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from agent.config_adapters import SECRET_KEYS
from agent.config_notify import notify_secrets_held
from agent.errors import ConfigError

LOCAL_CONFIG = Path("var/fapiao-agent.toml")   # where `make run` and `config init` write it
SYSTEM_CONFIG = Path("/etc/fapiao-agent/config.toml")
MAX_CONFIG_BYTES = 1024 * 1024   # a config is a few KB; a bound keeps a wrong file out of memory
SEARCH_PATHS = (LOCAL_CONFIG, SYSTEM_CONFIG)


class NoConfigFound(ConfigError):
    """No config on the search path, and none named: the one refusal a
    command that can do without a config (`check`) may take for "defaults";
    a config there but unreadable, or refused, is never taken for none."""


def config_candidates(start: str | os.PathLike | None = None) -> list[Path]:
    """Where a config is looked for without --config, in order:
    var/fapiao-agent.toml in `start` (default: the current folder), then in
    each folder above it up to /, then /etc/fapiao-agent/config.toml. So
    `fapiao-agent status` works from any subfolder of a checkout that ran
    `make run`, as git finds its repository."""
    here = Path(start if start is not None else os.getcwd()).absolute()
    return [folder / LOCAL_CONFIG for folder in (here, *here.parents)] + [SYSTEM_CONFIG]


def find_config_path(explicit: str | os.PathLike | None = None) -> Path:
    """The config to use: `explicit` (from --config or FAPIAO_AGENT_CONFIG),
    else the first of `config_candidates` that is a file. One found above
    the current folder must belong to you or root: a file someone else put
    in a parent folder (/tmp/var/...) is refused, naming it, never used.
    Raises ConfigError saying where it looked, or naming the path it could
    not look at (never a traceback, never a guess past it); an empty
    `explicit` is refused, not taken for "search"."""
    if explicit is not None:
        if not str(explicit):
            # `--config ""`: a file was named, only not one; the search path
            # could find another config and act on it.
            raise ConfigError("the config file named is empty (--config \"\"): name the file")
        p = Path(explicit)
        kind = _kind(p)
        if kind == "other":
            raise ConfigError(f"config file {p} is not a regular file (a folder, device or pipe)")
        if kind is None:
            raise ConfigError(f"config file {p} does not exist (run `fapiao-agent config init {p}`)")
        return p
    candidates = config_candidates()
    for i, p in enumerate(candidates):
        if _kind(p) != "file":
            continue
        if 0 < i < len(candidates) - 1:
            owner = p.stat().st_uid
            if owner not in (os.geteuid(), 0):
                raise ConfigError(f"found {p} in a folder above this one, but it belongs to uid {owner}, not to "
                                  f"you or root; pass --config {p} if it is the one to use")
        return p
    raise NoConfigFound(f"no config file: pass --config, set FAPIAO_AGENT_CONFIG, or create {LOCAL_CONFIG} "
                      f"(looked in {candidates[0].parent.parent} and every folder above it) or {SYSTEM_CONFIG} "
                      "with `fapiao-agent config init`")


def _kind(p: Path) -> str | None:
    """"file", "other" (a folder, device, pipe) or None (not there). A
    path that cannot be looked at (a folder on it this user cannot search)
    raises ConfigError naming it:
    whether a config is there is unknown, and guessing "not there" could
    fall through to another config (Path.exists raises PermissionError)."""
    try:
        return "file" if p.is_file() else "other" if p.exists() else None
    except PermissionError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror} (a folder on its path is not open to this "
                          "user); pass --config with a file you can read") from None
    except OSError as e:   # a name too long, an I/O error
        raise ConfigError(f"{p}: cannot read: {e.strerror or e}") from None


def read_config_file(p: Path) -> tuple[dict[str, Any], os.stat_result, bytes]:
    """The parsed TOML of the file at `p`, the stat of the very file read and
    its bytes (`Config.file_sha256`: what a running daemon loaded, told
    apart from what the file holds now).

    Guarantees: at most MAX_CONFIG_BYTES are read; a file that is too large,
    not UTF-8, not TOML or unreadable, or that holds secrets while readable
    by every user, raises ConfigError naming the file (never a traceback).
    """
    try:
        # One open file for the bytes and their owner/mode: a path checked
        # after reading could be a different file by then (a swapped symlink).
        with open(p, "rb") as f:
            read = os.fstat(f.fileno())
            data = f.read(MAX_CONFIG_BYTES + 1)
            if len(data) > MAX_CONFIG_BYTES:
                raise ConfigError(f"{p}: larger than {MAX_CONFIG_BYTES // 1024} KB: no config is; wrong file?")
            # utf-8-sig: Windows Notepad starts a UTF-8 file with a BOM.
            raw = tomllib.loads(data.decode("utf-8-sig"))
        mode = read.st_mode
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 (byte {e.start} is 0x{e.object[e.start]:02x}): save it as UTF-8; "
                          "an editor's 'ANSI' or GBK encoding cannot be read") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    _refuse_readable_secrets(p, raw, mode)
    return raw, read, data


def _refuse_readable_secrets(p: Path, raw: dict[str, Any], mode: int) -> None:
    # A token in a file every local user can read is a leaked token. Secrets
    # given by environment variables are not in the file, so they do not count.
    if not mode & 0o004:
        return
    held = [f"{kind}[{i}].{key}" for kind in ("destination", "backup")
            for i, entry in enumerate(raw.get(kind) if isinstance(raw.get(kind), list) else [])
            if isinstance(entry, dict) for key in sorted(SECRET_KEYS) if entry.get(key)]
    held += notify_secrets_held(raw.get("notify"))
    if isinstance(raw.get("fleet"), dict) and raw["fleet"].get("secret_access_key"):
        held.append("fleet.secret_access_key")
    if held:
        raise ConfigError(f"{p}: holds secrets ({', '.join(held)}) but is readable by every user "
                          f"(mode {mode & 0o777:o}); run `chmod 640 {p}` (or 600), or pass the secrets "
                          "as FAPIAO_AGENT__DESTINATION__<NAME>__TOKEN-style environment variables "
                          "(FAPIAO_AGENT__NOTIFY__<NAME>__URL for a webhook)")
