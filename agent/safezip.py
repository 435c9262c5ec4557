"""Read zip archives from strangers (e-mail attachments, OFD files) safely.

A zip's headers are claims, not facts: a bomb declares a small size and
inflates to gigabytes, a hostile name climbs out with `../`, and a zip can
hold a zip that holds a zip. Every limit is therefore checked twice, once
against the central directory before anything is inflated and again against
the bytes actually produced while streaming, and a whole nest of zips shares
one byte budget so nesting cannot multiply it.
"""

from __future__ import annotations

import io
import lzma
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass

from agent.errors import ExtractError

_CHUNK = 64 * 1024

# Errors zipfile and its decompressors raise on damaged input.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
               zlib.error, lzma.LZMAError, struct.error, NotImplementedError,
               IndexError, KeyError, OverflowError, UnicodeDecodeError, RuntimeError)

_EOCD_SIG = b"PK\x05\x06"
_SPAN_MARKERS = (b"PK\x07\x08", b"PK00")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_EOCD_SEARCH = 22 + 65535  # fixed record plus the longest possible comment


@dataclass(frozen=True)
class ZipLimits:
    """What one archive (with everything nested in it) may cost.

    `max_ratio` applies only to members larger than `ratio_floor_bytes`:
    a small XML of repeated whitespace legitimately compresses 300:1, and a
    bomb only matters once it is big.
    """

    max_members: int = 2000
    max_total_bytes: int = 200 * 1024 * 1024
    max_member_bytes: int = 100 * 1024 * 1024
    max_ratio: float = 200.0
    max_depth: int = 2
    ratio_floor_bytes: int = 1024 * 1024


DEFAULT_LIMITS = ZipLimits()


@dataclass
class _Budget:
    """Inflated bytes spent so far by an archive and every zip opened inside it."""

    spent: int = 0


@dataclass(frozen=True)
class SkippedMember:
    """A member that `names()` leaves out, and why (unsafe-name, duplicate-name,
    directory-with-data: a folder entry carrying bytes)."""

    raw_name: str
    reason: str


def safe_member_name(name: str) -> str | None:
    """Return `name` normalised to a relative `a/b/c` path, or None if unsafe.

    None for: empty names, absolute paths (`/x`, `\\x`), drive letters or
    UNC prefixes (`C:x`, `//server`), any `..` component, and control
    characters (C0, DEL, C1, and Unicode format/separator controls that
    could disguise a name). Backslashes count as separators; `.` and empty
    components are dropped. A trailing `/` (a directory) is kept.
    """
    if not isinstance(name, str) or not name:
        return None
    for ch in name:
        if ch in "\t\n\r\x0b\x0c\x00" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return None
    unified = name.replace("\\", "/")
    if unified.startswith("/"):
        return None
    if len(unified) >= 2 and unified[1] == ":":
        return None
    parts = unified.split("/")
    is_dir = unified.endswith("/")
    kept: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            return None
        # A colon anywhere is an NTFS alternate data stream or a drive spec.
        if ":" in part:
            return None
        kept.append(part)
    if not kept:
        return None
    return "/".join(kept) + ("/" if is_dir else "")


def open_zip(data: bytes, limits: ZipLimits = DEFAULT_LIMITS) -> SafeZip:
    """Open `data` as a zip and check its directory against `limits`.

    Guarantees on return: at most `max_members` entries, no member declares
    more than `max_member_bytes`, the declared total is within
    `max_total_bytes`, and no large member declares a ratio above
    `max_ratio`. Raises ExtractError("corrupt") when the directory cannot
    be read and ExtractError("limit-exceeded") when a limit is broken.
    """
    return _open(data, limits, depth=1, budget=_Budget())


