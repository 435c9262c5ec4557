"""One contract for every destination adapter: folder on a temp dir, http on a
real loopback server, s3 on a real SeaweedFS. Each test states a guarantee
from agent/deliver/base.py and checks it against the real remote."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import socket
import threading

import pytest

from agent.deliver.base import Misconfigured, Parcel, Receipt, open_destination, parcel_for
from agent.errors import AdapterError, ConfigError, Permanent, Transient
from agent.model import FIELD_NAMES, Invoice
from tests.support.http_destination import FaultyFinanceServer
from tests.support.seaweed import seaweed  # noqa: F401  (session fixture)

MEDIA = {"pdf": "application/pdf", "ofd": "application/ofd", "xml": "application/xml", "jpg": "image/jpeg"}
SAMPLES = [
    "kudeerliu48-web__fapiaohezi/482078385650808140.pdf",        # 代码 + 8-digit 号码
    "kudeerliu48-web__fapiaohezi/238bd1f5_26427000000145889304.pdf",  # 20-digit 数电 number
    "ofdrw__ofdrw/1.ofd",
]
SECRET = "s3cret-token-do-not-log"


def make_parcel(samples_dir: pathlib.Path, expected: dict, name: str) -> Parcel:
    """A parcel for a real sample, keyed the way the pipeline keys it."""
    inv = Invoice()
    for field, value in expected[name].items():
        if field in FIELD_NAMES and value is not None:
            inv.offer(field, value, "manual")
    path = samples_dir / name
    return parcel_for(inv, path=path, filename=path.name, media_type=MEDIA[path.suffix.lstrip(".")],
                      sha256=hashlib.sha256(path.read_bytes()).hexdigest())


@dataclasses.dataclass
class Remote:
    """One adapter under test plus ways to look at its remote without the adapter."""

    kind: str
    cfg: dict
    copies: callable          # key -> how many deliveries the remote holds for it
    stored_fields: callable   # key -> the JSON field set the remote holds
    refused_cfg: dict         # same remote, bad credentials or missing location
    down_cfg: dict | None     # the remote unreachable (None when not applicable)

    def open(self, **over):
        return open_destination(dict(self.cfg, **over))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["folder", "http", "s3"])
def remote(request, tmp_path):
    kind = request.param
    if kind == "folder":
        inbox = tmp_path / "import"
        inbox.mkdir()

        def copies(key):
            number = key.rsplit("-", 1)[-1]
            return len([p for p in inbox.iterdir() if p.name.startswith(number + ".") and p.suffix != ".json"])

        def stored(key):
            return json.loads((inbox / f"{key.rsplit('-', 1)[-1]}.json").read_text("utf-8"))["fields"]

        yield Remote(kind, {"name": "imp", "url": "folder://import", "base_dir": str(tmp_path)},
                     copies, stored, {"name": "imp", "url": f"folder://{tmp_path / 'absent'}"}, None)
    elif kind == "http":
        with FaultyFinanceServer(token=SECRET) as srv:
            cfg = {"name": "erp", "url": srv.url, "token": SECRET, "timeout_s": 5}
            yield Remote(kind, cfg, lambda k: srv.accepted[k], lambda k: srv.fields[k],
                         dict(cfg, token="wrong-token"),
                         dict(cfg, url=f"http://127.0.0.1:{_free_port()}/api"))
    else:
        sw = request.getfixturevalue("seaweed")
        bucket = sw.make_bucket()
        cfg = dict(sw.target_config(bucket, "inbox", name="s3in"), timeout_s=5)
        client = sw.client()

        def copies(key):
            listed = client.list_objects_v2(Bucket=bucket, Prefix=f"inbox/{key}/").get("Contents", [])
            return len([o for o in listed if not o["Key"].endswith("/invoice.json")])

        def stored(key):
            body = client.get_object(Bucket=bucket, Key=f"inbox/{key}/invoice.json")["Body"].read()
            return json.loads(body)["fields"]

        yield Remote(kind, cfg, copies, stored, dict(cfg, secret_access_key="wrong-" + SECRET),
                     dict(cfg, endpoint_url=f"http://127.0.0.1:{_free_port()}"))


@pytest.fixture
def parcels(samples_dir, expected_fields):
    return [make_parcel(samples_dir, expected_fields, n) for n in SAMPLES]


def test_put_then_lookup_returns_the_same_receipt(remote, parcels):
    dest = remote.open()
    for p in parcels:
        assert dest.lookup(p.key) is None
        receipt = dest.put(p)
        assert isinstance(receipt, Receipt) and receipt.key == p.key and receipt.destination == dest.name
        assert receipt.location
        assert dest.lookup(p.key) == receipt
        assert remote.copies(p.key) == 1
        assert remote.stored_fields(p.key) == p.fields


def test_second_put_is_success_with_the_existing_receipt_and_no_copy(remote, parcels):
    dest = remote.open()
    p = parcels[0]
    first = dest.put(p)
    assert dest.put(p) == first
    # A fresh adapter (as after a restart) agrees.
    assert remote.open().put(p) == first
    assert remote.copies(p.key) == 1


def test_same_invoice_with_other_bytes_is_already_delivered(remote, parcels, tmp_path):
    # E-invoice PDFs change per download; the invoice key, not the file, is the identity.
    dest = remote.open()
    p = parcels[1]
    first = dest.put(p)
    other = tmp_path / "redownload.pdf"
    other.write_bytes(p.path.read_bytes() + b"\n%redownloaded\n")
    again = dataclasses.replace(p, path=other, sha256=hashlib.sha256(other.read_bytes()).hexdigest())
    assert dest.put(again).key == first.key
    assert remote.copies(p.key) == 1


def test_every_receipt_names_the_sha256_of_what_the_destination_holds(remote, parcels, tmp_path):
    # The loop counts "already there" as delivered only when what is there is
    # this document's content: every adapter's receipt, fresh or idempotent,
    # names the sha256 of the file it holds under the key, not of the one sent.
    dest = remote.open()
    p = parcels[1]
    assert dest.put(p).raw["sha256"] == p.sha256
    other = tmp_path / "damaged.pdf"
    other.write_bytes(p.path.read_bytes()[:2500])
    again = dataclasses.replace(p, path=other, sha256=hashlib.sha256(other.read_bytes()).hexdigest())
    for d in (dest, remote.open()):
        assert d.put(again).raw["sha256"] == p.sha256
        assert d.lookup(p.key).raw["sha256"] == p.sha256
    assert remote.copies(p.key) == 1


def test_lookup_of_an_unknown_key_is_none(remote):
    assert remote.open().lookup("99999999999999999999") is None


def test_probe_passes_on_a_healthy_remote_and_delivers_nothing(remote, parcels):
    dest = remote.open()
    assert dest.probe() is None
    assert all(dest.lookup(p.key) is None for p in parcels)


def test_refused_remote_is_misconfigured_and_keeps_secrets_out(remote, parcels):
    dest = open_destination(remote.refused_cfg)
    for call in (dest.probe, lambda: dest.put(parcels[0])):
        with pytest.raises(Misconfigured) as info:
            call()
        assert isinstance(info.value, Permanent)
        assert SECRET not in str(info.value) and SECRET not in repr(dest)
        assert dest.name in str(info.value)
    assert remote.copies(parcels[0].key) == 0


def test_unreachable_remote_is_transient(remote, parcels):
    if remote.down_cfg is None:
        pytest.skip("a folder has no network to be down")
    dest = open_destination(dict(remote.down_cfg, timeout_s=2))
    for call in (dest.probe, lambda: dest.put(parcels[0]), lambda: dest.lookup(parcels[0].key)):
        with pytest.raises(Transient):
            call()


def test_missing_vault_file_is_permanent_and_sends_nothing(remote, parcels, tmp_path):
    p = dataclasses.replace(parcels[0], path=tmp_path / "gone.pdf")
    with pytest.raises(Permanent, match="vault file"):
        remote.open().put(p)
    assert remote.copies(p.key) == 0


@pytest.mark.parametrize("hostile", ["../../evil", "a/b", ".hidden", "x" * 300])
def test_a_hostile_key_never_escapes(remote, parcels, hostile, tmp_path):
    p = dataclasses.replace(parcels[0], key=hostile, number=hostile)
    dest = remote.open()
    try:
        receipt = dest.put(p)
    except Permanent:
        assert dest.lookup(hostile) is None
    else:  # an API may take any key, as long as it is held under exactly that key
        assert dest.lookup(hostile) == receipt
    assert not (tmp_path.parent / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_concurrent_puts_of_one_key_deliver_one_copy(remote, parcels):
    dest = remote.open(concurrency=8)
    p = parcels[2]
    results, errors = [], []

    def put():
        # A Transient (a loaded server's read timeout) is retried, as the
        # delivery loop does; anything else, or a fourth Transient, fails.
        for attempt in range(4):
            try:
                results.append(dest.put(p))
                return
            except Transient as e:
                if attempt == 3:
                    errors.append(e)
            except AdapterError as e:
                errors.append(e)
                return

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert {r.key for r in results} == {p.key}
    assert remote.copies(p.key) == 1
    assert dest.lookup(p.key) is not None


def test_receipt_round_trips_through_its_json_form(remote, parcels):
    receipt = remote.open().put(parcels[0])
    assert Receipt.from_dict(json.loads(json.dumps(receipt.to_dict()))) == receipt


# -- opening by scheme (no remote needed) ---------------------------------------

@pytest.mark.parametrize("cfg, key", [
    ({"url": "ftp://host/x"}, "url"), ({}, "url"), ({"url": "folder://"}, "url"),
    ({"url": "https://user:pw@host/api"}, "url"), ({"url": "http://h/api", "token": "t", "username": "u"}, "token"),
    ({"url": "http://h/api", "timeout_s": "fast"}, "timeout_s"), ({"url": "http://h/api", "tls_verify": "no"}, "tls_verify"),
    ({"url": "s3:///prefix"}, "url"), ({"url": "s3://b", "addressing_style": "sideways"}, "addressing_style"),
    ({"url": "s3://b", "access_key_id": "AK"}, "access_key_id"), ({"url": "http://h/api", "name": ""}, "name"),
])
def test_open_destination_names_the_bad_key(cfg, key):
    with pytest.raises(ConfigError, match=key):
        open_destination(dict(cfg))


def test_open_destination_picks_the_adapter_by_scheme(tmp_path):
    assert type(open_destination({"url": f"folder://{tmp_path}"})).__name__ == "FolderDestination"
    http = open_destination({"url": "https://erp.example/api", "username": "u", "password": SECRET})
    assert type(http).__name__ == "HttpDestination" and http.tls_verify is True
    assert SECRET not in repr(http) and "basic" in repr(http)
    assert open_destination({"url": "https://erp.example/api", "tls_verify": False}).tls_verify is False
    s3 = open_destination({"url": "s3://inbox/fp", "secret_access_key": SECRET, "access_key_id": "AK"})
    assert type(s3).__name__ == "S3Destination" and SECRET not in repr(s3)
    from agent.deliver import Destination
    assert all(isinstance(d, Destination) for d in (http, s3, open_destination({"url": f"folder://{tmp_path}"})))


def test_an_invoice_without_a_number_has_no_parcel(tmp_path):
    with pytest.raises(Permanent, match="no number"):
        parcel_for(Invoice(), path=tmp_path / "x.pdf", filename="x.pdf", media_type="application/pdf",
                   sha256="0" * 64)


def test_relative_folder_resolves_against_base_dir(tmp_path):
    dest = open_destination({"url": "folder://in/box", "base_dir": str(tmp_path)})
    assert dest.folder == tmp_path / "in" / "box"


def test_folder_refuses_to_overwrite_another_invoice_with_the_same_number(tmp_path, samples_dir, expected_fields):
    # Old-style invoices repeat 号码 under different 代码; the folder's naming cannot hold both.
    dest = open_destination({"url": f"folder://{tmp_path}"})
    p = make_parcel(samples_dir, expected_fields, SAMPLES[0])
    dest.put(p)
    twin = dataclasses.replace(p, key="999999999999-" + p.number)
    with pytest.raises(Permanent, match="share"):
        dest.put(twin)
    assert dest.lookup(twin.key) is None and dest.lookup(p.key) is not None
    assert sorted(os.listdir(tmp_path)) == [f"{p.number}.json", f"{p.number}.pdf"]


def test_tables_from_the_config_loader_open_as_they_are(tmp_path):
    # The loader fills unset keys with None; adapters must read that as "not given".
    from agent.config import parse_config
    from agent.deliver.retry import DeliveryPolicy

    (tmp_path / "import").mkdir()
    raw = {"destination": [
        {"name": "imp", "url": "folder://import", "maintenance": ["daily 23:30-00:30"]},
        {"name": "erp", "url": "https://erp.example/api", "token": SECRET},
        {"name": "inbox", "url": "s3://inbox/fp", "endpoint_url": "http://127.0.0.1:9"},
    ]}
    cfg = parse_config(raw, base_dir=tmp_path, env={"FAPIAO_AGENT__DESTINATION__ERP__TIMEOUT_S": "5"})
    opened = [open_destination(t) for t in cfg.destinations]
    assert [d.name for d in opened] == ["imp", "erp", "inbox"]
    assert opened[0].folder == tmp_path / "import" and opened[1].timeout_s == 5
    opened[0].probe()
    policies = [DeliveryPolicy.from_config(t) for t in cfg.destinations]
    assert [str(w) for w in policies[0].maintenance] == ["daily 23:30-00:30"]


def test_folder_leaves_a_foreign_json_of_the_same_name_alone(tmp_path, samples_dir, expected_fields):
    p = make_parcel(samples_dir, expected_fields, SAMPLES[0])
    foreign = tmp_path / f"{p.number}.json"
    foreign.write_text("not ours")
    dest = open_destination({"url": f"folder://{tmp_path}"})
    with pytest.raises(Permanent, match="not a sidecar"):
        dest.put(p)
    assert foreign.read_text() == "not ours" and dest.lookup(p.key) is None


def test_folder_completes_a_delivery_cut_between_file_and_sidecar(tmp_path, samples_dir, expected_fields):
    # A crash after the file's rename but before the sidecar's: the re-put finishes the job.
    p = make_parcel(samples_dir, expected_fields, SAMPLES[0])
    (tmp_path / f"{p.number}.pdf").write_bytes(p.path.read_bytes())
    dest = open_destination({"url": f"folder://{tmp_path}"})
    assert dest.lookup(p.key) is None
    receipt = dest.put(p)
    assert dest.lookup(p.key) == receipt
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_bytes_that_do_not_match_the_recorded_hash_are_never_sent(remote, parcels):
    p = dataclasses.replace(parcels[0], sha256="0" * 64)
    with pytest.raises(Permanent, match="sha256"):
        remote.open().put(p)
    assert remote.copies(p.key) == 0


def test_s3_completes_a_delivery_cut_between_file_and_sidecar(seaweed, samples_dir, expected_fields):
    bucket = seaweed.make_bucket()
    p = make_parcel(samples_dir, expected_fields, SAMPLES[1])
    seaweed.client().put_object(Bucket=bucket, Key=f"inbox/{p.key}/{p.filename}", Body=p.path.read_bytes())
    dest = open_destination(seaweed.target_config(bucket, "inbox"))
    assert dest.lookup(p.key) is None
    receipt = dest.put(p)  # the file's 412 is "already there"; the sidecar completes it
    assert dest.lookup(p.key) == receipt


def test_s3_lookup_in_a_missing_bucket_is_misconfigured_not_absent(seaweed):
    dest = open_destination(seaweed.target_config("no-such-bucket-here", "inbox"))
    with pytest.raises(Misconfigured, match="no-such-bucket-here"):
        dest.lookup("26427000000145889304")
