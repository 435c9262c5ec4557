"""The weekly check as one self-contained HTML page.

Inline CSS and inline SVG only: no script, no font, no image, no link to
anywhere (a Content-Security-Policy of `default-src 'none'` says so to the
browser too), so the page opens the same from a mail attachment, a share or
an air-gapped PC. Every text that is not a literal of this module is
escaped, controls and bidi characters visibly: invoice fields, file names
and error texts come from strangers.
Pure: formats `Figures`, computes no new number.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any, Iterable, Sequence

from agent.report.figures import OUTCOMES, Figures, duration_text, zone_of
from agent.textchars import shown

_WEEKDAYS_ZH = "一二三四五六日"

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",system-ui,sans-serif;margin:0;
background:#f4f6f8;color:#1f2933;font-size:14px}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px;border-bottom:2px solid #e4e7eb;
padding-bottom:6px}.en{color:#616e7c;font-weight:normal;font-size:.85em}
.period{color:#52606d;margin-bottom:20px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:0 0 18px;box-shadow:0 1px 3px #0002}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:12px;margin-bottom:18px}
.tile{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 3px #0002;border-top:4px solid #1e88e5}
.tile .n{font-size:26px;font-weight:bold;white-space:nowrap}.tile .l{color:#52606d;font-size:13px}
.tile.t-warn{border-top-color:#f9a825}.tile.t-bad{border-top-color:#c62828}.tile.t-good{border-top-color:#2e7d32}
.t-warn .n{color:#b7791f}.t-bad .n{color:#c62828}
table{border-collapse:collapse;width:100%;margin-top:6px}
td.t{white-space:nowrap}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{background:#f0f4f8;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2e7d32;font-weight:bold}.bad{color:#c62828;font-weight:bold}.warn{color:#b7791f;font-weight:bold}
.none{color:#7b8794;font-style:italic}.legend span{display:inline-block;margin-right:14px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px;border-radius:2px}
footer{color:#7b8794;font-size:12px;text-align:center;margin-top:8px}
"""


def e(value: Any) -> str:
    """`value` as HTML text: None as "-", everything escaped (quotes too), and
    every control, bidi, line-separator and format character written as its
    visible escape (`\\u202e`, `\\x1b`; agent/textchars.py): a mail client
    would show `q-<RLO>gnp.xml` as `q-lmx.png`, and `cat` of the page would
    run an ESC."""
    return "-" if value is None else html.escape(shown(str(value)), quote=True)


def render_html(fig: Figures) -> str:
    """The whole page for `fig`: a UTF-8 HTML5 document with no external
    reference and no script; every number in it is one of `fig`'s."""
    parts = [
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>发票每周检查 Weekly invoice check {e(_day(fig.since, fig))} – {e(_day(fig.until, fig))}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<h1>发票每周检查 <span class=\"en\">Weekly invoice check</span></h1>",
        f"<div class=\"period\">{e(_stamp(fig.since, fig))} – {e(_stamp(fig.until, fig))} ({e(fig.tz)})"
        f" · 生成于 generated {e(_stamp(fig.now, fig))}</div>",
        _tiles(fig), _arrivals(fig), _timing(fig), _quarantine(fig), _applications(fig), _duplicates(fig),
        _missing(fig),
        _expiry(fig), _backups(fig),
        "<footer>fapiao-agent · 所有数字均来自账本 every figure is read from the ledger</footer>",
        "</main></body></html>\n",
    ]
    return "\n".join(parts)


def _stamp(moment: dt.datetime, fig: Figures) -> str:
    # With its offset (`2026-11-28 03:00 +08:00`): a page forwarded to
    # another office still names the moment.
    local = moment.astimezone(zone_of(fig.tz))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _when(stamp: str | None, fig: Figures) -> str | None:
    """A ledger timestamp as the report's zone shows it (to the minute)."""
    from agent.ledger.rows import parse_utc

    if not stamp:
        return None
    try:
        return _stamp(parse_utc(stamp), fig)
    except (TypeError, ValueError):   # not the ledger's format: shown as it is
        return str(stamp)


