"""What a finance system's answer leaves in the ledger: at most 8 KiB of it,
the proof first, every text storable. Against a real loopback server,
through the delivery loop, into a real ledger: a system that echoes the
whole invoice back (its lines, the PDF in base64), one that nests its id
under "data", one that sends half an emoji or a megabyte-long id."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest

from agent.deliver.base import RAW_KEPT_BYTES, kept_raw
from agent.redact import remember
from tests.integration.test_attack18_http import T0, TOKEN, Env, EvilServer


@pytest.fixture
def env(tmp_path):
    with EvilServer() as server:
        e = Env(tmp_path, server)
        yield e
        e.ledger.close()


def answering(env, body_of):
    env.server.answer = lambda key, handler: handler.send(201, body_of(key)) or True


def stored_receipt(env, doc) -> dict:
    row = env.row(doc)
    assert row["state"] == "delivered", row
    text = row["receipt"] if isinstance(row["receipt"], str) else json.dumps(row["receipt"], ensure_ascii=False)
    assert len(text.encode()) < RAW_KEPT_BYTES + 2048
    return json.loads(text)


def test_an_echoing_server_delivers_and_its_row_keeps_the_proof_not_the_echo(env):
    doc = env.queue(1)
    echo = base64.b64encode(os.urandom(300_000)).decode()
    answering(env, lambda key: json.dumps({
        "code": 0, "msg": "成功", "data": {"pdf": echo, "lines": [{"n": i} for i in range(2000)]},
        "pdf": echo, "id": "SQ-" + key, "key": key, "location": f"/erp/{key}", "note": "x" * 5000,
        "_cut": "nothing was cut"}, ensure_ascii=False).encode())
    assert env.step(T0).outcome == "delivered"
    receipt = stored_receipt(env, doc)
    raw, key = receipt["raw"], receipt["key"]
    assert raw["id"] == "SQ-" + key and raw["key"] == key and raw["location"] == f"/erp/{key}"
    assert raw["code"] == 0 and raw["msg"] == "成功" and "data" not in raw
    assert raw["pdf"].endswith("…") and len(raw["pdf"]) == 201
    # Our note sits beside raw: the server's own "_cut" neither hides nor fakes it.
    assert "bytes of JSON" in receipt["raw_cut"] and raw["_cut"] == "nothing was cut"


def test_an_id_nested_under_data_survives_the_cut(env):
    doc = env.queue(1)
    answering(env, lambda key: json.dumps({"code": 0, "data": {"id": "NID-1", "key": key, "blob": "z" * 20_000},
                                           "trace": "t" * 20_000}).encode())
    assert env.step(T0).outcome == "delivered"
    raw = stored_receipt(env, doc)["raw"]
    assert raw["data"] == {"id": "NID-1", "key": raw["data"]["key"]} and raw["code"] == 0


def test_half_an_emoji_or_a_huge_id_is_stored_and_counted_once(env):
    docs = [env.queue(1), env.queue(2)]
    bodies = iter([
        lambda key: b'{"key": "%s", "id": "R-1", "note": "\\ud83d"}' % key.encode(),   # a lone surrogate
        lambda key: json.dumps({"key": key, "id": "I" * 900_000}).encode(),
    ])
    env.server.answer = lambda key, handler: handler.send(201, next(bodies)(key)) or True
    assert env.step(T0).outcome == "delivered"
    assert env.step(T0 + dt.timedelta(seconds=1)).outcome == "delivered"
    first, second = (stored_receipt(env, d) for d in docs)
    assert first["raw"]["note"] == "\\ud83d" and first["remote_id"] == "R-1"
    assert len(second["remote_id"]) == 201 and second["remote_id"].endswith("…")
    assert sum(env.server.posts.values()) == 2  # each sent once: no resend of a stored delivery


def test_a_secrets_head_left_at_the_end_of_a_cut_is_masked():
    class Owner:
        pass
    owner = Owner()  # the secret is redacted while its owner lives, as a destination's is
    remember(owner, TOKEN)
    half = TOKEN[:13]
    raw = {"message": "x" * 187 + half + " and more text after it", "pad": "p" * 9000}
    kept, cut = kept_raw(raw)
    assert cut and half not in json.dumps(kept) and kept["message"].endswith("…")
    assert TOKEN[:4] not in kept["message"]  # masked whole, not cut down to a shorter head


def test_a_small_receipt_is_kept_whole_and_a_huge_non_object_is_named_not_kept():
    small = {"id": "A-1", "key": "K", "lines": [{"n": 1}], "sha256": "ab" * 32}
    assert kept_raw(small) == (small, None)
    kept, cut = kept_raw(["x" * 20_000])
    assert kept == {} and "not kept" in cut
    # The proof fields come first, whatever the server's order; keys too long are left out.
    big = {f"f{i}": "y" * 150 for i in range(200)} | {"sha256": "cd" * 32, "id": "B-2", "k" * 300: 1}
    kept, cut = kept_raw(big)
    assert kept["sha256"] == "cd" * 32 and kept["id"] == "B-2" and "k" * 300 not in kept
    assert len(json.dumps(kept, ensure_ascii=False).encode()) <= RAW_KEPT_BYTES


@pytest.mark.parametrize("status, outcome, row_state", [(400, "permanent", "quarantined"),
                                                        (500, "transient", "queued")])
def test_half_an_emoji_in_a_refusal_is_recorded_as_that_refusal(env, status, outcome, row_state):
    # The server's words went into last_error as they were, the row's write
    # failed, and a permanent refusal came back as a transient internal error.
    doc = env.queue(1)
    env.server.answer = lambda key, handler: handler.send(status, b'{"message": "bad \\ud83d thing"}') or True
    result = env.step(T0)
    assert (result.outcome, result.row_state) == (outcome, row_state)
    assert env.row(doc)["last_error"].endswith(f"{status} bad \\ud83d thing")
