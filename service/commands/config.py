"""`fapiao-agent config init|check`."""

from __future__ import annotations

from pathlib import Path

import click

from agent.config import check_paths, load_config
from agent.config_adapters import adapter_problems
from agent.defaults import DEFAULT_CONFIG, DEFAULT_FOLDERS
from agent.errors import ConfigError
from service.context import fail
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
               f"destinations, {len(cfg.backups)} backup targets)")
    if cfg.ocr:
        # A note, not a problem: without OCR scans still work, through their QR code.
        from agent.extract.ocr import unavailable_reason

        reason = unavailable_reason()
        echo(f"ocr: {'ready' if reason is None else 'unavailable: ' + reason}")
