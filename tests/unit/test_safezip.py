"""Hostile and honest zips, built here, read through agent.safezip."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ExtractError
from agent.safezip import DEFAULT_LIMITS, ZipLimits, open_zip, safe_member_name


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def test_honest_zip_reads_back_every_member():
    data = make_zip({"a.pdf": b"%PDF-1.7 one", "sub/b.xml": b"<x/>", "dir/": b""})
    sz = open_zip(data)
    assert sz.names() == ["a.pdf", "sub/b.xml"]
    assert sz.read("a.pdf") == b"%PDF-1.7 one"
    assert sz.read("sub/b.xml") == b"<x/>"
    assert sz.skipped == []


def test_default_limits_are_the_documented_ones():
    assert DEFAULT_LIMITS == ZipLimits(max_members=2000, max_total_bytes=200 * 1024 * 1024,
                                       max_member_bytes=100 * 1024 * 1024, max_ratio=200.0, max_depth=2)


def test_ratio_bomb_is_refused_before_inflating():
    bomb = make_zip({"bomb.xml": b"\0" * (8 * 1024 * 1024)})
    assert len(bomb) < 50_000
    with pytest.raises(ExtractError) as exc:
        open_zip(bomb)
    assert exc.value.reason == "limit-exceeded"
    assert "ratio" in exc.value.message


def test_small_compressible_member_is_not_a_bomb():
    # 64 KiB of spaces compresses ~500:1 but is far below the ratio floor.
    data = make_zip({"pretty.xml": b"<a>" + b" " * 65536 + b"</a>"})
    assert open_zip(data).read("pretty.xml").startswith(b"<a>")


def _patch_sizes(data: bytes, declared: int) -> bytes:
    """Make every header claim the member inflates to `declared` bytes."""
    buf = bytearray(data)
    local = buf.find(b"PK\x03\x04")
    struct.pack_into("<I", buf, local + 22, declared)
    central = buf.find(b"PK\x01\x02")
    struct.pack_into("<I", buf, central + 24, declared)
    return bytes(buf)


def test_member_lying_about_its_size_never_yields_more_than_declared():
    payload = bytes(range(256)) * 20_000  # 5 MB, compresses only mildly
    liar = _patch_sizes(make_zip({"x.pdf": payload}), declared=1000)
    sz = open_zip(liar)
    with pytest.raises(ExtractError) as exc:
        sz.read("x.pdf")
    assert exc.value.reason in ("corrupt", "limit-exceeded")


def test_member_over_the_size_limit_is_refused():
    limits = ZipLimits(max_member_bytes=1000)
    with pytest.raises(ExtractError) as exc:
        open_zip(make_zip({"big.pdf": b"x" * 1001}, zipfile.ZIP_STORED), limits)
    assert exc.value.reason == "limit-exceeded"


def test_total_bytes_over_the_budget_is_refused():
    limits = ZipLimits(max_total_bytes=3000)
    data = make_zip({f"{i}.pdf": b"y" * 1000 for i in range(4)}, zipfile.ZIP_STORED)
    with pytest.raises(ExtractError) as exc:
        open_zip(data, limits)
    assert exc.value.reason == "limit-exceeded"


def test_too_many_members_is_refused():
    data = make_zip({f"f{i}.xml": b"<a/>" for i in range(2001)}, zipfile.ZIP_STORED)
    with pytest.raises(ExtractError) as exc:
        open_zip(data)
    assert exc.value.reason == "limit-exceeded"
    assert "2001" in exc.value.message
    assert len(open_zip(data, ZipLimits(max_members=2001)).names()) == 2001


def test_traversal_and_absolute_names_are_skipped_with_a_reason():
    data = make_zip({
        "../../etc/passwd": b"root",
        "/abs.pdf": b"%PDF",
        "C:/win.pdf": b"%PDF",
        "ok/../../up.pdf": b"%PDF",
        "good.pdf": b"%PDF-good",
    })
    sz = open_zip(data)
    assert sz.names() == ["good.pdf"]
    assert {s.raw_name for s in sz.skipped} == {"../../etc/passwd", "/abs.pdf", "C:/win.pdf",
                                                 "ok/../../up.pdf"}
    assert all(s.reason == "unsafe-name" for s in sz.skipped)
    with pytest.raises(ExtractError):
        sz.read("../../etc/passwd")


def test_duplicate_names_after_normalising_keep_the_first():
    data = make_zip({"a/b.pdf": b"first", "a\\b.pdf": b"second"})
    sz = open_zip(data)
    assert sz.names() == ["a/b.pdf"]
    assert sz.read("a/b.pdf") == b"first"
    assert [s.reason for s in sz.skipped] == ["duplicate-name"]


def _zip_with_raw_name(raw_name: bytes, data: bytes) -> bytes:
    """A stored zip whose name bytes are written as-is, without the UTF-8 flag."""
    placeholder = b"N" * len(raw_name)
    built = make_zip({placeholder.decode(): data}, zipfile.ZIP_STORED)
    assert built.count(placeholder) == 2  # local header and central directory
    return built.replace(placeholder, raw_name)


@pytest.mark.parametrize("codec", ["gbk", "utf-8"])
def test_names_written_without_the_utf8_flag_are_recovered(codec):
    name = "发票/电子发票.pdf"
    sz = open_zip(_zip_with_raw_name(name.encode(codec), b"%PDF-1.7"))
    assert sz.names() == [name]
    assert sz.read(name) == b"%PDF-1.7"


@pytest.mark.parametrize("name,expected", [
    ("a.pdf", "a.pdf"),
    ("dir/sub/a.pdf", "dir/sub/a.pdf"),
    ("dir\\a.pdf", "dir/a.pdf"),
    ("./a//b.pdf", "a/b.pdf"),
    ("发票/电子发票.pdf", "发票/电子发票.pdf"),
    ("dir/", "dir/"),
    ("../a.pdf", None),
    ("a/../../b", None),
    ("..\\a.pdf", None),
    ("/etc/passwd", None),
    ("\\\\server\\share\\a", None),
    ("C:\\a.pdf", None),
    ("c:a.pdf", None),
    ("a.pdf:stream", None),
    ("a\x00.pdf", None),
    ("a\nb.pdf", None),
    ("a\x1b[31m.pdf", None),
    ("a\u202egpj.pdf", None),  # right-to-left override disguises the extension
    ("", None),
    (".", None),
    ("./", None),
])
def test_safe_member_name(name, expected):
    assert safe_member_name(name) == expected


def test_nesting_to_max_depth_is_allowed_and_one_deeper_is_refused():
    inner = make_zip({"inv.pdf": b"%PDF-inner"})
    middle = make_zip({"inner.zip": inner})
    outer = make_zip({"middle.zip": middle})

    two = open_zip(middle)
    assert two.open_nested("inner.zip").read("inv.pdf") == b"%PDF-inner"
    already_read = open_zip(middle)
    inner_bytes = already_read.read("inner.zip")
    assert already_read.open_nested("inner.zip", inner_bytes).names() == ["inv.pdf"]

    top = open_zip(outer)
    second = top.open_nested("middle.zip")
    assert second.depth == 2
    with pytest.raises(ExtractError) as exc:
        second.open_nested("inner.zip")
    assert exc.value.reason == "limit-exceeded"
    assert "nesting" in exc.value.message


def test_nested_zips_share_one_byte_budget():
    limits = ZipLimits(max_total_bytes=5000)
    inner = make_zip({"a.pdf": b"a" * 1500, "b.pdf": b"b" * 1500}, zipfile.ZIP_STORED)
    outer = make_zip({"inner.zip": inner}, zipfile.ZIP_STORED)
    top = open_zip(outer, limits)  # declares ~3.3 KB: fits alone
    with pytest.raises(ExtractError) as exc:
        top.open_nested("inner.zip")  # 3.3 KB spent + 3 KB declared > 5 KB
    assert exc.value.reason == "limit-exceeded"


@pytest.mark.parametrize("cut", [10, 30, 100, -30, -1])
def test_truncated_zip_is_corrupt_or_unreadable_member(cut):
    data = make_zip({"a.pdf": bytes(range(256)) * 50, "b.xml": b"<x/>" * 100})
    truncated = data[:cut]
    try:
        sz = open_zip(truncated)
    except ExtractError as exc:
        assert exc.reason == "corrupt"
        return
    # A cut that leaves the directory readable must still fail on the data.
    with pytest.raises(ExtractError) as exc:
        for name in sz.names():
            sz.read(name)
    assert exc.value.reason == "corrupt"


def test_corrupt_member_data_is_reported_as_corrupt():
    data = bytearray(make_zip({"a.pdf": bytes(range(256)) * 50}))
    start = data.find(b"PK\x03\x04") + 30 + len("a.pdf")
    data[start + 5:start + 40] = b"\xff" * 35
    sz = open_zip(bytes(data))
    with pytest.raises(ExtractError) as exc:
        sz.read("a.pdf")
    assert exc.value.reason == "corrupt"


@pytest.mark.parametrize("junk", [b"", b"not a zip", b"PK\x03\x04" + b"\0" * 30])
def test_non_zip_bytes_are_corrupt(junk):
    with pytest.raises(ExtractError) as exc:
        open_zip(junk)
    assert exc.value.reason == "corrupt"


def test_empty_archive_is_valid_and_has_no_members():
    assert open_zip(b"PK\x05\x06" + b"\0" * 18).names() == []


def test_encrypted_member_is_reported_as_encrypted():
    data = bytearray(make_zip({"a.pdf": b"%PDF secret"}, zipfile.ZIP_STORED))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(sig)
        (flags,) = struct.unpack_from("<H", data, pos + off)
        struct.pack_into("<H", data, pos + off, flags | 0x1)
    with pytest.raises(ExtractError) as exc:
        open_zip(bytes(data)).read("a.pdf")
    assert exc.value.reason == "encrypted"


_SEED_ZIP = make_zip({"a.pdf": bytes(range(256)) * 8, "d/b.xml": b"<x>" + b"y" * 500 + b"</x>",
                      "c.zip": make_zip({"e.pdf": b"%PDF"})})


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SEED_ZIP) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(_SEED_ZIP)))
def test_fuzz_mutated_zips_raise_only_extract_errors(flips, cut):
    data = bytearray(_SEED_ZIP)
    for pos, value in flips:
        data[pos] = value
    try:
        sz = open_zip(bytes(data[:cut] if cut else data))
        for name in sz.names():
            try:
                content = sz.read(name)
                if name.endswith(".zip"):
                    sz.open_nested(name, content).names()
            except ExtractError:
                pass
    except ExtractError:
        pass


def test_an_archive_found_further_in_than_byte_0_is_corrupt_but_a_span_marker_is_not():
    # A zip of zips, stored and cut short right after its first member, ends
    # with that member's own end record: zipfile opens it as that member.
    import io as _io
    import zipfile as _zipfile

    from agent.errors import ExtractError as _ExtractError
    from agent.safezip import open_zip as _open_zip

    def stored(members):
        out = _io.BytesIO()
        with _zipfile.ZipFile(out, "w", _zipfile.ZIP_STORED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        return out.getvalue()
    inner = stored({"a.xml": b"<a/>"})
    outer = stored({"inner.zip": inner, "b.xml": b"<b/>"})
    cut = outer[: outer.index(inner) + len(inner)]
    with pytest.raises(_ExtractError, match="not a whole zip"):
        _open_zip(cut)
    assert _open_zip(b"PK\x07\x08" + inner).names() == ["a.xml"]


def test_members_after_the_spent_budget_are_each_refused_by_name():
    # An archive nested early spends the shared inflate budget; every member
    # after it, in it and in the archives above it, is still named with the
    # reason (once they were dropped unnamed, and with nothing taken the
    # archive's refusal said it held no invoice file).
    import dataclasses
    from pathlib import Path

    from agent.mail import read_zip
    from agent.mail_types import MailLimits

    xml = (Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "renoyuan__easyofd" /
           "original_invoice.xml").read_bytes()

    def zip_of(members, method=zipfile.ZIP_DEFLATED):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", method) as z:
            for name, data in members:
                z.writestr(name, data)
        return out.getvalue()

    # The nested archive fits the budget (read in full); C.bin crosses it.
    inner = zip_of([(f"z{i}.bin", b"\0" * 100_000) for i in range(9)] + [("late.xml", xml)])
    outer = zip_of([("first.xml", xml), ("A.zip", inner), ("C.bin", b"\0" * 200_000),
                    ("D.xml", xml.replace(b"00008006", b"00008007")),
                    ("E.xml", xml.replace(b"00008006", b"00008008"))], zipfile.ZIP_STORED)
    base = MailLimits()
    limits = dataclasses.replace(base, zip_limits=dataclasses.replace(base.zip_limits, max_total_bytes=1_000_000))
    got = read_zip(outer, "bulk.zip", limits)
    assert [a.filename for a in got.attachments] == ["first.xml", "late.xml"]
    refused = {r.filename: r.reason for r in got.refusals}
    for name in ("bulk.zip/C.bin", "bulk.zip/D.xml", "bulk.zip/E.xml"):
        assert refused.get(name) == "zip-limit-exceeded", (name, refused)
