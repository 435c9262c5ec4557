"""`fapiao-agent backup status | verify | restore | drill | accept`."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import click

from agent.config import Config
from agent.config_adapters import SECRET_KEYS, local_folder
from agent.config_paths import output_refusal
from agent.errors import AgentError, ConfigError
from agent.ledger import Ledger
from agent.ledger.rows import RESTORED_ACTIVITY
from service.context import (actor, echo_json, fail, human_age, load, now_dt,
                             open_ledger, open_vault)
from service.backup_figures import backed_up_line, backup_report, drill_line, target_state
from service.display import local_time
from service.progress import Progress
from service.textsafe import echo

# The backup machinery (agent.backup.*, service.backup) is imported inside
# the commands that drive it.


@click.group("backup")
def command() -> None:
    """Backups of the vault and ledger: status, verify, restore."""


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: targets (objects, bytes, backlog, "
              "backlog_oldest, failed, paused_error, last_put_at, last_verify_at, last_verify, "
              "last_snapshot_at, reachable, unreachable_since, last_drill, first_backup_at), min_copies, "
              "backed_up and objects "
              "(every original), documents_backed_up and documents (documents' files).")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """What each backup target holds and what it still owes."""
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        report = backup_report(ledger, cfg)
    if as_json:
        echo_json(report)
        return
    if not report["targets"]:
        echo("no [[backup]] target is configured")
        return
    echo(f"backed up: {backed_up_line(report)}")
    for t in report["targets"]:
        echo(f"{t['name']}  ({t['url']})  {target_state(t)}")
        echo(f"  objects:       {t['objects']} ({t['bytes']:,} bytes)")
        echo(f"  backlog:       {t['backlog']}" + (f", oldest {human_age(t['backlog_oldest_age_s'])}"
                                                        if t["backlog"] else "")
                   + (f"; {t['failed']} failed" if t["failed"] else ""))
        echo(f"  last put:      {local_time(t['last_put_at']) or 'never'}")
        v = t["last_verify"]
        echo(f"  last verify:   {local_time(t['last_verify_at']) or 'never'}"
                   + (f" ({v['checked']} checked, {v['missing']} missing, {v['mismatch']} mismatched, "
                      f"{v['repaired']} repaired)" if v else ""))
        echo(f"  last snapshot: {local_time(t['last_snapshot_at']) or 'never'}"
                   + (f" ({t['last_snapshot']})" if t["last_snapshot"] else ""))
        echo(f"  last drill:    {drill_line(t['last_drill'])}")
        if t["last_error"] and not t["paused_error"]:
            echo(f"  last error:    {t['last_error']} (at {local_time(t['last_error_at'])})")


@command.command("drill")
@click.option("--target", "target_name", metavar="NAME", help="Only this target (default: all).")
@click.option("--sample", type=click.IntRange(min=0), help="Originals per target (default: [backup_policy] "
              "drill_sample).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), help="Draw the sample of an earlier drill again (its seed).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per target: ok, sampled, failed, "
              "mismatch, seed, snapshot, snapshot_ok, reason, reasons, objects (the failed ones), snapshot checks.")
@click.pass_context
def drill_command(ctx: click.Context, target_name: str | None, sample: int | None, seed: int | None,
                  as_json: bool) -> None:
    """Prove each target restores: fetch a random sample of originals with
    their sidecars and the newest ledger snapshot into a temporary folder,
    check every hash, open the snapshot read-only and run integrity_check,
    then delete the folder. Recorded for `status`. Changes nothing on the
    target (`backup verify --full` repairs). Exits 1 when a drill failed."""
    from agent.backup.drill import restore_drill

    cfg = load(ctx)
    failed = 0
    with open_ledger(cfg) as ledger:
        for entry in _entries(cfg, target_name):
            target = _open(entry, cfg)
            with Progress(f"drilling {target.name}", as_json=as_json) as bar:
                report = restore_drill(ledger, target, now=now_dt, work_parent=cfg.state_dir, seed=seed,
                                       sample=cfg.backup_policy["drill_sample"] if sample is None else sample,
                                       progress=bar.update, actor=actor())
            failed += not report.ok
            if as_json:
                echo_json(report.to_dict())
                continue
            echo(f"{target.name}: restore drill {drill_line(report.to_dict())}")
            for line in report.reasons[1:]:
                echo(f"  {line}")
    if failed:
        sys.exit(1)


@command.command("verify")
@click.option("--target", "target_name", metavar="NAME", help="Only this target (default: all).")
@click.option("--full", is_flag=True, help="Re-read every object, not a random sample.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per target.")
@click.pass_context
def verify_command(ctx: click.Context, target_name: str | None, full: bool, as_json: bool) -> None:
    """Re-read backed-up objects and compare SHA-256 values; a missing or
    corrupt object is re-uploaded from the vault and reported. Exits 1 when
    something could not be repaired."""
    import random   # here, not at the top: `status` loads this module and draws no sample

    from agent.backup.base import TargetUnrecognised
    from agent.backup.verification import verify_step
    from agent.ledger import utc

    cfg = load(ctx)
    entries = _entries(cfg, target_name)
    policy = cfg.backup_policy
    unrepaired = 0
    with open_ledger(cfg) as ledger:
        vault = open_vault(cfg)
        for entry in entries:
            target = _open(entry, cfg)
            with Progress(f"verifying {target.name}", as_json=as_json) as bar:
                try:
                    report = verify_step(ledger, vault, target, now=now_dt(), rng=random.Random(), full=full,
                                         fraction=policy["verify_fraction"], minimum=policy["verify_minimum"],
                                         progress=bar.update)
                except TargetUnrecognised as e:
                    # Paused as the daemon would: status shows it until it is the right one again.
                    ledger.pause_backup_target(target.name, str(e), now=utc(now_dt()))
                    fail(f"backup target {target.name}: {e}")
                except AgentError as e:
                    fail(f"backup target {target.name}: {e}")
            unrepaired += len(report.problems) - report.repaired
            if as_json:
                echo_json({"target": target.name, **report.to_dict()})
                continue
            echo(f"{target.name}: {report.checked} checked, {report.ok} ok, {report.missing} missing, "
                       f"{report.mismatch} mismatched, {report.repaired} repaired")
            for sha, verdict, action in report.problems:
                echo(f"  {verdict}: {sha}: {action}")
    if unrepaired:
        sys.exit(1)


@command.command("accept")
@click.option("--target", "target_name", required=True, metavar="NAME", help="The [[backup]] target to accept.")
@click.pass_context
def accept_command(ctx: click.Context, target_name: str) -> None:
    """Take what target NAME points at now as the backup target, after the
    backup moved to a new, empty disk on purpose (docs/operations.md): a new
    marker, and everything put again. Never for a disk merely not mounted."""
    from agent.backup.identity import accept_target

    cfg = load(ctx)
    target = _open(_entries(cfg, target_name)[0], cfg)
    with open_ledger(cfg) as ledger:
        try:
            due = accept_target(ledger, target, now=now_dt())
        except AgentError as e:
            fail(f"backup target {target.name}: {e}")
    if due is None:
        echo(f"{target.name}: already recognised (its marker matches); nothing to do")
        return
    echo(f"{target.name}: accepted as the backup target; {due} object(s) are put again by the daemon "
         "(those already there are skipped), and a ledger snapshot")


@command.command("restore")
@click.option("--from", "source", required=True, metavar="TARGET", help="The [[backup]] target to restore from.")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="An empty folder: gets state/ (vault and ledger) and restored.toml. Not one of the "
                   "agent's own (a watched folder, the state folder, an outbox, a backup target).")
@click.option("--at", "at_text", metavar="TIME", help="Use the newest ledger snapshot at or before TIME "
              "(ISO 8601, UTC unless an offset is given).")
@click.option("--site", "site", metavar="NAME", help="On a target shared by a fleet: rebuild site NAME "
              "(its newest snapshot under sites/NAME/ and its originals). Default: this agent's [fleet] site.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object with what was restored.")
@click.pass_context
def restore_command(ctx: click.Context, source: str, dest: Path, at_text: str | None, site: str | None,
                    as_json: bool) -> None:
    """Rebuild a vault and a ledger from one backup target into DIR, then
    `fapiao-agent --config DIR/restored.toml status` shows them. DIR/state
    appears only when the restore is complete; a restore that was
    interrupted resumes when run again, keeping the objects it had copied.
    Documents captured after the ledger snapshot are read again by the
    daemon. Ledger snapshots dated after now (a clock that was ahead) are
    passed over and named. Exits 1 when it printed a problem: an original
    the backup describes that did not come back whole (it is kept as a
    document `audit ledger` reports), or a sidecar it would not believe."""
    from agent.backup.restore import LEDGER_NAME, restore, work_folder
    from service.backup import fleet_site

    cfg = load(ctx)
    # Restored into a watched folder the vault's originals would be taken in
    # again; into a folder:// outbox or a backup target, handed on as theirs.
    if refusal := output_refusal(cfg, dest, what="--to"):
        fail(refusal, code=2)
    entry = _entries(cfg, source)[0]
    at = _parse_at(at_text)
    target = _restore_source(_open(entry), site if site is not None else fleet_site(cfg))
    dest = dest.resolve()
    state = dest / "state"
    config_path = dest / "restored.toml"
    if (state / LEDGER_NAME).exists():
        if not config_path.exists() and _never_run_restore(state / LEDGER_NAME):
            # Killed between the last rename and writing the config: the state is whole.
            _write_config(config_path, entry, getattr(target, "site", None))
            echo(f"{state} was already restored completely; wrote {config_path}")
            return
        unfinished = work_folder(state)
        fail(f"{state / LEDGER_NAME} already exists; restore into an empty folder"
             + (f" (an unfinished restore waits in {unfinished}: move {state} away and run the "
                "restore again to finish it)" if unfinished.is_dir() else ""))
    if work_folder(state).is_dir():
        echo(f"resuming the unfinished restore in {work_folder(state)}", err=True)
    with Progress(f"restoring from {target.name}", as_json=as_json) as bar:
        try:
            report = restore(target, state, now=now_dt(), actor=actor(), at=at, progress=bar.update)
        except AgentError as e:
            fail(f"restore from {target.name}: {e}")
    _write_config(config_path, entry, report.site)
    if as_json:
        echo_json({**report.to_dict(), "config": str(config_path)})
        # A script's `backup restore && start` must not start on a copy that is not whole.
        sys.exit(1 if report.problems else 0)
    if report.site:
        echo(f"site {report.site}: {report.other_sites} originals of other sites on {target.name} left out")
    echo(f"restored {report.objects} objects ({report.bytes:,} bytes), {report.sidecars} sidecars, "
               f"ledger snapshot {report.snapshot or 'none'}; {report.recovered_documents} documents "
               f"recovered from sidecars (read again)" + (f"; resumed, {report.reused} objects kept from the "
                                              "unfinished run" if report.resumed else ""))
    for name in report.future_snapshots:
        echo(f"  passed over ledger snapshot {name}: dated after now (taken while a clock was ahead?); "
             "restore from it with --at, delete it from the target if it is stale")
    for line in report.problems:
        echo(f"  problem: {line}")
    echo(f"config: {config_path}")
    if report.problems:
        echo(f"{len(report.problems)} problem(s): this copy is not whole ({report.missing} original(s) "
             "missing or corrupt); `audit ledger` on it names them", err=True)
        sys.exit(1)


def _never_run_restore(ledger_path: Path) -> bool:
    """True when this ledger came from a restore and no daemon has run on it."""
    try:
        with Ledger(ledger_path, readonly=True) as ledger:
            beat = ledger.heartbeat()
    except Exception:  # sqlite3 errors: not ours to judge, so not a finished restore either
        return False
    return bool(beat) and beat["activity"] == RESTORED_ACTIVITY


def _restore_source(target, site: str | None):
    """The target as site `site` of a shared target (refused, listing the sites
    found, when it holds no snapshot of that site), or as it is when None
    (refused when it holds only sites' backups: which one is then a guess)."""
    from agent.backup.base import LEDGER_PREFIX
    from agent.backup.sites import SiteTarget, check_site, sites_on

    try:
        if site is not None:
            try:
                check_site(site)
            except ConfigError as e:
                fail(f"--site: {e}", code=2)
            found = sites_on(target)
            if site not in found:
                legacy = any(True for _ in target.list(LEDGER_PREFIX))
                fail(f"{target.name} holds no ledger snapshot of site {site!r} (under sites/{site}/ledger/); "
                     f"sites found: {', '.join(found) or 'none'}"
                     + ("; it also holds a pre-fleet backup (ledger/ at its top): restore that with a "
                        "config without [fleet]" if legacy else ""))
            return SiteTarget(target, site)
        if not any(True for _ in target.list(LEDGER_PREFIX)) and (found := sites_on(target)):
            fail(f"{target.name} is shared by the sites {', '.join(found)}: name the one to rebuild with --site")
    except AgentError as e:
        fail(f"restore from {target.name}: {e}")
    return target


def _write_config(path: Path, entry: dict, site: str | None = None) -> None:
    """restored.toml, atomically and 0640 (it names the target, not its secrets)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(restored_config(entry, site), encoding="utf-8")
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)


def restored_config(entry: dict, site: str | None = None) -> str:
    """A config for the restored folder: state in ./state, and the target it
    came from only as a comment. A copy restored for inspection that ran as
    a daemon would otherwise mirror into the original site's target, and its
    hourly snapshot retention would prune the original's snapshots. Secrets
    are left out either way (they come from the environment or the
    standard AWS chain)."""
    lines = ["# Written by `fapiao-agent backup restore`.", "[agent]", 'state_dir = "state"', "",
             "# The target this copy came from. Left commented out so that this copy never",
             "# writes into the original site's backups; uncomment it only when this copy",
             "# replaces the original site for good.", "# [[backup]]"]
    for key, value in entry.items():
        if key in SECRET_KEYS or key == "base_dir" or value is None:
            continue
        if key == "url" and (folder := local_folder(entry)) is not None:
            value = "file://" + str(folder.resolve())
        lines.append(f"# {key} = {json.dumps(value, ensure_ascii=False)}")
    if site:
        lines += ["", f"# Restored as site {site!r} of that shared target. Before uncommenting it,",
                  f"# add that site's [fleet] section (site = {json.dumps(site)}): without it this copy",
                  "# would write a lone agent's layout into the fleet's shared target."]
    return "\n".join(lines) + "\n"


def _entries(cfg: Config, name: str | None) -> list[dict]:
    if not cfg.backups:
        fail("no [[backup]] target is configured")
    if name is None:
        return list(cfg.backups)
    found = [b for b in cfg.backups if b["name"] == name]
    if not found:
        fail(f"no backup target named {name!r}; configured: {', '.join(b['name'] for b in cfg.backups)}")
    return found


def _open(entry: dict, cfg: Config | None = None):
    # With cfg: as this agent's site of a shared target (service/backup.py).
    from agent.backup.base import open_target
    from service.backup import open_backup

    try:
        return open_target(entry) if cfg is None else open_backup(cfg, entry)
    except AgentError as e:
        fail(f"backup target {entry.get('name')!r}: {e}", code=2)


def _parse_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not an ISO 8601 time such as 2026-05-01T12:00:00", code=2)
    return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
