"""`fapiao-agent run`: the long-running service."""

from __future__ import annotations

import click


@click.command("run")
@click.option("--log-format", type=click.Choice(["kv", "json"]), default=None,
              help="Log lines as key=value (default) or JSON.")
@click.pass_context
def command(ctx: click.Context, log_format: str | None) -> None:
    """Run the agent in the foreground: watch the configured folders, read,
    validate, deliver and back up every invoice. Stop with Ctrl-C or SIGTERM."""
    from service.daemon import run_daemon

    ctx.exit(run_daemon(ctx.obj.get("config_path"), log_format=log_format))
