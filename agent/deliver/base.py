"""The destination interface: what the delivery loop may rely on from any adapter.

Guarantees every adapter keeps (the contract tests in
tests/integration/test_destination_contract.py check each of them):

- `put(parcel)` is idempotent by `parcel.key`. A second put of a key the
  destination already holds is a success that returns the receipt of what is
  there; it never creates a second copy. A remote's 409 / "already exists" /
  precondition-failed answer is therefore success, not an error.
- Every receipt (of a put, fresh or "already there", and of a lookup) names
  in `raw["sha256"]` the sha256 of the file the destination holds under the
  key, not of the one just sent. The loop counts an "already there" as
  delivered only when that is the parcel's own sha256; another is a
  `delivery-conflict` (two documents cannot share one key there).
- `put` returns only once the destination has durably accepted the parcel.
  If it raises, the parcel may or may not be there: the caller looks it up
  (or simply puts again, which is safe) before deciding.
- `lookup(key)` returns the receipt if the destination holds the key now,
  None if it does not. It never creates or changes anything.
- `probe()` returns None when the destination looks able to accept work and
  raises otherwise. It never delivers anything.
- Nothing but `agent.errors.AdapterError` subclasses escapes these methods:
  `Transient` (retry later; `retry_after` set when the remote said so),
  `Permanent` (this request cannot succeed as it is; the message is the
  remote's own), `Misconfigured` (a Permanent that blames the destination,
  not the document: bad credentials, missing bucket or folder), `NotFound`.
- Messages and reprs never contain tokens, passwords or secret keys.
- Adapters are safe to call from several threads at once (up to the
  destination's `concurrency`); they start no threads themselves.
"""

from __future__ import annotations

import json
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

# Re-exported: the adapters read their keys through base.
from agent.deliver.settings import config_bool, config_number, config_str, where  # noqa: F401
from agent.errors import ConfigError, OriginalUnreadable, Permanent
from agent.extract.sniff import EXTENSIONS, MEDIA_TYPES
from agent.model import Invoice
from agent.redact import redact


@dataclass(frozen=True)
class Parcel:
    """One invoice as delivered: identity, file and field set.

    `key` is the invoice identity (`Invoice.key`) and doubles as the
    Idempotency-Key; `fields` is `Invoice.to_dict()` output; `path` is the
    original in the vault.
    """

    key: str
    number: str
    filename: str
    media_type: str
    sha256: str
    fields: dict = field(hash=False, compare=False)
    path: pathlib.Path = field(compare=False)


def parcel_for(invoice: Invoice, *, path: pathlib.Path, filename: str, media_type: str,
               sha256: str) -> Parcel:
    """The parcel for a validated invoice and its vault file.

    Raises Permanent when the invoice has no key (no 号码), since nothing
    could make its delivery idempotent.
    """
    key = invoice.key
    if not key:
        raise Permanent("invoice has no number, so it has no key to deliver under")
    return Parcel(key=key, number=str(invoice.get("number")), filename=filename, media_type=media_type,
                  sha256=sha256, fields=invoice.to_dict(), path=pathlib.Path(path))


