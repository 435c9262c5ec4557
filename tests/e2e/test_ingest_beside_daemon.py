"""`ingest` of the folder a running daemon is taking at the same moment:
both read the same documents, one records each, and ingest finishes and
reports what became of them instead of dying with IllegalTransition."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.e2e.test_extract_limits import good_invoice, slow_pdf


def test_ingest_beside_the_daemon_finishes_and_reports(tmp_path, samples_dir):
    d = DaemonUnderTest(tmp_path)
    scan = d.root / "scan"
    # ingest captures everything, then reads in name order: the slow PDF
    # (~2 s a page) keeps it busy while the daemon, started meanwhile on the
    # same folder, reads and records the XML invoices ingest captured.
    (scan / "a-slow.pdf").write_bytes(slow_pdf("ingest-race", pages=5))
    for n in range(5):
        (scan / f"b-{n}.xml").write_bytes(good_invoice(samples_dir, 7000 + n))
    ingest = subprocess.Popen([sys.executable, "-m", "service", "--config", str(d.config), "ingest", str(scan)],
                              cwd=d.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        d.wait_until(lambda: (d.root / "state" / "ledger.sqlite3").exists() and len(d.documents()) == 6,
                     60, "ingest to capture the six files")
        d.start()
        out, err = ingest.communicate(timeout=120)
        assert "Traceback" not in err, err
        assert ingest.returncode == 0, out + err
        assert "read meanwhile by another process: valid" in out, out
        summary = out.strip().splitlines()[-1]
        assert summary == "6 new, 0 already known, 0 failed; 1 quarantined, 5 valid", out
        docs = d.wait_documents(6, timeout=60, settled=True)
        assert sorted(doc.state for doc in docs) == ["quarantined"] + ["valid"] * 5
        with d.ledger() as led:
            for doc in docs:  # recorded once: one move out of `captured` each
                assert sum(e.from_state == "captured" for e in led.events(doc.id)) == 1
    finally:
        if ingest.poll() is None:
            ingest.kill()
            ingest.wait()
        d.stop()
