"""The operator's command line: `fapiao-agent COMMAND`.

Each command lives in `service/commands/<name>.py` and stays thin: load the
config, make one library call into `agent/`, format the result.

Commands are loaded lazily: COMMANDS names the module and attribute of each,
and only the module of the command being run is imported (click's "Lazily
Loading Subcommands"), so `status` does not pay for boto3, OCR or PDF
readers, and `--version` pays for none of them. `--help` and shell
completion still see every command (they load them all).
"""

from __future__ import annotations

import gc
import os
import sys


def _started_as_the_command() -> bool:
    # `python -m service` or the installed `fapiao-agent` script, as opposed
    # to a test or another program importing this module.
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    return (getattr(spec, "name", None) == "service.__main__"
            or os.path.basename(getattr(main_module, "__file__", None) or "") == "fapiao-agent")


# Start-up (click, then the command's modules) allocates tens of thousands of
# objects that live until the command ends; the collector walked them some
# twenty times while they were imported (~7 ms of `status`, issue 17). It is
# paused from here until the command is loaded, then they are frozen out of
# every later collection and collecting resumes (`_resume_collection`), so a
# long command (`run`, `ingest`) collects as always.
_COLLECTION_PAUSED = _started_as_the_command() and gc.isenabled()
if _COLLECTION_PAUSED:
    gc.disable()

import functools  # noqa: E402
import importlib  # noqa: E402
import re  # noqa: E402

import click  # noqa: E402

from service import access

# name -> "module:attribute" under service.commands. A new command is one
# line here next to its module; tests/unit/test_cli_startup.py checks that
# this names every command the modules define (`command`, `extra_commands`).
COMMANDS: dict[str, str] = {
    "audit": "audit:command",
    "backup": "backup:command",
    "check": "check:command",
    "config": "config:command",
    "retry": "deliver:command",
    "requeue": "deliver:requeue_command",
    "reconcile": "deliver:reconcile_command",
    "drop-destination": "drop:command",
    "forget-key": "forget:command",
    "extract": "extract:command",
    "fleet": "fleet:command",
    "ingest": "ingest:command",
    "notify": "notify:command",
    "quarantine": "quarantine:command",
    "amend": "quarantine:amend_command",
    "accept": "quarantine:accept_command",
    "reject": "quarantine:reject_command",
    "reopen": "quarantine:reopen_command",
    "refused": "refused:command",
    "report": "report:command",
    "requests": "requests:command",
    "approve": "requests:approve_command",
    "decline": "requests:decline_command",
    "run": "run:command",
    "search": "search:command",
    "status": "status:command",
    "list": "status:list_command",
    "show": "show:command",
}


class LazyGroup(click.Group):
    """A group whose subcommands in `COMMANDS` are imported when first asked
    for by name; each is given the global `--config` and the access guard
    once, as it loads, exactly as when all were registered at start-up."""

    def main(self, *args, **kwargs):
        """click's `main`, with stdout and stderr first made never to raise
        on a character their encoding lacks (`escape_what_cannot_be_written`)."""
        escape_what_cannot_be_written()
        return super().main(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


def escape_what_cannot_be_written() -> None:
    """Make sys.stdout and sys.stderr write, in the locale's own encoding,
    every character it lacks as a `\\uXXXX` escape (a pair of them beyond
    the BMP) instead of raising. Under zh_CN.GBK one buyer named 𠮷野家 (an
    Extension-B hanzi GBK has no code for), under en_US.ISO-8859-1 any
    Chinese, even `--help`, died with a UnicodeEncodeError traceback. The
    JSON spelling, not Python's backslashreplace (`\\U00020bb7`, `\\xe9`):
    such a character only ever stands inside a JSON string, so `--json`
    output stays JSON, decoding to the very text. Streams that are not
    text files (a test's) are left as they are."""
    import codecs

    try:
        codecs.lookup_error(_ESCAPE)
    except LookupError:
        codecs.register_error(_ESCAPE, _json_style_escape)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors=_ESCAPE)
            except (ValueError, OSError):   # closed, or not a text wrapper after all
                pass


_ESCAPE = "fapiao-agent-escape"


def _json_style_escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    from agent.textchars import json_escaped

    return "".join(json_escaped(ch) for ch in error.object[error.start:error.end]), error.end


def load_command(name: str) -> click.Command:
    """Import the module of command `name` (a key of COMMANDS) and return its
    click command, with `--config` accepted anywhere and access enforced.
    Raises LookupError when the module does not define what COMMANDS says."""
    module_name, attribute = COMMANDS[name].split(":")
    cmd = getattr(importlib.import_module(f"service.commands.{module_name}"), attribute, None)
    _resume_collection()
    if not isinstance(cmd, click.Command) or cmd.name != name:
        raise LookupError(f"service.commands.{module_name}.{attribute} is not the command {name!r}")
    _accept_config_anywhere(cmd)
    _guard(cmd)
    _decode_text_arguments(cmd)
    return cmd


