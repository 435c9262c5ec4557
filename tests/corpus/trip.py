"""Non-invoices that arrive beside invoices: ride-hailing trip lists (行程单).

Like the real DiDi 行程报销单 in ../shared/samples, the page lists trips and a
合计, and its QR is a URL, not an invoice payload. A reader must call it
not_invoice rather than half-fill an invoice from it.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from decimal import Decimal

from tests.corpus.content import money
from tests.corpus.face import BLACK, BROWN, Face, Qr
from tests.corpus.parties import REGIONS
from tests.corpus.render_pdf import face_pdf

_VENDORS = (
    ("滴滴出行-行程单", "DIDI TRAVEL-TRIP TABLE", "https://v.didi.cn/p/", "扫码加入我们"),
    ("高德地图-打车-电子行程单", "AMAP RIDE-HAILING ITINERARY", "https://dache.amap.com/s/", "扫码下载高德地图"),
    ("曹操出行-行程单", "CAOCAO TRAVEL ITINERARY", "https://m.caocaokeji.cn/t/", "关注曹操出行"),
)
_PLACES = ("地铁站A口", "国际会展中心", "高铁站东广场", "科技园南门", "人民医院", "万达广场", "软件园二期", "机场T2航站楼")
_CARS = ("快车", "特惠快车", "专车", "优享")


def make_trip_list(rng: random.Random, today: dt.date) -> tuple[bytes, dict]:
    """A trip-list PDF and its expected fields: is_invoice False, qr the URL,
    everything else null."""
    title, english, base, slogan = rng.choice(_VENDORS)
    city = rng.choice(rng.choice(REGIONS).cities)[0]
    applied = today - dt.timedelta(days=rng.randint(0, 200))
    n = rng.randint(1, 12)
    start = applied - dt.timedelta(days=rng.randint(n, 40))
    url = base + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(7))
    f = Face(595.28, 841.89)
    f.text(297.6, 60, title, 18, "label", color=BLACK, anchor="c")
    f.text(297.6, 78, english, 9, "label", color=BROWN, anchor="c")
    f.ops.append(Qr(500, 30, 60, url))
    f.text(530, 102, slogan, 7, "label", anchor="c")
    f.label_value(40, 120, "申请日期：", applied.isoformat(), 10)
    last = applied - dt.timedelta(days=1)
    f.label_value(40, 138, "行程起止日期：", f"{start.isoformat()} 至 {last.isoformat()}", 10)
    phone = f"1{rng.choice('3589')}{rng.randint(0, 9)}****{rng.randint(1000, 9999)}"
    f.label_value(40, 156, "行程人手机号：", phone, 10)
    trips = []
    for _ in range(n):
        day = start + dt.timedelta(days=rng.randint(0, (applied - start).days - 1))
        when = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=rng.randint(7 * 60, 23 * 60))
        fare = Decimal(rng.randint(900, 9000)) / 100
        trips.append((when, fare))
    trips.sort()
    total = sum((t[1] for t in trips), Decimal(0))
    f.text(40, 176, f"共{n}笔行程，合计{money(total)}元", 10, "label")
    heads = (("序号", 52), ("车型", 95), ("上车时间", 165), ("城市", 235), ("起点", 300), ("终点", 390),
             ("里程[公里]", 460), ("金额[元]", 530))
    f.line(36, 186, 560, 186)
    for word, x in heads:
        f.text(x, 198, word, 9, "label", anchor="c")
    f.line(36, 204, 560, 204)
    for i, (when, fare) in enumerate(trips):
        y = 218 + i * 18
        a, b = rng.sample(_PLACES, 2)
        row = ((52, str(i + 1)), (95, rng.choice(_CARS)), (165, when.strftime("%m-%d %H:%M")),
               (235, city), (300, a), (390, b), (460, f"{rng.uniform(2, 30):.1f}"), (530, money(fare)))
        for x, text in row:
            f.text(x, y, text, 8.5, anchor="c")
    f.text(40, 218 + n * 18 + 20, "说明：行程金额以实际支付为准，如有疑问请联系客服。", 8, "label")
    expected = {"is_invoice": False, "kind": None, "title": None, "code": None, "number": None,
                "date": None, "check_code": None, "amount": None, "tax": None, "total": None,
                "total_in_words": None, "buyer_name": None, "buyer_tax_id": None,
                "seller_name": None, "seller_tax_id": None, "qr": url}
    return face_pdf(f, title=title), expected
