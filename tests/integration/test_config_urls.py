"""Credentials in a URL (issue 12, item 11) are refused by `config check` and
`run`, with a pointer to the keys that hold them, and never printed: in any
URL key, with a right or a mistyped scheme, from the file or the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.config import parse_config
from agent.config_adapters import redacted
from agent.errors import ConfigError

USER, PASSWORD = "apclerk", "Pw-INURL-5e0f9a"

CASES = [  # (config text, key named in the error, key the error points to)
    (f'[[destination]]\nname = "erp"\nurl = "https://{USER}:{PASSWORD}@erp.example/api"\n',
     "destination[0].url", "username and password"),
    (f'[[destination]]\nname = "erp"\nurl = "http://{PASSWORD}@erp.example/api"\n',
     "destination[0].url", "username and password (or token)"),
    (f'[[destination]]\nname = "erp"\nurl = "htps://{USER}:{PASSWORD}@erp.example/api"\n',
     "destination[0].url", "username and password"),
    (f'[[destination]]\nname = "erp"\nurl = "https:/{USER}:{PASSWORD}@erp.example/api"\n',
     "destination[0].url", "username and password"),
    (f'[[destination]]\nname = "inbox"\nurl = "s3://{USER}:{PASSWORD}@inbox/x"\n',
     "destination[0].url", "access_key_id and secret_access_key"),
    (f'[[destination]]\nname = "inbox"\nurl = "s3://inbox/x"\nendpoint_url = "https://{USER}:{PASSWORD}@s3.lan"\n',
     "destination[0].endpoint_url", "access_key_id and secret_access_key"),
    (f'[[backup]]\nname = "off"\nurl = "s3://{USER}:{PASSWORD}@bucket/p"\n',
     "backup[0].url", "access_key_id and secret_access_key"),
    (f'[[backup]]\nname = "off"\nurl = "s3://bucket/p"\nendpoint_url = "http://{USER}:{PASSWORD}@minio:9000"\n',
     "backup[0].endpoint_url", "access_key_id and secret_access_key"),
    (f'[[backup]]\nname = "off"\nurl = "sftp://{USER}:{PASSWORD}@nas/backup"\n',
     "backup[0].url", "username and password"),
]


@pytest.mark.parametrize("text,key,pointer", CASES)
def test_credentials_in_any_url_are_refused_without_being_printed(tmp_path, text, key, pointer):
    import tomllib

    with pytest.raises(ConfigError) as err:
        parse_config(tomllib.loads(text), base_dir=tmp_path)
    message = str(err.value)
    assert f"{key}:" in message and "holds credentials" in message and pointer in message
    assert PASSWORD not in message
    # The same through the CLI: exit 2, and nothing printed holds the password.
    config = tmp_path / "agent.toml"
    config.write_text(text, encoding="utf-8")
    config.chmod(0o600)
    for args in (("config", "check"), ("run",)):
        r = subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert r.returncode == 2 and "holds credentials" in r.stderr, (args, r.stderr)
        assert PASSWORD not in r.stdout + r.stderr


def test_credentials_from_the_environment_are_refused_too(tmp_path):
    import tomllib

    raw = tomllib.loads('[[destination]]\nname = "erp"\nurl = "https://erp.example/api"\n')
    env = {"FAPIAO_AGENT__DESTINATION__ERP__URL": f"https://{USER}:{PASSWORD}@erp.example/api"}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base_dir=tmp_path, env=env)
    assert "holds credentials" in str(err.value) and PASSWORD not in str(err.value)


def test_a_mistyped_scheme_prints_only_the_scheme(tmp_path):
    import tomllib

    raw = tomllib.loads('[[destination]]\nname = "erp"\nurl = "htps://erp.example/p/Pw-IN-PATH"\n')
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base_dir=tmp_path)
    assert "scheme must be one of" in str(err.value) and "not htps://" in str(err.value)
    assert "Pw-IN-PATH" not in str(err.value)


def test_urls_without_credentials_pass_and_helpers_hide_them(tmp_path):
    import tomllib

    from agent.redact import has_credentials, shown_url

    raw = tomllib.loads('[[destination]]\nname = "erp"\nurl = "https://erp.example/api/a@b"\n\n'
                        '[[destination]]\nname = "drop"\nurl = "folder:///srv/in@box"\n')
    cfg = parse_config(raw, base_dir=tmp_path)
    assert [d["name"] for d in cfg.destinations] == ["erp", "drop"]
    assert not has_credentials("https://erp.example/api/a@b")
    assert has_credentials(f"https://{USER}:{PASSWORD}@h") and has_credentials(f"{USER}:{PASSWORD}@h/x")
    assert PASSWORD not in shown_url(f"https://{USER}:{PASSWORD}@h/x")
    assert PASSWORD not in str(redacted({"url": f"https://{USER}:{PASSWORD}@h", "password": PASSWORD}))
    assert shown_url("https://h/x") == "https://h/x"


def test_a_local_folder_url_with_a_password_is_refused_but_an_at_sign_is_not(tmp_path):
    import tomllib

    ok = tomllib.loads('[[destination]]\nname = "drop"\nurl = "folder://inbox@hq/in"\n')
    assert parse_config(ok, base_dir=tmp_path).destinations[0]["url"] == "folder://inbox@hq/in"
    bad = tomllib.loads(f'[[backup]]\nname = "nas"\nurl = "file://{USER}:{PASSWORD}@nas/backup"\n')
    with pytest.raises(ConfigError) as err:
        parse_config(bad, base_dir=tmp_path)
    assert "holds credentials" in str(err.value) and PASSWORD not in str(err.value)


TOKEN_IN_QUERY = "QryTok-8d1e77c0a5"
REFUSED_BY_ADAPTERS = [
    f'[[destination]]\nname = "erp"\nurl = "https://erp.example/api?token={TOKEN_IN_QUERY}"\n',
    f'[[destination]]\nname = "erp"\nurl = "https://erp.example/api#{TOKEN_IN_QUERY}"\n',
    f'[[destination]]\nname = "erp"\nurl = "https:///api?token={TOKEN_IN_QUERY}"\n',
    f'[[destination]]\nname = "erp"\nurl = "https://erp.example/api"\ntoken = "x"\nusername = "u"\n',
]


@pytest.mark.parametrize("text", REFUSED_BY_ADAPTERS)
def test_config_check_refuses_what_run_would_not_start_without_printing_the_token(tmp_path, text):
    import tomllib

    config = tmp_path / "agent.toml"
    config.write_text(text, encoding="utf-8")
    config.chmod(0o600)
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(config), "config", "check"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "destination[0]" in r.stderr and ": ok" not in r.stdout, (r.stdout, r.stderr)
    assert TOKEN_IN_QUERY not in r.stdout + r.stderr
    # One validation: the lines are the refusals of the calls the daemon makes.
    from agent.config_adapters import adapter_problems
    from agent.deliver.base import open_destination

    try:
        cfg = parse_config(tomllib.loads(text), base_dir=tmp_path)
    except ConfigError as e:                                  # refused before any adapter opens
        assert TOKEN_IN_QUERY not in str(e)
        return
    with pytest.raises(ConfigError) as daemon_refusal:       # what `run` does with the entry
        open_destination(cfg.destinations[0])
    assert adapter_problems(cfg) == [f"destination[0]: {daemon_refusal.value}"]
    assert TOKEN_IN_QUERY not in str(daemon_refusal.value)
