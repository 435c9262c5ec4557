"""Every fleet store keeps the FleetStore contract: a folder and a real SeaweedFS,
opened by URL like the agent does, with racing writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.errors import ConfigError, Conflict, Permanent, Transient
from agent.fleet.store import FileStore, open_store
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)


def fleet_config(server, bucket: str, prefix: str = "fleet") -> dict:
    cfg = server.target_config(bucket, prefix=prefix)
    cfg.pop("name")
    return cfg


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        (tmp_path / "shared").mkdir()
        return open_store({"url": f"file://{tmp_path / 'shared'}"})
    server = request.getfixturevalue("seaweed")
    return open_store(fleet_config(server, server.make_bucket()))


def test_create_only_if_absent(store):
    etag = store.create("claims/a/gen-00000001", b"one")
    with pytest.raises(Conflict):
        store.create("claims/a/gen-00000001", b"two")
    assert store.read("claims/a/gen-00000001") == (b"one", etag)


def test_read_absent_is_none(store):
    assert store.read("nothing/here") is None


def test_replace_only_while_the_etag_matches(store):
    first = store.create("k", b"one")
    second = store.replace("k", b"two", first)
    assert second != first and store.read("k") == (b"two", second)
    with pytest.raises(Conflict):
        store.replace("k", b"three", first)          # stale ETag
    with pytest.raises(Conflict):
        store.replace("absent", b"x", first)         # nothing to replace
    assert store.read("k")[0] == b"two"


def test_put_overwrites_and_list_is_by_prefix(store):
    store.put("sites/bj/status.json", b"1")
    store.put("sites/bj/status.json", b"2")
    store.put("sites/sh/status.json", b"3")
    store.create("claims/x/gen-00000001", b"c")
    assert store.read("sites/bj/status.json")[0] == b"2"
    assert store.list("sites/") == ["sites/bj/status.json", "sites/sh/status.json"]
    assert store.list("claims/x/") == ["claims/x/gen-00000001"]
    assert store.list("none/") == []


def test_a_listing_tags_each_object_and_a_rewrite_shows(store):
    # The epoch's cheap check (agent/fleet/epoch.py `quick`) compares a
    # listing's ETag with one an earlier listing gave: another object under
    # the same name must show, the same bytes put back (a copy) need not.
    store.create("epoch/gen-00000001", b'{"epoch": "a"}')
    store.create("claims/x/gen-00000001", b"c")
    first = store.list_tagged("epoch/")
    assert list(first) == ["epoch/gen-00000001"] and first["epoch/gen-00000001"]
    store.put("epoch/gen-00000001", b'{"epoch": "b"}')
    assert store.list_tagged("epoch/")["epoch/gen-00000001"] != first["epoch/gen-00000001"]
    store.put("epoch/gen-00000001", b'{"epoch": "a"}')
    assert store.list_tagged("epoch/") == first
    assert store.list_tagged("none/") == {}


def test_keys_that_climb_out_are_refused(store):
    for bad in ("../x", "a/../../b", "/abs", "a//b", ""):
        with pytest.raises(Permanent):
            store.create(bad, b"x")


def test_racing_creates_have_exactly_one_winner(store):
    def create(i):
        try:
            store.create(f"race/{i // 16}", f"w{i}".encode())
            return 1
        except Conflict:
            return 0
    with ThreadPoolExecutor(16) as pool:
        wins = list(pool.map(create, range(16 * 8)))
    assert [sum(wins[k * 16:(k + 1) * 16]) for k in range(8)] == [1] * 8


def test_unreachable_store_is_transient(tmp_path, seaweed):
    gone = FileStore(tmp_path / "not-mounted")
    with pytest.raises(Transient):
        gone.create("k", b"x")
    assert not (tmp_path / "not-mounted").exists()   # never created: a NAS not mounted stays visible
    cfg = fleet_config(seaweed, "any-bucket")
    cfg["endpoint_url"] = "http://127.0.0.1:9"          # nothing listens on the discard port
    with pytest.raises(Transient):
        open_store(cfg).read("k")


def test_wrong_keys_and_missing_bucket_are_permanent(seaweed):
    cfg = fleet_config(seaweed, seaweed.make_bucket())
    cfg["secret_access_key"] = "wrong-" + cfg["secret_access_key"]
    with pytest.raises(Permanent) as e:
        open_store(cfg).create("k", b"x")
    assert "wrong-" not in str(e.value)
    with pytest.raises(Permanent):
        open_store(fleet_config(seaweed, "no-such-bucket-here")).create("k", b"x")


def test_url_scheme_chooses_the_adapter(tmp_path):
    with pytest.raises(ConfigError):
        open_store({"url": "http://x/y"})
    with pytest.raises(ConfigError):
        open_store({"url": "file://relative/path"})
    assert isinstance(open_store({"url": f"file://{tmp_path}"}), FileStore)