@dataclass(frozen=True)
class Receipt:
    """Proof that a destination holds an invoice.

    `remote_id` is the system's own id (e.g. 申请编号) when it gives one;
    `location` is where the invoice lives there (URL, path, object key);
    `raw` is what the remote said, JSON-ready, for the ledger. `warning`
    is what the adapter found odd in an answer it still counts as a
    delivery (an HTTP 2xx naming no id), logged and shown, never silent.
    """

    destination: str
    key: str
    remote_id: str | None
    location: str | None
    raw: dict = field(default_factory=dict, hash=False, compare=False)
    warning: str | None = field(default=None, compare=False)

    def __post_init__(self):
        # The remote's id and location as made, for every adapter: the log
        # line, `show` and the ledger print them, so a megabyte-long id is
        # cut here, once (`storable_text`, 200 characters).
        for name in ("remote_id", "location"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, storable_text(value, _TEXT_KEPT))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for a ledger column (`warning` only when set),
        every text storable: `raw` as `kept_raw` keeps it (at most
        RAW_KEPT_BYTES of JSON; `raw_cut` says how it was cut, beside it, where
        no answer can forge or hide it)."""
        raw, cut = kept_raw(self.raw)
        d = {"destination": self.destination, "key": self.key, "remote_id": self.remote_id,
             "location": self.location, "raw": raw}
        if cut:
            d["raw_cut"] = cut
        if self.warning:
            d["warning"] = self.warning
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Receipt":
        """Inverse of `to_dict`."""
        return cls(destination=d["destination"], key=d["key"], remote_id=d.get("remote_id"),
                   location=d.get("location"), raw=d.get("raw") or {}, warning=d.get("warning"))


class Misconfigured(Permanent):
    """The destination refuses every request (credentials, bucket, folder, TLS).

    A Permanent, so a loop that only knows Permanent still stops retrying;
    a loop that knows this class can pause the destination instead of
    quarantining each document.
    """


@runtime_checkable
class Destination(Protocol):
    """Where valid invoices go. See the module docstring for the guarantees."""

    name: str

    def put(self, parcel: Parcel) -> Receipt:
        """Deliver `parcel` once; an already-held key is success with the existing receipt."""
        ...

    def lookup(self, key: str) -> Receipt | None:
        """The receipt for `key` if the destination holds it now, else None."""
        ...

    def probe(self) -> None:
        """Return if healthy; raise Transient/Permanent/Misconfigured otherwise."""
        ...


def open_destination(cfg: dict) -> Destination:
    """Build the adapter for cfg["url"] by its scheme: folder://, http(s)://, s3://.

    Raises ConfigError naming the key for a missing url, an unknown scheme or
    a bad adapter setting. Opening makes no network call and touches no file.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"destination: expected a table of settings, got {type(cfg).__name__}")
    url = cfg.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where(cfg)}url: missing; expected folder://PATH, https://HOST/BASE or s3://BUCKET/PREFIX")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "folder":
        from agent.deliver.folder import FolderDestination
        return FolderDestination.from_config(cfg)
    if scheme in ("http", "https"):
        from agent.deliver.http import HttpDestination
        return HttpDestination.from_config(cfg)
    if scheme == "s3":
        from agent.deliver.s3 import S3Destination  # boto3 loads only when needed
        return S3Destination.from_config(cfg)
    raise ConfigError(f"{where(cfg)}url: unknown scheme {scheme or url!r}; expected folder://, http://, https:// or s3://")


def destination_name(cfg: dict) -> str:
    """cfg["name"], or the url without credentials or query when unnamed."""
    name = cfg.get("name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where(cfg)}name: expected a non-empty string, got {name!r}")
        return name
    parts = urlsplit(cfg["url"])
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


_SAFE_NUMBER = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")


def safe_name_part(value: str, what: str) -> str:
    """`value` if it can be one path or object-key segment, else Permanent.

    Invoice numbers are digits; anything with a slash or a leading dot would
    let a forged invoice write outside its folder or prefix.
    """
    if not isinstance(value, str) or not _SAFE_NUMBER.match(value):
        raise Permanent(f"{what} {value!r} cannot be used as a file name (expected letters, digits, '-' or '_')")
    return value


def extension_of(parcel: Parcel) -> str:
    """The delivered file's extension, by what its bytes are: the original's
    (lower-cased) when it is one of that format's (`.jpeg` stays), else the
    format's own; a sender's name never makes a PDF `.exe` or an XML
    `.html` in the import folder. A format not known here keeps a plain
    original extension, else `bin`."""
    suffix = pathlib.PurePath(parcel.filename).suffix.lower().lstrip(".")
    plain = suffix if suffix and re.fullmatch(r"[0-9a-z]{1,8}", suffix) else None
    kind = parcel.media_type.split(";")[0].strip().lower()
    kind = _FORMAT_OF_MIME.get(kind, kind)
    if kind in EXTENSIONS:
        return plain if plain in EXTENSIONS[kind] else EXTENSIONS[kind][0]
    return plain or "bin"


# The ledger's media types are sniffed formats; a parcel may carry one as a
# MIME type instead.
_FORMAT_OF_MIME = {**{mime: fmt for fmt, mime in MEDIA_TYPES.items()}, "text/xml": "xml"}


def sidecar_bytes(parcel: Parcel) -> bytes:
    """The JSON sidecar written beside a delivered file: identity, hash and fields.

    Deterministic (sorted keys) so an identical re-delivery writes identical bytes.
    """
    doc = {"key": parcel.key, "number": parcel.number, "filename": parcel.filename,
           "media_type": parcel.media_type, "sha256": parcel.sha256, "fields": parcel.fields}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1, default=str).encode("utf-8")


