"""An OFD with two invoice XML attachments that disagree: neither is kept.

Only the first was read and the second passed over, so whichever a forger
listed first decided a field no other part gives (the tax here), and the
invoice was valid. A field the two give differently is now left empty with
`ofd-inconsistent`; the same XML twice reads as once.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.extract.ofd import read_ofd
from tests.unit.test_xml_ofd import fp_xml, make_ofd

SECOND = "Doc_0/Attachs/copy_invoice.xml"


def test_two_attachments_giving_a_field_differently_leave_it_empty():
    [inv] = read_ofd(make_ofd(attachment=fp_xml(tax="600.00"), extra={SECOND: fp_xml(tax="700.00")}))
    assert inv.get("tax") is None
    [problem] = [p for p in inv.problems if p.field == "tax"]
    assert problem.code == "ofd-inconsistent" and problem.severity == "error"
    assert SECOND in problem.message and "original_invoice.xml" in problem.message
    assert inv.get("amount") == Decimal("10000.00")   # what they agree on is read


def test_the_same_attachment_twice_reads_as_once():
    [inv] = read_ofd(make_ofd(attachment=fp_xml(), extra={SECOND: fp_xml()}))
    assert inv.get("tax") == Decimal("600.00")
    assert not [p for p in inv.problems if p.code == "ofd-inconsistent"]


# The same names and id as the other attachment writes them: brackets,
# digits and letters full-width, spaces between.
SAME_IN_OTHER_WIDTHS = {
    "full-width brackets": ("财天下科技有限公司", "财天下（重庆）科技有限公司", "财天下(重庆)科技有限公司"),
    "full-width digits and letters": ("财天下科技有限公司", "财天下科技有限公司第1分公司ABC", "财天下科技有限公司第１分公司ＡＢＣ"),
    # Both already agreed: ids are read NFKC, and spaces were dropped.
    "a full-width id": ("91500102563638729E", "91500102563638729E", "９１５００１０２５６３６３８７２９Ｅ"),
    "spaces": ("财天下科技有限公司", "财天下科技有限公司", "财天下 科技 有限公司"),
}


@pytest.mark.parametrize("case", list(SAME_IN_OTHER_WIDTHS))
def test_two_attachments_writing_one_value_in_other_widths_agree(case):
    # Read as different, the seller's name or id was left empty for 补录
    # though both attachments say the same.
    old, first, second = SAME_IN_OTHER_WIDTHS[case]
    one, other = (fp_xml().decode().replace(old, text).encode() for text in (first, second))
    [inv] = read_ofd(make_ofd(attachment=one, extra={SECOND: other}))
    assert not [p for p in inv.problems if p.code == "ofd-inconsistent"]
    field = "seller_tax_id" if old[0].isdigit() else "seller_name"
    assert inv.get(field) == first


def test_two_attachments_naming_different_sellers_still_leave_it_empty():
    other = fp_xml().decode().replace("财天下科技有限公司", "财天上科技有限公司").encode()
    [inv] = read_ofd(make_ofd(attachment=fp_xml(), extra={SECOND: other}))
    assert inv.get("seller_name") is None
    assert [p.field for p in inv.problems if p.code == "ofd-inconsistent"] == ["seller_name"]
