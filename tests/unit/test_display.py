"""service/display.py: one table helper for every CLI table, aligned by
display width, and times shown local with their offset."""

from __future__ import annotations

import datetime as dt

from wcwidth import wcswidth

from service.display import Column, clip, local_time, table, width

COLUMNS = (Column("id", "id", ">"), Column("seller", "seller", max_width=12), Column("total", "total", ">"),
           Column("file", "file"))


def test_columns_line_up_by_display_width_whatever_the_script():
    rows = [{"id": 7, "seller": "北京某某科技有限公司", "total": "113.00", "file": "发票.pdf"},
            {"id": 1234, "seller": "ACME Ltd", "total": "5.00", "file": "a.pdf"},
            {"id": 2, "seller": "Cafe\u0301 Ü", "total": None, "file": "x\x1b[2J.pdf"}]
    lines = table(rows, COLUMNS)
    # "total" ends, and "file" starts, at the same display column on every line.
    ends = {wcswidth(line[:line.index(cell) + len(cell)])
            for line, cell in zip(lines, ["total", "113.00", "5.00", "-"])}
    starts = {wcswidth(line[:line.index(cell)]) for line, cell in zip(lines, ["file", "发票.pdf", "a.pdf", "x\\x1b"])}
    assert len(ends) == 1 and len(starts) == 1, lines
    assert "北京某某科…" in lines[1]        # cut to at most 12 columns: 5 × 2 + the … (one more 科技 would be 13)
    assert "\x1b" not in "".join(lines) and all(line == line.rstrip() for line in lines)


def test_clip_counts_columns_not_characters():
    assert clip("发票发票发票", 6) == "发票…" and width(clip("发票发票发票", 6)) <= 6
    assert clip("abc", 3) == "abc" and width("e\u0301") == 1


def test_a_ledger_time_is_shown_local_with_its_offset():
    stamp = "2026-11-30T17:30:00.000000Z"
    moment = dt.datetime(2026, 11, 30, 17, 30, tzinfo=dt.timezone.utc).astimezone()
    off = moment.strftime("%z")
    assert local_time(stamp) == f"{moment:%Y-%m-%d %H:%M:%S} {off[:3]}:{off[3:]}"
    shanghai = dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert local_time(shanghai.isoformat()) == local_time(stamp)          # the same moment
    assert local_time(None) is None and local_time("not a time") == "not a time"
    assert local_time("2026-11-30T17:30:00") == "2026-11-30T17:30:00"   # no zone: never guessed


def test_the_quick_width_agrees_with_wcwidth_on_every_code_point_it_decides():
    # display.width answers table text without importing wcwidth; where it
    # does, it must give wcwidth's answer (a Unicode upgrade of either side
    # that made them differ fails here, not in a misaligned table).
    import wcwidth

    from service.display import _quick_width
    decided = 0
    for point in range(0x110000):
        ch = chr(point)
        quick = _quick_width(ch)
        if quick is None:
            continue
        decided += 1
        expected = wcwidth.wcwidth(ch)
        assert quick == (expected if expected >= 0 else 1), hex(point)
    assert decided > 100_000   # Han, kana, Hangul, full-width forms and ASCII all go the quick way
