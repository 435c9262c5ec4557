"""`fapiao-agent extract FILE...`: read invoice files and print what was found.

A dry run of the extraction stage for operators and scripts: nothing is
captured, no config or ledger is opened.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import click


from agent.errors import ExtractError
from agent.extract import extract_path
from agent.model import FIELD_NAMES, KIND_NAMES, Invoice
from service.textsafe import echo, json_text


def _region(code: str | None, number: str | None) -> Any:
    # agent.validate.codes is another stage's module; extraction output is
    # still useful without it, so its absence only drops the "region" key.
    try:
        from agent.validate.codes import region_of
    except ImportError:
        return _MISSING
    try:
        region = region_of(code, number)
    except Exception:  # a region is a nicety here; never fail extraction over it
        return None
    return _plain(region)


_MISSING = object()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return str(value)


def invoice_record(invoice: Invoice, file: str) -> dict[str, Any]:
    """The --json object: Invoice.to_dict() plus file, kind_name and (when known) region."""
    record = invoice.to_dict()
    record["file"] = file
    kind = invoice.get("kind")
    record["kind_name"] = KIND_NAMES.get(kind) if kind else None
    region = _region(invoice.get("code"), invoice.get("number"))
    if region is not _MISSING:
        record["region"] = region
    return record


def _print_human(file: str, records: list[dict[str, Any]], elapsed_ms: float) -> None:
    plural = "invoice" if len(records) == 1 else "invoices"
    echo(f"== {file}  ({len(records)} {plural}, {elapsed_ms:.1f} ms)")
    for i, rec in enumerate(records, 1):
        head = f"  [{i}]"
        if rec.get("page") is not None:
            head += f" page {rec['page']}"
        if not rec["is_invoice"]:
            echo(f"{head} NOT AN INVOICE: {rec.get('not_invoice_reason') or 'no reason given'}")
            continue
        kind = rec.get("kind")
        echo(f"{head} {rec.get('kind_name') or 'unknown type'}" + (f" (kind {kind})" if kind else ""))
        sources = rec["sources"]
        for name in FIELD_NAMES:
            if rec.get(name) is not None:
                echo(f"      {name:<15} {rec[name]}  [{sources.get(name, '?')}]")
        if rec.get("region"):
            echo(f"      {'region':<15} {rec['region']}")
        if rec["items"]:
            echo(f"      items           {len(rec['items'])} line(s)")
            for item in rec["items"][:5]:
                echo(f"        - {item['name']}  {item.get('amount')}  {item.get('rate_text') or ''}"
                           f"  tax {item.get('tax')}")
            if len(rec["items"]) > 5:
                echo(f"        ... {len(rec['items']) - 5} more")
        for c in rec["conflicts"]:
            values = ", ".join(f"{s}={v}" for s, v in c["values"].items())
            echo(f"      CONFLICT {c['field']}: {values}")
        for p in rec["problems"]:
            echo(f"      {p['severity'].upper()} {p['code']}: {p['message']}")


@click.command("extract")
@click.argument("files", nargs=-1, required=True, metavar="FILE...", type=click.Path())
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per invoice per line (a batch PDF gives several lines).")
@click.option("--ocr/--no-ocr", default=True, show_default=True,
              help="Read scans by OCR as well as by their QR code (needs the ocr extra; ~1-3 s a page).")
def command(files: tuple[str, ...], as_json: bool, ocr: bool) -> None:
    """Read invoice FILEs (PDF, OFD, XML, PNG/JPEG/TIFF scans) and print their fields.

    The format is detected from the content, not the file name. Each field is
    shown with its source (qr, xml, ofd, pdf-text, ocr); disagreements
    between sources and other doubts are listed as conflicts and problems.
    This is a dry run: nothing is copied into the vault and the ledger is
    not opened.

    With --json each line holds every field (money as "0.00" strings, dates
    as YYYY-MM-DD), plus "file", "sources", "problems", "conflicts",
    "items", "kind_name" and, when known, "region".

    A file that cannot be read gets one line on stderr, "FILE: FAILED
    reason: message", and the exit status is 1.

    \b
    Examples:
      fapiao-agent extract scan.pdf invoice.ofd
      fapiao-agent extract --json ~/inbox/*.pdf | jq .total
    """
    failed = 0
    qr_only = False
    for file in files:
        started = time.perf_counter()
        try:
            invoices = extract_path(file, ocr=ocr)
        except ExtractError as e:
            failed += 1
            echo(f"{file}: FAILED {e.reason}: {e.message}", err=True)
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        records = [invoice_record(inv, file) for inv in invoices]
        qr_only |= any(r["is_invoice"] and set(r["sources"].values()) == {"qr"} for r in records)
        if as_json:
            for rec in records:
                click.echo(json_text(json.dumps(rec, ensure_ascii=False, sort_keys=False)))
        else:
            _print_human(file, records, elapsed_ms)
    if ocr and qr_only:
        from agent.extract.ocr import unavailable_reason

        reason = unavailable_reason()
        if reason:
            echo(f"note: scans were read through their QR code only: {reason}", err=True)
    if failed:
        if not as_json:
            echo(f"{failed} of {len(files)} file(s) failed", err=True)
        sys.exit(1)
