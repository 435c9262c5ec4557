"""The audit trail's hash chain: `audit verify` over a ledger built by the
real CLI, and over the same ledger damaged the way a person with `sqlite3`
would damage it; `audit export` as auditors open it."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.defaults import DEFAULT_CONFIG
from agent.ledger import Ledger
from agent.ledger.schema import MIGRATIONS
from agent.trail import event_hash

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLES = ("renoyuan__easyofd/original_invoice.xml",
           "kaihu8766-netizen__invoice-precheck/official-gd-special.xml")


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    """The real `fapiao-agent` in its own process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), *args], capture_output=True,
                          timeout=120, env=env, cwd=cfg.parent)


def cli_env(cfg: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """`cli` with `env` added to the environment."""
    full = {**os.environ, **env,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), *args], capture_output=True,
                          timeout=120, env=full, cwd=cfg.parent)


def verify(cfg: Path, *extra: str) -> tuple[int, dict]:
    r = cli(cfg, "audit", "verify", "--json", *extra)
    assert r.returncode in (0, 1), r.stderr.decode()
    return r.returncode, json.loads(r.stdout)


def breaks(report: dict) -> set[tuple[int | None, str]]:
    return {(b["event"], b["code"]) for b in report["breaks"]}


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built_once(tmp_path_factory, samples_dir: Path) -> Path:
    """A ledger made by the real CLI: real samples ingested, one rejected
    with a Chinese reason; its chain verifies clean. Returns its folder.
    Built once per module (three CLI runs); each test damages a copy."""
    site = tmp_path_factory.mktemp("built")
    cfg = site / "agent.toml"
    cfg.write_text(DEFAULT_CONFIG, encoding="utf-8")
    src = site / "drop"
    src.mkdir()
    for i, name in enumerate(SAMPLES):
        (src / f"{i}-{Path(name).name}").write_bytes((samples_dir / name).read_bytes())
    assert cli(cfg, "ingest", str(src)).returncode == 0
    r = cli(cfg, "reject", "1", "--reason", "重复报销，已线下处理", "--yes")
    assert r.returncode == 0, r.stderr.decode()
    code, report = verify(cfg)
    assert (code, report["breaks"]) == (0, [])
    assert report["events"] >= 6
    return site


@pytest.fixture
def built(built_once: Path, tmp_path: Path) -> Path:
    """A fresh copy of `built_once` (config, state and drop folder, the
    state relative to the config) in this test's tmp_path. Returns the config."""
    site = tmp_path / "site"
    shutil.copytree(built_once, site, symlinks=True)
    return site / "agent.toml"


def ledger_file(cfg: Path) -> Path:
    return cfg.parent / "state" / "ledger.sqlite3"


def sql(cfg: Path, statement: str, params: tuple = ()) -> None:
    """Damage the ledger as a person with the sqlite3 module would."""
    with sqlite3.connect(ledger_file(cfg)) as conn:
        conn.execute(statement, params)


def event_rows(cfg: Path) -> list[dict]:
    conn = sqlite3.connect(ledger_file(cfg))
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    conn.close()
    return rows


def test_no_ledger_exits_2_and_creates_none(cfg):
    r = cli(cfg, "audit", "verify")
    assert r.returncode == 2 and b"no ledger" in r.stderr
    assert cli(cfg, "audit", "export", "--since", "2026-01-01", "--csv").returncode == 2
    assert not (cfg.parent / "state").exists()


def test_verify_is_read_only(built):
    before = ledger_file(built).read_bytes()
    os.chmod(ledger_file(built), 0o440)
    try:
        code, report = verify(built)
    finally:
        os.chmod(ledger_file(built), 0o640)
    assert code == 0 and report["head"]["event"] == event_rows(built)[-1]["id"]
    assert ledger_file(built).read_bytes() == before


def test_an_edited_reason_is_found(built):
    sql(built, "UPDATE events SET reason = 'ok' WHERE id = 2")
    code, report = verify(built)
    assert code == 1 and breaks(report) == {(2, "edited")}
    human = cli(built, "audit", "verify")
    assert human.returncode == 1 and b"event 2  edited" in human.stdout