class SafeZip:
    """An opened, directory-checked archive. Build it with `open_zip`."""

    def __init__(self, zf: zipfile.ZipFile, limits: ZipLimits, depth: int, budget: _Budget,
                 members: dict[str, zipfile.ZipInfo], skipped: list[SkippedMember]):
        self._zf = zf
        self._limits = limits
        self._budget = budget
        self._members = members
        self.depth = depth
        self.skipped: list[SkippedMember] = skipped

    def names(self) -> list[str]:
        """Safe names of the file members, in archive order (no directories).

        Members with unsafe or duplicate names are left out and listed in
        `self.skipped` with the reason.
        """
        return list(self._members)

    def encrypted_names(self) -> list[str]:
        """Safe names of the members stored encrypted (a zip with a
        password), in archive order: `read` refuses each of them."""
        return [name for name, info in self._members.items() if info.flag_bits & 0x1]

    def read(self, name: str) -> bytes:
        """Return the inflated bytes of member `name` (one from `names()`).

        The bytes are streamed with a running count, so a member that
        inflates past its declared size, `max_member_bytes`, `max_ratio` or
        the archive's shared `max_total_bytes` budget is stopped as soon as
        it crosses the line: ExtractError("limit-exceeded"). A damaged
        member raises ExtractError("corrupt"); an encrypted one
        ExtractError("encrypted"), said in English and Chinese with what to
        do; an unknown name ExtractError("corrupt").
        """
        info = self._members.get(name)
        if info is None:
            raise ExtractError("corrupt", f"no member named {name!r} in the archive")
        if info.flag_bits & 0x1:
            raise ExtractError("encrypted", f"zip member {name!r} is encrypted: the zip has a password, which "
                                            "the agent does not have; unzip it with the password and put the "
                                            "invoice files in a watched folder, or ask the sender for them "
                                            "without a password",
                               zh=f"zip 压缩包有密码（{name!r} 已加密），程序没有密码：请用密码解压后把发票文件放入"
                                  "监控文件夹，或请发件人发送不加密码的文件")
        lim = self._limits
        cap = min(info.file_size, lim.max_member_bytes)
        out = bytearray()
        try:
            with self._zf.open(info) as stream:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    out += chunk
                    self._budget.spent += len(chunk)
                    self._check_running(name, info, len(out), cap)
        except ExtractError:
            raise
        except _ZIP_ERRORS as exc:
            raise ExtractError("corrupt", f"zip member {name!r} cannot be read: {exc}") from None
        if len(out) != info.file_size:
            raise ExtractError("corrupt", f"zip member {name!r} is {len(out)} bytes, "
                                          f"its header says {info.file_size}")
        return bytes(out)

    def open_nested(self, name: str, data: bytes | None = None) -> SafeZip:
        """Open member `name` as a zip one level deeper, sharing this archive's budget.

        Pass `data` when the member was already read with `read(name)` (to
        sniff it), so its bytes are not inflated and counted twice. Raises
        ExtractError("limit-exceeded") when that would pass `max_depth`,
        before the member is inflated.
        """
        if self.depth + 1 > self._limits.max_depth:
            raise ExtractError("limit-exceeded", f"zip nesting deeper than "
                                                 f"{self._limits.max_depth} at {name!r}")
        if data is None:
            data = self.read(name)
        return _open(data, self._limits, depth=self.depth + 1, budget=self._budget)

    def _check_running(self, name: str, info: zipfile.ZipInfo, produced: int, cap: int) -> None:
        lim = self._limits
        if produced > cap:
            raise ExtractError("limit-exceeded", f"zip member {name!r} inflates past "
                                                 f"{cap} bytes (declared {info.file_size})")
        if self._budget.spent > lim.max_total_bytes:
            raise ExtractError("limit-exceeded", f"archive inflates past {lim.max_total_bytes} bytes")
        if produced > lim.ratio_floor_bytes and produced > lim.max_ratio * max(info.compress_size, 1):
            raise ExtractError("limit-exceeded", f"zip member {name!r} inflates more than "
                                                 f"{lim.max_ratio:g}:1")


