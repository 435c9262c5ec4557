"""agent/redact.py: every spelling of a configured secret leaves a remote's
message, through the one place such messages become errors."""

from __future__ import annotations

import base64
import gc
import json
import logging
import re
from urllib.parse import quote, quote_plus

from agent.backup.base import AccessDenied
from agent.deliver.base import Misconfigured
from agent.deliver.http import HttpDestination
from agent.errors import NotFound, Permanent, Transient
from agent.redact import MASK, redact, redact_data, remember
from service.log import JsonFormatter, KeyValueFormatter

SECRET = "s3cr3t/Tok+en=9f2b\"x"
PASSWORD = "pw-SPLIT-0a9c7e"


class Owner:
    """Something a secret's lifetime can hang on, like an adapter."""


def test_every_spelling_of_a_secret_is_masked():
    owner = Owner()
    remember(owner, SECRET)
    spellings = [SECRET, quote(SECRET, safe=""), re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(SECRET, safe="")), quote_plus(SECRET),
                 json.dumps(SECRET)[1:-1], base64.b64encode(SECRET.encode()).decode(),
                 base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
                 SECRET[:7] + "\r\n " + SECRET[7:]]          # a folded header line
    for text in spellings:
        out = redact(f"401: you sent {text} (refused)")
        assert MASK in out and text not in out, (text, out)
    # Inside any other base64 text, at each of the three byte alignments.
    for prefix in (b"", b"a", b"ab", b"user:"):
        blob = base64.b64encode(prefix + SECRET.encode() + b" and the rest").decode()
        assert MASK in redact(blob), prefix


def test_the_basic_header_is_masked_whole_split_and_by_its_parts():
    owner = Owner()
    remember(owner, PASSWORD, basic=("ap", PASSWORD))
    header = base64.b64encode(f"ap:{PASSWORD}".encode()).decode()
    for text in (f"Authorization: Basic {header}", f"got {header[:12]}\n{header[12:]}", f"ap:{PASSWORD}"):
        out = redact(text)
        assert header not in out.replace("\n", "") and PASSWORD not in out, out
    # A message cut short inside the secret keeps none of it.
    assert redact(f"invalid credentials for {PASSWORD[:9]}") == f"invalid credentials for {MASK}"
    assert redact("nothing secret here") == "nothing secret here"


def test_adapter_errors_are_redacted_when_made():
    owner = Owner()
    remember(owner, SECRET, "AKIDEXAMPLE0123")
    for cls in (Transient, Permanent, NotFound, Misconfigured, AccessDenied):
        e = cls(f"remote said: bad key AKIDEXAMPLE0123 and secret {SECRET}")
        assert "AKIDEXAMPLE0123" not in str(e) and SECRET not in str(e) and "remote said" in str(e)
        assert all(SECRET not in str(a) for a in e.args)


def test_a_secret_is_forgotten_with_its_owner():
    owner = Owner()
    remember(owner, "tok-SHORTLIVED-11aa")
    assert redact("tok-SHORTLIVED-11aa") == MASK
    del owner
    gc.collect()
    assert redact("tok-SHORTLIVED-11aa") == "tok-SHORTLIVED-11aa"


def test_an_http_destination_remembers_its_credentials_and_redacts_receipts():
    dest = HttpDestination("erp", "http://127.0.0.1:9/api", token="tok-HTTP-77c1e0aa")
    basic = HttpDestination("b", "http://127.0.0.1:9/api", username="u", password="pw-HTTP-3b8e51")
    assert redact("Bearer tok-HTTP-77c1e0aa") == "Bearer ***"
    header = base64.b64encode(b"u:pw-HTTP-3b8e51").decode()
    assert header not in redact(f"Basic {header}")
    raw = dest._receipt("k", {"id": 1, "echo": {"auth": "Bearer tok-HTTP-77c1e0aa"}}, 201).raw
    assert raw == {"id": 1, "echo": {"auth": "Bearer ***"}}
    assert redact_data([{"a": f"Basic {header}"}, 3, None]) == [{"a": MASK}, 3, None]
    del dest, basic


def test_log_lines_are_redacted_in_both_formats():
    owner = Owner()
    remember(owner, SECRET)
    record = logging.makeLogRecord({"msg": f"server said {SECRET}", "levelno": logging.ERROR,
                                    "levelname": "ERROR", "name": "t", "error": f"x {SECRET}",
                                    "details": {"echo": SECRET}})
    for formatter in (KeyValueFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert SECRET not in line and json.dumps(SECRET)[1:-1] not in line and MASK in line


def test_credentials_in_any_url_are_masked_even_if_never_remembered():
    text = "cannot reach https://ap:Pw-NEVERSEEN-1@erp.example/api and s3://k:s@b/x"
    out = redact(text)
    assert "Pw-NEVERSEEN-1" not in out and "k:s@" not in out
    assert "https://***@erp.example/api" in out and "s3://***@b/x" in out
    assert redact("mail me at a@b.example, see https://h/x@y") == "mail me at a@b.example, see https://h/x@y"


def test_a_secret_is_masked_in_any_case_hex_entities_reversed_and_by_its_leading_part():
    owner = Owner()
    token = "SeKrEtToKeN4242xyz"
    remember(owner, token)
    raw = token.encode()
    disguises = [token.lower(), token.upper(), raw.hex(), raw.hex().upper(),
                 "".join(f"&#{ord(c)};" for c in token), "".join(f"&#x{ord(c):x};" for c in token),
                 "".join(f"&#X{ord(c):X};" for c in token), token[::-1], token[::-1].upper(),
                 " ".join(token), token[:9], token[:12].lower()]
    for text in disguises:
        out = redact(f"bad auth: {text} (refused)")
        assert out == f"bad auth: {MASK} (refused)", (text, out)
    # Shorter pieces and ordinary words stay: a wrong mask hides the real error.
    assert redact(f"bad auth {token[:5]} nokens") == f"bad auth {token[:5]} nokens"
    assert redact("SECRET TOKEN expired") == "SECRET TOKEN expired"


def test_a_short_secret_is_not_masked_by_a_prefix_shorter_than_eight():
    owner = Owner()
    remember(owner, "abcdefghij")
    assert redact("abcdefg is fine") == "abcdefg is fine"
    assert redact("abcdefgh was not") == f"{MASK} was not"
