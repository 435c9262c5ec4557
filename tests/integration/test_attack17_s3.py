"""Issue 17 attacked from outside: the one-request S3 put (agent/backup/s3_put.py)
with keys a careless operator's prefix or a file's name can bring, against a
real SeaweedFS. A put that returns has stored the bytes under that very key
(a get of the key gives them back), whichever path it took."""

from __future__ import annotations

import hashlib

import pytest

from agent.backup import open_target
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

KEYS = ["manifests/a+b.json", "manifests/a b.json", "manifests/日本 发票.json", "manifests/a%20b.json",
        "manifests/a~b;c=d&e.json", "manifests/a?b#c.json", "manifests/tab\there.json", "manifests/'\"*.json",
        "manifests/\u202e.json", "manifests/\U0001f600.json"]


@pytest.mark.parametrize("prefix", ["", "site one/前缀+x"])
def test_every_key_put_is_the_key_read_back(seaweed, prefix):
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket, prefix=prefix))
    for i, key in enumerate(KEYS):
        data = f"object {i} {key}".encode()
        target.put(key, data, hashlib.sha256(data).hexdigest())
        assert target.get(key) == data, key
    listed = sorted(o.key for o in target.list("manifests/"))
    assert listed == sorted(KEYS)



def test_an_object_there_with_other_bytes_under_our_sha256_metadata_is_replaced_not_taken(seaweed):
    # A shared bucket seeded by hand (`aws s3 cp --metadata sha256=...`) or by
    # another site's faulty copy: the key and its x-amz-meta-sha256 say
    # "ours", the bytes are not. The put's If-None-Match gets 412 and the
    # head decided by the metadata alone: the original counted as backed up
    # while the bucket held something else. The server's own checksum of
    # the bytes it holds is what tells.
    from agent.backup.base import object_key
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket, prefix="site"))
    ours = b"%PDF-1.7 the original" * 100
    sha = hashlib.sha256(ours).hexdigest()
    other = b"%PDF-1.7 something else" * 100
    seaweed.client().put_object(Bucket=bucket, Key="site/" + object_key(sha), Body=other,
                                ChecksumAlgorithm="SHA256", Metadata={"sha256": sha})
    assert target.head(object_key(sha)).sha256 != sha        # the head tells the bytes, not the label
    target.put(object_key(sha), ours, sha)
    assert target.get(object_key(sha)) == ours


def test_an_object_without_a_server_checksum_is_ours_only_when_its_size_is_too(seaweed):
    # Seeded without a SHA-256 checksum (an older tool, or one defaulting to
    # CRC): only the label is left to read, and a label over bytes of
    # another size is certainly not our original.
    from agent.backup.base import object_key
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket))
    ours = b"%PDF-1.7 the original" * 100
    sha = hashlib.sha256(ours).hexdigest()
    seaweed.client().put_object(Bucket=bucket, Key=object_key(sha), Body=b"truncated", Metadata={"sha256": sha})
    target.put(object_key(sha), ours, sha)
    assert target.get(object_key(sha)) == ours
