"""A flood of junk through a real daemon: every junk file is refused with its
reason and left in place, and a real invoice dropped behind the flood is
taken and delivered long before the flood is worked through."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

from click.testing import CliRunner

from agent.ledger import utc
from service.cli import main
from tests.e2e.daemon_harness import DaemonUnderTest

FLOOD = 20_000
INVOICE = "renoyuan__easyofd/original_invoice.xml"  # a real 数电 XML that passes validation


def refusal_times(d: DaemonUnderTest) -> list[str]:
    with d.ledger() as led:
        return sorted(r["at"] for r in led.refusals(limit=FLOOD * 2) if "empty" in r["reason"])


def junk_handled_times(d: DaemonUnderTest) -> list[str]:
    """When each junk file was dealt with, whatever became of it (a refusal,
    or a source row of a document): the flood's progress."""
    with d.ledger() as led:
        rows = led.conn.execute("SELECT at FROM refusals WHERE name LIKE 'scan\\_%' ESCAPE '\\' UNION ALL "
                                "SELECT at FROM sources WHERE original_name LIKE 'scan\\_%' ESCAPE '\\'")
        return sorted(r[0] for r in rows)


def test_an_invoice_behind_a_flood_of_junk_is_taken_first(tmp_path, samples_dir):
    out = tmp_path / "erp"
    out.mkdir()
    d = DaemonUnderTest(tmp_path, extra=f'[[destination]]\nname = "drop"\nurl = "folder://{out}"\n')
    staging = tmp_path / "staging"
    staging.mkdir()
    names = [f"scan_{i:05d}.pdf" for i in range(FLOOD)]
    for name in names:
        (staging / name).touch()  # a copier's empty pages, or a script gone wrong
    try:
        d.start()
        # The whole flood arrives at once, in the folder the invoice lands in.
        flood = d.root / "scan" / "copier"
        os.rename(staging, flood)
        d.wait_until(lambda: junk_handled_times(d), 60, "the flood's first files taken")  # it has settled
        shutil.copy(samples_dir / INVOICE, flood / "invoice.xml")

        def invoice():
            docs = [doc for doc in d.documents() if doc.original_name == "invoice.xml"]
            return docs[0] if docs else None

        doc = d.wait_until(invoice, 120, "the invoice to be captured")
        refused_before = sum(1 for at in junk_handled_times(d) if at < doc.received_at)
        assert refused_before < FLOOD // 2, (
            f"the invoice waited behind {refused_before} of {FLOOD} junk files")

        def delivered():
            with d.ledger() as led:
                return [r for r in led.deliveries_of(doc.id) if r["state"] == "delivered"]

        (row,) = d.wait_until(delivered, 120, "the invoice to be delivered")
        delivered_at = row["delivered_at"]
        # Every junk file is explained, once, and still where it was.
        def all_refused():
            times = refusal_times(d)
            return times if len(times) >= FLOOD else None

        times = d.wait_until(all_refused, 300, "every junk file's refusal")
        assert len(times) == FLOOD
        assert delivered_at < times[-1], "the invoice was delivered only after the flood was worked through"
        print(f"invoice captured after {refused_before} refusals, delivered at {delivered_at}, "
              f"refusals from {times[0]} to {times[-1]}")
        with d.ledger() as led:
            refused = {r["name"] for r in led.refusals(limit=FLOOD * 2)}
        assert refused >= set(names)
        assert sorted(p.name for p in flood.iterdir()) == sorted(names + ["invoice.xml"])
        status = CliRunner().invoke(main, ["--config", str(d.config), "status", "--json"])
        assert json.loads(status.output)["refused"]["count"] == FLOOD  # in sight of the operator
        # A rescan finds the flood again and refuses none of it twice.
        mark = len(d.lines)
        (d.root / "scan" / "new-dept").mkdir()  # a folder appearing asks for a rescan
        d.wait_for_line("msg=rescan", start=mark)  # logged once the rescan has noted every file
        seen = utc(dt.datetime.now(dt.timezone.utc))

        def idle_after_rescan():
            with d.ledger() as led:
                beat = led.heartbeat()
            return beat["at"] > seen and json.loads(beat["details"])["pending_files"] == 0 and beat
        d.wait_until(idle_after_rescan, 120, "the rescan to be worked through")
        assert len(refusal_times(d)) == FLOOD
        assert d.proc.poll() is None
    finally:
        d.stop(timeout=60)
