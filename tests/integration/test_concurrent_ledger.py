"""Two real processes: a writer capturing documents and a reader running
`status --json`. WAL plus a busy timeout: the reader never sees a lock error."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from agent.defaults import DEFAULT_CONFIG

WRITER = textwrap.dedent("""
    import sys
    from agent.ledger import Ledger
    from agent.model import State
    led = Ledger(sys.argv[1])
    print("ready", flush=True)
    for i in range(int(sys.argv[2])):
        now = "2026-01-01T00:00:00.%06dZ" % i
        doc, _ = led.add_document(sha256="%064x" % i, size=1, media_type="pdf", source_kind="ingest",
                                  source=None, original_name="f", original_path=None, now=now, actor="w")
        led.transition(doc, State.EXTRACTED, now=now, actor="w")
    print("done", flush=True)
""")


def test_status_reads_while_another_process_writes(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(DEFAULT_CONFIG, encoding="utf-8")
    ledger = tmp_path / "state" / "ledger.sqlite3"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ledger), "1500"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # `status` reads a ledger, it never creates one: start once the writer made it.
    assert writer.stdout.readline() == "ready\n"
    seen = []
    try:
        while writer.poll() is None or not seen:
            r = subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), "status", "--json"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert "locked" not in r.stderr
            seen.append(json.loads(r.stdout)["states"]["extracted"])
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert "locked" not in err
    assert seen == sorted(seen)  # counts only ever grow: each read saw a committed state
    final = subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), "status", "--json"],
                           capture_output=True, text=True, timeout=60)
    assert json.loads(final.stdout)["states"]["extracted"] == 1500