def _day(moment: dt.datetime, fig: Figures) -> str:
    return _stamp(moment, fig)[:10]


def _title(zh: str, en: str) -> str:
    return f"<h2>{e(zh)} <span class=\"en\">{e(en)}</span></h2>"


def _table(headers: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]], empty: str) -> str:
    # headers: (text, css class of the column: "num" right-aligned, "t" unbroken, "" plain)
    rows = list(rows)
    if not rows:
        return f"<p class=\"none\">{e(empty)}</p>"
    head = "".join(f"<th class=\"{css}\">{e(h)}</th>" for h, css in headers)
    body = "".join("<tr>" + "".join(f"<td class=\"{css}\">{e(v)}</td>"
                                     for v, (_, css) in zip(row, headers)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tiles(fig: Figures) -> str:
    t = fig.totals
    conf = fig.timing["confirmed"]
    waiting, pending = fig.applications["waiting"], fig.applications["pending"]
    bad_targets = sum(1 for x in fig.backup.get("targets", [])
                      if x.get("reachable") in ("unreachable", "paused", "not keeping"))
    tiles = [
        ("到达 arrivals", t["total"], ""),
        ("已送达 delivered", t["delivered"], "good"),
        # Quarantined, and documents a pending 补录 application holds in another state (a duplicate).
        ("待人工处理（当前）waiting for a person", waiting, "warn" if waiting else "good"),
        ("待审批补录 applications pending", pending, "warn" if pending else "good"),
        ("发送失败 failed", t["failed"], "bad" if t["failed"] else "good"),
        ("拦截重复 duplicates caught", fig.duplicates["count"], ""),
        ("对账缺失 missing at reconciliation", fig.missing["count"], "warn" if fig.missing["count"] else "good"),
        ("临近过期未送达 near expiry", fig.expiry["count"], "bad" if fig.expiry["count"] else "good"),
        ("到确认 p50 / p95 to confirmed",
         f"{duration_text(conf['p50_s'])} / {duration_text(conf['p95_s'])}", ""),
    ]
    targets = fig.backup.get("targets", [])
    ok = sum(1 for x in targets if x.get("reachable") == "ok")
    tiles.append(("备份目标正常 backup targets ok", f"{ok}/{len(targets)}",
                  "bad" if bad_targets else "good" if ok == len(targets) else "warn"))
    return "<div class=\"tiles\">" + "".join(
        f"<div class=\"tile t-{cls or 'plain'}\"><div class=\"n\">{e(n)}</div><div class=\"l\">{e(label)}</div></div>"
        for label, n, cls in tiles) + "</div>"


def _nice_max(n: int) -> int:
    # The chart's top: a round number divisible by 4 (four whole gridlines).
    if n <= 4:
        return 4
    step = 10 ** (len(str(n)) - 1)
    for m in (1, 2, 4, 6, 8, 10):
        if n <= m * step and (m * step) % 4 == 0:
            return m * step
    return -(-n // 4) * 4


def _arrivals(fig: Figures) -> str:
    width, height, left, top, bottom = 1000, 280, 50, 20, 44
    plot_h = height - top - bottom
    n = max(1, len(fig.days))
    slot = (width - left - 10) / n
    bar = min(70.0, slot * 0.6)
    peak = _nice_max(max((d["total"] for d in fig.days), default=0))
    svg = [f"<svg viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" "
           f"aria-label=\"每日到达 arrivals per day\" font-size=\"12\" font-family=\"sans-serif\">"]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        svg.append(f"<line x1=\"{left}\" x2=\"{width - 10}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" stroke=\"#e4e7eb\"/>"
                   f"<text x=\"{left - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\" fill=\"#52606d\">"
                   f"{e(f'{value:.0f}')}</text>")
    for i, d in enumerate(fig.days):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for o in OUTCOMES:
            count = d[o.key]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            svg.append(f"<rect x=\"{x:.1f}\" y=\"{y:.1f}\" width=\"{bar:.1f}\" height=\"{h:.1f}\" "
                       f"fill=\"{o.colour}\"><title>{e(d['day'])} {e(o.zh)} {e(o.en)}: {count}</title></rect>")
        if d["total"]:
            svg.append(f"<text x=\"{x + bar / 2:.1f}\" y=\"{y - 4:.1f}\" text-anchor=\"middle\" "
                       f"font-weight=\"bold\" fill=\"#1f2933\">{d['total']}</text>")
        day = d["day"]
        svg.append(f"<text x=\"{x + bar / 2:.1f}\" y=\"{top + plot_h + 16}\" text-anchor=\"middle\" fill=\"#1f2933\">"
                   f"{e(day.strftime('%m-%d'))}</text><text x=\"{x + bar / 2:.1f}\" y=\"{top + plot_h + 32}\" "
                   f"text-anchor=\"middle\" fill=\"#52606d\">周{_WEEKDAYS_ZH[day.weekday()]}</text>")
    svg.append("</svg>")
    legend = "<div class=\"legend\">" + "".join(
        f"<span><i style=\"background:{o.colour}\"></i>{e(o.zh)} {e(o.en)}: <b>{fig.totals[o.key]}</b></span>"
        for o in OUTCOMES) + "</div>"
    rows = [[d["day"].isoformat(), *(d[o.key] for o in OUTCOMES), d["total"]] for d in fig.days]
    rows.append(["合计 total", *(fig.totals[o.key] for o in OUTCOMES), fig.totals["total"]])
    table = _table([("日期 day", "t"), *((f"{o.zh} {o.en.split(' (')[0]}", "num") for o in OUTCOMES),
                    ("合计 total", "num")], rows, "")
    note = (f"<p>同一文件再次到达 the same file arriving again: <b>{fig.repeat_arrivals}</b> "
            "(kept once, each arrival recorded)</p>")
    return (f"<section id=\"arrivals\">{_title('每日到达及结果', 'Arrivals per day by outcome (state now)')}"
            f"{''.join(svg)}{legend}{table}{note}</section>")


def _timing(fig: Figures) -> str:
    rows = [[zh, t["count"], duration_text(t["p50_s"]), duration_text(t["p95_s"])]
            for zh, t in (("到达→送达 arrival to delivered", fig.timing["delivered"]),
                          ("到达→对账确认 arrival to confirmed", fig.timing["confirmed"]))]
    return (f"<section id=\"timing\">{_title('处理时长', 'Time from arrival (invoices that arrived this period)')}"
            + _table([("", ""), ("发票数 invoices", "num"), ("p50", "num"), ("p95", "num")], rows, "")
            + "</section>")


def _quarantine(fig: Figures) -> str:
    q = fig.quarantine
    by_code = list(q["by_code"].items())
    chart = ""
    if by_code:
        top = max(n for _, n in by_code)
        row_h, width, label_w = 24, 1000, 260
        svg = [f"<svg viewBox=\"0 0 {width} {row_h * len(by_code) + 8}\" width=\"100%\" role=\"img\" "
               "aria-label=\"隔离原因 quarantine reasons\" font-size=\"13\" font-family=\"sans-serif\">"]
        for i, (code, n) in enumerate(by_code):
            w = (width - label_w - 60) * n / top
            y = 4 + i * row_h
            svg.append(f"<text x=\"{label_w - 8}\" y=\"{y + 16}\" text-anchor=\"end\" fill=\"#1f2933\">{e(code)}</text>"
                       f"<rect x=\"{label_w}\" y=\"{y + 3}\" width=\"{w:.1f}\" height=\"{row_h - 6}\" rx=\"3\" "
                       f"fill=\"#f9a825\"><title>{e(code)}: {n}</title></rect>"
                       f"<text x=\"{label_w + w + 6:.1f}\" y=\"{y + 16}\" fill=\"#1f2933\">{n}</text>")
        svg.append("</svg>")
        chart = "".join(svg)
    codes = _table([("规则代码 rule code", ""), ("发票数 documents", "num")], by_code,
                   "当前没有待人工处理的发票 nothing is quarantined")
    oldest = _table([("编号 id", "num"), ("到达 arrived", "t"), ("发票号码 number", "t"),
                     ("销售方 seller", ""), ("文件 file", ""), ("原因 codes", "")],
                    ([r["id"], _when(r["received_at"], fig), r["invoice_number"], r["seller_name"],
                      r["original_name"], r["codes"]] for r in q["oldest"]), "")
    title = _title("隔离原因", f"Quarantine reasons (open now: {q['total']})")
    return (f"<section id=\"quarantine\">{title}"
            f"{chart}{codes}" + (f"<h3>最早的待处理 oldest open cases</h3>{oldest}" if q["oldest"] else "")
            + "</section>")


def _applications(fig: Figures) -> str:
    a = fig.applications
    rows = ([r["number"], r["document_id"], r["doc_state_now"], r["kind"], r["filer"], _when(r["filed_at"], fig),
             duration_text(r["age_s"]), r["reason"]] for r in a["rows"])
    held = "、".join(f"{n} {s}" for s, n in sorted(a["held"].items()))
    more = len(a["rows"]) < a["pending"]
    return (f"<section id=\"applications\">{_title('待审批的补录申请', 'Pending 补录 applications (oldest first)')}"
            f"<p>等待第二人审批 waiting for an approver other than the filer: <b>{a['pending']}</b>"
            + (f" · 所持发票 documents held: {e(held)}" if held else "")
            + (f" · 仅列出最早的 {len(a['rows'])} 个 the {len(a['rows'])} oldest listed" if more else "") + "</p>"
            + _table([("申请编号 number", "t"), ("编号 document", "num"), ("发票状态 state", ""), ("类型 kind", ""),
                      ("提交人 filer", ""), ("提交于 filed", "t"), ("已等待 age", "num"), ("理由 reason", "")],
                     rows, "没有待审批的补录申请 no application is pending")
            + "</section>")


def _duplicates(fig: Figures) -> str:
    d = fig.duplicates
    rows = ([r["id"], _when(r["received_at"], fig), r["invoice_number"], r["seller_name"], r["original_name"],
             r["duplicate_of"]]
            for r in d["examples"])
    return (f"<section id=\"duplicates\">{_title('拦截的重复发票', 'Duplicates caught')}"
            f"<p>本期到达、判定为重复（未再次送达）arrived this period and held as duplicates: <b>{d['count']}</b></p>"
            + _table([("编号 id", "num"), ("到达 arrived", "t"), ("发票号码 number", "t"), ("销售方 seller", ""),
                      ("文件 file", ""), ("重复于 duplicate of", "num")], rows, "")
            + "</section>")


def _missing(fig: Figures) -> str:
    m = fig.missing
    rows = ([r["document_id"], r["invoice_number"], r["destination"], _when(r["absent_at"], fig),
             _when(r["resent_at"], fig) or "未重发 not yet",
             r["state"]] for r in m["rows"])
    return (f"<section id=\"missing\">{_title('对账缺失及重发', 'Missing at reconciliation and re-sent')}"
            f"<p>对账时目的地未找到 not found at the destination: <b>{m['count']}</b> · "
            f"已重新送达 delivered again since: <b>{m['resent']}</b></p>"
            + _table([("编号 id", "num"), ("发票号码 number", "t"), ("目的地 destination", ""),
                      ("发现缺失 found missing", "t"), ("重新送达 re-sent", "t"), ("现状 state now", "")],
                     rows, "本期对账未发现缺失 reconciliation found nothing missing")
            + "</section>")


def _expiry(fig: Figures) -> str:
    x = fig.expiry

    def left(days: int) -> str:
        return f"已过期 {-days} 天 expired {-days} d ago" if days < 0 else f"剩 {days} 天 {days} d left"

    rows = ([r["id"], r["state"], r["invoice_number"], r["invoice_date"], left(r["days_left"]), r["seller_name"],
             r["original_name"]] for r in x["rows"])
    return (f"<section id=\"expiry\">{_title('过期提醒', 'Close to max_age_days and not delivered')}"
            f"<p>开票日期超过 {x['max_age_days']} 天即过期；以下发票距期限不超过 {x['warn_days']} 天且尚未送达 "
            f"(invoices expire {x['max_age_days']} days after issue; these have {x['warn_days']} days or less "
            f"left, as of {e(x['today'])}): <b>{x['count']}</b></p>"
            + _table([("编号 id", "num"), ("状态 state", ""), ("发票号码 number", "t"), ("开票日期 issued", "t"),
                      ("期限 deadline", ""), ("销售方 seller", ""), ("文件 file", "")], rows,
                     "没有临近过期的未送达发票 none")
            + "</section>")


def _target_state(t: dict, fig: Figures) -> tuple[str, str]:
    r = t.get("reachable")
    if r == "paused":
        return "bad", f"暂停 PAUSED since {_when(t.get('paused_at'), fig)}: {t.get('paused_error')}"
    if r == "unreachable":
        return "bad", f"无法连接 UNREACHABLE since {_when(t.get('unreachable_since'), fig)}" + (
            f": {t['last_error']}" if t.get("last_error") else "")
    if r == "ok":
        return "ok", "正常 ok"
    return "warn", f"{r}"


def _drill(d: dict | None, fig: Figures) -> tuple[str, str]:
    if not d:
        return "none", "尚未演练 no drill yet"
    ok = bool(d.get("ok"))
    return ("ok" if ok else "bad"), (f"{'通过 passed' if ok else '失败 FAILED'} {_when(d.get('at'), fig) or ''}"
                                     + (f": {d['detail']}" if d.get("detail") else ""))


def _backups(fig: Figures) -> str:
    b = fig.backup
    targets = b.get("targets", [])
    if not targets:
        return (f"<section id=\"backups\">{_title('备份目标', 'Backup targets')}"
                "<p class=\"none\">未配置备份目标 no [[backup]] target is configured</p></section>")
    head = "".join(f"<th class=\"{css}\">{e(h)}</th>" for h, css in (
        ("目标 target", ""), ("状态 state", ""), ("已存 objects", "num"), ("积压 backlog", "num"),
        ("失败 failed", "num"), ("最近上传 last put", ""), ("最近校验 last verify", ""),
        ("最近快照 last snapshot", ""), ("恢复演练 restore drill", "")))
    rows = []
    for t in targets:
        cls, state = _target_state(t, fig)
        dcls, drill = _drill(fig.drills.get(t["name"]), fig)
        v = t.get("last_verify") or {}
        verify = (f"{_when(t.get('last_verify_at'), fig)} ({v.get('checked', 0)} checked, "
                  f"{v.get('missing', 0)} missing, "
                  f"{v.get('mismatch', 0)} mismatched)" if t.get("last_verify_at") else "never")
        rows.append(f"<tr><td>{e(t['name'])}</td><td class=\"{cls}\">{e(state)}</td>"
                    f"<td class=\"num\">{e(t.get('objects'))}</td><td class=\"num\">{e(t.get('backlog'))}</td>"
                    f"<td class=\"num\">{e(t.get('failed'))}</td>"
                    f"<td class=\"t\">{e(_when(t.get('last_put_at'), fig) or 'never')}</td>"
                    f"<td>{e(verify)}</td><td class=\"t\">{e(_when(t.get('last_snapshot_at'), fig) or 'never')}</td>"
                    f"<td class=\"{dcls}\">{e(drill)}</td></tr>")
    held = (f"<p>至少 {e(b.get('min_copies'))} 份副本的原件 originals on at least {e(b.get('min_copies'))} target(s): "
            f"<b>{e(b.get('backed_up'))}/{e(b.get('objects'))}</b> (发票文件 documents' files "
            f"{e(b.get('documents_backed_up'))}/{e(b.get('documents'))})</p>")
    return (f"<section id=\"backups\">{_title('备份目标', 'Backup targets')}{held}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>")