def read_parcel_file(parcel: Parcel) -> bytes:
    """The vault file's bytes, checked against `parcel.sha256`.

    OriginalUnreadable (a Permanent) when the file is gone, unreadable or
    not what the ledger recorded: a destination must never receive bytes
    other than the original.
    """
    try:
        data = parcel.path.read_bytes()
    except OSError as e:
        raise OriginalUnreadable(f"cannot read vault file {str(parcel.path)!r} for {parcel.key}: "
                                 f"{e.strerror or e}") from None
    import hashlib   # here: `status` imports this module and hashes nothing

    if hashlib.sha256(data).hexdigest() != parcel.sha256.lower():
        raise OriginalUnreadable(f"vault file {str(parcel.path)!r} for {parcel.key} does not match its recorded "
                                 "sha256")
    return data


# What a receipt's `raw` keeps in the ledger at most. A chatty system that
# answers with the whole invoice echoed back (its lines, the PDF in base64)
# would otherwise put up to a megabyte into every delivery row: the ledger,
# its snapshots and every `status` grow with it.
RAW_KEPT_BYTES = 8 * 1024
# The fields that prove a delivery, kept first, at the top level and one
# level down (`{"code": 0, "data": {"id": ...}}`, the shape of many Chinese
# finance APIs).
_RAW_FIRST = ("sha256", "id", "key", "location", "success", "code", "status", "message", "msg")
_TEXT_KEPT = 200


def storable_text(text: str, limit: int | None = None) -> str:
    """`text` as the ledger can hold it: a lone surrogate (half an emoji, as
    a JavaScript server cuts one) written as its escape `\\ud83d`, and, with
    `limit`, cut to that many characters and "…", redacted again after the
    cut (a secret's head left at the end of the cut is masked)."""
    if limit is not None and len(text) > limit:
        text = redact(text[:limit]) + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _storable(value: Any) -> Any:
    # Every text in a JSON-like value storable (`storable_text`), keys too.
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


_SKIP = object()  # a value kept_raw leaves out (an object or a list)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace"))


def kept_raw(raw: Any) -> tuple[Any, str | None]:
    """(`raw` as the ledger keeps it, a note when it was cut). Whole when its
    JSON is at most RAW_KEPT_BYTES; else its top-level numbers, booleans and
    texts (each text cut to 200 characters), the proof fields first, those
    of a nested object too, within that size; keys longer than 200
    characters are left out. Every text storable (`storable_text`)."""
    size = _size(raw)
    if size <= RAW_KEPT_BYTES:
        return _storable(raw), None
    note = f"an answer of {size} bytes of JSON: only its top-level values and proof fields are kept"
    if not isinstance(raw, dict):
        return {}, f"an answer of {size} bytes of JSON, not kept"
    kept: dict[str, Any] = {}
    used = 2

    def scalar(value: Any) -> Any:
        # A text cut and storable, a number, bool or None as it is; else _SKIP.
        if isinstance(value, str):
            return storable_text(value, _TEXT_KEPT)
        return value if value is None or isinstance(value, (bool, int, float)) else _SKIP

    def add(key: Any, value: Any) -> bool:
        nonlocal used
        if not isinstance(key, str) or len(key) > _TEXT_KEPT or key in kept:
            return True
        cost = _size({key: value})
        if used + cost > RAW_KEPT_BYTES:
            return False
        kept[storable_text(key)] = value
        used += cost
        return True

    # The proof fields, then objects holding some (only those fields of
    # theirs), then every other top-level value, while there is room.
    proofs = {k: {p: value for p in _RAW_FIRST if p in v and (value := scalar(v[p])) is not _SKIP}
              for k, v in raw.items() if isinstance(v, dict)}
    order = ([(k, scalar(raw[k])) for k in _RAW_FIRST if k in raw]
             + [(k, proof) for k, proof in proofs.items() if proof]
             + [(k, scalar(v)) for k, v in raw.items() if k not in _RAW_FIRST and not isinstance(v, dict)])
    for k, value in order:
        if value is not _SKIP and not add(k, value):
            break
    return kept, note
