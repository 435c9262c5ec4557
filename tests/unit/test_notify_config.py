"""[[notify]] entries: what the config accepts, infers and refuses, and that
no error line shows a secret (a password, a signing secret, a robot's key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError
from agent.notify import EVENTS

WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2abcdef12"


def problems(*entries, env=None) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config({"notify": list(entries)}, base_dir=Path("/tmp"), env=env)
    return str(e.value)


def test_presets_are_inferred_from_the_robots_hosts_and_events_default_to_all():
    cfg = parse_config({"notify": [
        {"name": "wx", "url": WECOM},
        {"name": "ding", "url": "https://oapi.dingtalk.com/robot/send?access_token=abc", "secret": "SECx"},
        {"name": "fs", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc"},
        {"name": "lark", "url": "https://open.larksuite.com/open-apis/bot/v2/hook/abc"},
        {"name": "hook", "url": "https://hooks.example.com/x", "events": ["weekly-report"]},
        {"name": "mail", "url": "mailto:a@example.com,b@example.com", "host": "smtp.example.com",
         "starttls": True, "username": "u", "password_file": "pw"}]}, base_dir=Path("/tmp"))
    assert [e["preset"] for e in cfg.notify] == ["wecom", "dingtalk", "feishu", "feishu", "generic", None]
    assert cfg.notify[0]["events"] == list(EVENTS) and cfg.notify[4]["events"] == ["weekly-report"]


def test_every_mistake_is_named_and_no_secret_is_shown():
    text = problems(
        {"name": "a", "url": WECOM, "events": ["quarantined", "sla-late"], "secret": "s3cr3t-signing"},
        {"name": "b", "url": "http://hooks.example.com/hook/k3y-abcdefgh"},
        {"name": "c", "url": "mailto:finance@example.com", "password": "pw-hunter22"},
        {"name": "d", "url": "mailto:not-an-address", "ssl": True, "starttls": True},
        {"name": "e", "url": "ftp://x/y"},
        {"name": "f", "url": WECOM, "events": []},
        {"name": "g", "url": WECOM, "host": "smtp.example.com", "preset": "slack"},
        {"name": "a", "url": "mailto:x@example.com", "secret": "x"})
    for line in ("notify[0].events: unknown event 'sla-late'",
                 "notify[0].secret: only the dingtalk and feishu presets sign messages (this entry's preset is wecom)",
                 "notify[1].url: 'http://hooks.example.com/…': use https://",
                 "notify[2].username: a password is given without username",
                 "notify[3].url: 'mailto:not-an-address' must name one or more addresses",
                 "notify[3].ssl: give ssl (implicit TLS, port 465) or starttls (port 587), not both",
                 "notify[4].url: scheme must be mailto: (e-mail) or https:// (a webhook), not ftp:",
                 "notify[5].events: is empty", "notify[6].host: is for mailto: entries, not webhooks",
                 "notify[6].preset: must be one of dingtalk, feishu, generic, wecom, not 'slack'",
                 "notify[7].name: duplicate name 'a'", "notify[7].secret: is for webhooks"):
        assert line in text, (line, text)
    for secret in ("s3cr3t-signing", "k3y-abcdefgh", "pw-hunter22", "693a91f6"):
        assert secret not in text


def test_http_is_allowed_only_to_this_host():
    cfg = parse_config({"notify": [{"name": "local", "url": "http://127.0.0.1:8080/hook"},
                                   {"name": "local6", "url": "http://[::1]/hook"}]}, base_dir=Path("/tmp"))
    assert len(cfg.notify) == 2


def test_secrets_come_from_the_environment_and_a_readable_file_holding_one_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[notify]]\nname = "wx"\n')      # the url (the robot's key) comes from the environment
    path.chmod(0o644)
    cfg = load_config(path, env={"FAPIAO_AGENT__NOTIFY__WX__URL": WECOM, "FAPIAO_AGENT__NOTIFY__WX__EVENTS":
                                 '["disk-full"]'})
    assert cfg.notify[0]["url"] == WECOM and cfg.notify[0]["events"] == ["disk-full"]
    path.write_text(f'[[notify]]\nname = "wx"\nurl = "{WECOM}"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    assert "notify[0].url" in str(e.value) and "693a91f6" not in str(e.value)
    assert "FAPIAO_AGENT__NOTIFY__<NAME>__URL" in str(e.value)
    path.chmod(0o640)
    assert load_config(path, env={}).notify[0]["preset"] == "wecom"


def test_notify_help_lists_every_event_by_its_whole_name():
    from click.testing import CliRunner

    from service.cli import main

    shown = CliRunner().invoke(main, ["notify", "--help"]).output
    events = shown[shown.index("Events an entry"):]
    for name in EVENTS:
        assert name in events, (name, events)    # never cut at its hyphen
    assert "config-refused" in events and "rejected-at-destination" in events


def test_an_entry_without_events_gets_the_config_and_rejection_faults_too():
    cfg = parse_config({"notify": [{"name": "wx", "url": WECOM},
                                   {"name": "mail", "url": "mailto:a@example.com", "events": ["disk-full"]}]},
                       base_dir=Path("/tmp"))
    assert {"config-refused", "rejected-at-destination"} <= set(cfg.notify[0]["events"])
    assert cfg.notify[1]["events"] == ["disk-full"]
    assert cfg.notify[0]["events"] == list(EVENTS)
