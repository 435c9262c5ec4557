"""Every hostile case through one real daemon: it stays up, and each case is
refused or quarantined with a clear reason, its original kept in the vault."""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.vault import Vault
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.hostile import special
from tests.hostile.cases import CASES, Case
from tests.support.audit import assert_ledger_sound

SETTLED_STATES = {"quarantined", "not_invoice"}
WAIT_S = 90


@dataclass
class Outcome:
    """What the ledger says about one case."""

    documents: list = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    refusals: int = 0
    refused_sha256: list[str] = field(default_factory=list)


@dataclass
class Run:
    daemon: DaemonUnderTest
    made: dict[str, bytes | None]  # case id -> the regular file's bytes (None: not a regular file)
    skipped: dict[str, str]
    outcomes: dict[str, Outcome]
    vault: Vault
    alive: bool


def make(case: Case, folder: Path) -> bytes | None:
    if case.maker is not None:
        case.maker(folder, case.id)
        return case.content(case.id) if case.content else None
    data = case.content(case.id)
    if case.name is not None:
        special.raw_name(folder, case.name(case.id), data)
    else:
        (folder / f"{case.id}.{case.ext}").write_bytes(data)
    return data


def observe(d: DaemonUnderTest, made: dict[str, bytes | None]) -> dict[str, Outcome]:
    with d.ledger() as led:
        refusals = led.refusals(limit=1_000_000)
        docs = led.list_documents(limit=0, sort="id")
        sources = {doc.id: led.sources(doc.id) for doc in docs}
        last_reason = {doc.id: (led.events(doc.id)[-1].reason or "") for doc in docs}
    by_sha: dict[str, list] = {}
    for doc in docs:
        by_sha.setdefault(doc.sha256, []).append(doc)
    out = {}
    for case in CASES:
        o = Outcome()
        data = made.get(case.id)
        related = list(by_sha.get(hashlib.sha256(data).hexdigest(), [])) if data is not None else []
        if case.expect == "archive" and data is not None:  # the documents that came out of it
            digest = hashlib.sha256(data).hexdigest()
            related += [doc for doc in docs if any((s.details or {}).get("archive_sha256") == digest
                                                   for s in sources[doc.id])]
        if case.folder == "mail":
            related = [doc for doc in docs if any(case.id in str((s.details or {}).get("message_id"))
                                                  for s in sources[doc.id])]
        o.documents = related
        for doc in related:
            o.evidence += [p.get("message", "") for p in doc.problems] + [last_reason[doc.id]]
        for r in refusals:
            text = f"{r['source']} {r['name']} {r['reason']}"
            if case.id in text:
                o.refusals += 1
                if r.get("sha256"):
                    o.refused_sha256.append(r["sha256"])
                o.evidence.append(f"{r['reason']}" if case.folder == "scan" else f"{r['name']}: {r['reason']}")
        out[case.id] = o
    return out


def settled(case: Case, o: Outcome) -> bool:
    if case.expect == "absent":
        return True
    if any(doc.state not in SETTLED_STATES for doc in o.documents):
        return False
    return bool(o.evidence) and re.search(case.reason, " | ".join(o.evidence)) is not None


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("hostile")
    d = DaemonUnderTest(root, settle=0.3, extra="[mail]\nmax_message_mb = 2\n")
    d.start()
    made, skipped = {}, {}
    try:
        for case in CASES:
            try:
                made[case.id] = make(case, root / case.folder)
            except special.NotPermitted as e:
                skipped[case.id] = str(e)
        deadline = time.monotonic() + WAIT_S
        while True:
            outcomes = observe(d, made)
            pending = [c.id for c in CASES if c.id not in skipped and not settled(c, outcomes[c.id])]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # a late second capture of anything would show now
        outcomes = observe(d, made)
        alive = d.proc.poll() is None
        yield Run(d, made, skipped, outcomes, Vault(root / "state" / "vault"), alive)
    finally:
        d.stop()


