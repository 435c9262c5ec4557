"""Validation over the real samples' true fields (../shared/samples/expected.json).

Invoices are built from expected.json directly so these tests judge the
rules, not extraction; only the `check` command tests at the end read the
sample files themselves.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from agent.model import FIELD_NAMES, Invoice
from agent.validate import ValidationSettings, has_errors, region_of, validate

# Test/fictional invoices whose seller ids fail the check (see their notes).
FAKE_SELLERS = {
    "kaihu8766-netizen__invoice-precheck/official-gd-special.xml": "91440000000000000X",
    "ofdrw__ofdrw/999.ofd": "91500102563638729E",
    "ofdrw__ofdrw/draw_param_ref.ofd": "91110101202001201",
}


def invoice_from(expected: dict) -> Invoice:
    """The invoice expected.json describes, every field as read from XML."""
    return Invoice.from_dict({**expected, "sources": dict.fromkeys(FIELD_NAMES, "xml")})


def judge(expected: dict, **settings) -> list:
    inv = invoice_from(expected)
    today = dt.date.fromisoformat(expected["date"]) + dt.timedelta(days=30) if expected["date"] else dt.date(2026, 1, 1)
    return validate(inv, ValidationSettings(**settings), today=today)


def test_fake_sellers_are_flagged(expected_fields):
    for name, seller in FAKE_SELLERS.items():
        problems = judge(expected_fields[name])
        assert has_errors(problems), name
        flagged = {p.field for p in problems if p.code == "tax-id-check-digit" and p.severity == "error"}
        assert "seller_tax_id" in flagged, name
    # The fictional 数电 XML has a fake buyer id too.
    gd = judge(expected_fields["kaihu8766-netizen__invoice-precheck/official-gd-special.xml"])
    assert {p.field for p in gd if p.code == "tax-id-check-digit"} == {"seller_tax_id", "buyer_tax_id"}


def test_genuine_invoices_have_no_problems(expected_fields):
    genuine = [k for k, v in expected_fields.items() if v["is_invoice"] and k not in FAKE_SELLERS]
    assert len(genuine) >= 14
    for name in genuine:
        problems = judge(expected_fields[name])
        if expected_fields[name]["total"] is None:
            # The 价税合计 cannot be read off the paper (the taxi fare's is
            # under the seal): that, and nothing else, is left for 补录.
            assert [(p.code, p.field) for p in problems] == [("amount-sum", "total")], name
        else:
            assert problems == [], name


def test_samples_expire_and_come_from_their_regions(expected_fields):
    one = expected_fields["ofdrw__ofdrw/1.ofd"]
    problems = validate(invoice_from(one), ValidationSettings(expected_region="11"), today=dt.date(2026, 1, 1))
    assert {p.code: p.severity for p in problems} == {"expired": "error", "region-unexpected": "warning"}
    assert "33 浙江" in next(p.message for p in problems if p.code == "region-unexpected")
    regions = {k: region_of(v["code"], v["number"]) for k, v in expected_fields.items() if v["is_invoice"]}
    assert regions["ofdrw__ofdrw/20240531141733.ofd"] == ("11", "北京")
    assert regions["ofdrw__ofdrw/999.ofd"] == ("50", "重庆")
    assert regions["GitHub1he__QrToInvoice/S2.jpg"] == ("37", "山东")
    assert all(regions.values())


def test_company_rule_on_real_buyers(expected_fields):
    mine = ("91420100MA7HTDC99N",)  # 武汉物图科技 got the two ride-hailing invoices
    got = {k: {p.code for p in judge(v, company_tax_ids=mine)}
           for k, v in expected_fields.items() if v["is_invoice"] and k not in FAKE_SELLERS}
    ours = {k for k, codes in got.items() if "buyer-not-company" not in codes}
    assert ours == {"kudeerliu48-web__fapiaohezi/8ed207ec_滴滴电子发票.pdf",
                    "kudeerliu48-web__fapiaohezi/604c2a6b_17.14元-2025年10月07日18时40分腾讯出行电子发票-.pdf"}


@pytest.mark.parametrize("field,value,code", [
    ("total", "526.01", "amount-sum"), ("total_in_words", "伍佰贰拾柒圆整", "words-mismatch"),
    ("number", "8308964", "number-format"), ("kind", "20", "code-type-mismatch"),
])
def test_one_wrong_value_on_a_real_invoice_quarantines_it(expected_fields, field, value, code):
    one = dict(expected_fields["ofdrw__ofdrw/1.ofd"], **{field: value})
    problems = judge(one)
    assert has_errors(problems) and code in {p.code for p in problems}


# `fapiao-agent check` runs the real extraction on the real files.

def run_check(args, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from service.cli import main

    monkeypatch.chdir(tmp_path)  # no var/fapiao-agent.toml here: defaults apply
    monkeypatch.delenv("FAPIAO_AGENT_CONFIG", raising=False)
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_check_flags_a_test_invoice_and_passes_a_genuine_one(samples_dir, tmp_path, monkeypatch):
    fake, genuine = samples_dir / "ofdrw__ofdrw/999.ofd", samples_dir / "ofdrw__ofdrw/1.ofd"
    result = run_check(["check", "--json", "--today", "2020-08-20", str(fake), str(genuine)], tmp_path, monkeypatch)
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(fake), str(genuine)]
    assert [(p["code"], p["severity"], p["field"]) for p in records[0]["problems"]] == [
        ("tax-id-check-digit", "error", "seller_tax_id")]
    assert records[1]["problems"] == [] and records[1]["number"] == "83089647"

    ok = run_check(["check", "--today", "2020-08-20", str(genuine)], tmp_path, monkeypatch)
    assert ok.exit_code == 0 and "VALID" in ok.stdout and "83089647" in ok.stdout


def test_check_options_and_config(samples_dir, tmp_path, monkeypatch):
    genuine = str(samples_dir / "ofdrw__ofdrw/1.ofd")
    old = run_check(["check", "--today", "2020-08-20", "--max-age-days", "10", genuine], tmp_path, monkeypatch)
    assert old.exit_code == 1 and "expired" in old.stdout
    config = tmp_path / "c.toml"
    config.write_text('[company]\ntax_ids = ["91420100MA7HTDC99N"]\n[validation]\nexpected_region = "11"\n',
                      encoding="utf-8")
    other = run_check(["--config", str(config), "check", "--today", "2020-08-20", genuine], tmp_path, monkeypatch)
    assert other.exit_code == 1
    assert "buyer-not-company" in other.stdout and "region-unexpected" in other.stdout
    config.write_text('[validation]\nrules = { "amount-summ" = "off" }\n', encoding="utf-8")
    bad = run_check(["--config", str(config), "check", genuine], tmp_path, monkeypatch)
    assert bad.exit_code == 2 and "validation.rules.amount-summ" in bad.output


def test_check_reports_unreadable_files(tmp_path, monkeypatch):
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"not a pdf at all")
    result = run_check(["check", str(junk)], tmp_path, monkeypatch)
    assert result.exit_code == 1 and "FAILED" in result.output
