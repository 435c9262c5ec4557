"""`fapiao-agent config init|check`."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

import click

from agent.config import load_config
from agent.config_paths import check_paths, output_refusal
from agent.config_adapters import adapter_problems
from agent.defaults import DEFAULT_CONFIG, DEFAULT_FOLDERS
from agent.errors import ConfigError
from service.context import fail, load, open_ledger
from service.textsafe import echo


@click.group("config")
def command() -> None:
    """Write or check the configuration file."""


@command.command("init")
@click.argument("path", type=click.Path(dir_okay=False, readable=False, path_type=Path),
                default=Path("var/fapiao-agent.toml"))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
def init(ctx: click.Context, path: Path, force: bool) -> None:
    """Write a commented default config to PATH (default ./var/fapiao-agent.toml)
    and create the folders it names beside it (inbox/scanner, inbox/email,
    outbox, backup, state). All or nothing: when PATH or a folder cannot be
    written (no permission, /proc, a full disk), one line says which, exit 1,
    and what this run made is taken back. A PATH inside the folders of the
    config in use (--config, or the one found), a watched folder, the state
    folder, an outbox or a backup target, is refused (exit 2)."""
    if refusal := _inside_the_agents_folders(ctx, path):
        fail(refusal, code=2)
    try:
        there = path.exists() or path.is_symlink()
    except OSError as e:
        fail(f"cannot write {path}: {e.strerror or e}; nothing written")
    if there and not force:
        fail(f"{path} exists; use --force to overwrite it")
    made: list[Path] = []   # folders this run created, taken back if it fails
    temp: Path | None = None
    try:
        _make_folders(path.parent, made, mode=0o777)   # as mkdir(1): the umask decides
        temp = _write_temp(path)
        for rel in DEFAULT_FOLDERS:
            _make_folders(path.parent / rel, made, mode=0o750)
        _put_in_place(temp, path, force)
        temp = None
    except _Exists:
        _take_back(temp, made)
        fail(f"{path} exists; use --force to overwrite it")
    except OSError as e:
        _take_back(temp, made)
        fail(f"cannot write {e.filename or path}: {e.strerror or e}; nothing written")
    echo(f"wrote {path}; folders under {path.parent}: {', '.join(DEFAULT_FOLDERS)}")


def _inside_the_agents_folders(ctx: click.Context, path: Path) -> str | None:
    # `config init --force state/ledger.sqlite3` wrote a template over the
    # ledger; a config written into a watched folder comes back as a refusal.
    # Only a config that loads can say where its folders are: none (a first
    # init) or a broken one (init run to replace it) checks nothing.
    try:
        cfg = load_config((ctx.obj or {}).get("config_path"))
    except ConfigError:
        return None
    return output_refusal(cfg, path, what="config init")


class _Exists(Exception):
    """PATH appeared while init ran; it is not overwritten without --force."""


def _make_folders(folder: Path, made: list[Path], mode: int) -> None:
    # Each missing folder from the top down, remembered, so a failure later
    # removes exactly what this run made (never a folder that was there);
    # `mode` for `folder` itself, those above it as mkdir -p makes them.
    missing = []
    for f in (folder, *folder.parents):
        if f.is_dir():
            break
        missing.append(f)
    for f in reversed(missing):
        try:
            f.mkdir(mode=mode if f == folder else 0o777)
        except OSError as e:
            why = "a file is there, not a folder" if e.errno == errno.EEXIST else e.strerror
            raise OSError(e.errno, why, f"folder {f}") from None
        made.append(f)


def _write_temp(path: Path) -> Path:
    # The whole file under a temporary name beside PATH, 0640 from its first
    # byte, flushed to disk: PATH is only ever absent, the old file or this one.
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:   # named by PATH, not by the temporary name it never got
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(DEFAULT_CONFIG)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _put_in_place(temp: Path, path: Path, force: bool) -> None:
    try:
        if force:
            os.replace(temp, path)   # a symlink at PATH is replaced, never written through
            return
        try:
            os.link(temp, path)      # never over a file made since the check above
        except FileExistsError:
            raise _Exists() from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            if path.exists() or path.is_symlink():   # a file system without hard links (vfat, some FUSE)
                raise _Exists() from None
            os.replace(temp, path)
            return
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.unlink(temp)


def _take_back(temp: Path | None, made: list[Path]) -> None:
    if temp is not None:
        with contextlib.suppress(OSError):
            temp.unlink()
    for folder in reversed(made):
        with contextlib.suppress(OSError):   # one that is not empty (someone else's file) stays
            folder.rmdir()


@command.command("check")
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the config: syntax, keys, types, URLs and folders. Prints one
    line per problem naming the key; exits 2 when there is any."""
    try:
        cfg = load_config(ctx.obj.get("config_path"))
    except ConfigError as e:
        fail(str(e), code=2)
    problems = check_paths(cfg) + adapter_problems(cfg)   # what `run` would refuse, by the same calls
    if problems:
        fail("\n".join(problems), code=2)
    echo(f"{cfg.path}: ok ({len(cfg.watches)} watched folders, {len(cfg.destinations)} "
               f"destinations, {len(cfg.backups)} backup targets, {len(cfg.notify)} notify entries)")
    if cfg.ocr:
        # A note, not a problem: without OCR scans still work, through their QR code.
        from agent.extract.ocr import unavailable_reason

        reason = unavailable_reason()
        echo(f"ocr: {'ready' if reason is None else 'unavailable: ' + reason}")


@command.command("repin")
@click.argument("path", type=click.Path())
@click.pass_context
def repin(ctx: click.Context, path: str) -> None:
    """Accept that the watched folder PATH now leads to another folder than
    the one first watched (it was replaced on purpose: a new share, a
    remount). The daemon refuses such a folder until this is run, because a
    folder swapped for a symlink to the outbox or /etc must never be read or
    emptied. Then reload the daemon (systemctl reload fapiao-agent) to watch it.

    \b
    Example:
      fapiao-agent config repin /srv/scans/finance"""
    cfg = load(ctx)
    if path not in {str(w.path) for w in cfg.watches}:
        fail(f"{path} is not a watched folder of {cfg.path} (give it exactly as the config does)", code=2)
    with open_ledger(cfg) as ledger:
        forgot = ledger.unpin_root(path)
    echo(f"{path}: " + ("forgotten; the next start or reload pins the folder it leads to then"
                        if forgot else "was not pinned; the next start or reload pins it"))