def test_an_edit_with_its_hash_recomputed_is_found_at_the_next_event(built):
    row = event_rows(built)[2]
    row["actor"] = "cli:someone-else"
    sql(built, "UPDATE events SET actor = ?, hash = ? WHERE id = ?",
        (row["actor"], event_hash(row["prev_hash"], row), row["id"]))
    code, report = verify(built)
    assert code == 1 and breaks(report) == {(row["id"] + 1, "unlinked")}


def test_a_deleted_middle_event_is_found(built):
    sql(built, "DELETE FROM events WHERE id = 3")
    code, report = verify(built)
    assert code == 1 and breaks(report) == {(4, "gap"), (4, "unlinked")}


def test_two_events_swapped_are_found(built):
    a, b = event_rows(built)[1:3]
    columns = [k for k in a if k != "id"]
    assignments = ", ".join(f"{k} = ?" for k in columns)
    with sqlite3.connect(ledger_file(built)) as conn:
        conn.execute(f"UPDATE events SET {assignments} WHERE id = ?", (*(b[k] for k in columns), a["id"]))
        conn.execute(f"UPDATE events SET {assignments} WHERE id = ?", (*(a[k] for k in columns), b["id"]))
    code, report = verify(built)
    assert code == 1
    assert {(a["id"], "edited"), (b["id"], "edited")} <= breaks(report)


def test_a_forged_event_is_found_even_with_a_correct_hash(built):
    last = event_rows(built)[-1]
    forged = {"id": last["id"] + 1, "document_id": 2, "at": last["at"], "actor": "cli:财务总监",
              "from_state": "quarantined", "to_state": "valid", "reason": "approved", "details": None}
    digest = event_hash(last["hash"], forged)
    sql(built, "INSERT INTO events (id, document_id, at, actor, from_state, to_state, reason, details, prev_hash, "
               "hash) VALUES (:id, :document_id, :at, :actor, :from_state, :to_state, :reason, :details, :p, :h)",
        {**forged, "p": last["hash"], "h": digest})
    code, report = verify(built)
    assert code == 1 and breaks(report) == {(forged["id"], "head")}


def test_a_forged_event_in_place_of_a_deleted_one_is_found(built):
    rows = event_rows(built)
    forged = {**rows[2], "reason": "forged", "details": None}
    sql(built, "DELETE FROM events WHERE id = ?", (forged["id"],))
    sql(built, "INSERT INTO events (id, document_id, at, actor, from_state, to_state, reason, details, prev_hash, "
               "hash) VALUES (:id, :document_id, :at, :actor, :from_state, :to_state, :reason, :details, "
               ":prev_hash, :hash)", {**forged, "hash": event_hash(forged["prev_hash"], forged)})
    code, report = verify(built)
    assert code == 1 and breaks(report) == {(forged["id"] + 1, "unlinked")}


def test_an_event_written_around_the_ledger_is_unchained(built):
    sql(built, "INSERT INTO events (document_id, at, actor, reason) VALUES (1, '2026-01-01T00:00:00.000000Z', "
               "'cli:x', 'sneaked in')")
    code, report = verify(built)
    last = event_rows(built)[-1]["id"]
    assert code == 1 and breaks(report) == {(last, "unchained"), (last, "head")}


def test_a_cut_tail_is_found_and_stays_found_after_new_events(built, samples_dir, tmp_path):
    last = event_rows(built)[-1]["id"]
    sql(built, "DELETE FROM events WHERE id >= ?", (last - 1,))
    code, report = verify(built)
    assert code == 1 and breaks(report) == {(last - 2, "head")}
    more = tmp_path / "more"
    more.mkdir()
    (more / "x.xml").write_bytes((samples_dir / SAMPLES[0]).read_bytes() + b"<!-- another file -->")
    assert cli(built, "ingest", str(more)).returncode == 0
    code, report = verify(built)
    new = [r["id"] for r in event_rows(built) if r["id"] > last - 2]
    assert new and new[0] == last + 1  # the cut tail's ids are not reused
    assert code == 1 and breaks(report) == {(last + 1, "gap"), (last + 1, "unlinked")}


