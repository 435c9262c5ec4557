"""Writers that append in many short opens (open, append, close, a few ms,
again), as a scanner or a copy tool flushing chunk by chunk: each close is
an event that makes the file ready at once, so the daemon captures it half
written again and again. Its last bytes must be captured from the last
event, not at the next rescan (5 min here): a change noted while the file
was being captured keeps it pending (FolderWatcher.done)."""

from __future__ import annotations

import hashlib
import random
import threading
import time

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.support.audit import assert_ledger_sound

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
WRITERS = 12
CHUNKS = 30


def append_in_chunks(path, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    step = -(-len(data) // CHUNKS)
    for at in range(0, len(data), step):
        with open(path, "ab") as out:
            out.write(data[at:at + step])
        time.sleep(rng.uniform(0.002, 0.03))


def test_the_last_bytes_of_a_file_appended_in_many_opens_are_taken_at_once(tmp_path, samples_dir):
    template = (samples_dir / SAMPLE).read_bytes()
    invoices = [template.replace(b"00008006", b"%08d" % (7300 + i)) for i in range(WRITERS)]
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d = DaemonUnderTest(tmp_path, settle=0.5, extra=OUT_AND_NAS)   # rescans every 300 s
    d.start()
    try:
        writers = [threading.Thread(target=append_in_chunks, args=(tmp_path / "scan" / f"app{i}.xml", data, i))
                   for i, data in enumerate(invoices)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        finals = {hashlib.sha256(data).hexdigest() for data in invoices}
        d.wait_until(lambda: finals <= {doc.sha256 for doc in d.documents()}, 20,
                     "every file's final bytes captured (not left for the rescan)")
        d.wait_until(lambda: len(list((tmp_path / "out").rglob("*.xml"))) >= WRITERS, 30,
                     "every invoice delivered")
    finally:
        assert d.stop() == 0
    assert_ledger_sound(d.config)


def test_files_written_then_renamed_into_place_leave_no_refusal_behind(tmp_path, samples_dir):
    # Each first name is noticed (created, written, closed) and may be
    # handed out just as its writer renames it: that name is gone, which is
    # no refusal to explain ("no such file"): its new name is what is taken.
    template = (samples_dir / SAMPLE).read_bytes()
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d = DaemonUnderTest(tmp_path, settle=0.5, extra=OUT_AND_NAS)
    d.start()
    try:
        scan = tmp_path / "scan"
        n = 150
        for i in range(n):
            tmp = scan / f"scan{i}.xml"   # a scanner naming its file, then renaming it
            tmp.write_bytes(template.replace(b"00008006", b"%08d" % (7500 + i)))
            time.sleep(random.Random(i).uniform(0, 0.004))
            tmp.rename(scan / f"inv{i}.xml")
        d.wait_until(lambda: len(list((tmp_path / "out").rglob("*.xml"))) >= n, 60, "every invoice delivered")
        with d.ledger() as ledger:
            refusals = ledger.conn.execute("SELECT name, reason FROM refusals").fetchall()
        assert [tuple(r) for r in refusals] == []
    finally:
        assert d.stop() == 0
    assert_ledger_sound(d.config)
