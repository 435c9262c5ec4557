"""The CLI in-process on a config of its own: the embedded defaults, with
the state under the test's folder."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from agent.defaults import DEFAULT_CONFIG
from service.cli import main


def default_config(folder: Path, **replace: str) -> Path:
    """agent.toml in `folder`: the embedded defaults, each `old=new` text
    of `replace` swapped once (a key's default line for another)."""
    text = DEFAULT_CONFIG
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(cfg: Path, *args: str) -> Result:
    """`fapiao-agent --config CFG ARGS...`, stdout and stderr apart."""
    return CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)
