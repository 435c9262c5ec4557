"""Every validation rule, passing and failing, plus settings and the stage's guarantees."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.model import FIELD_NAMES, Conflict, Invoice, LineItem, Problem
from agent.validate import RULES, ValidationSettings, has_errors, validate

TODAY = dt.date(2025, 11, 20)
D = Decimal

# Real invoices (ofdrw 1.ofd and a 数电 DiDi invoice), which pass every rule.
OLD_STYLE = {
    "kind": "10", "code": "033002000211", "number": "83089647", "date": dt.date(2025, 7, 23),
    "check_code": "16197833567414507415", "amount": D("510.68"), "tax": D("15.32"),
    "total": D("526.00"), "total_in_words": "伍佰贰拾陆圆整", "buyer_name": "江苏京利华新材料有限公司",
    "buyer_tax_id": "91320115MA202UKD7X", "seller_name": "兰溪市悦济舫餐厅",
    "seller_tax_id": "92330781MA2EDMFU50",
}
SHUDIAN = {
    "kind": "32", "number": "25317000002856140513", "date": dt.date(2025, 11, 8),
    "amount": D("71.07"), "tax": D("2.13"), "total": D("73.20"), "total_in_words": "柒拾叁圆贰角整",
    "buyer_name": "武汉物图科技有限公司", "buyer_tax_id": "91420100MA7HTDC99N",
    "seller_name": "上海滴滴畅行科技有限公司", "seller_tax_id": "91310114MA1GW61J6U",
}


def make(base=OLD_STYLE, items=(), **changes) -> Invoice:
    inv = Invoice()
    for name, value in {**base, **changes}.items():
        if value is not None:
            inv.offer(name, value, "xml")
    inv.items = [LineItem(**i) for i in items]
    return inv


def codes(inv: Invoice, s: ValidationSettings | None = None, **kw) -> set[str]:
    return {p.code for p in validate(inv, s or ValidationSettings(), today=TODAY, **kw)}


COMPANY = ValidationSettings(company_tax_ids=("91320115MA202UKD7X",), company_names=("江苏京利华新材料有限公司",))

# code -> (settings, a passing invoice, a failing invoice)
CASES = {
    "number-format": [(None, make(), make(number="8308964")),
                      (None, make(SHUDIAN), make(SHUDIAN, number="24317000002856140513")),
                      (None, make(SHUDIAN), make(SHUDIAN, number="25997000002856140513")),
                      (None, make(SHUDIAN), make(SHUDIAN, number="83089647")),
                      (None, make(), make(number=None))],
    "code-format": [(None, make(), make(code="333002000211")),
                    (None, make(kind=None, code="111001981004"), make(kind=None, code="311001981004")), (None, make(), make(code="03300200021")),
                    (None, make(code="144031539110"), make(code="099002000211"))],
    "code-type-mismatch": [(None, make(), make(kind="20")), (None, make(code="052002100113", kind="20"), make(kind="04")),
                           (None, make(SHUDIAN), make(SHUDIAN, code="033002000211", number="83089647")),
                           (None, make(), make(code=None, number="25317000002856140513"))],
    "title-kind-mismatch": [(None, make(title="浙江增值税电子普通发票"), make(title="浙江增值税电子专用发票")),
                            (None, make(SHUDIAN, title="电子发票（普通发票）"),
                             make(SHUDIAN, title="电子发票（增值税专用发票）")),
                            (None, make(SHUDIAN, kind="31", title="电子发票（增值税专用发票）"),
                             make(SHUDIAN, kind="31", title="电子发票（普通发票）")),
                            # No QR type: the 发票代码's (…13: 电子专票, 查验 08) counts.
                            (None, make(kind=None, code="033002100413", title="浙江增值税电子专用发票"),
                             make(kind=None, code="033002100413", title="浙江增值税电子普通发票"))],
    "date-invalid": [(None, make(), make(date="2025-02-30")), (None, make(), make(date=None))],
    "date-future": [(None, make(date=TODAY), make(date=TODAY + dt.timedelta(days=1)))],
    "expired": [(None, make(date=TODAY - dt.timedelta(days=360)), make(date=TODAY - dt.timedelta(days=361))),
                (ValidationSettings(max_age_days=30), make(date=TODAY - dt.timedelta(days=30)),
                 make(date=TODAY - dt.timedelta(days=31)))],
    "check-code-format": [(None, make(check_code="16197 83356 74145 07415"), make(check_code="1619783356741450741")),
                          (None, make(check_code=None), make(check_code="1619783356741450741X")),
                          # 深圳 blockchain: 5 hex digits of the hash, only under a local (1…) code.
                          (None, make(kind=None, code="144032309110", check_code="10a19"),
                           make(check_code="10a19")),
                          (None, make(kind=None, code="144032309110", check_code="10a19"),
                           make(kind=None, code="144032309110", check_code="10a1"))],
    "tax-id-check-digit": [(None, make(), make(seller_tax_id="92330781MA2EDMFU51")),
                           (None, make(), make(buyer_tax_id="91320115MA202UKD7")),
                           (None, make(buyer_tax_id=None), make(buyer_tax_id="个人"))],
    "tax-id-legacy": [(None, make(), make(seller_tax_id="11010519491231002X01"))],
    "amount-sum": [(None, make(), make(total=D("526.01"))),
                   (None, make(tax=None, amount=D("57"), total=D("57.00"), total_in_words="伍拾柒圆整"),
                    make(tax=None, amount=D("57"), total=D("57.10"), total_in_words="伍拾柒圆壹角整")),
                   (None, make(amount=None), make(total=None, total_in_words=None)),
                   (None, make(tax="***", amount=D("526")), make(tax="abc"))],
    # Absurd numbers: beyond any invoice (an 18-digit 价税合计 overflowed the
    # ledger's cents column), NaN or infinite, parts of opposite signs, a
    # line quantity past belief. A red-letter (红字) invoice is negative
    # throughout and passes.
    "amount-range": [(None, make(amount=D("999999999999.00"), tax=D("0"), total=D("999999999999.00"),
                                 total_in_words=None),
                      make(amount=D("123456789012345678.00"), tax=D("0"), total=D("123456789012345678.00"),
                           total_in_words=None)),
                     (None, make(), make(total=D("NaN"), total_in_words=None)),
                     (None, make(), make(tax=D("-Infinity"))),
                     (None, make(amount=D("-510.68"), tax=D("-15.32"), total=D("-526.00"),
                                 total_in_words="（负数）伍佰贰拾陆圆整"),
                      make(amount=D("-100.00"), tax=D("626.00"), total=D("526.00"))),
                     (None, make(items=[{"name": "a", "amount": D("510.68"), "tax": D("15.32"),
                                         "rate_text": "3%", "quantity": D("1000000000")}]),
                      make(items=[{"name": "a", "amount": D("510.68"), "tax": D("15.32"),
                                   "rate_text": "3%", "quantity": D("1E+999999")}])),
                     (None, make(), make(items=[{"name": "a", "amount": D("NaN")}]))],
    "line-sum": [(None,
                  make(items=[{"name": "a", "amount": D("297.96"), "tax": D("38.73"), "rate": D("0.13")},
                              {"name": "b", "amount": D("212.72"), "tax": D("-23.40"), "rate": D("0.13")}]),
                  make(items=[{"name": "a", "amount": D("297.96"), "tax": D("38.73"), "rate": D("0.13")},
                              {"name": "b", "amount": D("212.69"), "tax": D("-23.40"), "rate": D("0.13")}])),
                 (None,
                  make(items=[{"name": "a", "amount": D("255.34"), "tax": D("7.67")},
                              {"name": "b", "amount": D("255.34"), "tax": D("7.66")}]),
                  make(items=[{"name": "a", "amount": D("255.34"), "tax": D("7.63")},
                              {"name": "b", "amount": D("255.34"), "tax": D("7.66")}])),
                 (None, make(tax=None, amount=D("57"), total=D("57"), total_in_words="伍拾柒圆整",
                             items=[{"name": "餐饮", "amount": D("57"), "rate_text": "免税"}]),
                  make(tax=None, amount=D("57"), total=D("57"), total_in_words="伍拾柒圆整",
                       items=[{"name": "餐饮", "amount": D("57"), "tax": D("1.71"), "rate_text": "3%"}]))],
    "tax-rate": [(None, make(items=[{"name": "a", "rate": D("0.13")}, {"name": "b", "rate_text": "1.5%"},
                                    {"name": "c", "rate_text": "免税"}, {"name": "d", "rate_text": "不征税"},
                                    {"name": "e", "rate_text": "出口零税率"}, {"name": "f", "rate_text": "0.06"},
                                    {"name": "g", "rate_text": "1"}, {"name": "h", "rate_text": "9"}]),
                  make(items=[{"name": "a", "rate": D("0.12")}])),
                 (None, make(items=[{"name": "a", "rate_text": "3％"}]), make(items=[{"name": "a", "rate_text": "16%"}])),
                 # 16% was a VAT rate until 2019-04-01.
                 (ValidationSettings(max_age_days=9999),
                  make(date=dt.date(2019, 3, 31), items=[{"name": "a", "rate_text": "16%"}]),
                  make(date=dt.date(2019, 4, 1), items=[{"name": "a", "rate_text": "16%"}])),
                 (None, make(items=[{"name": "a", "rate_text": "", "rate": D("0.09")}]),
                  make(items=[{"name": "a", "rate_text": "税率"}]))],
    "words-mismatch": [(None, make(), make(total_in_words="伍佰贰拾柒圆整")),
                       (None, make(total_in_words="伍佰贰拾陆元正"), make(total_in_words="伍佰贰拾陆")),
                       (None, make(total_in_words=None), make(total_in_words="五百二十六元"))],
    "qr-mismatch": [(None, make(), make())],
    "buyer-not-company": [(COMPANY, make(), make(buyer_tax_id="91420100MA7HTDC99N")),
                          (COMPANY, make(buyer_tax_id=None), make(buyer_tax_id=None, buyer_name="个人")),
                          (ValidationSettings(company_names=("江苏京利华新材料有限公司",)),
                           make(buyer_name="江苏京利华新材料 有限公司"), make(buyer_name="江苏京利华有限公司"))],
    "duplicate": [(None, make(), make())],
    "conflicting-copy": [(None, make(), make(seller_tax_id="91420100MA7HTDC99N")),
                         (None, make(), make(total=D("9540.00"))),
                         (None, make(), make(date=dt.date(2025, 7, 24))),
                         (None, make(), make(check_code="16197833567414507416"))],
    "region-unexpected": [(ValidationSettings(expected_region="33"), make(), make(code="042002200411")),
                          (ValidationSettings(expected_region="北京"), make(SHUDIAN, number="25117000002856140513"),
                           make(SHUDIAN))],
}
_qr_bad = CASES["qr-mismatch"][0][2]
_qr_bad.offer("number", "83089641", "pdf-text")
_qr_ok = CASES["qr-mismatch"][0][1]
_qr_ok.offer("buyer_name", "江苏京利华新材料有限公司 ", "pdf-text")
_qr_ok.conflicts.append(Conflict("seller_name", {"xml": "道达尔能源销售（湖北）有限公司", "pdf-text": "道达尔能源销售(湖北)有限公司"}))
_qr_ok.conflicts.append(Conflict("date", {"xml": dt.date(2025, 7, 23), "pdf-text": "2025-07-23"}))


def test_every_rule_with_a_check_has_cases():
    assert {c for c, r in RULES.items() if r.check is not None} == set(CASES)


@pytest.mark.parametrize("code,case", [(c, i) for c, cases in CASES.items() for i in range(len(cases))])
def test_rule_passes_and_fails(code, case):
    s, good, bad = CASES[code][case]
    dup = {"duplicate_of": 7} if code == "duplicate" else {}
    if code == "conflicting-copy":
        dup = {"duplicate_of": 7, "original": make()}   # bad differs from the copy received first
    assert codes(good, s) == set(), "the passing invoice must pass every rule"
    problems = [p for p in validate(bad, s or ValidationSettings(), today=TODAY, **dup) if p.code == code]
    assert problems, f"{code} not raised"
    p = problems[0]
    assert p.severity == RULES[code].severity and p.message and p.message_zh


def test_a_copy_that_reads_the_same_is_no_conflict():
    # Written otherwise but the same: case, thousands separators, trailing
    # zeros; a field one copy did not read is no disagreement either.
    first = make()
    again = make(seller_tax_id="92330781ma2edmfu50", total="526.0", check_code=None)
    found = {p.code for p in validate(again, ValidationSettings(), today=TODAY, duplicate_of=7, original=first)}
    assert "duplicate" in found and "conflicting-copy" not in found
    # Without the first copy's reading there is nothing to compare.
    assert "conflicting-copy" not in {p.code for p in validate(make(total=D("1.00")), ValidationSettings(),
                                                                 today=TODAY, duplicate_of=7)}


def test_a_conflicting_copy_names_both_readings_and_the_first_document():
    [p] = [p for p in validate(make(seller_tax_id="91420100MA7HTDC99N"), ValidationSettings(), today=TODAY,
                               duplicate_of=42, original=make()) if p.code == "conflicting-copy"]
    assert p.severity == "error" and p.field == "seller_tax_id"
    assert "91420100MA7HTDC99N" in p.message and "92330781MA2EDMFU50" in p.message and "42" in p.message


def test_duplicate_names_the_first_document():
    [p] = validate(make(), ValidationSettings(), today=TODAY, duplicate_of=42)
    assert p.code == "duplicate" and "42" in p.message and "033002000211-83089647" in p.message


def test_qr_crc_from_extraction_is_kept_once_and_overridable():
    inv = make()
    crc = Problem("qr-crc", "warning", "QR check E400 does not match", field="qr")
    inv.problems += [crc, crc]
    assert validate(inv, ValidationSettings(), today=TODAY) == [crc]
    assert validate(inv, ValidationSettings(rules={"qr-crc": "off"}), today=TODAY) == []
    [p] = validate(inv, ValidationSettings(rules={"qr-crc": "error"}), today=TODAY)
    assert p.severity == "error" and has_errors([p])


def test_stale_rule_problems_are_recomputed_not_kept():
    inv = make(number="8308964")
    first = validate(inv, ValidationSettings(), today=TODAY)
    assert {p.code for p in first} == {"number-format"}
    inv.problems = first + [Problem("unreadable-page", "warning", "page 2 is blank")]
    inv.set_manual("number", "83089647")
    assert [p.code for p in validate(inv, ValidationSettings(), today=TODAY)] == ["unreadable-page"]


def test_overrides_change_severity_or_switch_rules_off():
    bad = make(seller_tax_id="11010519491231002X01", total=D("1"))
    s = ValidationSettings(rules={"tax-id-legacy": "error", "amount-sum": "off", "words-mismatch": "warning"})
    got = {p.code: p.severity for p in validate(bad, s, today=TODAY)}
    assert got == {"tax-id-legacy": "error", "words-mismatch": "warning"}


def test_not_invoices_get_no_rules():
    assert validate(Invoice(is_invoice=False), ValidationSettings(), today=TODAY) == []


def test_fake_seller_ids_of_the_sample_test_invoices_are_errors():
    for seller in ("91500102563638729E", "91110101202001201", "91440000000000000X"):
        problems = validate(make(seller_tax_id=seller), ValidationSettings(), today=TODAY)
        assert has_errors(problems) and [p.field for p in problems] == ["seller_tax_id"]
    assert "should be 5, not E" in validate(make(seller_tax_id="91500102563638729E"),
                                            ValidationSettings(), today=TODAY)[0].message


def test_company_ids_and_names_compare_loosely():
    s = ValidationSettings(company_tax_ids=["91320115ma202ukd7x"], company_names=["江苏京利华新材料有限公司"])
    assert codes(make(), s) == set()
    assert codes(make(buyer_tax_id=None, buyer_name="江苏京利华新材料有限公司"), s) == set()
    assert codes(make(buyer_tax_id="91420100MA7HTDC99N"), s) == {"buyer-not-company"}


def test_has_errors():
    assert not has_errors([]) and not has_errors([Problem("x", "warning", "m")])
    assert has_errors([Problem("x", "warning", "m"), Problem("y", "error", "m")])


def test_rules_registry_describes_every_rule():
    for code, rule in RULES.items():
        assert rule.code == code and rule.severity in ("warning", "error") and rule.description


def test_settings_from_config():
    s = ValidationSettings.from_config(
        {"max_age_days": 400, "expected_region": "11", "rules": {"tax-id-legacy": "off"}},
        {"tax_ids": ["91320115ma202ukd7x "], "names": ["江苏京利华新材料有限公司"], "label": "ignored"})
    assert s == ValidationSettings(400, "11", ("91320115MA202UKD7X",), ("江苏京利华新材料有限公司",),
                                   {"tax-id-legacy": "off"})
    assert ValidationSettings.from_config({}, {}) == ValidationSettings()
    assert ValidationSettings.from_config(None, None) == ValidationSettings()


@pytest.mark.parametrize("validation,company,key", [
    ({"rules": {"amount-summ": "off"}}, {}, "validation.rules.amount-summ"),
    ({"rules": {"amount-sum": "fatal"}}, {}, "validation.rules.amount-sum"),
    ({"rules": ["amount-sum"]}, {}, "validation.rules"),
    ({"max_age_days": 0}, {}, "validation.max_age_days"),
    ({"max_age_days": "360"}, {}, "validation.max_age_days"),
    ({"expected_region": "Beijing"}, {}, "validation.expected_region"),
    ({"max_age_dayz": 3}, {}, "validation.max_age_dayz"),
    ({}, {"tax_ids": ["91500102563638729E"]}, "company.tax_ids[0]"),
    ({}, {"tax_ids": "91320115MA202UKD7X"}, "company.tax_ids"),
    ({}, {"names": [1]}, "company.names"),
])
def test_bad_config_names_the_key(validation, company, key):
    with pytest.raises(ConfigError) as e:
        ValidationSettings.from_config(validation, company)
    assert key in str(e.value)


_values = st.one_of(st.none(), st.text(max_size=25), st.integers(), st.decimals(allow_nan=True),
                    st.sampled_from([Decimal("sNaN"), Decimal("-Infinity"), "1e999999", "NaN"]),
                    st.dates(), st.datetimes(), st.booleans(), st.floats(), st.lists(st.integers(), max_size=2))


@hsettings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(FIELD_NAMES), _values),
       rates=st.lists(st.tuples(_values, st.one_of(st.none(), st.text(max_size=6), st.integers())), max_size=3))
def test_any_field_values_yield_problems_never_exceptions(fields, rates):
    inv = Invoice()
    for name, value in fields.items():
        inv.set_manual(name, value)
    inv.items = [LineItem("x", amount=r, tax=r, rate=r, rate_text=t) for r, t in rates]
    problems = validate(inv, COMPANY, today=TODAY, duplicate_of=None)
    assert all(isinstance(p, Problem) and p.code in RULES for p in problems)


def test_a_qr_only_scan_is_not_quarantined_for_the_missing_total():
    from agent.extract.qr import apply_qr, parse_qr
    from agent.model import Invoice
    from agent.validate import ValidationSettings, has_errors, validate
    import datetime as _dt

    inv = Invoice()
    apply_qr(inv, parse_qr("01,10,033002000211,83089647,510.68,20200723,16197833567414507415,0941,"))
    problems = validate(inv, ValidationSettings(max_age_days=100000), today=_dt.date(2026, 1, 1))
    assert not has_errors(problems), problems
    inv.offer("seller_name", "兰溪市悦济舫餐厅", "pdf-text")  # text was read, yet no 价税合计: an error
    problems = validate(inv, ValidationSettings(max_age_days=100000), today=_dt.date(2026, 1, 1))
    assert "amount-sum" in {p.code for p in problems if p.severity == "error"}


def test_an_ocr_warning_can_be_made_an_error_that_quarantines():
    inv = make()
    inv.problems.append(Problem("ocr-disagrees", "warning", "the printed number reads 1", field="number"))
    settings = ValidationSettings(rules={"ocr-disagrees": "error"})
    problems = validate(inv, settings, today=TODAY)
    assert has_errors(problems)
    assert not has_errors(validate(inv, ValidationSettings(), today=TODAY))


def _codes_extraction_reports() -> set[str]:
    # Every Problem(...) agent/extract builds with a literal code: the first
    # argument or code=.
    import ast
    from pathlib import Path

    codes = set()
    for path in Path(__file__).resolve().parents[2].joinpath("agent", "extract").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Problem":
                args = [a for a in node.args[:1]] + [k.value for k in node.keywords if k.arg == "code"]
                codes |= {a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return codes


def test_every_code_extraction_reports_is_a_registered_rule():
    """An unregistered code cannot be given a severity in [validation.rules]
    (settings refuse unknown codes) and is missing from `check --rules`."""
    codes = _codes_extraction_reports()
    assert len(codes) >= 10  # the scan itself works (13 literal codes when written)
    assert codes - set(RULES) == set()
    for code in codes:
        assert RULES[code].check is None, code  # reported by extraction, not re-checked


def test_a_date_named_impossible_by_its_reader_is_not_also_called_missing():
    inv = make(date=None)
    assert "date-invalid" in codes(inv)
    inv.problems.append(Problem("date-impossible", "error", field="date", message="开票日期 '2025-02-30' is not a real date"))
    assert "date-invalid" not in codes(inv) and "date-impossible" in codes(inv)