def test_an_emptied_trail_is_found_by_the_documents_and_applications_left(built):
    # No hash to recompute: delete every event and the head. The chain is
    # then empty and whole, but the documents and the reject's application
    # (filed in `built`) are still there, and each was created with an event.
    docs = [r[0] for r in sqlite3.connect(ledger_file(built)).execute("SELECT id FROM documents ORDER BY id")]
    number = sqlite3.connect(ledger_file(built)).execute("SELECT number FROM applications").fetchone()[0]
    sql(built, "DELETE FROM events")
    sql(built, "DELETE FROM trail_head")
    code, report = verify(built)
    assert code == 1, report
    untraced = [b["message"] for b in report["breaks"] if b["code"] == "untraced"]
    assert [m.split(" has")[0] for m in untraced] == [f"document {d}" for d in docs] + [f"application {number}"]


def test_a_cut_tail_with_its_head_moved_back_is_found_when_it_held_an_application(built):
    # The reject (its application filed, the document moved) is the tail; cut
    # it and move the head back onto the event before: the chain verifies,
    # the application left without its events does not.
    rows = event_rows(built)
    first = min(r["id"] for r in rows if json.loads(r["details"] or "{}").get("application"))
    sql(built, "DELETE FROM events WHERE id >= ?", (first,))
    sql(built, "UPDATE trail_head SET event_id = ?, hash = ?", (first - 1, rows[first - 2]["hash"]))
    code, report = verify(built)
    assert code == 1 and {b["code"] for b in report["breaks"]} == {"untraced"}, report


def test_a_rewritten_chain_is_found_only_against_an_anchor(built):
    """The limit said in `--help`: the hash is not keyed. A full rewrite
    (every later hash and the head) verifies, unless an anchor kept
    elsewhere disagrees."""
    _, before = verify(built)
    anchor = f"{before['head']['event']}:{before['head']['hash']}"
    rows = event_rows(built)
    rows[1]["reason"] = "rewritten"
    prev = rows[1]["prev_hash"]
    with sqlite3.connect(ledger_file(built)) as conn:
        for row in rows[1:]:
            row["prev_hash"], row["hash"] = prev, event_hash(prev, row)
            conn.execute("UPDATE events SET reason = ?, prev_hash = ?, hash = ? WHERE id = ?",
                         (row["reason"], row["prev_hash"], row["hash"], row["id"]))
            prev = row["hash"]
        conn.execute("UPDATE trail_head SET hash = ?", (prev,))
    assert verify(built)[0] == 0
    code, report = verify(built, "--anchor", anchor)
    assert code == 1 and breaks(report) == {(before["head"]["event"], "anchor")}


def test_a_ledger_upgraded_from_schema_15_is_chained(cfg, tmp_path):
    path = ledger_file(cfg)
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:15]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 15")
    conn.execute("INSERT INTO documents (sha256, size, source_kind, received_at, updated_at, state) "
                 "VALUES (?, 1, 'ingest', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', "
                 "'rejected')", ("d" * 64,))
    for i, (to, reason) in enumerate([("captured", "captured"), ("quarantined", "过期"), ("rejected", "作废")]):
        conn.execute("INSERT INTO events (document_id, at, actor, to_state, reason, details) VALUES "
                     "(1, ?, 'cli:old', ?, ?, ?)", (f"2026-01-0{i + 1}T00:00:00.000000Z", to, reason,
                                                     json.dumps({"n": i, "备注": "旧"}, ensure_ascii=False)))
    conn.commit()
    conn.close()
    with Ledger(path) as ledger:
        ledger.note(1, now="2026-02-01T00:00:00.000000Z", actor="test", reason="after the upgrade")
    code, report = verify(cfg)
    assert (code, report["breaks"], report["events"]) == (0, [], 4)
    sql(cfg, "UPDATE events SET details = replace(details, '旧', '新') WHERE id = 1")
    assert breaks(verify(cfg)[1]) == {(1, "edited")}


def test_every_event_is_written_by_the_chained_writer_in_a_transaction(tmp_path):
    writers = [p.relative_to(REPO).as_posix() for d in ("agent", "service") for p in (REPO / d).rglob("*.py")
               if "insert into events" in p.read_text(encoding="utf-8").lower()]
    assert writers == ["agent/ledger/trail.py"]
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        with pytest.raises(RuntimeError):
            ledger._event(None, now="2026-01-01T00:00:00.000000Z", actor="t", from_state=None, to_state=None,
                          reason="outside")


