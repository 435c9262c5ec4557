"""An OFD with two invoice XML attachments that disagree: neither is kept.

Only the first was read and the second passed over, so whichever a forger
listed first decided a field no other part gives (the tax here), and the
invoice was valid. A field the two give differently is now left empty with
`ofd-inconsistent`; the same XML twice reads as once.
"""

from __future__ import annotations

from decimal import Decimal

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
