"""A flood of tiny junk files (a few bytes each, not empty) through a real
daemon, then one real invoice: the invoice is read and delivered ahead of
junk captured before it and still unread, and every junk file ends explained
(a refusal that names its bytes in the vault, or a quarantined document).

Tiny junk is read in a millisecond, so reading may keep up with the flood and
leave nothing for the invoice to overtake: the test holds the workers
(SIGSTOP, a CPU too slow for the flood) until a pile of junk waits unread."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
from contextlib import suppress

import pytest

from agent.ledger import Ledger
from agent.model import State
from agent.vault import Vault
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.processes import extraction_workers

FLOOD = 4_000   # 2,000 of them cut headers taken as documents: a backlog the invoice must overtake
PILE = 300      # junk documents waiting unread when the invoice comes
INVOICE = "renoyuan__easyofd/original_invoice.xml"  # a real 数电 XML that passes validation
# Headers of formats invoices come in, cut short: these are taken as
# documents (their format is one the agent reads) and fail when read.
CUT_HEADERS = (b"%PDF-1.4 x", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"II*\x00",
               b"<?xml version='1.0'?><a>")


def junk(i: int, rng: random.Random) -> bytes:
    """Tiny, distinct, and of several kinds: random bytes, text, cut headers."""
    kind = i % 4
    tag = b"%d" % i
    if kind == 0:
        return b"\x00\x01" + rng.randbytes(12) + tag  # starts with no magic of any format
    if kind == 1:
        return b"scan failed " + tag + b"\n"
    return CUT_HEADERS[i % len(CUT_HEADERS)] + tag


def explained(led: Ledger, names: dict[str, bytes]) -> tuple[set[str], set[str]]:
    """(junk files refused with their bytes named, junk files that are settled documents)."""
    refused = {r["name"] for r in led.refusals(limit=len(names) * 2)
               if r["name"] in names and r["sha256"] == hashlib.sha256(names[r["name"]]).hexdigest()}
    settled = {r[0] for r in led.conn.execute(
        "SELECT original_name FROM documents WHERE original_name LIKE 'junk\\_%' ESCAPE '\\' "
        "AND state IN (?, ?)", (State.QUARANTINED.value, State.NOT_INVOICE.value))}
    return refused, settled


@pytest.mark.slow
def test_an_invoice_overtakes_a_flood_of_tiny_junk(tmp_path, samples_dir):
    out = tmp_path / "erp"
    out.mkdir()
    d = DaemonUnderTest(tmp_path, extra=f'[[destination]]\nname = "drop"\nurl = "folder://{out}"\n')
    staging = tmp_path / "staging"
    staging.mkdir()
    rng = random.Random(12)
    names = {f"junk_{i:05d}.pdf": junk(i, rng) for i in range(FLOOD)}
    for name, data in names.items():
        (staging / name).write_bytes(data)
    assert len(set(names.values())) == FLOOD
    try:
        d.start()
        flood = d.root / "scan" / "copier"
        os.rename(staging, flood)  # the whole flood at once, in the invoice's folder

        def junk_documents(state: str | None = None) -> int:
            with d.ledger() as led:
                return led.conn.execute(
                    "SELECT count(*) FROM documents WHERE original_name LIKE 'junk\\_%' ESCAPE '\\' "
                    "AND state = coalesce(?, state)", (state,)).fetchone()[0]

        def invoice_captured() -> bool:
            with d.ledger() as led:
                return led.conn.execute("SELECT 1 FROM documents WHERE original_name = 'invoice.xml'").fetchone()

        d.wait_until(lambda: junk_documents() >= 100, 120, "the flood's first documents")
        workers = extraction_workers(d.proc.pid)
        assert workers, "no extraction worker found below the daemon"
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            d.wait_until(lambda: junk_documents(State.CAPTURED.value) >= PILE, 120, "a pile of unread junk")
            shutil.copy(samples_dir / INVOICE, flood / "invoice.xml")
            d.wait_until(invoice_captured, 60, "the invoice captured")
        finally:
            for pid in workers:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

        def delivered():
            with d.ledger() as led:
                row = led.conn.execute("SELECT id, state, received_at FROM documents WHERE original_name = 'invoice.xml'"
                                       ).fetchone()
                if row is None or row["state"] != State.DELIVERED.value:
                    return None
                # Junk captured before the invoice and read after it (the
                # ledger's events: reading may catch up with the backlog by
                # the time the invoice is delivered, or by the time we look).
                behind = led.conn.execute(
                    "SELECT count(*) FROM documents d WHERE d.id < ? AND d.original_name LIKE 'junk\\_%' "
                    "ESCAPE '\\' AND (d.state = ? OR (SELECT min(e.at) FROM events e WHERE e.document_id = d.id "
                    "AND e.from_state = ?) > (SELECT min(e.at) FROM events e WHERE e.document_id = ? "
                    "AND e.from_state = ?))", (row["id"], State.CAPTURED.value, State.CAPTURED.value, row["id"],
                                               State.CAPTURED.value)).fetchone()[0]
                # Junk captured before the invoice and not read yet when it was
                # captured: the backlog it could have waited behind. Reading
                # may keep up with the flood (tiny files read in a millisecond
                # by workers holding several each): then there is none.
                waiting = led.conn.execute(
                    "SELECT count(*) FROM documents d WHERE d.id < ? AND d.original_name LIKE 'junk\\_%' "
                    "ESCAPE '\\' AND (d.state = ? OR (SELECT min(e.at) FROM events e WHERE e.document_id = d.id "
                    "AND e.from_state = ?) > ?)", (row["id"], State.CAPTURED.value, State.CAPTURED.value,
                                                   row["received_at"])).fetchone()[0]
                return row["id"], behind, waiting
        doc_id, overtaken, waiting = d.wait_until(delivered, 300, "the invoice to be delivered")
        assert waiting >= PILE, waiting
        assert overtaken > 0, (
            f"the invoice was read only after every junk document captured before it (document {doc_id}; "
            f"{waiting} were still unread when it arrived): it waited its turn behind the flood")
        assert list(out.iterdir()), "nothing reached the destination"

        # Every junk file is explained: refused by its content with its bytes
        # kept and named, or a document quarantined with its reason.
        def all_explained():
            with d.ledger() as led:
                refused, settled = explained(led, names)
            return (refused, settled) if len(refused | settled) == FLOOD else None
        refused, settled = d.wait_until(all_explained, 420, "every junk file to be explained")
        assert not refused & settled, "a junk file was both refused and taken as a document"
        by_content = {n for n, data in names.items() if data.startswith((b"\x00\x01", b"scan failed"))}
        assert refused == by_content, "junk of no readable format must be refused at intake, and only that"
        vault = Vault(d.root / "state" / "vault")
        with d.ledger() as led:
            rows = [r for r in led.refusals(limit=FLOOD * 2) if r["name"] in refused]
        assert len(rows) == len(refused), "a junk file was refused more than once"
        for r in rows:
            assert r["reason"].startswith("unsupported-format"), r["reason"]
            assert vault.verify(r["sha256"]), f"{r['name']}: the refused original is not in the vault"
        assert d.proc.poll() is None
    finally:
        d.stop(timeout=60)
