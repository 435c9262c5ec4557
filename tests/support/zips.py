"""Zip archives for tests: OFD packages rewritten member by member, and zips
with a password."""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from typing import Callable


def rezip(data: bytes, change: dict[str, Callable[[bytes], bytes]]) -> bytes:
    """The zip `data` with each member named in `change` replaced by what its
    function makes of its bytes; the others copied as they are."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            body = src.read(name)
            out.writestr(name, change[name](body) if name in change else body)
    return buf.getvalue()


def password_zip(members: dict[str, bytes], password: bytes, seed: int = 0) -> bytes:
    """A zip of `members`, each deflated and encrypted with `password` by
    the traditional PKWARE cipher (ZipCrypto: what `zip -P`, Windows'
    Explorer and most mailers' "protect with a password" write). Real
    ciphertext, that zipfile (given the password) and unzip decrypt; the
    12-byte headers come from `seed`, so the bytes are the same each run."""
    head_bytes = random.Random(seed)
    local, central = bytearray(), bytearray()
    for name, data in members.items():
        raw_name = name.encode()
        crc = zlib.crc32(data)
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = packer.compress(data) + packer.flush()
        keys = _ZipCryptoKeys(password)
        header = bytes(head_bytes.randrange(256) for _ in range(11)) + bytes([crc >> 24])
        secret = keys.encrypt(header + packed)
        flags = 0x1 | (0 if name.isascii() else 0x800)   # encrypted; the name in UTF-8
        fields = struct.pack("<HHHHHIII", 20, flags, 8, 0, 0x21, crc, len(secret), len(data))
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHHHII", len(raw_name), 0, 0, 0, 0, 0, len(local)) + raw_name)
        local += b"PK\x03\x04" + fields + struct.pack("<HH", len(raw_name), 0) + raw_name + secret
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central), len(local), 0)
    return bytes(local + central + end)


class _ZipCryptoKeys:
    """The three keys of the traditional PKWARE cipher (APPNOTE 6.1)."""

    def __init__(self, password: bytes):
        self.keys = [0x12345678, 0x23456789, 0x34567890]
        for byte in password:
            self._update(byte)

    @staticmethod
    def _crc(register: int, byte: int) -> int:
        # One step of CRC-32 on the raw register (zlib's adds and removes the inversion).
        return ~zlib.crc32(bytes([byte]), ~register & 0xFFFFFFFF) & 0xFFFFFFFF

    def _update(self, byte: int) -> None:
        k0, k1, k2 = self.keys
        k0 = self._crc(k0, byte)
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = self._crc(k2, k1 >> 24)
        self.keys = [k0, k1, k2]

    def encrypt(self, plain: bytes) -> bytes:
        out = bytearray()
        for byte in plain:
            temp = (self.keys[2] | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            self._update(byte)
        return bytes(out)
