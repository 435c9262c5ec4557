"""The SeaweedFS fixture gives a real, key-enforcing S3 that can be stopped and restarted."""

from __future__ import annotations

import botocore.exceptions
import pytest

from tests.support.seaweed import seaweed  # noqa: F401  (fixture)


def test_valid_keys_round_trip_an_object(seaweed):
    bucket = seaweed.make_bucket()
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="a/b", Body=b"payload")
    assert client.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"payload"


def test_wrong_keys_get_403(seaweed):
    bucket = seaweed.make_bucket()
    wrong = seaweed.client(secret_access_key="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        wrong.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key_gets_403(seaweed):
    bucket = seaweed.make_bucket()
    stranger = seaweed.client(access_key_id="AKNOBODY", secret_access_key="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        stranger.list_objects_v2(Bucket=bucket)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_buckets_get_unique_names_and_are_not_auto_created(seaweed):
    a, b = seaweed.make_bucket(), seaweed.make_bucket()
    assert a != b and len(a) >= 3 and len(b) >= 3
    with pytest.raises(botocore.exceptions.ClientError) as info:
        seaweed.client().put_object(Bucket=a + "-absent", Key="k", Body=b"v")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_stop_refuses_connections_and_start_keeps_data(seaweed):
    bucket = seaweed.make_bucket()
    seaweed.client().put_object(Bucket=bucket, Key="kept", Body=b"survives")
    try:
        seaweed.stop()
        assert not seaweed.running
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            seaweed.client(connect_timeout=1).head_bucket(Bucket=bucket)
    finally:
        seaweed.start()
    body = seaweed.client().get_object(Bucket=bucket, Key="kept")["Body"].read()
    assert body == b"survives"
