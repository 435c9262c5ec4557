"""The fleet store's identity: what reveals that the store lost its claims.

A claim chain that vanished is caught by a site that had recorded a
generation of it (gate._vanished). A site that never saw the key cannot
tell "never claimed" from "claimed, delivered, and then lost with the
bucket", and would put it a second time. So the store carries an identity
whose loss shows, and every site remembers what it saw there:

    epoch/gen-00000001   {"epoch", "generation", "kind", "made_at", "made_by", "holder", "actor", "why", "lost"}
    epoch/gen-00000002   ...

Each generation is created once with If-None-Match: * (as claims are: two
sites making the first epoch at once end with one); the highest is the
store's epoch. Its kind:

- `new`: made by a site that had joined no epoch and found none: a fleet's
  (or an upgraded fleet's) first; joined without a word;
- `lost`: written by a site that found the claims may be gone (below), so
  that every site, also one that never joined anything, sees it at its
  next check; nobody joins it;
- `acknowledged`: an operator's `fleet acknowledge`: every site joins it,
  when the chain shows the epoch that site had joined (as one generation's
  own or one `lost` generation's `lost`), and claims go on normally.

A site trusts the store (`examine`) while the store's head is the epoch it
joined and its marks are still there: the newest and the oldest claim
generation its ledger recorded since it joined (a claim is never deleted,
only followed by higher generations). Anything else is a doubt, and the
site writes a `lost` generation unless the head is one already:

- no epoch at all (the bucket emptied, deleted and made anew, [fleet] url
  moved without the objects), or another one (made anew by another site);
- a head older than the one joined (restored from an older copy);
- a mark gone (claims/ deleted or expiring, or restored from a copy older
  than this site's last claim: the epoch alone cannot show that).

Pure: the store, what the site joined and its marks come from the caller;
`now` passed in; no threads, no sleeps.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass

from agent.errors import Conflict, Permanent
from agent.fleet.claims import MAX_GENERATION, _stamp, check_calendar, generations, parse_stamp
from agent.fleet.store import FleetStore, TooLarge

EPOCH = "epoch/"
KINDS = ("new", "lost", "acknowledged")
# An epoch generation is read no further than this (one is under 2 KiB).
EPOCH_MAX_BYTES = 8 * 1024
# A generation's whole key: another name merely ending like one (a copy an
# operator left, "epoch/copy-of-gen-00000009") is no generation, or every
# look would find a top it cannot read and end contended.
_GEN = re.compile(r"epoch/gen-(\d{8})")
_ID = re.compile(r"[0-9a-f]{16}")
_SITE = re.compile(r"[a-z0-9-]{1,63}")
# The texts a generation carries, at most, read (a reason typed by a person,
# what a site found); half of it written, so that even four bytes a character
# stay far inside EPOCH_MAX_BYTES (a generation too big to read is doubted).
WHY_MAX = 2000
_TRIES = 6


class InvalidEpoch(Permanent):
    """An object under epoch/ that no site writes."""


class ContendedEpoch(Permanent):
    """Racing writers kept taking the next generation (a storm, not a bug)."""


@dataclass(frozen=True)
class EpochRecord:
    """One generation of the store's epoch, as stored."""

    generation: int
    epoch: str              # 16 hex digits, made at random with the generation
    kind: str               # new | lost | acknowledged
    made_at: str
    made_by: str            # the site that wrote it
    holder: str             # that site's agent (ledger) id
    actor: str = ""         # acknowledged: who ran the command
    why: str = ""           # lost: what the site found; acknowledged: the operator's reason
    lost: str = ""          # lost: the epoch the writer had joined, whose claims may be gone

    def to_bytes(self) -> bytes:
        """The object's content (JSON)."""
        return json.dumps(self.as_dict(), ensure_ascii=False, sort_keys=True).encode()

    def as_dict(self) -> dict:
        """Its fields, as stored and as --json shows them."""
        return {"generation": self.generation, "epoch": self.epoch, "kind": self.kind, "made_at": self.made_at,
                "made_by": self.made_by, "holder": self.holder, "actor": self.actor, "why": self.why,
                "lost": self.lost}

    @classmethod
    def from_bytes(cls, generation: int, data: bytes) -> "EpochRecord":
        """Parse a stored generation; InvalidEpoch unless it is one a site
        writes (a JSON object; an id of 16 hex digits; a known kind; a site
        name; a time stamp with a zone in the years claims allow; texts of
        bounded length; its own generation)."""
        try:
            d = json.loads(data)
            if not isinstance(d, dict):
                raise TypeError(f"a JSON {type(d).__name__}, not an object")
            texts = {k: d.get(k) or "" for k in ("holder", "actor", "why", "lost")}
            if any(not isinstance(v, str) or len(v) > WHY_MAX for v in texts.values()):
                raise ValueError("holder, actor, why or lost is not a bounded text")
            if not isinstance(d["epoch"], str) or not _ID.fullmatch(d["epoch"]):
                raise ValueError("epoch is not an epoch id")
            if texts["lost"] and not _ID.fullmatch(texts["lost"]):
                raise ValueError("lost is not an epoch id")
            if d["kind"] not in KINDS:
                raise ValueError(f"kind {str(d['kind'])[:40]!r} is none of {', '.join(KINDS)}")
            if not isinstance(d["made_by"], str) or not _SITE.fullmatch(d["made_by"]):
                raise ValueError("made_by is not a site name")
            if d.get("generation", generation) != generation:
                raise ValueError(f"it says generation {str(d.get('generation'))[:20]}")
            if not isinstance(d["made_at"], str) or len(d["made_at"]) > 40:
                raise TypeError("made_at is not a time stamp")
            made = parse_stamp(d["made_at"])
            if made.tzinfo is None:
                raise ValueError("made_at has no time zone")
            check_calendar(made, "made_at")
            return cls(generation, d["epoch"], d["kind"], d["made_at"], d["made_by"], **texts)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
            raise InvalidEpoch(f"generation {generation} of the fleet store's epoch is not one a site writes "
                               f"({type(e).__name__}: {str(e)[:120]})") from e

    def named(self) -> str:
        """How a person is told which epoch this is (no time: texts are stored)."""
        by = f"acknowledged by {self.actor} at site {self.made_by}" if self.kind == "acknowledged" else (
            f"made by site {self.made_by}" if self.kind == "new" else f"written as lost by site {self.made_by}")
        return f"generation {self.generation} ({by})"


