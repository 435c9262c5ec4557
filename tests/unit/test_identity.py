"""Identity and roles (issue 14): the actor comes from the effective uid,
never from LOGNAME/USER; SUDO_UID only when trusted; every command has a
role; [access] is validated. Real accounts are in
tests/integration/test_access_accounts.py."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import click
import pytest

from agent.config import ConfigError, parse_config
from agent.ledger import Ledger
from service import access
from service.cli import main

ME = pwd.getpwuid(os.geteuid()).pw_name


def test_the_actor_ignores_logname_and_user(monkeypatch):
    monkeypatch.setenv("LOGNAME", "财务总监")
    monkeypatch.setenv("USER", "财务总监")
    monkeypatch.delenv("SUDO_UID", raising=False)
    assert access.actor("cli") == f"cli:{ME}"
    assert access.service_actor() == f"daemon:{ME}"


@pytest.mark.skipif(os.geteuid() != 0, reason="SUDO_UID is trusted only for root or the service user")
def test_sudo_uid_is_recorded_for_root_and_names_the_person():
    assert access.identity("fapiao", env={"SUDO_UID": "65534"}).label() == "nobody (sudo → root)"
    assert access.identity("fapiao", env={"SUDO_UID": "0"}).label() == "root"          # root behind sudo: itself
    assert access.identity("fapiao", env={"SUDO_UID": "alice"}).label() == "root"      # not a number: ignored


def test_sudo_uid_is_ignored_for_anyone_else():
    if os.geteuid() == 0:
        pytest.skip("as root SUDO_UID is trusted; the untrusted case runs as a real account "
                    "in tests/integration/test_access_accounts.py")
    assert access.identity("no-such-service-user", env={"SUDO_UID": "0"}).label() == ME


def _paths(cmd: click.Command, prefix: str = "") -> list[str]:
    # list_commands/get_command, not .commands: the top group loads its
    # commands lazily (service/cli.py), so .commands starts empty.
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        return [p for name in cmd.list_commands(ctx)
                for p in _paths(cmd.get_command(ctx, name), f"{prefix} {name}".strip())]
    return [prefix]


def test_every_command_names_its_role():
    # A new command without an entry runs as a service-only write (fail
    # closed); this test makes the author say what it needs instead.
    paths = _paths(main)
    assert "backup verify" in paths and "status" in paths
    missing = [p for p in paths if p not in access.COMMAND_ROLES]
    assert missing == []
    assert access.role_of("some future command") == access.SERVICE


ACCESS = {"read_group": "no-such-grp-r", "amend_group": "no-such-grp-a", "approve_group": "no-such-grp-p",
          "service_user": "no-such-user"}


def test_a_person_without_the_group_is_denied_naming_it():
    person = access.Identity(uid=424242, name="alice")
    with pytest.raises(access.AccessDenied, match="no-such-grp-a"):
        access.check(access.AMEND, ACCESS, person)
    with pytest.raises(access.AccessDenied, match="no-such-grp-p"):
        access.check(access.APPROVE, ACCESS, person)
    with pytest.raises(access.AccessDenied, match="service user no-such-user"):
        access.check(access.SERVICE, ACCESS, person)
    access.check(access.NONE, ACCESS, person)


def test_root_passes_and_root_behind_sudo_too():
    access.check(access.APPROVE, ACCESS, access.Identity(uid=0, name="root"))
    access.check(access.APPROVE, ACCESS, access.Identity(uid=0, name="root", invoker_uid=4242, invoker="alice"))
    access.check(access.APPROVE, ACCESS, access.Identity(uid=999, name="svc", invoker_uid=0, invoker="root"))


def test_behind_sudo_to_the_service_user_the_person_is_checked():
    nobody = pwd.getpwnam("nobody").pw_uid         # plays the service user
    svc = {**ACCESS, "service_user": "nobody"}
    access.check(access.AMEND, svc, access.Identity(uid=nobody, name="nobody"))   # itself: passes
    with pytest.raises(access.AccessDenied, match="alice may not .* no-such-grp-a"):
        access.check(access.AMEND, svc, access.Identity(uid=nobody, name="nobody", invoker_uid=424242,
                                                        invoker="alice"))


def test_sudo_line_is_the_exact_command():
    line = access.sudo_line("fapiao", ["/opt/fapiao-agent/venv/bin/fapiao-agent", "amend", "5", "--set",
                                       "date=2026-11-01", "--reason", "QR 不清"])
    assert line == "sudo -u fapiao fapiao-agent amend 5 --set date=2026-11-01 --reason 'QR 不清'"


def test_access_section_defaults_and_validation(tmp_path):
    cfg = parse_config({}, base_dir=tmp_path)
    assert cfg.access == {"read_group": "fapiao-read", "amend_group": "fapiao-amend",
                          "approve_group": "fapiao-approve", "service_user": "fapiao",
                          "self_approve_empty_fields": True}
    with pytest.raises(ConfigError) as e:
        parse_config({"access": {"read_group": "fin ance", "self_approve_empty_fields": "yes",
                                 "approver": "x"}}, base_dir=tmp_path)
    text = str(e.value)
    assert "access.read_group" in text and "access.self_approve_empty_fields" in text and "access.approver" in text


def test_a_writer_leaves_wal_files_for_readers(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    assert (tmp_path / "ledger.sqlite3-wal").exists() and (tmp_path / "ledger.sqlite3-shm").exists()
    assert path.stat().st_mode & 0o777 == 0o640
    ledger = Ledger(path)
    del ledger   # never closed, as a CLI command's: the files are kept at exit too
    assert (tmp_path / "ledger.sqlite3-shm").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file owned by another account (chown)")
def test_the_config_is_trusted_by_the_file_that_was_read_not_the_path_afterwards(tmp_path):
    # Race: a person's own config is read, then swapped for a symlink to a
    # root-owned file before the ownership check. The check must judge the
    # bytes that were read.
    from agent.config import load_config

    own = tmp_path / "own.toml"
    own.write_text('[access]\napprove_group = "users"\n', encoding="utf-8")
    os.chown(own, 65534, 65534)
    cfg = load_config(own, env={})
    trusted_root_file = tmp_path / "root.toml"
    trusted_root_file.write_text("", encoding="utf-8")
    own.unlink()
    own.symlink_to(trusted_root_file)
    with pytest.raises(access.AccessDenied, match="owned by nobody"):
        access.trusted_config(cfg, access.identity("fapiao", env={}), "fapiao")


@pytest.mark.skipif(os.geteuid() != 0, reason="SUDO_UID is trusted only for root or the service user")
def test_under_sudo_no_setting_comes_from_the_persons_environment(tmp_path, monkeypatch, capsys):
    # A sudo rule that keeps the environment (SETENV, `sudo -E`, !env_reset)
    # would let the person behind sudo override [access] or a destination's
    # URL of the service's own config. Such a run is refused, not obeyed.
    from agent.config import load_config

    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text("", encoding="utf-8")
    monkeypatch.setenv("SUDO_UID", "65534")
    monkeypatch.setenv("FAPIAO_AGENT__ACCESS__APPROVE_GROUP", "nogroup")
    cfg = load_config(cfg_file)
    assert cfg.access["approve_group"] == "nogroup"
    with pytest.raises(SystemExit) as stop:
        access.enforce("status", cfg.access, cfg)
    assert stop.value.code == access.DENIED_EXIT
    assert "FAPIAO_AGENT__ACCESS__APPROVE_GROUP" in capsys.readouterr().err
