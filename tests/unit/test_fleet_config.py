"""[fleet]: absent changes nothing; present, its site and url are checked at parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import parse_config
from agent.defaults import DEFAULT_CONFIG
from agent.errors import ConfigError


def parse(raw: dict, env: dict | None = None):
    return parse_config(raw, base_dir=Path("/srv/agent"), env=env)


def test_without_fleet_there_is_no_fleet():
    cfg = parse({})
    assert not cfg.fleet.get("url")


def test_a_valid_fleet_section():
    cfg = parse({"fleet": {"url": "s3://shared/fleet", "site": "bei-jing-2", "endpoint_url": "http://x:9000",
                           "access_key_id": "a", "secret_access_key": "b", "on_unreachable": "deliver"}})
    assert cfg.fleet["site"] == "bei-jing-2" and cfg.fleet["lease_s"] == 300.0
    assert cfg.fleet["on_unreachable"] == "deliver"
    assert parse({"fleet": {"url": "file:///mnt/fleet", "site": "x"}}).fleet["on_unreachable"] == "hold"
    paced = parse({"fleet": {"url": "file:///mnt/fleet", "site": "x", "retry_s": 1, "settle_s": 0.5}}).fleet
    assert (paced["retry_s"], paced["settle_s"]) == (1.0, 0.5)


@pytest.mark.parametrize("fleet, key", [
    ({"url": "s3://shared/fleet"}, "fleet.site"),
    ({"url": "s3://shared/fleet", "site": ""}, "fleet.site"),
    ({"url": "s3://shared/fleet", "site": "Beijing"}, "fleet.site"),
    ({"url": "s3://shared/fleet", "site": "bei jing"}, "fleet.site"),
    ({"url": "s3://shared/fleet", "site": "../x"}, "fleet.site"),
    ({"url": "s3://shared/fleet", "site": "上海"}, "fleet.site"),
    ({"url": "http://shared/fleet", "site": "a"}, "fleet.url"),
    ({"url": "s3://ab", "site": "a"}, "fleet.url"),
    ({"url": "s3://key:secret@shared/fleet", "site": "a"}, "fleet.url"),
    ({"url": "file://relative", "site": "a"}, "fleet.url"),
    ({"url": "file:///mnt/f", "site": "a", "endpoint_url": "http://x"}, "fleet.endpoint_url"),
    ({"url": "s3://shared/f", "site": "a", "access_key_id": "k"}, "fleet.access_key_id"),
    ({"url": "s3://shared/f", "site": "a", "on_unreachable": "drop"}, "fleet.on_unreachable"),
    ({"url": "s3://shared/f", "site": "a", "lease_s": 1}, "fleet.lease_s"),
    # A lease over a day would read as a broken claim at every other site.
    ({"url": "s3://shared/f", "site": "a", "lease_s": 86_401}, "fleet.lease_s"),
    ({"url": "s3://shared/f", "site": "a", "retry_s": 0}, "fleet.retry_s"),
    ({"url": "s3://shared/f", "site": "a", "settle_s": 0.01}, "fleet.settle_s"),
    ({"url": "s3://shared/f", "site": "a", "settle_s": 7200}, "fleet.settle_s"),
    ({"site": "a"}, "fleet.site"),
])
def test_bad_fleet_sections_name_the_key(fleet, key):
    with pytest.raises(ConfigError) as e:
        parse({"fleet": fleet})
    assert key in str(e.value)
    assert "secret" not in str(e.value).replace("secret_access_key", "")


def test_secrets_come_from_the_environment():
    cfg = parse({"fleet": {"url": "s3://shared/f", "site": "a", "access_key_id": "k"}},
                env={"FAPIAO_AGENT__FLEET__SECRET_ACCESS_KEY": "s3cr3t"})
    assert cfg.fleet["secret_access_key"] == "s3cr3t"


def test_the_default_config_shows_fleet_commented_out():
    assert "# [fleet]" in DEFAULT_CONFIG and "on_unreachable" in DEFAULT_CONFIG