def test_the_corpus_is_big_and_its_files_are_distinct():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    blobs = [c.content(c.id) for c in CASES if c.content is not None]
    assert len({hashlib.sha256(b).hexdigest() for b in blobs}) == len(blobs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_is_refused_or_quarantined_with_a_clear_reason(run: Run, case: Case):
    if case.id in run.skipped:
        pytest.skip(run.skipped[case.id])
    o = run.outcomes[case.id]
    data = run.made[case.id]
    shown = " | ".join(o.evidence)[:2000]
    if case.expect == "absent":
        assert not o.documents, f"{case.id}: a file behind a symlinked folder was captured"
        return
    assert o.evidence, f"{case.id}: no refusal and no document says what became of it"
    assert re.search(case.reason, " | ".join(o.evidence)), f"{case.id}: expected /{case.reason}/, got: {shown}"
    for doc in o.documents:
        assert doc.state in SETTLED_STATES, f"{case.id}: document {doc.id} is {doc.state}"
        assert run.vault.verify(doc.sha256), f"{case.id}: vault object {doc.sha256} missing or wrong"
    if case.expect == "quarantined":
        assert o.documents, f"{case.id}: the original is not in the ledger"
        assert run.vault.verify(hashlib.sha256(data).hexdigest())
    elif case.expect == "refused":
        assert o.refusals and not o.documents
    elif case.expect == "refused-kept":
        digest = hashlib.sha256(data).hexdigest()
        assert o.refusals and not o.documents, f"{case.id}: refused by content at intake, never a document"
        assert digest in o.refused_sha256, f"{case.id}: the refusal does not name the file's bytes"
        assert run.vault.verify(digest), f"{case.id}: the refused original is not kept in the vault"
    elif case.expect == "archive":
        digest = hashlib.sha256(data).hexdigest()
        assert o.documents and all(doc.sha256 != digest for doc in o.documents), \
            f"{case.id}: its invoice files are documents, the archive itself is none"
        assert run.vault.verify(digest), f"{case.id}: the archive itself is not kept"
    elif case.expect == "mail":
        assert run.vault.verify(hashlib.sha256(data).hexdigest()), f"{case.id}: the message itself is not kept"


def test_the_daemon_stayed_up_and_no_reader_crashed(run: Run):
    assert run.alive, "\n".join(run.daemon.lines[-40:])
    bad = [l for l in run.daemon.lines if "Traceback" in l or "unexpected error" in l]
    assert not bad, bad[:5]
    internal = [(cid, e) for cid, o in run.outcomes.items() for e in o.evidence if e.startswith("internal")]
    assert not internal, internal


def test_names_from_mail_cannot_carry_paths_or_header_lines(run: Run):
    with run.daemon.ledger() as led:
        names = [s.original_name for doc in led.list_documents(limit=0, sort="id")
                 for s in led.sources(doc.id) if s.source_kind == "email"]
    assert names
    for name in names:
        assert "/" not in name and "\\" not in name and not name.startswith(".."), name
        assert not re.search(r"[\r\n\x00]", name), repr(name)


def test_a_file_name_cannot_forge_a_log_line(run: Run):
    assert not any(l.startswith("level=") or "\nlevel=error" in l for l in run.daemon.lines)
    assert not any(l.lstrip().startswith("level=error msg=forged") for l in run.daemon.lines)


def test_nothing_outside_the_watched_folders_was_read_or_written(run: Run):
    root = run.daemon.root
    assert not list(Path("/tmp").glob("h68-mail-zip-traversal-escaped.pdf"))
    assert not (root / "nowhere").exists()
    assert (root / "h29-symlink-dir-outside" / "secret.pdf").read_bytes() == special.outside_file_content(
        "h29-symlink-dir")
    assert not any(os.path.exists(p) for p in ("/etc/cron.d/h68-mail-zip-traversal.pdf",))


def test_the_ledger_is_sound_after_the_whole_corpus(run: Run):
    assert_ledger_sound(run.daemon.config)
