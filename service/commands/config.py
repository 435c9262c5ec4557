"""`fapiao-agent config init|check`."""

from __future__ import annotations

from pathlib import Path

import click

from agent.config import load_config
from agent.config_paths import check_paths
from agent.config_adapters import adapter_problems
from agent.defaults import DEFAULT_CONFIG, DEFAULT_FOLDERS
from agent.errors import ConfigError
from service.context import fail, load, open_ledger
from service.textsafe import echo


@click.group("config")
def command() -> None:
    """Write or check the configuration file."""


@command.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path),
                default=Path("var/fapiao-agent.toml"))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented default config to PATH (default ./var/fapiao-agent.toml)
    and create the folders it names beside it (inbox/scanner, inbox/email,
    outbox, backup, state)."""
    if path.exists() and not force:
        fail(f"{path} exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    path.chmod(0o640)
    for rel in DEFAULT_FOLDERS:
        (path.parent / rel).mkdir(mode=0o750, parents=True, exist_ok=True)
    echo(f"wrote {path}; folders under {path.parent}: {', '.join(DEFAULT_FOLDERS)}")


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
@click.argument("path")
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