def _open(data: bytes, limits: ZipLimits, depth: int, budget: _Budget) -> SafeZip:
    if depth > limits.max_depth:
        raise ExtractError("limit-exceeded", f"zip nesting deeper than {limits.max_depth}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ExtractError("corrupt", "zip data must be bytes")
    data = bytes(data)
    declared = _declared_entry_count(data)
    if declared is not None and declared > limits.max_members:
        raise ExtractError("limit-exceeded", f"zip declares {declared} members, "
                                             f"limit {limits.max_members}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except _ZIP_ERRORS as exc:
        raise ExtractError("corrupt", f"not a readable zip: {exc}") from None
    if len(infos) > limits.max_members:
        raise ExtractError("limit-exceeded", f"zip has {len(infos)} members, limit {limits.max_members}")
    # (A single-segment "spanned" archive begins with a 4-byte marker.)
    if infos and (start := min(i.header_offset for i in infos)) != 0 and data[:start] not in _SPAN_MARKERS:
        # The directory found describes a zip that starts further in: the
        # file is cut short right after a zip stored inside it (whose end
        # record zipfile took for the file's own), or has bytes before its
        # archive. Either way it is not the archive its writer meant.
        raise ExtractError("corrupt", f"not a whole zip: the archive found starts at byte {start}, not at the "
                                      "start of the file (cut short while written, or not one archive)")
    members, skipped = _check_directory(infos, limits, budget)
    return SafeZip(zf, limits, depth, budget, members, skipped)


def _check_directory(infos: list[zipfile.ZipInfo], limits: ZipLimits,
                     budget: _Budget) -> tuple[dict[str, zipfile.ZipInfo], list[SkippedMember]]:
    members: dict[str, zipfile.ZipInfo] = {}
    skipped: list[SkippedMember] = []
    declared_total = 0
    for info in infos:
        if info.file_size > limits.max_member_bytes:
            raise ExtractError("limit-exceeded", f"zip member {info.filename!r} declares "
                                                 f"{info.file_size} bytes, limit {limits.max_member_bytes}")
        if (info.file_size > limits.ratio_floor_bytes
                and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
            raise ExtractError("limit-exceeded", f"zip member {info.filename!r} declares a "
                                                 f"ratio above {limits.max_ratio:g}:1")
        declared_total += info.file_size
        safe = safe_member_name(_member_name(info))
        if safe is None:
            skipped.append(SkippedMember(info.filename, "unsafe-name"))
        elif safe.endswith("/"):
            if info.file_size:  # a folder entry that carries bytes: said, never dropped unseen
                skipped.append(SkippedMember(info.filename, "directory-with-data"))
            continue
        elif safe in members:
            skipped.append(SkippedMember(info.filename, "duplicate-name"))
        else:
            members[safe] = info
    if budget.spent + declared_total > limits.max_total_bytes:
        raise ExtractError("limit-exceeded", f"zip declares {declared_total} bytes in total, "
                                             f"limit {limits.max_total_bytes}")
    return members, skipped


def _member_name(info: zipfile.ZipInfo) -> str:
    """The member's name as its author wrote it.

    Without the UTF-8 flag zipfile decodes names as CP437, which turns the
    GBK names Chinese Windows tools write into box-drawing noise; we undo
    that and try UTF-8 (many tools forget the flag), then GB18030.
    """
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return info.filename


def _declared_entry_count(data: bytes) -> int | None:
    """The entry count from the end-of-central-directory record, if findable.

    Read before zipfile builds one object per entry, so a directory of a
    million entries is refused without allocating a million objects.
    """
    start = max(0, len(data) - _EOCD_SEARCH)
    pos = data.rfind(_EOCD_SIG, start)
    if pos < 0 or pos + 22 > len(data):
        return None
    (count,) = struct.unpack_from("<H", data, pos + 10)
    if count != 0xFFFF:
        return count
    loc = pos - 20
    if loc < 0 or data[loc:loc + 4] != _ZIP64_LOCATOR_SIG:
        return None
    (eocd64,) = struct.unpack_from("<Q", data, loc + 8)
    if eocd64 + 56 > len(data) or data[eocd64:eocd64 + 4] != _ZIP64_EOCD_SIG:
        return None
    (count64,) = struct.unpack_from("<Q", data, eocd64 + 32)
    return count64
