"""Documents put through the real pipeline's judgement, for tests of duplicates and amends.

Each document is captured with its own bytes in a real vault (so the delivery
loop can send it), read as the given invoice and judged by `judgement.judge`,
exactly as `pipeline.apply` does after extraction.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Iterator, Sequence

from agent.judgement import judge
from agent.ledger import Ledger
from agent.ledger.documents import Step
from agent.model import Invoice, State
from agent.pipeline import invoice_columns
from agent.validate import ValidationSettings
from agent.vault import Vault

SETTINGS = ValidationSettings()
SELLER = "91110108MA01ABCD2H"       # a valid 统一社会信用代码
BAD_SELLER = "91110108MA01ABCD2X"   # the same with a wrong check character
BUYER = "91310115MA1K3XY40A"
INVOICE_DATE = dt.date.today() - dt.timedelta(days=10)


def number(tail: str = "12345678") -> str:
    """A 20-digit 数电 number of INVOICE_DATE's year (its first two digits must match)."""
    return f"{INVOICE_DATE.year % 100:02d}1100000000{tail:0>8}"


NUMBER = number()


def invoice(today: dt.date, *, source: str = "xml", **changes) -> Invoice:
    """A 数电 invoice dated INVOICE_DATE that passes validation on `today`
    (any day up to 300 days later), with `changes`
    (a field set to None is left out, as a scan that did not read it)."""
    good = dict(kind="32", number=NUMBER, date=INVOICE_DATE,
                amount=Decimal("100.00"), tax=Decimal("13.00"), total=Decimal("113.00"),
                total_in_words="壹佰壹拾叁圆整", seller_name="北京某某科技有限公司", seller_tax_id=SELLER,
                buyer_name="上海某某有限公司", buyer_tax_id=BUYER)
    inv = Invoice()
    for name, value in {**good, **changes}.items():
        if value is not None:
            inv.offer(name, value, source)
    return inv


def add_judged(ledger: Ledger, vault: Vault, inv: Invoice, label: str, *, destinations: Sequence[str],
               today: dt.date, now: str, actor: str = "daemon:1") -> int:
    """Capture a file with bytes of its own (`label`), read it as `inv` and
    judge it as the pipeline does; returns the document id."""
    stored = vault.put_bytes(f"%PDF-1.4\n% copy {label}\n".encode() + b"0" * 500 + b"\n%%EOF\n")
    with ledger.transaction():
        doc_id, _ = ledger.add_document(sha256=stored.sha256, size=stored.size, media_type="application/pdf",
                                        source_kind="ingest", source="/in", original_name=f"{label}.pdf",
                                        original_path=f"/in/{label}.pdf", now=now, actor=actor)
        # As agent/pipeline.py does: the reading written with its judgement.
        judge(ledger, doc_id, inv, settings=SETTINGS, destinations=destinations, today=today, now=now,
              actor=actor, before=[Step(State.EXTRACTED, f"read {len(inv.fields)} fields",
                                        columns=invoice_columns(inv))], expect=State.CAPTURED)
    return doc_id


def duplicate_violations(ledger: Ledger) -> list[str]:
    """Every duplicate that does not point at a live document with its own
    key, and every key held by more than one live document (what `audit
    ledger` asserts), as readable lines; empty when the ledger is sound."""
    bad = []
    dead = ("duplicate", "rejected", "not_invoice", "captured")
    for row in ledger.conn.execute(
            "SELECT d.id, d.invoice_key, d.duplicate_of, t.state AS t_state, t.invoice_key AS t_key "
            "FROM documents d LEFT JOIN documents t ON t.id = d.duplicate_of WHERE d.state = 'duplicate'"):
        if row["t_state"] is None or row["t_state"] in dead or row["t_key"] != row["invoice_key"]:
            bad.append(f"document {row['id']} ({row['invoice_key']}) is a duplicate of {row['duplicate_of']} "
                       f"({row['t_state']}, {row['t_key']})")
    for key, ids in ledger.conn.execute(
            "SELECT invoice_key, group_concat(id) FROM documents WHERE invoice_key IS NOT NULL "
            f"AND state NOT IN ({','.join('?' * len(dead))}) GROUP BY invoice_key HAVING count(*) > 1", dead):
        bad.append(f"key {key} has several live documents: {ids}")
    return bad


