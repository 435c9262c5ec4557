"""Config loading: defaults, relative paths, env overrides, one clear line per error."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.config_paths import check_paths
from agent.config_adapters import redacted
from agent.defaults import DEFAULT_CONFIG
from agent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    return p


def errors_of(tmp_path: Path, text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), env=env or {})
    return str(e.value).splitlines()


def test_default_config_loads_with_paths_relative_to_the_file(tmp_path):
    cfg = load_config(write(tmp_path, DEFAULT_CONFIG), env={})
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.ledger_path == tmp_path / "state" / "ledger.sqlite3"
    assert [w.path for w in cfg.watches] == [tmp_path / "inbox/scanner", tmp_path / "inbox/email"]
    assert [w.kind for w in cfg.watches] == ["scanner", "email"]
    assert cfg.validation["max_age_days"] == 360
    assert cfg.destinations[0]["url"] == "folder://outbox"
    assert cfg.backups[0]["base_dir"] == str(tmp_path)


def test_missing_folders_are_reported_by_key(tmp_path):
    cfg = load_config(write(tmp_path, DEFAULT_CONFIG), env={})
    problems = check_paths(cfg)
    assert "watch[0].path: folder " + str(tmp_path / "inbox/scanner") + " does not exist" in problems
    assert "destination[0].url: folder " + str(tmp_path / "outbox") + " does not exist" in problems
    assert "backup[0].url: folder " + str(tmp_path / "backup") + " does not exist" in problems
    for rel in ("inbox/scanner", "inbox/email", "outbox", "backup"):
        (tmp_path / rel).mkdir(parents=True)
    assert check_paths(cfg) == []


@pytest.mark.parametrize("text, expected", [
    ("[agent]\nstate_dirr = 'x'\n", "agent.state_dirr: unknown key"),
    ("[agnet]\n", "[agnet]: unknown section"),
    ("[validation]\nmax_age_days = 'many'\n", "validation.max_age_days: must be an integer, not str ('many')"),
    ("[validation]\nmax_age_days = -1\n", "validation.max_age_days: must not be negative (-1)"),
    ("[[watch]]\npath = 'in'\nquiet_seconds = nan\n", "watch[0].quiet_seconds: must be a finite number (nan)"),
    ("[[watch]]\npath = 'in'\nquiet_seconds = inf\n", "watch[0].quiet_seconds: must be a finite number (inf)"),
    ("[company]\ntax_ids = '91110108690017781B'\n", "company.tax_ids: must be a list"),
    ("[[watch]]\nkind = 'scanner'\n", "watch[0].path: missing (required)"),
    ("[[watch]]\npath = 'in'\nkind = 'fax'\n", "watch[0].kind: must be one of email, scanner, not 'fax'"),
    ("[[watch]]\npath = 'in'\nafter = 'shred'\n", "watch[0].after: must be one of delete, keep, move, not 'shred'"),
    ("[[destination]]\nname = 'erp'\nurl = 'ftp://x'\n", "destination[0].url: scheme must be one of"),
    ("[[destination]]\nname = 'erp'\nurl = 'https://'\n", "destination[0].url: 'https://' has no host or bucket"),
    ("[[backup]]\nname = 'b'\nurl = 's3://ab/x'\n", "backup[0].url: bucket name 'ab' is too short"),
    ("[[backup]]\nname = 'b'\nurl = 'folder://x'\n", "backup[0].url: scheme must be one of file://, s3://"),
    ("[[backup]]\nname = 'b'\nurl = 'file://x'\n[[backup]]\nname = 'b'\nurl = 'file://y'\n",
     "backup[1].name: duplicate name 'b'"),
    ("[agent\n", "not valid TOML"),
])
def test_each_error_is_one_line_naming_the_key(tmp_path, text, expected):
    lines = errors_of(tmp_path, text)
    assert len(lines) == 1, lines
    assert expected in lines[0]


def test_all_errors_are_reported_at_once(tmp_path):
    lines = errors_of(tmp_path, "[agent]\nfoo = 1\n[validation]\nmax_age_days = 'x'\n")
    assert len(lines) == 2


def test_env_overrides_scalar_and_named_entries(tmp_path):
    text = DEFAULT_CONFIG.replace('name = "outbox"', 'name = "finance-erp"')
    env = {"FAPIAO_AGENT__VALIDATION__MAX_AGE_DAYS": "400",
           "FAPIAO_AGENT__COMPANY__TAX_IDS": '["91110108690017781B"]',
           "FAPIAO_AGENT__DESTINATION__FINANCE_ERP__TOKEN": "12345",
           "UNRELATED": "x"}
    cfg = load_config(write(tmp_path, text), env=env)
    assert cfg.validation["max_age_days"] == 400
    assert cfg.company["tax_ids"] == ["91110108690017781B"]
    assert cfg.destinations[0]["token"] == "12345"  # a string key keeps numeric-looking text
    assert redacted(cfg.destinations[0])["token"] == "***"


def test_bad_env_override_names_the_variable(tmp_path):
    lines = errors_of(tmp_path, DEFAULT_CONFIG, env={"FAPIAO_AGENT__VALIDATION__MAX_AGE_DAYS": "soon",
                                                      "FAPIAO_AGENT__DESTINATION__NOPE__TOKEN": "x"})
    assert any("validation.max_age_days: must be an integer" in l for l in lines)
    assert any("FAPIAO_AGENT__DESTINATION__NOPE__TOKEN: no [[destination]] named 'nope'" in l for l in lines)


def test_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="config init"):
        load_config(tmp_path / "absent.toml", env={})


def test_parse_config_accepts_empty_document(tmp_path):
    cfg = parse_config({}, base_dir=tmp_path)
    assert cfg.watches == [] and cfg.destinations == [] and cfg.agent["state_dir"] == "state"


def test_a_config_saved_as_gbk_or_with_a_bom_or_not_a_file_is_said_plainly(tmp_path):
    # Windows Notepad saves "ANSI" (GBK on a Chinese system) or UTF-8 with
    # a BOM; an operator may point --config at a folder or a device.
    gbk = tmp_path / "gbk.toml"
    gbk.write_bytes('[company]\nname = "北京某某科技有限公司"\n'.encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8 .*save it as UTF-8"):
        load_config(gbk)
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + DEFAULT_CONFIG.encode())
    assert load_config(bom).agent == load_config(_written(tmp_path, DEFAULT_CONFIG)).agent
    for odd in (tmp_path, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(odd)
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)


def _written(folder: Path, text: str) -> Path:
    path = folder / "plain.toml"
    path.write_text(text, encoding="utf-8")
    return path
