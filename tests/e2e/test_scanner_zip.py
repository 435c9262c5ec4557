"""A zip archive of invoices dropped in a scanner folder, through a real
daemon: its writer pauses half way (the archive cannot be read yet: refused,
left in place), then finishes; each invoice in it is delivered, the archive
is moved to processed/ and backed up as the original, and the audit finds
the ledger sound."""

from __future__ import annotations

import hashlib
import io
import zipfile

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.support.audit import assert_ledger_sound

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


def value(d: DaemonUnderTest, sql: str, *args):
    with d.ledger() as led:
        return led.conn.execute(sql, args).fetchone()[0]


def test_a_zip_of_invoices_written_slowly_is_delivered_member_by_member(tmp_path, samples_dir):
    template = (samples_dir / SAMPLE).read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(6):
            z.writestr(f"全电发票/dzfp_{i}.xml", template.replace(b"00008006", b"%08d" % (8600 + i)))
        z.writestr("清单.csv", "发票号码,金额\n".encode())
    archive = buf.getvalue()
    sha = hashlib.sha256(archive).hexdigest()
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d = DaemonUnderTest(tmp_path, settle=0.5, scan_extra='after = "move"', extra=OUT_AND_NAS)
    d.start()
    try:
        path = tmp_path / "scan" / "批量下载.zip"
        with open(path, "wb") as out:
            out.write(archive[: len(archive) // 2])
            out.flush()
            d.wait_until(lambda: value(d, "SELECT count(*) FROM refusals WHERE reason LIKE 'zip-corrupt%'"),
                         20, "the half-written archive refused")
            assert path.exists(), "an archive that cannot be read yet is left where it is"
            out.write(archive[len(archive) // 2:])
        d.wait_until(lambda: len(list((tmp_path / "out").rglob("*.xml"))) >= 6, 30, "every invoice delivered")
        d.wait_until(lambda: not path.exists(), 10, "the archive moved to processed/")
        assert [p.read_bytes() for p in (tmp_path / "scan" / "processed").rglob("*.zip")] == [archive]
        d.wait_until(lambda: value(d, "SELECT count(*) FROM backups WHERE sha256 = ? AND state = 'done'",
                                            sha), 30, "the archive backed up as the original")
        refused = value(d, "SELECT group_concat(name) FROM refusals WHERE reason LIKE 'unsupported%'")
        assert refused == "批量下载.zip/清单.csv"
    finally:
        assert d.stop() == 0
    assert_ledger_sound(d.config)