@dataclass(frozen=True)
class Finding:
    """What `examine` found: `trusted` (fresh claims go as usual; `epoch`
    is the one the site trusts, `etag` its listing's ETag, to be recorded
    when it changed), or not (`why` says what was found, in a sentence
    without times). `head` is the store's epoch after the look (None: none,
    or not one a site writes), `top` its highest generation number, `wrote`
    what this look wrote (a `new` epoch, or a `lost` one)."""

    trusted: bool
    why: str | None = None
    epoch: EpochRecord | None = None
    etag: str = ""
    head: EpochRecord | None = None
    top: int = 0
    wrote: EpochRecord | None = None


def _key(generation: int) -> str:
    return f"{EPOCH}gen-{generation:08d}"


def _tags(store: FleetStore) -> dict[int, str]:
    # The epoch's generations (1 .. MAX_GENERATION) with their ETags, by one LIST.
    out = {}
    for key, etag in store.list_tagged(EPOCH).items():
        if (m := _GEN.fullmatch(key)) and 1 <= (g := int(m.group(1))) <= MAX_GENERATION:
            out[g] = etag
    return out


def _read(store: FleetStore, generation: int) -> EpochRecord | None:
    try:
        got = store.read(_key(generation), max_bytes=EPOCH_MAX_BYTES)
    except TooLarge as e:
        raise InvalidEpoch(f"generation {generation} of the fleet store's epoch is not one a site writes: {e}") from e
    return None if got is None else EpochRecord.from_bytes(generation, got[0])


def record(generation: int, kind: str, *, site: str, holder: str, now: dt.datetime, actor: str = "",
           why: str = "", lost: str = "") -> EpochRecord:
    """A new generation (a fresh random id), its texts cut to half WHY_MAX
    (readable back whatever their characters: see WHY_MAX)."""
    cut = WHY_MAX // 2
    return EpochRecord(generation, secrets.token_hex(8), kind, _stamp(now), site, holder[:200], actor[:200],
                       why if len(why) <= cut else why[:cut - 2] + " …", lost)


def create(store: FleetStore, rec: EpochRecord) -> str | None:
    """Create `rec`'s generation with If-None-Match: *: its ETag, or None
    when another writer created that generation first."""
    try:
        return store.create(_key(rec.generation), rec.to_bytes())
    except Conflict:
        return None


def read_head(store: FleetStore) -> tuple[EpochRecord | None, str | None]:
    """The store's epoch as it is (nothing written): (its head, None), (None,
    why it is not one a site writes), or (None, None) when there is none.
    Raises Transient/Permanent when the store does not answer."""
    tags = _tags(store)
    for g in sorted(tags, reverse=True):
        try:
            head = _read(store, g)
        except InvalidEpoch as e:
            return None, str(e)
        if head is not None:
            return head, None
    return None, None


def marks_missing(store: FleetStore, marks: list[dict]) -> str | None:
    """Why the store lost claims, or None: the first mark ({invoice_key,
    generation}) whose chain no longer reaches its generation."""
    for m in marks:
        gens = generations(store, m["invoice_key"])
        top = gens[-1] if gens else 0
        if top < m["generation"]:
            return (f"generation {m['generation']} of the claim on {m['invoice_key']}, which this site saw in the "
                    f"store, is gone (" + (f"its chain ends at generation {top}" if top else "no claim is left")
                    + "): claims were deleted or expired, or the store was restored from an older copy")
    return None


def quick(store: FleetStore, joined: dict | None, marks: list[dict]) -> bool:
    """True when one LIST shows the joined generation still the head with
    the ETag recorded, and each mark still there (a LIST of its chain).
    False means: look closer (`examine`), not necessarily a doubt."""
    if not joined or not joined.get("etag"):
        return False
    tags = _tags(store)
    return (bool(tags) and max(tags) == joined["generation"] and tags[max(tags)] == joined["etag"]
            and marks_missing(store, marks) is None)


