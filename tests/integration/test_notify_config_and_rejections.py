"""`status_report` in the daemon's own threads (notify, metrics) is built
with the config the daemon runs: a refused reload must show there too,
compared with the file as it is now, not with the bytes it loaded."""

from __future__ import annotations

import json

from agent.config import load_config
from service.config_state import RunningConfig, config_report


def test_the_config_a_daemon_runs_sees_its_own_refused_reload(tmp_path):
    # The daemon's notify and metrics threads hold the config it runs: the
    # bytes it loaded. Compared with those, a refused reload never showed.
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[[watch]]\npath = "scan"\nkind = "scanner"\n',
                      encoding="utf-8")
    cfg = load_config(config)
    running = RunningConfig(cfg, at="2026-12-05T01:12:01Z")
    daemon = {"alive": True}
    assert config_report(cfg, daemon, {"config": running.details()})["reload_refused"] is False
    good = config.read_text()
    config.write_text(good + "[extract]\ntimeout_s = 30\n", encoding="utf-8")
    running.refused("no good", at="2026-12-05T02:00:00Z", path=config)
    report = config_report(cfg, daemon, json.loads(json.dumps({"config": running.details()})))
    assert report["file_changed"] is True and report["reload_refused"] is True
    config.write_text(good, encoding="utf-8")            # put back: nothing to say
    report = config_report(cfg, daemon, {"config": running.details()})
    assert report["file_changed"] is False and report["reload_refused"] is False
    config.unlink()                                      # gone: not what the daemon runs
    assert config_report(cfg, daemon, {"config": running.details()})["reload_refused"] is True
