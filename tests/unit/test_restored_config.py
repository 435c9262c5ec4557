"""restored.toml never points a restored copy at the original site's backup
target (found by the second outside attack: a restored copy run as a daemon
mirrored into the original target, and its hourly retention pruned the
original's ledger snapshots)."""

from __future__ import annotations

import tomllib

from service.commands.backup import restored_config


def test_the_restored_config_names_its_target_only_in_a_comment():
    entry = {"name": "nas", "url": "s3://fapiao-backup/site-a", "endpoint_url": "https://s3.example",
             "secret_access_key": "never-written"}
    text = restored_config(entry)
    parsed = tomllib.loads(text)
    assert "backup" not in parsed, "a restored copy must not write into the original's backups"
    assert parsed["agent"]["state_dir"] == "state"
    assert '# url = "s3://fapiao-backup/site-a"' in text
    assert "never-written" not in text
