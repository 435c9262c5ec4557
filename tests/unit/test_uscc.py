"""USCC (GB 32100) check characters and the legacy tax-id forms."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.validate.uscc import (
    ALPHABET, TaxIdError, check_char, classify_tax_id, is_valid_org_code, is_valid_resident_id,
    is_valid_uscc, org_check_char,
)

REAL_USCCS = [
    "91370500751784897P", "91340100728526312J", "914201006791228986", "91420116MA7MHFG051",
    "91420100616424442Y", "91310112MADT6AQ029", "91310114MA1GW61J6U", "92330781MA2EDMFU50",
    "91110108690017781B", "91110108339805094M", "91310110MA1G8YNR76", "92510124MA6B1BBY1G",
    "914400007556190127", "92522726MA7GNHJ07M", "91522701709696623X",
]
# Test/fictional invoices in ../shared/samples print these; each fails the check.
FAKE_IDS = ["91440000000000001Y", "91440000000000000X", "91500102563638729E",
            "9150010807MGZHI002", "91110101202001201"]

bodies = st.text(alphabet=ALPHABET, min_size=17, max_size=17)


@pytest.mark.parametrize("tax_id", REAL_USCCS)
def test_real_ids_pass_the_check_and_their_embedded_org_code(tax_id):
    assert is_valid_uscc(tax_id)
    assert classify_tax_id(tax_id) == "uscc"
    assert is_valid_org_code(tax_id[8:17])


@pytest.mark.parametrize("tax_id", FAKE_IDS)
def test_fake_sample_ids_are_invalid(tax_id):
    assert not is_valid_uscc(tax_id)
    assert classify_tax_id(tax_id) == "invalid"


def test_check_char_of_a_known_id():
    assert check_char("91500102563638729") == "5"  # printed E on the 999.ofd test invoice


@pytest.mark.parametrize("body", ["", "9150010256363872", "9150010256363872I", "91500102563638729a"])
def test_check_char_rejects_malformed_bodies_with_a_typed_error(body):
    with pytest.raises(TaxIdError) as e:
        check_char(body)
    assert isinstance(e.value, AgentError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("value", [None, "", "  ", "91370500751784897p", "９１３７０５００７５１７８４８９７Ｐ",
                                   "91370500751784897P1", "91370500751784897O", 913705, "个人"])
def test_garbage_is_invalid_and_never_raises(value):
    assert classify_tax_id(value) == "invalid"
    assert not is_valid_uscc(value)


def test_org_code_check_with_x_and_zero():
    # GB 11714: c = 11 - s%11, with 10 -> X and 11 -> 0.
    assert org_check_char("D2143569") == "X"  # sum 309, 309 % 11 = 1
    assert is_valid_org_code("D2143569X")
    assert org_check_char("00000000") == "0"
    assert not is_valid_org_code("D21435691")
    with pytest.raises(TaxIdError):
        org_check_char("d2143569")


def test_resident_id_check():
    assert is_valid_resident_id("11010519491231002X")
    assert not is_valid_resident_id("110105194912310021")  # wrong check
    assert not is_valid_resident_id("11010519491331002X")  # month 13
    assert not is_valid_resident_id("99010519491231002X")  # no such region


@pytest.mark.parametrize("tax_id", [
    "11010519491231002X",    # 身份证 alone
    "11010519491231002X01",  # 身份证 + 2 digits (个体)
    "110105491231002",       # first-generation 15-digit 身份证
    "11010549123100201",     # 15-digit 身份证 + 2
    "110105D2143569X",       # old 税务登记号: region + 组织机构代码
])
def test_legacy_forms_are_recognised(tax_id):
    assert classify_tax_id(tax_id) == "legacy"


@pytest.mark.parametrize("tax_id", [
    "11010519491231002101",  # 身份证 with a wrong check + 2
    "990105491231002",       # unknown region
    "110105D21435691",       # 税务登记号 whose org code fails
    "11010549133100201",     # month 13
])
def test_malformed_legacy_forms_are_invalid(tax_id):
    assert classify_tax_id(tax_id) == "invalid"


@settings(max_examples=500, deadline=None)
@given(body=bodies)
def test_generated_ids_validate(body):
    assert is_valid_uscc(body + check_char(body))


@settings(max_examples=500, deadline=None)
@given(body=bodies, pos=st.integers(0, 17), shift=st.integers(1, len(ALPHABET) - 1))
def test_any_single_changed_character_is_caught(body, pos, shift):
    good = body + check_char(body)
    changed = ALPHABET[(ALPHABET.index(good[pos]) + shift) % len(ALPHABET)]
    bad = good[:pos] + changed + good[pos + 1:]
    assert bad != good
    assert not is_valid_uscc(bad)
