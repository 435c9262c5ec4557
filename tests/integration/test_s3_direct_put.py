"""The backup's hot path to S3 (issue 17, "Backup at rclone's speed inside the
daemon"): a new small object goes up in ONE signed request without the
boto3 client's per-call machinery (agent/backup/s3_put.py), which cost
twice the CPU and bounded the loop on 2 cores. Every other answer takes
the client's path, so each guarantee of a put holds as before. Against a
real SeaweedFS."""

from __future__ import annotations

import base64
import hashlib

import pytest

from agent.backup import open_target
from agent.backup.base import AccessDenied, ChecksumMismatch, object_key
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def client_calls(target) -> list[str]:
    """The names of the boto3 client's API calls, as they happen."""
    calls: list[str] = []
    target.client.meta.events.register("before-call.s3", lambda model, **kw: calls.append(model.name))
    return calls


def test_a_new_object_is_one_request_outside_the_client_and_stored_with_its_checksums(seaweed):
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket, prefix="site"))
    calls = client_calls(target)
    data = b"%PDF-1.7 new original" * 500
    target.put(object_key(sha(data)), data, sha(data))
    assert calls == []    # before: ["PutObject"], with its ~3 ms of CPU
    raw = seaweed.client().head_object(Bucket=bucket, Key="site/" + object_key(sha(data)), ChecksumMode="ENABLED")
    assert raw["Metadata"]["sha256"] == sha(data)
    assert raw["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(sha(data))).decode()
    assert target.get(object_key(sha(data))) == data


def test_every_other_answer_takes_the_clients_path(seaweed):
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket))
    calls = client_calls(target)
    data = b"the same original twice"
    target.put(object_key(sha(data)), data, sha(data))
    target.put(object_key(sha(data)), data, sha(data))     # 412: something is there, and it is ours
    assert calls == ["HeadObject"]
    target.put("manifests/d.json", b"v1", sha(b"v1"))
    target.put("manifests/d.json", b"v2", sha(b"v2"))      # 412, and not ours: replaced
    assert target.get("manifests/d.json") == b"v2"
    calls.clear()
    with pytest.raises(ChecksumMismatch):                   # refused by the server, then named by the client's path
        target.put("objects/x", b"not what the hash says", sha(b"other"))
    assert "PutObject" in calls
    assert not list(target.list("objects/x"))
    wrong = open_target({**seaweed.target_config(bucket), "secret_access_key": "not-the-secret"})
    with pytest.raises(AccessDenied):
        wrong.put("ledger/y", b"y", sha(b"y"))