def test_export_csv_for_excel(built):
    sql(built, "UPDATE events SET reason = '=HYPERLINK(\"http://x\",\"y\")' WHERE id = 1")
    r = cli(built, "audit", "export", "--since", "2020-01-01", "--csv")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode("utf-8-sig"))))
    assert [int(x["event"]) for x in rows] == [e["id"] for e in event_rows(built)]
    assert rows[0]["reason"].startswith("'=HYPERLINK")
    rejected = [x for x in rows if x["to_state"] == "rejected"]
    assert [x["reason"].endswith("重复报销，已线下处理") for x in rejected] == [True]
    assert rejected[0]["invoice_number"] and rejected[0]["document"] == "1"
    # The first event's prev_hash is 64 zeros: kept as text for Excel, ="000…".
    assert all(len(x["hash"].strip('="')) == 64 and len(x["prev_hash"].strip('="')) == 64 for x in rows)


@pytest.mark.parametrize("terminal", ["gb18030", "latin-1", "ascii"])
def test_export_is_utf8_whatever_the_terminal_encoding(built, terminal):
    # A zh_CN.GB18030 (or an old latin-1) login: stdout's encoding is not
    # UTF-8, yet the file an auditor opens must be, BOM first, Chinese intact.
    env = {"PYTHONIOENCODING": terminal}
    r = cli_env(built, env, "audit", "export", "--since", "2020-01-01", "--csv")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout == cli(built, "audit", "export", "--since", "2020-01-01", "--csv").stdout
    assert r.stdout.startswith(b"\xef\xbb\xbf") and "重复报销，已线下处理" in r.stdout.decode("utf-8-sig")
    j = cli_env(built, env, "audit", "export", "--since", "2020-01-01", "--json")
    assert j.returncode == 0, j.stderr.decode(errors="replace")
    assert j.stdout == cli(built, "audit", "export", "--since", "2020-01-01", "--json").stdout
    assert any("重复报销" in (e["reason"] or "") for e in json.loads(j.stdout.decode("utf-8"))["events"])


def test_export_since_and_until_filter_by_utc_day(cfg):
    path = ledger_file(cfg)
    with Ledger(path) as ledger:
        for day in ("2026-01-31T23:59:59.999999Z", "2026-02-01T00:00:00.000000Z", "2026-02-02T12:00:00.000000Z",
                    "2026-03-01T00:00:00.000000Z"):
            ledger.note(None, now=day, actor="test", reason=f"at {day}")

    def ats(*args: str) -> list[str]:
        r = cli(cfg, "audit", "export", "--json", *args)
        assert r.returncode == 0, r.stderr.decode()
        return [e["at"][:10] for e in json.loads(r.stdout)["events"]]

    assert ats("--since", "2026-02-01") == ["2026-02-01", "2026-02-02", "2026-03-01"]
    assert ats("--since", "2026-02-01", "--until", "2026-02-02") == ["2026-02-01", "2026-02-02"]
    assert ats("--since", "2026-02-01T08:00:00+08:00", "--until", "2026-02-01") == ["2026-02-01"]
    assert cli(cfg, "audit", "export", "--since", "yesterday", "--json").returncode == 2


def test_export_json_spells_bidi_c1_and_zero_width_characters_escaped(cfg):
    # Every other --json escapes them (textsafe.json_text); the export wrote
    # a reason's right-to-left override raw, reordering the auditor's view.
    reason = "paper copy \u202eredro nepo \x9b2J \u200b\u2028end"
    with Ledger(ledger_file(cfg)) as ledger:
        ledger.note(None, now="2026-02-01T00:00:00.000000Z", actor="test", reason=reason)
    r = cli(cfg, "audit", "export", "--json", "--since", "2026-01-01")
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode("utf-8")
    assert not any(ch in text for ch in "\u202e\x9b\u200b\u2028") and "\\u202e" in text
    assert [e["reason"] for e in json.loads(text)["events"]] == [reason]
