"""Region tables shared by the 代码/号码 and tax-id rules (GB/T 2260 prefixes)."""

from __future__ import annotations

# The 31 mainland province-level divisions, by the first two digits of their
# GB/T 2260 code. Invoice codes, 数电 numbers and tax ids all start from these.
PROVINCES: dict[str, str] = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古",
    "21": "辽宁", "22": "吉林", "23": "黑龙江",
    "31": "上海", "32": "江苏", "33": "浙江", "34": "安徽", "35": "福建", "36": "江西", "37": "山东",
    "41": "河南", "42": "湖北", "43": "湖南", "44": "广东", "45": "广西", "46": "海南",
    "50": "重庆", "51": "四川", "52": "贵州", "53": "云南", "54": "西藏",
    "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏", "65": "新疆",
}

# 计划单列市 have their own tax bureaus and so their own invoice-code regions.
CITY_REGIONS: dict[str, str] = {
    "2102": "大连", "3302": "宁波", "3502": "厦门", "3702": "青岛", "4403": "深圳",
}

# Two-digit codes the 数电 number uses for the 计划单列市. Only 92 青岛 and
# 94 厦门 have been seen (inferred, see fapiao-facts.md); the others follow the
# same north-to-south order and are accepted so a real invoice is never
# rejected for them.
SHUDIAN_CITY_CODES: dict[str, tuple[str, str]] = {
    "91": ("2102", "大连"), "92": ("3702", "青岛"), "93": ("3302", "宁波"),
    "94": ("3502", "厦门"), "95": ("4403", "深圳"),
}

# Identity documents of 港澳台 residents use these prefixes; 个体 tax ids built
# from them are legitimate legacy ids.
ID_CARD_EXTRA_PREFIXES: dict[str, str] = {"71": "台湾", "81": "香港", "82": "澳门", "83": "台湾"}
