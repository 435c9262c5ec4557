"""Every backup target keeps the BackupTarget contract, on a real disk and a real SeaweedFS."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from agent.backup import (AccessDenied, BucketMissing, ChecksumMismatch, FolderMissing, InvalidKey,
                          ObjectInfo, object_key, open_target, sidecar_key)
from agent.backup.file import FileTarget
from agent.backup.s3 import S3Target
from agent.backup.verify import repair_object, verify_object
from agent.errors import ConfigError, NotFound, Permanent, Transient
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["file", "s3"])
def target(request, tmp_path):
    """A fresh, empty target of each kind, opened through open_target like the agent does."""
    if request.param == "file":
        (tmp_path / "nas").mkdir()
        return open_target({"name": "nas", "url": "file://nas", "base_dir": str(tmp_path)})
    server = request.getfixturevalue("seaweed")
    cfg = server.target_config(server.make_bucket(), prefix="office-1", name="offsite")
    return open_target(cfg)


def test_open_target_picks_the_adapter_by_url(tmp_path, seaweed):
    assert isinstance(open_target({"url": f"file://{tmp_path}"}), FileTarget)
    rel = open_target({"name": "n", "url": "file://a/b", "base_dir": str(tmp_path)})
    assert rel.root == tmp_path / "a" / "b"
    s3 = open_target(seaweed.target_config("some-bucket", prefix="p/q"))
    assert isinstance(s3, S3Target) and s3.bucket == "some-bucket" and s3.prefix == "p/q/"


@pytest.mark.parametrize("cfg, word", [
    ({"url": "ftp://x/y"}, "s3:// or file://"),
    ({"url": "s3://b", "secret_acess_key": "x"}, "secret_acess_key"),
    ({"url": "s3://b", "access_key_id": "AK"}, "secret_access_key"),
    ({"url": "s3://b", "sse": "rot13"}, "sse"),
    ({"url": "s3://b", "addressing_style": "sideways"}, "addressing_style"),
    ({"url": "file://rel"}, "base_dir"),
    ({"url": "file:///abs", "endpoint_url": "http://x"}, "endpoint_url"),
    ({"url": "s3:///prefix-only"}, "bucket"),
])
def test_bad_config_raises_config_error_naming_the_key(cfg, word):
    with pytest.raises(ConfigError, match=word):
        open_target(cfg)


def test_put_head_get_round_trip(target, tmp_path):
    data = b"%PDF-1.7 invoice bytes \x00\xff" * 100
    key = object_key(sha(data))
    assert target.head(key) is None
    target.put(key, data, sha(data))
    info = target.head(key)
    assert info == ObjectInfo(key, len(data), sha(data), info.modified)
    assert target.get(key) == data
    dest = tmp_path / "restored.pdf"
    assert target.get(key, dest) is None
    assert dest.read_bytes() == data


def test_put_reads_a_local_file(target, tmp_path):
    src = tmp_path / "vault-file"
    src.write_bytes(os.urandom(50_000))
    digest = sha(src.read_bytes())
    target.put(object_key(digest), src, digest)
    target.put(sidecar_key(digest), str(src), digest)  # str paths too
    assert target.get(object_key(digest)) == src.read_bytes()
    assert target.head(sidecar_key(digest)).sha256 == digest


def test_put_is_idempotent_and_overwrites_a_different_object(target):
    old, new = b"first version", b"second version"
    target.put("manifests/2026-11-29.json", old, sha(old))
    first = target.head("manifests/2026-11-29.json")
    target.put("manifests/2026-11-29.json", old, sha(old))
    assert target.head("manifests/2026-11-29.json") == first  # not rewritten: same mtime
    assert target.get("manifests/2026-11-29.json") == old
    target.put("manifests/2026-11-29.json", new, sha(new))
    assert target.get("manifests/2026-11-29.json") == new
    assert [o.key for o in target.list("manifests/")] == ["manifests/2026-11-29.json"]


def test_wrong_checksum_is_rejected_and_nothing_is_stored(target, tmp_path):
    data = b"the vault says one thing"
    key = object_key(sha(b"something else"))
    with pytest.raises(ChecksumMismatch, match=target.name) as info:
        target.put(key, data, sha(b"something else"))
    if isinstance(target, S3Target):  # the server itself refused the bytes
        assert "server rejected" in str(info.value)
    src = tmp_path / "corrupt"
    src.write_bytes(data)
    with pytest.raises(ChecksumMismatch):
        target.put(key, src, sha(b"something else"))
    assert target.head(key) is None
    assert list(target.list("")) == []


def test_list_is_complete_relative_and_filtered_by_prefix(target):
    keys = ["objects/ab/cd/x", "objects/ab/cd/x.json", "objects/ab/ce/y", "objects/ab.txt",
            "ledger/ledger-20261129T100000Z.sqlite.gz", "manifests/2026-11-29.json"]
    for k in keys:
        target.put(k, k.encode(), sha(k.encode()))
    listed = list(target.list(""))
    assert sorted(o.key for o in listed) == sorted(keys)
    assert all(o.size == len(o.key) for o in listed)
    assert sorted(o.key for o in target.list("objects/ab/c")) == [
        "objects/ab/cd/x", "objects/ab/cd/x.json", "objects/ab/ce/y"]
    assert sorted(o.key for o in target.list("objects/ab/cd/x")) == [
        "objects/ab/cd/x", "objects/ab/cd/x.json"]
    assert list(target.list("nothing/")) == []


def test_get_of_a_missing_object_is_not_found(target, tmp_path):
    with pytest.raises(NotFound, match="objects/00"):
        target.get("objects/00/00/missing")
    with pytest.raises(NotFound):
        target.get("objects/00/00/missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_delete_removes_and_tolerates_missing(target):
    target.put("ledger/a", b"a", sha(b"a"))
    target.delete("ledger/a")
    target.delete("ledger/a")
    assert target.head("ledger/a") is None
    assert list(target.list("ledger/")) == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "../x", "a//b", "a\\b", "./a", "a/\x00"])
def test_unsafe_keys_are_refused(target, key):
    with pytest.raises(InvalidKey):
        target.put(key, b"x", sha(b"x"))
    with pytest.raises(InvalidKey):
        target.get(key)


def test_bad_arguments_raise_only_our_typed_errors(target, tmp_path):
    with pytest.raises(Permanent):
        target.put("ledger/x", b"x", "ABC")
    with pytest.raises(Permanent, match="cannot read source"):
        target.put("ledger/x", tmp_path / "no-such-file", sha(b"x"))
    with pytest.raises(Permanent, match="bytes or a file path"):
        target.put("ledger/x", 12345, sha(b"x"))
    target.put("ledger/x", b"x", sha(b"x"))
    with pytest.raises(Permanent, match="does not exist"):
        target.get("ledger/x", tmp_path / "missing-folder" / "out")
    with pytest.raises(InvalidKey):
        list(target.list("/"))
    with pytest.raises(InvalidKey):
        list(target.list(None))
    assert target.head("ledger/x").sha256 == sha(b"x")


def test_corruption_behind_the_adapters_back_is_found_and_repaired(target):
    data = b"original invoice"
    key = object_key(sha(data))
    target.put(key, data, sha(data))
    assert verify_object(target, key, sha(data)) == "ok"
    _overwrite_behind_the_back(target, key, b"tampered invoice")
    assert verify_object(target, key, sha(data)) == "mismatch"
    assert verify_object(target, object_key(sha(b"never put")), sha(b"never put")) == "missing"
    assert repair_object(target, key, data, sha(data)) == "ok"
    assert target.get(key) == data


def _overwrite_behind_the_back(target, key: str, data: bytes) -> None:
    """Change the stored bytes without the adapter, keeping any recorded checksum."""
    if isinstance(target, FileTarget):
        (target.root / key).write_bytes(data)
        return
    client = target._client
    full = target.prefix + key
    old = client.head_object(Bucket=target.bucket, Key=full)
    client.put_object(Bucket=target.bucket, Key=full, Body=data, Metadata=old["Metadata"])


# -- S3 only: what a real server adds ------------------------------------------


def test_wrong_keys_give_one_clear_permanent_line(seaweed):
    bucket = seaweed.make_bucket()
    cfg = {**seaweed.target_config(bucket, name="offsite"), "secret_access_key": "wrong-secret-xyz"}
    target = open_target(cfg)
    with pytest.raises(AccessDenied) as info:
        target.put("ledger/x", b"x", sha(b"x"))
    line = str(info.value)
    assert isinstance(info.value, Permanent)
    assert "\n" not in line
    assert "'offsite'" in line and repr(bucket) in line and seaweed.endpoint_url in line
    assert "wrong-secret-xyz" not in line and seaweed.secret_access_key not in line
    with pytest.raises(AccessDenied):
        list(target.list(""))


def test_missing_bucket_gives_one_clear_permanent_line(seaweed):
    target = open_target(seaweed.target_config("no-such-bucket-here", name="offsite"))
    with pytest.raises(BucketMissing) as info:
        target.put("ledger/x", b"x", sha(b"x"))
    line = str(info.value)
    assert "'offsite'" in line and "'no-such-bucket-here'" in line and seaweed.endpoint_url in line
    assert "does not exist" in line and "\n" not in line
    with pytest.raises(BucketMissing):
        list(target.list("objects/"))


def test_the_aws_credential_chain_is_used_when_no_keys_are_configured(seaweed, monkeypatch):
    bucket = seaweed.make_bucket()
    cfg = {**seaweed.target_config(bucket), "access_key_id": None, "secret_access_key": None}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_access_key)
    target = open_target(cfg)
    target.put("ledger/x", b"x", sha(b"x"))
    assert target.get("ledger/x") == b"x"


def test_outage_is_transient_and_the_target_works_after_restart(seaweed):
    target = open_target(seaweed.target_config(seaweed.make_bucket()))
    target.put("ledger/before", b"1", sha(b"1"))
    try:
        seaweed.stop()
        with pytest.raises(Transient, match="cannot reach"):
            target.put("ledger/during", b"2", sha(b"2"))
        with pytest.raises(Transient):
            target.head("ledger/before")
    finally:
        seaweed.start()
    target.put("ledger/during", b"2", sha(b"2"))
    assert sorted(o.key for o in target.list("ledger/")) == ["ledger/before", "ledger/during"]


def test_large_files_go_up_in_parts_with_checksums(seaweed, tmp_path):
    bucket = seaweed.make_bucket()
    cfg = seaweed.target_config(bucket)
    target = S3Target(bucket, name="big", endpoint_url=cfg["endpoint_url"], region=cfg["region"],
                      addressing_style="path", access_key_id=cfg["access_key_id"],
                      secret_access_key=cfg["secret_access_key"],
                      multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    src = tmp_path / "big.ofd"
    src.write_bytes(os.urandom(11 * 2**20))
    digest = sha(src.read_bytes())
    target.put("objects/big", src, digest)
    raw = seaweed.client().head_object(Bucket=bucket, Key="objects/big", ChecksumMode="ENABLED")
    assert raw.get("ChecksumSHA256", "").endswith("-3") or raw["ETag"].endswith('-3"')
    assert target.head("objects/big").sha256 == digest
    assert verify_object(target, "objects/big", digest) == "ok"
    with pytest.raises(ChecksumMismatch):
        target.put("objects/big2", src, sha(b"not it"))


def test_a_second_put_of_the_same_object_writes_no_new_version(seaweed):
    bucket = seaweed.make_bucket()
    client = seaweed.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    target = open_target(seaweed.target_config(bucket))
    data = b"shared between two agents"
    for _ in range(3):
        target.put(object_key(sha(data)), data, sha(data))
    target.put("manifests/2026-11-29.json", b"v1", sha(b"v1"))
    target.put("manifests/2026-11-29.json", b"v2", sha(b"v2"))
    versions = client.list_object_versions(Bucket=bucket)["Versions"]
    assert sorted(v["Key"] for v in versions) == sorted(
        [object_key(sha(data)), "manifests/2026-11-29.json", "manifests/2026-11-29.json"])


def test_stores_without_conditional_puts_get_head_then_put(seaweed):
    bucket = seaweed.make_bucket()
    client = seaweed.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    target = open_target(seaweed.target_config(bucket))
    target.conditional_puts = False  # as after a 501 from an older store
    data = b"content"
    for _ in range(2):
        target.put(object_key(sha(data)), data, sha(data))
    target.put("manifests/d.json", b"1", sha(b"1"))
    target.put("manifests/d.json", b"2", sha(b"2"))
    assert target.get("manifests/d.json") == b"2"
    versions = client.list_object_versions(Bucket=bucket)["Versions"]
    assert sorted(v["Key"] for v in versions) == sorted(
        [object_key(sha(data)), "manifests/d.json", "manifests/d.json"])


def test_storage_class_and_sse_are_sent(seaweed):
    bucket = seaweed.make_bucket()
    cfg = {**seaweed.target_config(bucket), "storage_class": "STANDARD_IA", "sse": "AES256"}
    target = open_target(cfg)
    target.put("ledger/x", b"x", sha(b"x"))
    raw = seaweed.client().head_object(Bucket=bucket, Key="ledger/x")
    assert raw.get("StorageClass") == "STANDARD_IA"
    assert raw.get("ServerSideEncryption") == "AES256"


def test_an_unmounted_file_target_is_transient_and_never_created(tmp_path):
    target = open_target({"name": "nas", "url": f"file://{tmp_path}/not-mounted"})
    with pytest.raises(FolderMissing, match="'nas'.*not-mounted.*not mounted"):
        target.put("ledger/x", b"x", sha(b"x"))
    assert isinstance(FolderMissing("x"), Transient)
    assert not (tmp_path / "not-mounted").exists()
    (tmp_path / "not-mounted").mkdir()  # the disk comes back
    target.put("ledger/x", b"x", sha(b"x"))
    assert target.get("ledger/x") == b"x"


def test_file_target_leaves_no_temp_files(tmp_path):
    target = FileTarget(tmp_path)
    for i in range(5):
        data = str(i).encode()
        target.put(object_key(sha(data)), data, sha(data))
    names = [p.name for p in Path(tmp_path).rglob("*")]
    assert not [n for n in names if n.startswith(".tmp-")]


def test_the_identity_marker_tells_our_target_from_an_empty_or_other_one(target, tmp_path):
    # agent/backup/identity.py, through the interface alone: the same on every kind.
    from agent.backup import TargetUnrecognised
    from agent.backup.identity import MARKER_KEY, check_identity, read_marker
    from agent.ledger import Ledger

    now = __import__("datetime").datetime(2026, 5, 1, tzinfo=__import__("datetime").timezone.utc)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert read_marker(target) is None
        check_identity(ledger, target, now=now)            # first use, empty: the marker is written
        known = ledger.target_identity(target.name)[0]
        assert known and read_marker(target) == known
        assert MARKER_KEY in {i.key for i in target.list("")}
        check_identity(ledger, target, now=now)            # ours: passes, nothing changes
        ledger.record_backup_snapshot(target.name, "ledger/x", now="2026-05-01T00:00:00Z")  # holds something now
        target.delete(MARKER_KEY)                          # an empty mount point, a bucket not ours
        with pytest.raises(TargetUnrecognised, match="marker .fapiao-agent-target is missing"):
            check_identity(ledger, target, now=now)
        assert read_marker(target) is None                 # nothing was written
        target.put(MARKER_KEY, b"{}", sha(b"{}"))          # somebody else's marker
        with pytest.raises(TargetUnrecognised, match="names another target"):
            check_identity(ledger, target, now=now)
        target.delete(MARKER_KEY)
    # A ledger that remembers no id (an agent upgraded to markers) adopts a
    # target holding our objects, but not an empty one it counts backups on.
    with Ledger(tmp_path / "other.sqlite") as ledger:
        ledger.record_backup_snapshot(target.name, "ledger/x", now="2026-05-01T00:00:00Z")
        with pytest.raises(TargetUnrecognised):
            check_identity(ledger, target, now=now)
        data = b"an original"
        target.put(object_key(sha(data)), data, sha(data))
        check_identity(ledger, target, now=now)
        assert read_marker(target) == ledger.target_identity(target.name)[0]
