"""A command's own output never lands in the agent's own folders: `report
--out`, `backup restore --to` and `config init` refuse a watched folder (the
page would come back as a quarantined document, the CSV as a refusal), the
state folder, a folder:// destination (finance would import it) and a
file:// backup target, symlinks followed, in one line naming which."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.config import load_config
from agent.ledger import Ledger
from service.cli import main
from tests.support.cli import default_config


@pytest.fixture
def site(tmp_path) -> Path:
    cfg = default_config(tmp_path)
    for rel in ("inbox/scanner", "inbox/email", "outbox", "backup", "state"):
        (tmp_path / rel).mkdir(parents=True)
    Ledger(tmp_path / "state" / "ledger.sqlite3").close()
    return cfg


def run(cfg: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)


@pytest.mark.parametrize("rel, key", [("inbox/scanner", "watch[0].path"), ("inbox/email/sub", "watch[1].path"),
                                      ("state", "agent.state_dir"), ("state/vault", "agent.state_dir"),
                                      ("outbox", "destination[0].url"), ("backup/x", "backup[0].url")])
def test_report_out_into_the_agents_own_folders_is_refused(site, rel, key):
    out = site.parent / rel
    r = run(site, "report", "--since", "1d", "--out", str(out))
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: --out {out} ") and key in r.stderr, r.stderr
    assert not list(site.parent.rglob("fapiao-report-*"))


def test_a_symlink_to_the_outbox_is_refused_too(site, tmp_path):
    (tmp_path / "reports-link").symlink_to(tmp_path / "outbox")
    r = run(site, "report", "--out", str(tmp_path / "reports-link" / "week"))
    assert r.exit_code == 2 and "destination[0].url" in r.stderr, r.stderr
    assert not (tmp_path / "outbox" / "week").exists()


def test_report_out_to_a_folder_of_ones_own_or_the_weekly_reports_folder_is_written(site, tmp_path):
    for out in (tmp_path / "mine", tmp_path / "state" / "reports"):
        r = run(site, "report", "--since", "1d", "--out", str(out))
        assert r.exit_code == 0, r.output
        assert len(list(out.glob("fapiao-report-*"))) == 2


def test_backup_restore_into_a_watched_folder_is_refused(site, tmp_path):
    r = run(site, "backup", "restore", "--from", "local", "--to", str(tmp_path / "inbox" / "scanner" / "r"))
    assert r.exit_code == 2 and "watch[0].path" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "inbox" / "scanner" / "r").exists()


def test_config_init_into_the_state_folder_of_the_config_in_use_is_refused(site, tmp_path):
    ledger = tmp_path / "state" / "ledger.sqlite3"
    before = ledger.read_bytes()
    r = run(site, "config", "init", "--force", str(ledger))
    assert r.exit_code == 2 and "agent.state_dir" in r.stderr, r.stderr
    assert ledger.read_bytes() == before
    r = run(site, "config", "init", str(tmp_path / "inbox" / "email" / "agent.toml"))
    assert r.exit_code == 2 and "watch[1].path" in r.stderr, r.stderr
    assert run(site, "config", "init", str(tmp_path / "elsewhere" / "agent.toml")).exit_code == 0


def test_the_weekly_reports_folder_never_opens_the_rest_of_the_state_folder(site, tmp_path):
    from agent.config_paths import output_refusal

    cfg = load_config(site)
    reports = tmp_path / "state" / "reports"
    assert output_refusal(cfg, reports, what="--out", allow=reports) is None
    assert "agent.state_dir" in output_refusal(cfg, tmp_path / "state", what="--out", allow=reports)
    # an allowed folder that is inside a watched folder is still refused as that
    assert "watch[0].path" in output_refusal(cfg, tmp_path / "inbox" / "scanner", what="--out",
                                             allow=tmp_path / "inbox")
