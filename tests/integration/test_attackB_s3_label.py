"""Attack B, finding 5, against a real SeaweedFS: an object already at an
original's key that carries our x-amz-meta-sha256 label and size but other
bytes, put without a checksum (so the store keeps no SHA-256 of its own).
The put's If-None-Match got 412, the label said "ours", and the ledger
recorded the original as backed up over zeros."""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from agent.backup import open_target
from agent.backup.base import object_key
from agent.backup.mirror import mirror_step
from agent.capture import capture_bytes
from agent.ledger import Ledger
from agent.vault import Vault
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
ORIGINAL = b"%PDF-1.7 the original invoice " * 400


def _seed_zeros(seaweed, bucket: str, key: str, sha: str, size: int) -> None:
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key=key, Body=b"\0" * size, Metadata={"sha256": sha})
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256") is None     # the store keeps no checksum: only the label is left


def test_a_labelled_object_of_the_right_size_without_a_server_checksum_is_read_back_not_taken(seaweed):
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket, prefix="shared"))
    sha = hashlib.sha256(ORIGINAL).hexdigest()
    _seed_zeros(seaweed, bucket, "shared/" + object_key(sha), sha, len(ORIGINAL))
    target.put(object_key(sha), ORIGINAL, sha)
    assert target.get(object_key(sha)) == ORIGINAL
    # Ours already there (put without a checksum by an older agent): kept, not put again.
    seaweed.client().put_object(Bucket=bucket, Key="shared/" + object_key(sha), Body=ORIGINAL,
                                Metadata={"sha256": sha})
    target.put(object_key(sha), ORIGINAL, sha)
    assert target.get(object_key(sha)) == ORIGINAL


def test_the_ledger_never_records_done_over_zeros_the_bucket_held_first(seaweed, tmp_path):
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket, prefix="shared", name="s3"))
    vault = Vault(tmp_path / "vault")
    sha = hashlib.sha256(ORIGINAL).hexdigest()
    _seed_zeros(seaweed, bucket, "shared/" + object_key(sha), sha, len(ORIGINAL))
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        capture_bytes(ledger, vault, ORIGINAL, source_kind="folder", source="scan", name="a.pdf",
                      now="2026-05-01T08:00:00.000000Z", actor="test")
        while mirror_step(ledger, vault, target, now=T0, rng=random.Random(1)).more:
            pass
        assert list(ledger.done_backups("s3")) == [sha]
    # Done means the target holds the original's bytes, not a label over zeros.
    assert target.get(object_key(sha)) == ORIGINAL
