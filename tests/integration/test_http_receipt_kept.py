"""A finance system that answers every upload with the whole invoice echoed
back (its lines, the PDF in base64): the delivery counts, and its ledger row
keeps the proof (id, key, the sha256 held), not a megabyte of echo. Against
a real loopback server, through the delivery loop, into a real ledger."""

from __future__ import annotations

import base64
import json
import os

from agent.deliver.base import RAW_KEPT_BYTES, kept_raw
from tests.integration.test_attack18_http import T0, Env, EvilServer  # noqa: F401 - the server and its env

import pytest


@pytest.fixture
def env(tmp_path):
    with EvilServer() as server:
        e = Env(tmp_path, server)
        yield e
        e.ledger.close()


def test_an_echoing_server_delivers_and_its_row_keeps_the_proof_not_the_echo(env):
    doc = env.queue(1)
    echo = base64.b64encode(os.urandom(300_000)).decode()

    def answer(key, handler):
        body = {"code": 0, "msg": "成功", "data": {"pdf": echo, "lines": [{"n": i} for i in range(2000)]},
                "pdf": echo, "id": "SQ-" + key, "key": key, "location": f"/erp/{key}", "note": "x" * 5000}
        return handler.send(201, json.dumps(body, ensure_ascii=False).encode()) or True
    env.server.answer = answer
    assert env.step(T0).outcome == "delivered"
    row = env.row(doc)
    stored = row["receipt"] if isinstance(row["receipt"], str) else json.dumps(row["receipt"], ensure_ascii=False)
    assert len(stored.encode()) < RAW_KEPT_BYTES + 2048
    raw = json.loads(stored)["raw"]
    key = json.loads(stored)["key"]
    assert raw["id"] == "SQ-" + key and raw["key"] == key and raw["location"] == f"/erp/{key}"
    assert raw["code"] == 0 and raw["msg"] == "成功" and "data" not in raw
    assert raw["pdf"].endswith("…") and len(raw["pdf"]) == 201 and "bytes of JSON" in raw["_cut"]


def test_a_small_receipt_is_kept_whole_and_a_huge_non_object_is_named_not_kept():
    small = {"id": "A-1", "key": "K", "lines": [{"n": 1}], "sha256": "ab" * 32}
    assert kept_raw(small) is small
    assert kept_raw(["x" * 20_000]) == {"_cut": kept_raw(["x" * 20_000])["_cut"]}
    assert "bytes of JSON, not kept" in kept_raw(["x" * 20_000])["_cut"]
    # The proof fields come first, whatever the server's order.
    big = {f"f{i}": "y" * 150 for i in range(200)} | {"sha256": "cd" * 32, "id": "B-2"}
    kept = kept_raw(big)
    assert kept["sha256"] == "cd" * 32 and kept["id"] == "B-2"
    assert len(json.dumps(kept, ensure_ascii=False).encode()) <= RAW_KEPT_BYTES
