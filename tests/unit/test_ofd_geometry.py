"""OFD page text by position: labels and values that no data part names."""

from __future__ import annotations

from decimal import Decimal

from agent.extract.ofd import read_ofd
from agent.extract.ofd_drawn import _deltas
from agent.extract.ofd_geometry import read_by_position
from agent.extract.xml_parse import parse_xml
from tests.unit.test_xml_ofd import OFD_NS, make_ofd


def obj(i: int, x: float, y: float, text: str, ctm: str | None = None, delta: str | None = None) -> str:
    extra = f' CTM="{ctm}"' if ctm else ""
    dx = f' DeltaX="{delta}"' if delta else ""
    return (f'<ofd:TextObject ID="{i}" Boundary="{x} {y} 60 5" Size="3"{extra}>'
            f'<ofd:TextCode X="0" Y="3"{dx}>{text}</ofd:TextCode></ofd:TextObject>')


# A 数电 face with no CustomDatas, no tags and no attachment: everything is
# only printed. The values come in the stream long after their labels.
FACE = [
    obj(1, 69, 8, "电子发票（普通发票）"),
    obj(2, 155, 11.5, "发票号码："), obj(3, 155, 17.5, "开票日期："),
    obj(4, 11.5, 33.5, "名称:"), obj(5, 111.5, 33.5, "名称:"),
    obj(6, 11, 44, "统一社会信用代码/纳税人识别号："), obj(7, 111.5, 44, "统一社会信用代码/纳税人识别号："),
    obj(8, 16, 53.5, "项目名称"), obj(9, 117.5, 53.5, "单  价"), obj(10, 143.5, 53.5, "金  额"),
    obj(11, 157, 53.5, "税率/征收率"), obj(12, 194.5, 53.5, "税  额"),
    obj(13, 21, 93, "合      计"), obj(14, 17, 99, "价税合计（大写）"), obj(15, 144, 99, "（小写）"),
    # values
    obj(20, 170.5, 11.5, "24322000000400497801"), obj(21, 170.5, 17.5, "2024年10月17日"),
    obj(22, 19.09, 33.4, "苏州交投物产有限公司"), obj(23, 119.09, 33.4, "高新区狮山南香食品店"),
    obj(24, 53.62, 43.3, "91320500762844701D"), obj(25, 154.12, 43.3, "92320505MA1NYRYX5M"),
    obj(26, 6.5, 57.5, "*餐饮服务*馒头"), obj(27, 106.75, 57.5, "451.485148514851"),
    obj(28, 146.25, 57.5, "451.49"), obj(29, 165.83, 57.5, "1%"), obj(30, 199.45, 57.5, "4.51"),
    obj(31, 145.75, 93, "¥451.49"), obj(32, 196.45, 93, "¥4.51"),
    obj(33, 59.5, 99, "ⓧ 肆佰伍拾陆圆整"), obj(34, 157.5, 99, "¥456.00"),
    # turned on its side by its CTM: not on any row above
    obj(35, 207.5, 30, "下载次数：1", ctm="0 1 -1 0 0 0"),
]


def face_ofd(objects: list[str]) -> bytes:
    page = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{OFD_NS}"><ofd:Content>'
            f'<ofd:Layer ID="60">{"".join(objects)}</ofd:Layer></ofd:Content></ofd:Page>')
    return make_ofd(tag=None, extra={"Doc_0/Pages/Page_0/Content.xml": page.encode()})


def test_an_ofd_with_only_page_text_is_read_by_position():
    [inv] = read_ofd(face_ofd(FACE))
    got = inv.to_dict()
    assert {k: got[k] for k in ("title", "number", "date", "amount", "tax", "total", "total_in_words",
                                "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")} == {
        "title": "电子发票（普通发票）", "number": "24322000000400497801", "date": "2024-10-17",
        "amount": "451.49", "tax": "4.51", "total": "456.00", "total_in_words": "肆佰伍拾陆圆整",
        "buyer_name": "苏州交投物产有限公司", "buyer_tax_id": "91320500762844701D",
        "seller_name": "高新区狮山南香食品店", "seller_tax_id": "92320505MA1NYRYX5M"}
    assert set(got["sources"].values()) == {"ofd", "ofd-text"}  # title and 大写 by their shape, the rest by position
    assert [(i["name"], i["amount"], i["tax"]) for i in got["items"]] == [("*餐饮服务*馒头", "451.49", "4.51")]


def test_goods_lines_that_do_not_add_up_are_not_kept():
    misplaced = [o.replace(">451.49<", ">415.49<") if 'ID="28"' in o else o for o in FACE]
    [inv] = read_ofd(face_ofd(misplaced))
    assert inv.get("amount") == Decimal("451.49") and inv.items == []


def test_what_a_data_part_gives_is_never_replaced_by_position():
    page = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{OFD_NS}"><ofd:Content>'
            f'<ofd:Layer ID="60">{"".join(FACE)}</ofd:Layer></ofd:Content></ofd:Page>')
    data = make_ofd(tag=None, custom_datas={"购买方名称": "苏州交投物产有限公司（总部）"},
                    extra={"Doc_0/Pages/Page_0/Content.xml": page.encode()})
    [inv] = read_ofd(data)
    assert inv.get("buyer_name") == "苏州交投物产有限公司（总部）"
    assert inv.fields["buyer_name"].source == "ofd" and inv.get("seller_name") == "高新区狮山南香食品店"


def test_delta_x_repetition_and_garbage():
    assert _deltas("g 3 1.5 2") == [1.5, 1.5, 1.5, 2.0]
    assert _deltas("1 x 2") == [] and _deltas(None) == []
    assert _deltas("g 99999999 1") == []  # no page has that many glyphs in one code
    assert len(_deltas("g 9000 1 " * 5)) <= 10_000


def test_garbage_geometry_reads_nothing_and_never_raises():
    page = parse_xml((f'<ofd:Page xmlns:ofd="{OFD_NS}"><ofd:TextObject ID="1" Boundary="a b c d">'
                      f'<ofd:TextCode X="1e400" Y="nan">发票号码：12345678</ofd:TextCode></ofd:TextObject>'
                      f'<ofd:TextObject ID="2" Boundary="1e308 1e308 1 1" CTM="1 0 0">'
                      f'<ofd:TextCode>x</ofd:TextCode></ofd:TextObject></ofd:Page>').encode())
    assert read_by_position([page]).fields == {}
