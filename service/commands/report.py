"""`fapiao-agent report`: the weekly check (每周发票状态检查) on demand."""

from __future__ import annotations

from pathlib import Path

import click

from agent.config_paths import output_refusal
from agent.report.figures import zone_of
from service.context import echo_json, fail, load, now_dt, open_ledger
from service.progress import wanted
from service.report import build_report, figures_json, report_dir, report_window, write_report
from service.textsafe import echo


@click.command("report", epilog="""\b
Examples:
  fapiao-agent report --since 7d                        the last 7 days, files in this folder
  fapiao-agent report --since 2026-11-23 --until 2026-11-30 --out /srv/reports
  fapiao-agent report --since 7d --json | jq .figures.totals""")
@click.option("--since", default="7d", show_default=True, metavar="WHEN",
              help="Start: 7d, 36h, 2w before now, a day (midnight in [report] time_zone) or an ISO time.")
@click.option("--until", metavar="WHEN", help="End (not included), as --since. Default: now.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder for the HTML page and the CSV (UTF-8 with BOM, for Excel). Not one of the agent's "
                   "own: a watched folder, the state folder (the weekly reports' folder excepted), a folder:// "
                   "destination or a file:// backup target.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: html_path, csv_path, summary, "
              "figures (days, totals, timing, quarantine, duplicates, missing, expiry, backup, drills).")
@click.pass_context
def command(ctx: click.Context, since: str, until: str | None, out_dir: str, as_json: bool) -> None:
    """Write the weekly invoice check: arrivals per day by outcome, time to
    confirmed (p50/p95), quarantine reasons and the oldest open cases,
    duplicates caught, invoices missing at reconciliation and re-sent,
    invoices close to max_age_days not yet delivered, and each backup
    target's state; an HTML page (no network needed) and a CSV beside it."""
    cfg = load(ctx)
    # Written into a watched folder the page would come back as a document,
    # into a folder:// outbox it would go to finance: refused before any work.
    if refusal := output_refusal(cfg, Path(out_dir), what="--out", allow=report_dir(cfg)):
        fail(refusal, code=2)
    at = now_dt()
    tz = cfg.report["time_zone"]
    try:
        start, end = report_window(since, until, now=at, tz=tz)
    except ValueError as e:
        fail(str(e), code=2)
    if wanted(as_json=as_json):   # for a person at a terminal; never into a log, a pipe or beside --json
        echo("reading the ledger ...", err=True)
    with open_ledger(cfg) as ledger:
        report = build_report(ledger, cfg, since=start, until=end, now=at)
    zone = zone_of(tz)
    stem = f"fapiao-report-{start.astimezone(zone):%Y%m%d-%H%M}-to-{end.astimezone(zone):%Y%m%d-%H%M}"
    try:
        write_report(report, Path(out_dir), stem)
    except OSError as e:
        fail(f"cannot write the report to {out_dir}: {e.strerror or e}")
    if as_json:
        echo_json(figures_json(report))
        return
    echo(report.summary)
    echo(f"page: {report.html_path}")
    echo(f"csv:  {report.csv_path}")
