"""Hostile e-mails: broken MIME, floods of parts, lying encodings, nesting."""

from __future__ import annotations

import base64

from tests.hostile import archives


def junk_pdf(tag: str) -> bytes:
    """A tiny PDF-looking attachment (unreadable as a PDF, unique per tag)."""
    return b"%PDF-1.4\n% " + tag.encode() + b"\n%%EOF\n"


def headers(tag: str, ctype: str = 'multipart/mixed; boundary="B"') -> list[str]:
    return ["From: sender@example.cn", "To: ap@example.cn", f"Message-ID: <{tag}@hostile.test>",
            f"Subject: hostile {tag}", "Date: Mon, 2 Nov 2026 10:00:00 +0800", "MIME-Version: 1.0",
            f"Content-Type: {ctype}"]


def attachment(disposition: str, body: bytes, ctype: str = "application/pdf") -> list[str]:
    return ["--B", f"Content-Type: {ctype}", f"Content-Disposition: attachment; {disposition}",
            "Content-Transfer-Encoding: base64", "", base64.b64encode(body).decode()]


def message(tag: str, parts: list[list[str]], close: bool = True) -> bytes:
    lines = headers(tag) + ["", "--B", "Content-Type: text/plain", "", "see attached"]
    for p in parts:
        lines += p
    if close:
        lines.append("--B--")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"


def malformed_mime(tag: str) -> bytes:
    """Unclosed boundary, a part with no headers, a header line with no colon."""
    lines = headers(tag) + ["this header line has no colon", "", "--B", "Content-Type: application/pdf",
                            "Content-Disposition: attachment; filename=\"" + tag + ".pdf\"", "",
                            junk_pdf(tag).decode(), "--B", "", "--B", "Content-Type: multipart/mixed",
                            "", "--never-closed-inner"]
    return "\r\n".join(lines).encode() + b"\r\n"


def no_boundary(tag: str) -> bytes:
    """multipart/mixed without a boundary parameter."""
    lines = headers(tag, "multipart/mixed") + ["", "--B", "Content-Type: application/pdf", "",
                                               junk_pdf(tag).decode(), "--B--"]
    return "\r\n".join(lines).encode() + b"\r\n"


def thousand_attachments(tag: str, count: int = 1000) -> bytes:
    """`count` PDF attachments (the per-message limit is 50)."""
    return message(tag, [attachment(f'filename="{tag}-{i}.pdf"', junk_pdf(f"{tag}-{i}")) for i in range(count)])


def base64_garbage(tag: str) -> bytes:
    """A base64 part whose body is not base64."""
    lines = headers(tag) + ["", "--B", "Content-Type: application/pdf",
                            f'Content-Disposition: attachment; filename="{tag}.pdf"',
                            "Content-Transfer-Encoding: base64", "", "!!!@@@### not base64 \x7f ===== ==",
                            "*" * 77, "--B--"]
    return "\r\n".join(lines).encode() + b"\r\n"


def header_injection(tag: str) -> bytes:
    """A filename carrying CR/LF and a Bcc header, encoded so it survives transport."""
    evil = f"{tag}.pdf\r\nBcc: victim@example.com\r\nContent-Type: text/html"
    word = "=?utf-8?B?" + base64.b64encode(evil.encode()).decode() + "?="
    return message(tag, [attachment(f'filename="{word}"', junk_pdf(tag))])


def traversal_filename(tag: str) -> bytes:
    """Attachment names that climb out of any folder they are saved to."""
    return message(tag, [attachment(f'filename="../../../../etc/{tag}-cron.pdf"', junk_pdf(tag + "a")),
                         attachment(f'filename="/abs/{tag}.pdf"', junk_pdf(tag + "b")),
                         attachment(f'filename="..\\\\..\\\\{tag}.pdf"', junk_pdf(tag + "c"))])


def nested_rfc822(tag: str, depth: int = 4) -> bytes:
    """message/rfc822 inside message/rfc822 ... `depth` levels; a PDF at the bottom.
    Each level has its own boundary, as a real forward does."""
    inner = message(f"{tag}-bottom", [attachment(f'filename="{tag}-deep.pdf"', junk_pdf(tag + "-deep"))])
    for level in range(depth):
        b = f"N{level}"
        lines = headers(tag if level == depth - 1 else f"{tag}-{level}", f'multipart/mixed; boundary="{b}"')
        lines += ["", f"--{b}", "Content-Type: message/rfc822", 'Content-Disposition: attachment; filename="fwd.eml"',
                  "", inner.decode(), f"--{b}--"]
        inner = "\r\n".join(lines).encode() + b"\r\n"
    return inner


def deep_multipart(tag: str, depth: int = 200) -> bytes:
    """multipart nested `depth` deep, each level its own boundary."""
    lines = headers(tag, 'multipart/mixed; boundary="L0"') + [""]
    for i in range(1, depth):
        lines += [f"--L{i - 1}", f'Content-Type: multipart/mixed; boundary="L{i}"', ""]
    lines += [f"--L{depth - 1}", "Content-Type: application/pdf", "", junk_pdf(tag).decode()]
    for i in reversed(range(depth)):
        lines.append(f"--L{i}--")
    return "\r\n".join(lines).encode() + b"\r\n"


def zipped(tag: str, kind: str) -> bytes:
    """A message carrying one of the hostile zips from `archives`."""
    body = {"traversal": archives.traversal, "ratio": archives.ratio_bomb, "nested": archives.nested_bomb,
            "symlink": archives.symlink_member, "fan-out": archives.fan_out_bomb,
            "overlap": archives.overlapping}[kind](tag)
    return message(tag, [attachment(f'filename="{tag}.zip"', body, "application/zip")])


def binary_noise(tag: str) -> bytes:
    """Not a message at all: NULs and 8-bit noise with a Message-ID line."""
    return f"Message-ID: <{tag}@hostile.test>\r\n".encode() + bytes(range(256)) * 40


def oversized(tag: str, mb: int = 3) -> bytes:
    """A message over the test config's max_message_mb (2)."""
    return message(tag, [attachment(f'filename="{tag}.pdf"', junk_pdf(tag) + b"\0" * (mb * 1024 * 1024))])


def nul_and_8bit_headers(tag: str) -> bytes:
    """Raw GBK and NUL bytes in headers and in the filename parameter."""
    name = f"{tag}-发票.pdf".encode("gbk")
    head = "\r\n".join(headers(tag)).encode() + b"\r\nX-Junk: \x00\x01\xff\xfe\r\n\r\n"
    body = (b"--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"" + name
            + b"\x00\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(junk_pdf(tag)) + b"\r\n--B--\r\n")
    return head + body
