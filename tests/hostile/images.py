"""Hostile images: headers that claim more pixels than they carry, cut files."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, tag: str) -> bytes:
    """A PNG whose IHDR says width x height, with a tiny IDAT: opening it
    costs nothing, decoding it would cost width*height bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"tEXt", b"Comment\0" + tag.encode())
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def png_zlib_bomb(tag: str, side: int = 8000) -> bytes:
    """A PNG within the pixel limit whose IDAT inflates to side*side bytes
    from a few kilobytes (a memory bomb that passes the header check)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"tEXt", b"Comment\0" + tag.encode())
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def png_bad_crc(tag: str) -> bytes:
    """A real small PNG whose chunk CRCs are all wrong."""
    data = bytearray(_real("PNG", tag))
    pos = 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        crc_at = pos + 8 + length
        if crc_at + 4 > len(data):
            break
        data[crc_at:crc_at + 4] = b"\xde\xad\xbe\xef"
        pos = crc_at + 4
    return bytes(data)


def _real(fmt: str, tag: str, size: tuple[int, int] = (64, 64)) -> bytes:
    img = Image.new("L", size, color=len(tag) % 256)
    img.putpixel((0, 0), sum(tag.encode()) % 256)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def jpeg_truncated(tag: str) -> bytes:
    """A real JPEG cut in the middle of its scan data."""
    data = _real("JPEG", tag, (400, 400))
    return data[:len(data) // 2]


def jpeg_claiming(width: int, height: int, tag: str) -> bytes:
    """A JPEG whose SOF0 marker says width x height (max 65535 each)."""
    data = bytearray(_real("JPEG", tag))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_claiming(width: int, height: int, tag: str) -> bytes:
    """A GIF whose screen and frame descriptors claim width x height."""
    data = bytearray(_real("GIF", tag))
    data[6:10] = struct.pack("<HH", width, height)
    frame = data.find(b"\x2c")
    data[frame + 5:frame + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def tiff_claiming(width: int, height: int, tag: str) -> bytes:
    """A TIFF whose ImageWidth/ImageLength tags are rewritten."""
    img = Image.new("L", (32, 32))
    buf = io.BytesIO()
    img.save(buf, "TIFF", description=tag)
    data = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd:ifd + 2])[0]
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag_id, typ = struct.unpack("<HH", data[at:at + 4])
        if tag_id in (256, 257):
            value = width if tag_id == 256 else height
            data[at + 2:at + 12] = struct.pack("<HII", 4, 1, value)  # LONG
    return bytes(data)


def bmp_claiming(width: int, height: int, tag: str) -> bytes:
    """A BMP header claiming width x height over a few bytes of pixels."""
    data = bytearray(_real("BMP", tag))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def webp_garbage(tag: str) -> bytes:
    """A RIFF/WEBP header over noise."""
    body = b"VP8 " + struct.pack("<I", 64) + tag.encode().ljust(64, b"\x9d")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body
