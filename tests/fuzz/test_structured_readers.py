"""The XML and OFD readers over mutated real samples and random structures."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.extract.ofd import read_ofd
from agent.extract.xml import read_xml
from agent.model import Invoice
from tests.fuzz.strategies import FUZZ, mutated

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
XML_SAMPLES = ["kaihu8766-netizen__invoice-precheck/official-gd-special.xml", "renoyuan__easyofd/original_invoice.xml"]
# The fastest OFD samples (a few ms each), so 2,000 examples stay quick.
OFD_SAMPLES = ["ofdrw__ofdrw/1.ofd", "ofdrw__ofdrw/no_page_container.ofd",
               "renoyuan__easyofd/dzfp_25442000000127444519.ofd", "renoyuan__easyofd/增值税电子专票5.ofd"]


def _load(names: list[str]) -> list[bytes]:
    if not SAMPLES.is_dir():
        pytest.fail(f"real samples missing at {SAMPLES}")
    return [(SAMPLES / n).read_bytes() for n in names]


_XML = _load(XML_SAMPLES)
_OFD = _load(OFD_SAMPLES)
_TAGS = ["EInvoice", "eInvoice", "TaxSupervisionInfo", "InvoiceNumber", "IssueTime", "Header", "EIid",
         "BasicInformation", "TotalTax-includedAmount", "TotalAmWithoutTax", "SellerInformation",
         "BuyerInformation", "SellerIdNum", "BuyerName", "IssuItemInformation", "ItemName", "Amount",
         "fp:InvoiceNo", "fp:GraphCode", "fp:TotalTax-includedAmount", "fp:IssueDate", "x"]
_TEXTS = st.one_of(st.text(max_size=12), st.sampled_from(["", "2026-02-30", "-1", "1e400", "１２３.４",
                                                          "91350100M000100Y43", "&amp;", "<![CDATA[x]]>"]))


@st.composite
def xml_trees(draw, depth: int = 0) -> str:
    tag = draw(st.sampled_from(_TAGS))
    children = [] if depth >= 2 else draw(st.lists(xml_trees(depth + 1), max_size=3))
    text = draw(_TEXTS).replace("&", "&amp;").replace("<", "&lt;")
    ns = ' xmlns:fp="http://www.edrm.org.cn/schema/e-invoice/2019"' if depth == 0 else ""
    return f"<{tag}{ns}>{text}{''.join(children)}</{tag}>"


def _only_typed(reader, data: bytes) -> None:
    try:
        result = reader(data)
    except AgentError:
        return
    invoices = result if isinstance(result, list) else [result]
    assert all(isinstance(i, Invoice) for i in invoices)
    for inv in invoices:
        inv.to_dict()  # the result must be storable as it is


@FUZZ
@given(st.one_of(st.sampled_from(_XML).flatmap(mutated),
                 xml_trees().map(lambda s: s.encode()),
                 st.binary(max_size=200)))
def test_read_xml_raises_only_typed_errors(data):
    _only_typed(read_xml, data)


@st.composite
def mutated_ofds(draw) -> bytes:
    """A sample OFD with one member's bytes mutated (or dropped), re-zipped,
    so the damage reaches the XML parsing rather than stopping at the zip."""
    seed = draw(st.sampled_from(_OFD))
    with zipfile.ZipFile(io.BytesIO(seed)) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    xml_members = [i for i, (n, _) in enumerate(members) if n.lower().endswith(".xml")]
    target = draw(st.sampled_from(xml_members))
    name, body = members[target]
    action = draw(st.sampled_from(["mutate", "mutate", "drop", "replace"]))
    if action == "mutate":
        members[target] = (name, draw(mutated(body)))
    elif action == "drop":
        del members[target]
    else:
        members[target] = (name, draw(xml_trees()).encode())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for n, b in members:
            out.writestr(n, b)
    return buf.getvalue()


@FUZZ
@given(st.one_of(mutated_ofds(), st.sampled_from(_OFD).flatmap(mutated)))
def test_read_ofd_raises_only_typed_errors(data):
    _only_typed(read_ofd, data)