# --config is a path given to our loader (agent/config_file.py), never judged
# by click: click.Path's defaults (readable=True, dir_okay=False) made click
# exit 2 with its usage text for a file the user cannot read or a folder,
# before the command ran, so `status --check` said CRITICAL instead of
# UNKNOWN. The loader names the file and the problem in one line, and each
# command exits as it does for any other config problem.
CONFIG_PATH = click.Path(readable=False)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=CONFIG_PATH, envvar="FAPIAO_AGENT_CONFIG",
              help="Config file. Default, the first found: $FAPIAO_AGENT_CONFIG, var/fapiao-agent.toml "
                   "in this folder or any folder above it, then /etc/fapiao-agent/config.toml.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, help="Show the version and exit.",
              callback=lambda ctx, param, value: _print_version(ctx, value))
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
    _resume_collection()   # a command not in COMMANDS, if one is ever added with add_command
    ctx.obj = {"config_path": config_path}


def _resume_collection() -> None:
    global _COLLECTION_PAUSED
    if _COLLECTION_PAUSED:
        _COLLECTION_PAUSED = False
        gc.freeze()   # what start-up made lives as long as the command: no collection walks it again
        gc.enable()


def _print_version(ctx: click.Context, wanted: bool) -> None:
    # click.version_option's message, without its importlib.metadata.
    if wanted and not ctx.resilient_parsing:
        click.echo(f"{ctx.find_root().info_name}, version {installed_version('fapiao-agent')}", color=ctx.color)
        ctx.exit()


def installed_version(distribution: str) -> str:
    """The version of the installed `distribution`, the one
    importlib.metadata.version names: that of the first entry of sys.path
    holding a `.dist-info` or `.egg-info` of it. A `.dist-info` folder's
    METADATA or an `.egg-info` folder's PKG-INFO is read here; anything
    else (an egg file, a zip, none found, no Version header) is left
    to importlib.metadata, whose import alone (email, zipfile, csv...) costs
    `--version` more than all the rest of it (issue 17)."""
    wanted = _normalized(distribution)
    for entry in sys.path:
        try:
            children = os.listdir(entry or ".")
        except OSError:
            continue   # a zip or a missing folder: importlib.metadata reads those
        for child in children:
            stem, dot, suffix = child.rpartition(".")
            if suffix not in ("dist-info", "egg-info") or _normalized(stem.partition("-")[0]) != wanted:
                continue
            # A folder's headers: METADATA in a .dist-info, PKG-INFO in the
            # .egg-info `pip install -e` leaves in a source tree.
            headers = "METADATA" if suffix == "dist-info" else "PKG-INFO"
            version = _metadata_version(os.path.join(entry or ".", child, headers))
            if version is not None:
                return version
            return _version_by_importlib(distribution)
    return _version_by_importlib(distribution)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata_version(path: str) -> str | None:
    # The `Version:` header of a METADATA file (RFC 822 headers end at the
    # first empty line).
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    return None
                key, _, value = line.partition(":")
                if key.strip().lower() == "version":
                    return value.strip()
    except OSError:
        return None
    return None


def _version_by_importlib(distribution: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"{distribution!r} is not installed.") from None


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
        cmd.params.append(click.Option(["--config"], type=CONFIG_PATH, expose_value=False,
                                       callback=_late_config, is_eager=True,
                                       help="Config file (same as the global --config)."))


def _decode_text_arguments(cmd: click.Command) -> None:
    # Under LC_ALL=C with UTF-8 mode off, Python decodes the command line as
    # ASCII, every other byte a lone surrogate (surrogateescape): `search 发票`
    # reached SQLite as '\udce5\udc8f...' and raised. A path keeps those
    # bytes (open() writes them back: a file argument is a click.Path or a
    # click.File for that reason); any other text is the terminal's UTF-8,
    # decoded here once for every command, or refused by name.
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _decode_text_arguments(sub)
        return
    callback = cmd.callback
    texts = {p.name for p in cmd.params if p.name and not isinstance(p.type, (click.Path, click.File))}
    if callback is None or getattr(callback, "__decoded__", False):
        return

    @functools.wraps(callback)
    def decoded(*args, **kwargs):
        for name in texts & kwargs.keys():
            kwargs[name] = _as_text(kwargs[name], name)
        return callback(*args, **kwargs)

    decoded.__decoded__ = True
    cmd.callback = decoded


def _as_text(value, name: str):
    if isinstance(value, (tuple, list)):
        return type(value)(_as_text(v, name) for v in value)
    if not isinstance(value, str) or value.isprintable() or not re.search("[\udc80-\udcff]", value):
        return value
    try:
        return os.fsencode(value).decode("utf-8")
    except (UnicodeError, ValueError):
        from service.textsafe import shown

        raise click.BadParameter(f"{shown(value)} is not text in UTF-8 or this locale's encoding",
                                 param_hint=name) from None


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
        access.refuse_lent_rights(path)
        if access.role_of(path) != access.NONE:
            from service.context import load  # context imports access; keep the import graph flat

            cfg = load(click.get_current_context())
            access.enforce(path, cfg.access, cfg)
        return callback(*args, **kwargs)

    guarded.__guarded__ = True
    cmd.callback = guarded
