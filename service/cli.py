"""The operator's command line: `fapiao-agent COMMAND`.

Each command lives in `service/commands/<name>.py` and stays thin: load the
config, make one library call into `agent/`, format the result.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

import click

import service.commands
from service import access


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="FAPIAO_AGENT_CONFIG",
              help="Config file. Default, the first found: $FAPIAO_AGENT_CONFIG, var/fapiao-agent.toml "
                   "in this folder or any folder above it, then /etc/fapiao-agent/config.toml.")
@click.version_option(package_name="fapiao-agent")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """fapiao-agent: no invoice (发票) gets lost between the scanner and the finance system.

    Files dropped in watched scanner and e-mail folders are kept in a
    content-addressed vault, read, validated, delivered and backed up.
    Every step is recorded in a SQLite ledger that these commands read.

    \b
    Typical use:
      fapiao-agent config init var/fapiao-agent.toml   write a commented config
      fapiao-agent ingest ~/scans                      take files in once
      fapiao-agent status                              counts per state
      fapiao-agent list --state quarantined            what needs a person
      fapiao-agent show 12                             one document, all events

    \b
    Shell completion (bash; zsh and fish alike, with zsh_source / fish_source):
      eval "$(_FAPIAO_AGENT_COMPLETE=bash_source fapiao-agent)"   in ~/.bashrc
    """
    ctx.obj = {"config_path": config_path}


def _late_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["config_path"] = value


def _accept_config_anywhere(cmd: click.Command) -> None:
    # Ops type `fapiao-agent status --config x.toml` as often as
    # `fapiao-agent --config x.toml status`; both work.
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _accept_config_anywhere(sub)
        if not cmd.invoke_without_command:   # a group that also runs alone (`requests`) takes it too
            return
    if not any("--config" in p.opts for p in cmd.params):
        cmd.params.append(click.Option(["--config"], type=click.Path(dir_okay=False), expose_value=False,
                                       callback=_late_config, is_eager=True,
                                       help="Config file (same as the global --config)."))


def _guard(cmd: click.Command, path: str = "") -> None:
    # The one place access is checked: every command's callback first runs
    # access.enforce for its path ("backup verify"), whose role is listed in
    # service/access.py COMMAND_ROLES.
    path = f"{path} {cmd.name}".strip()
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _guard(sub, path)
        return
    callback = cmd.callback
    if callback is None or getattr(callback, "__guarded__", False):
        return

    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        if access.role_of(path) != access.NONE:
            from service.context import load  # context imports access; keep the import graph flat

            cfg = load(click.get_current_context())
            access.enforce(path, cfg.access, cfg)
        return callback(*args, **kwargs)

    guarded.__guarded__ = True
    cmd.callback = guarded


def _register_commands() -> None:
    # Every module in service/commands that defines `command` (a click
    # command or group), and optionally `extra_commands`, is added: a new
    # command is a new module, not an edit here.
    for info in sorted(pkgutil.iter_modules(service.commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"service.commands.{info.name}")
        for cmd in (getattr(module, "command", None), *getattr(module, "extra_commands", ())):
            if isinstance(cmd, click.Command):
                _accept_config_anywhere(cmd)
                _guard(cmd)
                main.add_command(cmd)


_register_commands()
