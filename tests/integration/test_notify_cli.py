"""`notify test` sends through the configured channel and records the
outcome; `status` then shows each entry's last success or failure."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from service.cli import main
from tests.support.notify_servers import RobotServer, SmtpSink


def write_config(root: Path, entries: list[dict]) -> Path:
    (root / "state").mkdir(exist_ok=True)
    lines = ['[agent]\nstate_dir = "state"\n']
    for e in entries:
        lines.append("[[notify]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in e.items()))
    path = root / "agent.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


def cli(config: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def test_notify_test_sends_records_and_status_shows_each_entry(tmp_path):
    with SmtpSink() as sink, RobotServer() as robot:
        robot.replies.append((200, {"errcode": 93000, "errmsg": "invalid webhook url"}))
        config = write_config(tmp_path, [
            {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1", "port": sink.port},
            {"name": "wx", "url": robot.url, "preset": "wecom", "timeout_s": 2.0}])
        result = cli(config, "notify", "test")
        assert result.exit_code == 1
        assert "mail: sent" in result.output and "wx: FAILED" in result.output and "93000" in result.output
        assert "测试通知 test notification" in sink.messages[0]["message"]["Subject"]
        result = cli(config, "notify", "test", "--entry", "wx", "--json")
        assert result.exit_code == 0 and json.loads(result.output) == {"name": "wx", "ok": True, "error": None}
        assert cli(config, "notify", "test", "--entry", "nope").exit_code == 2
    status = json.loads(cli(config, "status", "--json").output)
    by_name = {n["name"]: n for n in status["notify"]}
    assert by_name["mail"]["sent"] == 1 and not by_name["mail"]["failing"]
    assert by_name["wx"]["sent"] == 1 and by_name["wx"]["failed"] == 1 and not by_name["wx"]["failing"]
    text = cli(config, "status").output
    assert "notify mail" in text and "notify wx" in text


def test_config_check_reads_the_password_file_as_the_daemon_would(tmp_path):
    config = write_config(tmp_path, [{"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1",
                                      "username": "u", "password_file": "missing-pw"}])
    result = cli(config, "config", "check")
    assert result.exit_code == 2 and "notify[0]: notify mail: password_file" in result.output
    (tmp_path / "missing-pw").write_text("hunter2-secret\n")
    result = cli(config, "config", "check")
    assert result.exit_code == 0 and "1 notify entries" in result.output and "hunter2" not in result.output
