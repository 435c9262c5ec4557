"""Who appears on a synthetic invoice: regions, companies, tax ids, people.

Names are built the way real ones are (city + 字号 + 行业 + 组织形式, branches,
个体工商户 shops, a province in full-width brackets), and every tax id is a
valid 统一社会信用代码 with a valid embedded 组织机构代码, so validation judges
generated invoices exactly as it judges genuine ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent.validate.uscc import ALPHABET, check_char, org_check_char


@dataclass(frozen=True)
class Region:
    """A place invoices are issued from.

    `province` is the GB/T 2260 two-digit code (also digits 3-4 of a 数电
    number); `code_region` is the four-digit region of an old 发票代码, which
    differs from the province only for the 计划单列市; `title_name` prefixes
    old invoice titles (深圳增值税电子普通发票).
    """

    province: str
    province_name: str
    code_region: str
    title_name: str
    cities: tuple[tuple[str, str], ...]  # (city or district name, 6-digit admin code)


REGIONS: tuple[Region, ...] = (
    Region("11", "北京", "1100", "北京", (("北京", "110105"), ("北京", "110108"), ("北京", "110101"))),
    Region("31", "上海", "3100", "上海", (("上海", "310115"), ("上海", "310112"), ("上海", "310104"))),
    Region("32", "江苏", "3200", "江苏", (("南京", "320105"), ("苏州", "320505"), ("无锡", "320214"))),
    Region("33", "浙江", "3300", "浙江", (("杭州", "330106"), ("绍兴", "330602"), ("温州", "330302"))),
    Region("37", "山东", "3700", "山东", (("济南", "370102"), ("淄博", "370303"), ("潍坊", "370702"))),
    Region("41", "河南", "4100", "河南", (("郑州", "410105"), ("洛阳", "410305"))),
    Region("42", "湖北", "4200", "湖北", (("武汉", "420106"), ("武汉", "420111"), ("宜昌", "420502"))),
    Region("44", "广东", "4400", "广东", (("广州", "440106"), ("东莞", "441900"), ("佛山", "440604"))),
    Region("44", "广东", "4403", "深圳", (("深圳", "440305"), ("深圳", "440304"))),
    Region("51", "四川", "5100", "四川", (("成都", "510107"), ("绵阳", "510703"))),
    Region("50", "重庆", "5000", "重庆", (("重庆", "500103"), ("重庆", "500112"))),
    Region("52", "贵州", "5200", "贵州", (("贵阳", "520102"), ("遵义", "520302"))),
    Region("34", "安徽", "3400", "安徽", (("合肥", "340104"), ("芜湖", "340202"))),
)

_TRADE_CHARS = (
    "华创达信鑫源盛泰博恒瑞通联宏嘉安云智科新天汇丰隆正德和兴远航中星辰锦瀚"
    "睿明启晨宇卓越腾飞凯旭朗峰川海润泽邦诚美佳优品众合百利金银顺昌立方元"
)
_INDUSTRIES = (
    "科技", "信息技术", "网络科技", "商贸", "贸易", "餐饮管理", "建筑工程", "物流",
    "供应链管理", "文化传媒", "医疗器械", "电子", "机械设备", "食品", "酒店管理",
    "汽车服务", "物业管理", "广告", "教育咨询", "环保科技", "新能源", "电气",
)
_FORMS = ("有限公司",) * 6 + ("有限责任公司", "股份有限公司")
_SHOPS = ("通讯店", "便利店", "餐馆", "五金店", "汽车修理部", "打印店", "水果店", "经营部")
_COUNTY_PARTS = ("城南", "城北", "新区", "开发区", "东街", "西城", "河西")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建红文辉力宁鹏浩宇欣然子轩梓涵"
# The 组织机构代码 inside a USCC may only use the USCC alphabet.
_ORG_BODY_CHARS = ALPHABET


@dataclass(frozen=True)
class Party:
    """A buyer or seller as printed: name and tax id (None for 个人)."""

    name: str
    tax_id: str | None
    address: str
    phone: str
    bank: str
    account: str


def person_name(rng: random.Random) -> str:
    """A plausible two- or three-character Chinese personal name."""
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(_SURNAMES) + given


def make_uscc(rng: random.Random, admin_code: str, individual: bool = False) -> str:
    """A valid 统一社会信用代码: 9/1 (enterprise) or 9/2 (个体工商户), the 6-digit
    region, a 组织机构代码 with a correct GB 11714 check, and the GB 32100
    check character."""
    if rng.random() < 0.5:
        # Post-2015 registrations: the 组织机构代码 body starts with MA.
        body = "MA" + "".join(rng.choice(_ORG_BODY_CHARS) for _ in range(6))
    else:
        body = "".join(rng.choice("0123456789") for _ in range(8))
    org = body + org_check_char(body)
    first17 = ("92" if individual else "91") + admin_code + org
    return first17 + check_char(first17)


def _trade_name(rng: random.Random) -> str:
    return "".join(rng.sample(_TRADE_CHARS, rng.choice((2, 2, 2, 3))))


def company(rng: random.Random, region: Region) -> Party:
    """A company in `region`: an ordinary firm, a branch, a firm with the
    province in full-width brackets, or a 个体工商户 shop."""
    city, admin = rng.choice(region.cities)
    roll = rng.random()
    individual = False
    if roll < 0.1:
        name = f"{city}市{rng.choice(_COUNTY_PARTS)}{person_name(rng)}{rng.choice(_SHOPS)}"
        individual = True
    elif roll < 0.25:
        name = f"{_trade_name(rng)}{rng.choice(_INDUSTRIES)}股份有限公司{city}分公司"
    elif roll < 0.35:
        name = f"{_trade_name(rng)}{rng.choice(_INDUSTRIES)}（{region.province_name}）有限公司"
    else:
        name = f"{city}{_trade_name(rng)}{rng.choice(_INDUSTRIES)}{rng.choice(_FORMS)}"
    street = f"{city}市{rng.choice(('人民路', '解放大道', '中山路', '建设路', '科技园路', '长江路'))}{rng.randint(1, 999)}号"
    phone = f"0{rng.randint(10, 999)}-{rng.randint(10000000, 89999999)}"
    bank = (rng.choice(("中国工商银行", "中国建设银行", "中国农业银行", "招商银行", "中国银行"))
            + city + rng.choice(("分行", "支行", "营业部")))
    account = "".join(rng.choice("0123456789") for _ in range(rng.choice((16, 19))))
    return Party(name, make_uscc(rng, admin, individual), street, phone, bank, account)


def private_person(rng: random.Random) -> Party:
    """A natural-person buyer: printed as 个人 or a personal name, with no tax id."""
    name = "个人" if rng.random() < 0.5 else person_name(rng)
    return Party(name, None, "", "", "", "")
