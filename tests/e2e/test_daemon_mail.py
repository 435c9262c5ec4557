"""E-mail drop folders through a real daemon: names, zips, refusals, Maildir, duplicates."""

from __future__ import annotations

import base64
import io
import time
import zipfile

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound


def pdf(tag: str) -> bytes:
    return b"%PDF-1.4\n%" + tag.encode() * 50 + b"\n%%EOF\n"


def message(message_id: str, parts: list[tuple[str, bytes]]) -> bytes:
    """A multipart message; each part is (raw Content-Disposition params, body)."""
    out = [f"From: =?gb18030?B?{base64.b64encode('财务部'.encode('gb18030')).decode()}?= <fin@example.cn>",
           "To: ap@example.cn", f"Message-ID: <{message_id}>", "Subject: invoices",
           "Date: Mon, 2 Nov 2026 10:00:00 +0800", "MIME-Version: 1.0",
           'Content-Type: multipart/mixed; boundary="BOUND"', "", "--BOUND",
           "Content-Type: text/plain; charset=utf-8", "", "see attached"]
    for params, body in parts:
        out += ["--BOUND", "Content-Type: application/octet-stream", f"Content-Disposition: attachment; {params}",
                "Content-Transfer-Encoding: base64", "", base64.b64encode(body).decode()]
    out.append("--BOUND--")
    return "\r\n".join(out).encode("ascii") + b"\r\n"


def gbk_2231(name: str) -> str:
    encoded = "".join(f"%{b:02X}" for b in name.encode("gbk"))
    # split mid-character across two continuations, as real mailers do
    cut = 3  # after the first byte of 电 (B5 E7)
    return f"filename*0*=gbk''{encoded[:cut]}; filename*1*={encoded[cut:]}"


def names_and_details(d: DaemonUnderTest) -> dict[str, dict]:
    out = {}
    with d.ledger() as led:
        for doc in led.list_documents(limit=0, sort="id"):
            for s in led.sources(doc.id):
                out[s.original_name] = s.details
    return out


def test_mail_names_zip_refusals_and_duplicates(daemon):
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("inner/发票3.pdf", pdf("zip"))
    rfc2047 = "=?gb18030?B?" + base64.b64encode("发票2.pdf".encode("gb18030")).decode() + "?="
    msg = message("m1@example.cn", [
        (gbk_2231("电子发票1.pdf"), pdf("one")),
        (f'filename="{rfc2047}"', pdf("two")),
        ('filename="bundle.zip"', zbuf.getvalue()),
        ('filename="../../etc/evil.pdf"', pdf("evil")),
        ('filename="empty.pdf"', b""),
    ])
    daemon.start()
    (daemon.root / "mail" / "a.eml").write_bytes(msg)
    daemon.wait_documents(4, settled=True)
    got = names_and_details(daemon)
    assert {"电子发票1.pdf", "发票2.pdf", "发票3.pdf"} <= set(got)
    evil = [n for n in got if "evil" in n]
    assert len(evil) == 1 and "/" not in evil[0] and ".." not in evil[0]
    assert got["电子发票1.pdf"]["message_id"] == "<m1@example.cn>"
    assert got["电子发票1.pdf"]["from"].startswith("财务部")
    assert got["发票3.pdf"]["from_zip"] == "bundle.zip"
    with daemon.ledger() as led:
        reasons = [r["reason"] for r in led.refusals()]
    assert any(r.startswith("empty") for r in reasons)
    # The same bytes again (a copy of the file) are another source of each
    # document, with a line; no new document.
    mark = len(daemon.lines)
    (daemon.root / "mail" / "b.eml").write_bytes(msg)
    daemon.wait_for_line("e-mail taken again", start=mark)
    assert len(daemon.documents()) == 4
    with daemon.ledger() as led:
        one = [d for d in led.list_documents(limit=0) if d.original_name == "电子发票1.pdf"][0]
        assert len(led.sources(one.id)) == 2
    assert_ledger_sound(daemon.config)


def test_maildir_new_moves_to_cur_once_captured(daemon):
    box = daemon.root / "mail" / "box"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    daemon.start()
    (box / "tmp" / "1700000000.M1.host").write_bytes(message("m2@example.cn", [('filename="x.pdf"', pdf("md"))]))
    (box / "tmp" / "1700000000.M1.host").rename(box / "new" / "1700000000.M1.host")
    daemon.wait_documents(1, settled=True)
    deadline = time.monotonic() + 10
    while list((box / "new").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((box / "new").iterdir()) == []
    assert [p.name for p in (box / "cur").iterdir()] == ["1700000000.M1.host:2,"]
    assert names_and_details(daemon)["x.pdf"]["message_id"] == "<m2@example.cn>"
    time.sleep(1.5)  # the move into cur/ is not a redelivery: taken once, one source
    with daemon.ledger() as led:
        (doc,) = led.list_documents(limit=0)
        assert len(led.sources(doc.id)) == 1
    assert not any("taken again" in line for line in daemon.lines)
    assert_ledger_sound(daemon.config)
