"""The HTTP adapter against a real loopback server that misbehaves on purpose.

Every fault of issue 6 is injected; each test checks the adapter's verdict
(Transient with Retry-After, Permanent with the server's message, success)
and what the server ends up holding, counted by Idempotency-Key.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import pathlib
import subprocess
import sys
import time
import urllib.request

import pytest

from agent.deliver.base import Misconfigured, Parcel, open_destination
from agent.errors import ConfigError, Permanent, Transient
from tests.support.http_destination import FaultyFinanceServer, http_destination  # noqa: F401

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = "kudeerliu48-web__fapiaohezi/238bd1f5_26427000000145889304.pdf"


@pytest.fixture
def parcel(samples_dir) -> Parcel:
    path = samples_dir / SAMPLE
    return Parcel(key="26427000000145889304", number="26427000000145889304", filename="电子发票.pdf",
                  media_type="application/pdf", sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                  fields={"number": "26427000000145889304", "total": "300.00"}, path=path)


def dest_for(server, **over):
    return open_destination(dict({"name": "erp", "url": server.url, "timeout_s": 2}, **over))


@pytest.mark.parametrize("fault", ["500", "reset"])
def test_failure_before_commit_is_transient_and_stores_nothing(http_destination, parcel, fault):
    dest = dest_for(http_destination)
    http_destination.inject(fault)
    with pytest.raises(Transient) as info:
        dest.put(parcel)
    assert info.value.retry_after is None
    assert http_destination.accepted[parcel.key] == 0 and dest.lookup(parcel.key) is None
    dest.put(parcel)  # the pooled connection recovers
    assert http_destination.accepted[parcel.key] == 1


@pytest.mark.parametrize("fault", ["503", "429"])
def test_busy_answers_are_transient_with_retry_after_seconds(http_destination, parcel, fault):
    dest = dest_for(http_destination)
    http_destination.inject(fault, retry_after=37)
    with pytest.raises(Transient, match=fault) as info:
        dest.put(parcel)
    assert info.value.retry_after == 37.0
    assert http_destination.accepted[parcel.key] == 0


def test_retry_after_as_http_date_is_read_against_the_servers_date(http_destination, parcel):
    # The server's own Date header is the reference, so no local clock is needed.
    until = email.utils.formatdate(time.time() + 600, usegmt=True)
    http_destination.inject("503", retry_after=until)
    with pytest.raises(Transient) as info:
        dest_for(http_destination).put(parcel)
    assert 590 <= info.value.retry_after <= 601


def test_slow_answer_past_the_timeout_is_transient_and_the_retry_does_not_duplicate(http_destination, parcel):
    dest = dest_for(http_destination, timeout_s=0.3)
    http_destination.inject("slow", delay=1.5)
    with pytest.raises(Transient, match="(?i)timed out"):
        dest.put(parcel)
    # The server committed before answering late: the retry finds it, by key.
    first = dest.put(parcel)
    assert dest.put(parcel) == first
    assert http_destination.accepted[parcel.key] == 1


def test_answer_lost_after_commit_then_retry_is_exactly_once(http_destination, parcel):
    dest = dest_for(http_destination)
    http_destination.inject("500-after-store")
    with pytest.raises(Transient):
        dest.put(parcel)
    receipt = dest.put(parcel)
    assert receipt.remote_id == http_destination.held[parcel.key]["id"]
    assert http_destination.accepted[parcel.key] == 1


def test_400_is_permanent_with_the_servers_message(http_destination, parcel):
    http_destination.inject("400", message="购买方税号 91440300MA5XXXXX 校验失败")
    with pytest.raises(Permanent) as info:
        dest_for(http_destination).put(parcel)
    assert not isinstance(info.value, Misconfigured)
    assert "购买方税号 91440300MA5XXXXX 校验失败" in str(info.value)
    assert http_destination.accepted[parcel.key] == 0


def test_409_already_exists_is_success_with_the_receipt_looked_up(http_destination, parcel):
    http_destination.inject("409")
    receipt = dest_for(http_destination).put(parcel)
    assert receipt.remote_id == http_destination.held[parcel.key]["id"]
    assert http_destination.accepted[parcel.key] == 1


def test_accepted_then_missing_on_lookup_is_what_reconciliation_sees(http_destination, parcel):
    dest = dest_for(http_destination)
    http_destination.inject("lose")
    assert dest.put(parcel).remote_id is not None
    assert dest.lookup(parcel.key) is None
    dest.put(parcel)  # a requeue puts it back
    assert dest.lookup(parcel.key) is not None


@pytest.mark.parametrize("fault, expected", [("503", Transient), ("reset", Transient), ("500", Transient),
                                             ("400", Permanent)])
def test_lookup_faults_are_classified_too(http_destination, parcel, fault, expected):
    dest = dest_for(http_destination)
    dest.put(parcel)
    http_destination.inject(fault, on="get")
    with pytest.raises(expected):
        dest.lookup(parcel.key)
    assert dest.lookup(parcel.key) is not None


def test_probe_reports_maintenance_with_retry_after(http_destination):
    http_destination.inject("503", on="health", retry_after=120)
    dest = dest_for(http_destination)
    with pytest.raises(Transient) as info:
        dest.probe()
    assert info.value.retry_after == 120.0
    dest.probe()


def test_probe_of_a_wrong_base_url_is_misconfigured(http_destination):
    with pytest.raises(Misconfigured, match="404"):
        open_destination({"url": http_destination.url + "/v9", "timeout_s": 2}).probe()


def test_basic_auth_and_its_refusal(parcel):
    with FaultyFinanceServer(username="fin", password="pa55-secret") as srv:
        dest_for(srv, username="fin", password="pa55-secret").put(parcel)
        assert srv.accepted[parcel.key] == 1
        with pytest.raises(Misconfigured) as info:
            dest_for(srv, username="fin", password="wrong-pa55").put(parcel)
        assert "pa55" not in str(info.value)


def test_random_failures_still_deliver_each_key_exactly_once(parcel):
    # 30 % of POSTs fail at random (before or after commit); retrying on
    # Transient, as the ledger does, must end with one copy per key.
    keys = [f"2642700000014588{i:04d}" for i in range(150)]
    with FaultyFinanceServer(fail_rate=0.3, seed=11) as srv:
        dest = dest_for(srv)
        for key in keys:
            p = dataclasses.replace(parcel, key=key, number=key)
            for _ in range(30):
                try:
                    dest.put(p)
                    break
                except Transient:
                    continue
        stats = srv.stats()
    assert sorted(stats["held"]) == sorted(keys)
    assert stats["duplicates"] == {} and all(stats["accepted"][k] == 1 for k in keys)
    assert stats["faults_served"].get("500-after-store", 0) > 0 and stats["faults_served"].get("reset", 0) > 0


def _self_signed(tmp_path: pathlib.Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_is_verified_by_default(tmp_path, parcel):
    cert, key = _self_signed(tmp_path)
    with FaultyFinanceServer(tls_cert=cert, tls_key=key) as srv:
        assert srv.url.startswith("https://")
        with pytest.raises(Misconfigured, match="TLS"):
            dest_for(srv).put(parcel)
        assert srv.accepted[parcel.key] == 0
        dest_for(srv, ca_file=cert).put(parcel)
        dest_for(srv, tls_verify=False).put(parcel)
        assert srv.accepted[parcel.key] == 1


def test_an_unreadable_ca_file_is_refused_when_the_destination_is_opened(tmp_path):
    # Its TLS context is made once, with the destination (agent/deadline.py's sockets).
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    for ca_file in (tmp_path / "absent.pem", junk):
        with pytest.raises(ConfigError, match="destination 'erp': ca_file: cannot read"):
            open_destination({"name": "erp", "url": "https://127.0.0.1:9/api", "ca_file": str(ca_file)})


def test_standalone_server_serves_and_reports_over_http(parcel):
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.http_destination", "--port", "0",
                             "--token", "tok"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        dest = open_destination({"url": url, "token": "tok", "timeout_s": 5})
        dest.put(parcel)
        admin = url.rsplit("/api", 1)[0]
        req = urllib.request.Request(admin + "/_admin/faults", data=json.dumps({"fault": "503"}).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()
        with pytest.raises(Transient):
            dest.put(parcel)
        stats = json.loads(urllib.request.urlopen(admin + "/_admin/stats", timeout=5).read())
        assert stats["accepted"] == {parcel.key: 1} and stats["faults_served"] == {"503": 1}
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_the_file_arrives_byte_for_byte_with_its_name_and_fields(parcel):
    with FaultyFinanceServer(keep_files=True) as srv:
        receipt = dest_for(srv).put(parcel)
        assert srv.files[parcel.key] == parcel.path.read_bytes()
        assert srv.held[parcel.key]["filename"] == "电子发票.pdf"
        assert srv.fields[parcel.key] == parcel.fields
        assert receipt.raw["sha256"] == parcel.sha256