class Site:
    """A config file, its ledger and vault, and its destinations opened for
    real, as the daemon and the CLI see them. `cli(...)` runs the real CLI
    in this process; `deliver()` runs the delivery step for every destination
    until nothing is due, at the real time (the CLI stamps rows with it)."""

    def __init__(self, tmp_path, destinations: list[dict]):
        import random
        import textwrap

        from agent.config import load_config
        from agent.deliver import open_destination
        from agent.deliver.loop import Gate
        from agent.deliver.retry import DeliveryPolicy

        self.config_path = tmp_path / "agent.toml"
        text = '[agent]\nstate_dir = "state"\n[validation]\nmax_age_days = 360\n'
        for d in destinations:
            text += "[[destination]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in d.items())
        self.config_path.write_text(textwrap.dedent(text), encoding="utf-8")
        self.config_path.chmod(0o600)
        self.cfg = load_config(self.config_path)
        self.ledger = Ledger(self.cfg.ledger_path)
        self.vault = Vault(self.cfg.vault_dir)
        self.names = [d["name"] for d in destinations]
        self.dests = {e["name"]: open_destination(e) for e in self.cfg.destinations}
        self.policies = {e["name"]: DeliveryPolicy.from_config(e) for e in self.cfg.destinations}
        self.gates = {n: Gate.fresh(p, tz=dt.timezone.utc) for n, p in self.policies.items()}
        self.rng = random.Random(3)

    def add(self, inv: Invoice, label: str) -> int:
        """A new document read as `inv`, judged now."""
        return add_judged(self.ledger, self.vault, inv, label, destinations=self.names, today=dt.date.today(),
                          now=_now())

    def cli(self, *args: str, env: dict | None = None):
        from click.testing import CliRunner

        from service.cli import main

        return CliRunner().invoke(main, ["--config", str(self.config_path), *args], env=env,
                                  catch_exceptions=False)

    def amend_approved(self, *args: str):
        """`amend ARGS` (a reason added when none is given); when it waits for
        four eyes, `approve` it as another person (as root, a trusted SUDO_UID
        names `nobody`) and return that result instead."""
        import re

        if "--reason" not in args:
            args = (*args, "--reason", "typed from the paper copy")
        filed = self.cli("amend", *args)
        pending = re.match(r"(BL-\d{8}-\d{4}) filed: ", filed.stdout)
        if pending is None:
            return filed
        return self.cli("approve", pending[1], env={"SUDO_UID": "65534"})

    def deliver(self) -> list:
        """Every due delivery of every destination, each step's Result in order."""
        from agent.deliver.loop import deliver_step

        results = []
        for name, dest in self.dests.items():
            for _ in range(50):
                r = deliver_step(self.ledger, dest, self.policies[name], self.gates[name], vault=self.vault,
                                 now=dt.datetime.now(dt.timezone.utc), rng=self.rng, lease_s=60, token="t",
                                 actor="test", tz=dt.timezone.utc)
                if r is None:
                    break
                results.append(r)
        return results

    def state(self, doc_id: int) -> str:
        return self.ledger.get(doc_id).state

    def rows(self, doc_id: int) -> dict[str, dict]:
        """The document's delivery rows by destination."""
        return {r["destination"]: r for r in self.ledger.deliveries_of(doc_id)}

    def close(self) -> None:
        self.ledger.close()


def inbox_site(tmp_path) -> Iterator[Site]:
    """A Site delivering to one folder destination, `inbox` (tmp_path/import),
    closed after: the body of a test file's `site` fixture
    (`yield from inbox_site(tmp_path)`)."""
    (tmp_path / "import").mkdir()
    site = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
    yield site
    site.close()


def _now() -> str:
    from agent.ledger import utc

    return utc(dt.datetime.now(dt.timezone.utc))


def _toml(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