def _chain_ids(store: FleetStore, top: int) -> tuple[set[str], set[str]]:
    # The epoch ids the chain names below `top`: each generation's own, and
    # those a `lost` one lost.
    own, lost = set(), set()
    for g in range(1, top):
        try:
            rec = _read(store, g)
        except InvalidEpoch:
            continue
        if rec is not None:
            own.add(rec.epoch)
            lost |= {rec.lost} - {""}
    return own, lost


def _follows(store: FleetStore, head: EpochRecord, joined: dict) -> bool:
    # Whether the chain below the `acknowledged` head shows the epoch this
    # site joined: as a generation's own (then the head is above it), or as
    # what a `lost` one lost, at any generation. A chain begun anew (the
    # bucket emptied: `lost` at generation 1, acknowledged at 2) is below
    # the generation a site had joined, yet its `lost` names that epoch: a
    # copy older than the join could not.
    own, lost = _chain_ids(store, head.generation)
    return joined["epoch"] in lost or (head.generation > joined["generation"] and joined["epoch"] in own)


def _joined_text(joined: dict) -> str:
    return f"generation {joined['generation']} ({joined.get('named') or 'joined'})"


def examine(store: FleetStore, joined: dict | None, marks: list[dict], *, site: str, holder: str,
            now: dt.datetime) -> Finding:
    """Whether this site may trust the store's claims, by the module's rules:
    with no epoch and none joined, a `new` one is made and trusted; a head
    it joined with its marks there is trusted; an `acknowledged` head whose
    chain shows the epoch it joined (or with none joined) is joined; a `new`
    head is joined by a site that had joined none. Anything else is a
    doubt, and a `lost` generation is written above the head unless it is
    one already. `joined` is what the ledger keeps ({generation, epoch,
    etag, named}); `marks` claim generations it saw since it joined.
    Raises Transient/Permanent when the store does not answer."""
    for _ in range(_TRIES):
        tags = _tags(store)
        top = max(tags) if tags else 0
        try:
            head = _read(store, top) if top else None
            if top and head is None:
                continue                   # listed, then gone: look again
            invalid = None
        except InvalidEpoch as e:
            head, invalid = None, str(e)
        if head is None and invalid is None:
            if joined is None:
                made = record(1, "new", site=site, holder=holder, now=now)
                etag = create(store, made)
                if etag is None:
                    continue
                return Finding(True, epoch=made, etag=etag, head=made, top=1, wrote=made)
            why = (f"the fleet store holds no epoch, and this site had joined {_joined_text(joined)}: the "
                   "bucket was emptied, or deleted and made anew, or [fleet] url points elsewhere")
        elif head is not None and head.kind == "lost":
            return Finding(False, why=f"site {head.made_by} found it: {head.why}", head=head, top=top)
        elif head is not None and joined is not None and (head.generation, head.epoch) == (
                joined["generation"], joined["epoch"]):
            missing = marks_missing(store, marks)
            if missing is None:
                return Finding(True, epoch=head, etag=tags[top], head=head, top=top)
            why = missing
        elif head is not None and joined is None and head.kind in ("new", "acknowledged"):
            return Finding(True, epoch=head, etag=tags[top], head=head, top=top)
        elif head is not None and joined is not None and head.kind == "acknowledged" and _follows(store, head, joined):
            return Finding(True, epoch=head, etag=tags[top], head=head, top=top)
        elif invalid is not None:
            why = invalid
        else:
            why = (f"the fleet store's epoch is {head.named()}, not {_joined_text(joined)} that this site "
                   "joined: the store was made anew or restored from an older copy")
        if top >= MAX_GENERATION:
            return Finding(False, why=why, head=head, top=top)
        lost = record(top + 1, "lost", site=site, holder=holder, now=now, why=why,
                      lost=joined["epoch"] if joined else "")
        if create(store, lost) is None:
            continue                       # another site wrote it first (an acknowledgement?): look again
        return Finding(False, why=why, head=lost, top=top + 1, wrote=lost)
    raise ContendedEpoch(f"fleet store: its epoch still contended after {_TRIES} tries")


def acknowledge(store: FleetStore, found: Finding, *, site: str, holder: str, actor: str, reason: str,
                now: dt.datetime) -> tuple[EpochRecord, str] | None:
    """Write the next generation above `found` (a doubt `examine` just
    gave) as `acknowledged` by `actor` for `reason`: (the record, its
    ETag), or None when another writer took that generation first (look
    again: it may be another operator's acknowledgement)."""
    if found.top >= MAX_GENERATION:
        raise InvalidEpoch(f"the fleet store's epoch is at generation {MAX_GENERATION}, the last one: "
                           "delete epoch/ by hand (every site then doubts the store until acknowledged)")
    rec = record(found.top + 1, "acknowledged", site=site, holder=holder, now=now, actor=actor,
                 why=f"{reason} (acknowledging: {found.why})")
    etag = create(store, rec)
    return None if etag is None else (rec, etag)
