"""Attacks on the held old keys (agent/ledger/held_keys.py) that found no
defect, kept as regressions: a 号码 amended twice with `requeue
--destination` between, then back to the first, at two destinations; and
`forget-key` given keys and destinations that read as LIKE patterns or SQL,
and a reason of 20,000 characters with terminal control characters. Real
ledgers, the real CLI, real folder destinations."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.integration.test_old_keys_held import held_twice, old_keys
from tests.support.audit import assert_ledger_sound
from tests.support.judged import NUMBER, Site, inbox_site, invoice, number

K1, K2, K3 = NUMBER, number("22222222"), number("33333333")


@pytest.fixture
def two(tmp_path):
    for n in ("a", "b"):
        (tmp_path / n).mkdir()
    site = Site(tmp_path, [{"name": "a", "url": f"folder://{tmp_path / 'a'}"},
                           {"name": "b", "url": f"folder://{tmp_path / 'b'}"}])
    yield site
    site.close()


@pytest.fixture
def inbox(tmp_path):
    yield from inbox_site(tmp_path)


def files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".pdf")


def held(site: Site, doc: int) -> list[tuple]:
    return [(h["destination"], h["key"], h["old"], h["by_row"]) for h in site.ledger.held_keys(doc)]


def test_k1_k2_k3_at_one_destination_then_back_to_k1_names_each_old_copy(two, tmp_path):
    site = two
    doc = site.add(invoice(dt.date.today()), "first")
    site.deliver()
    for k in (K2, K3):
        assert site.cli("requeue", str(doc)).exit_code == 0
        assert site.amend_approved(str(doc), "--set", f"number={k}").exit_code == 0
        assert site.cli("requeue", str(doc), "--destination", "a").exit_code == 0
        site.deliver()
    assert files(tmp_path / "a") == [f"{K1}.pdf", f"{K2}.pdf", f"{K3}.pdf"] and files(tmp_path / "b") == [f"{K1}.pdf"]
    assert held(site, doc) == [("a", K1, True, False), ("a", K2, True, False), ("a", K3, False, True),
                               ("b", K1, True, True)]
    assert_ledger_sound(site.config_path)

    assert site.cli("requeue", str(doc)).exit_code == 0
    assert site.amend_approved(str(doc), "--set", f"number={K1}").exit_code == 0
    assert site.deliver() == []
    assert {n: (r["state"], r["delivered_key"]) for n, r in site.rows(doc).items()} == {
        "a": ("delivered", K1), "b": ("delivered", K1)}
    assert held(site, doc) == [("a", K1, False, True), ("a", K2, True, False), ("a", K3, True, False),
                               ("b", K1, False, True)]
    listed = old_keys(site)
    assert (listed["count"], [(a["destination"], a["key"]) for a in listed["documents"][0]["at"]]) == (
        1, [("a", K2), ("a", K3)])
    report = json.loads(site.cli("reconcile", "--json").stdout)
    assert sorted((c["destination"], c["key"], c["result"]) for c in report["checks"]) == [
        ("a", K1, "confirmed"), ("a", K2, "superseded"), ("a", K3, "superseded"), ("b", K1, "confirmed")]
    assert_ledger_sound(site.config_path)


def test_forget_key_takes_keys_and_reasons_as_text(inbox, tmp_path):
    site = inbox
    doc = held_twice(site, tmp_path / "import")
    for key in ("%", "_", "'", K1[:-1] + "%", K1[:-1] + "_", "' OR 1=1 --"):
        r = site.cli("forget-key", str(doc), "--destination", "inbox", "--key", key, "--reason", "x")
        assert r.exit_code == 1 and "nothing forgotten" in r.stderr, (key, r.stderr)
    r = site.cli("forget-key", str(doc), "--destination", "%", "--key", K1, "--reason", "x")
    assert r.exit_code == 1 and "the ledger lists no key of it at %" in r.stderr
    assert old_keys(site)["count"] == 1

    reason = "\x1b[2J\x1b]0;pwn\x07\r\nFAKE LINE\u202e" + "A" * 20_000
    assert site.cli("forget-key", str(doc), "--destination", "inbox", "--key", K1, "--reason", reason).exit_code == 0
    again = site.cli("forget-key", str(doc), "--destination", "inbox", "--key", K1, "--reason", "again")
    assert again.exit_code == 0 and "FAKE LINE" in again.stdout
    for args in (["forget-key", str(doc), "--destination", "inbox", "--key", K1, "--reason", "x"],
                 ["show", str(doc)], ["status"], ["list"]):
        out = site.cli(*args).output
        assert not any(c in out for c in "\x1b\x07\r\u202e"), args
    assert old_keys(site)["count"] == 0 and site.cli("audit", "verify").exit_code == 0
    assert_ledger_sound(site.config_path)
