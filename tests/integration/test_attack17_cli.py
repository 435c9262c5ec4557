"""Issue 17 attacked from outside: `search`, `list` and `audit export` given
what a careless operator or a script types, as the real CLI in its own
process. A query is either answered or refused with a message about what
was typed (exit 2), never a traceback and never an error blamed on the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_search_cli import _docs
from tests.support.judged import Site

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path, [])
    _docs(s)
    yield s
    s.close()


def _search(site: Site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(site.config_path), "search", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("dates", ["9999-12", "2026-11..9999-12", "9999-12-31..9999-12"])
def test_a_month_at_the_end_of_the_calendar_is_read_not_a_traceback(site, dates):
    r = _search(site, "--json", "--date", dates)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr          # December 9999 is a month like another


def test_a_query_of_thousands_of_words_is_refused_as_a_query_not_blamed_on_the_ledger(site):
    r = _search(site, "--json", " ".join(["科技"] * 1500))
    assert r.returncode == 2
    assert "cannot search ledger" not in r.stderr, r.stderr
    assert "words" in r.stderr, r.stderr
    assert _search(site, "--json", " ".join(["科技"] * 40)).returncode == 0   # a long query still runs


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(site.config_path), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("args", [
    ("list", "--since", "0001-01-01"),                               # "everything": a year-0 traceback
    ("list", "--since", "9999-12-31"),
    ("audit", "export", "--since", "0001-01-01T00:00+08:00", "--json"),
    ("audit", "export", "--since", "2026-01-01", "--until", "9999-12-31", "--json"),
])
def test_a_day_at_either_end_of_the_calendar_is_read_or_refused_never_a_traceback(site, args):
    r = _cli(site, *args)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 2), r.stderr


def test_since_the_first_day_of_the_calendar_lists_every_document(site):
    every = _cli(site, "list", "--json", "--limit", "0")
    assert every.returncode == 0
    since = _cli(site, "list", "--json", "--limit", "0", "--since", "0001-01-01")
    assert since.returncode == 0, since.stderr
    assert since.stdout == every.stdout and len(every.stdout.splitlines()) == 4
    assert _cli(site, "list", "--json", "--since", "9999-12-31").stdout == ""


@pytest.mark.parametrize("command", [("list",), ("quarantine",), ("search", "科技")])
def test_a_limit_beyond_sqlites_integers_is_refused_as_usage_not_a_traceback(site, command):
    # "as many as possible" typed as a big number: 2**64 did not fit SQLite's
    # integer, and the command died with "datatype mismatch" and a traceback.
    r = _cli(site, *command, "--limit", str(2 ** 64))
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2 and "--limit" in r.stderr, r.stderr
    assert _cli(site, *command, "--limit", str(2 ** 40)).returncode in (0, 1), command   # big but sane: runs


@pytest.mark.parametrize("extra", [(), ("--limit", "0"), ("--sort", "amount")])
def test_a_state_named_twice_lists_each_document_once(site, extra):
    # A script building `--state X` per wanted state, or a person repeating
    # one: each state's walk was UNION ALL'ed once per mention, and every
    # document came out twice (a CSV summed in Excel doubles the total).
    states = [json.loads(line)["state"] for line in _cli(site, "list", "--json", "--limit", "0").stdout.splitlines()]
    for state in sorted(set(states)):
        once = _cli(site, "search", "--json", "--state", state, *extra)
        twice = _cli(site, "search", "--json", "--state", state, "--state", state, *extra)
        assert once.returncode == twice.returncode == 0, twice.stderr
        ids = [json.loads(line)["id"] for line in twice.stdout.splitlines()]
        assert len(ids) == len(set(ids)) == states.count(state), (state, ids)
        assert twice.stdout == once.stdout


def test_a_file_name_that_is_not_utf8_is_printed_escaped_never_as_raw_bytes(site, tmp_path):
    # Linux names are bytes. Python holds a byte that is no UTF-8 as a lone
    # surrogate and prints it back as the raw byte: 0x9b is CSI on a terminal
    # that takes 8-bit controls, and a raw 0xff makes the output no UTF-8 at
    # all (a pipe into a UTF-8 reader fails). Shown as \x9b, like `ls -b`.
    inbox = tmp_path / "drop"
    inbox.mkdir()
    for raw in (b"c1\x9b31m.pdf", b"latin1-\xe9t\xe9.pdf"):
        with open(bytes(inbox) + b"/" + raw, "wb") as f:
            f.write(b"%PDF-1.4 " + raw)
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(site.config_path), "ingest",
                        "--no-process", str(inbox)], capture_output=True, timeout=120, cwd=REPO)
    out = r.stdout + r.stderr
    text = out.decode("utf-8")    # strict: raised on the raw byte
    assert not any("\x80" <= ch <= "\x9f" for ch in text)
    assert "c1\\x9b31m.pdf" in text and "latin1-\\xe9t\\xe9.pdf" in text, text
