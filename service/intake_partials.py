"""A slow writer's partial file, captured before its writer was done, set
aside once the whole file is captured (`superseded`, not left in
quarantine). Apart from service/intake.py, which calls it for every steady
capture of a scanner file."""

from __future__ import annotations

import logging
from pathlib import Path

from agent.capture import Captured
from agent.errors import IllegalTransition
from agent.filenames import exact_path, storable
from agent.ledger import Ledger
from agent.vault import Vault

log = logging.getLogger("fapiao.intake")


def supersede_partials(ledger: Ledger, vault: Vault, path: Path, got: Captured, *, now: str, actor: str) -> None:
    """End as `superseded` by `got` every earlier capture of `path` that was a
    partial file of it (its bytes the beginning of these, or these with
    zeros where they were not written yet), each with an event saying so;
    a capture that cannot move to `superseded` any more is left as it is."""
    # A slow writer's first half settled and was captured; now the path
    # holds more. An earlier capture of this path whose bytes are the
    # beginning of these is that partial file: it ends as `superseded`
    # by this one instead of waiting in quarantine. So is one of the same
    # size holding zeros where these bytes were written since: a writer
    # that sized the file first (Explorer copying over SMB does).
    shown_path = storable(str(path))
    for doc in ledger.earlier_captures(exact_path(str(path)), exclude_id=got.document_id):
        if doc.size > got.size or not _written_over(vault, doc.sha256, doc.size, got.sha256):
            continue
        how = ("were the beginning" if doc.size < got.size
               else "were these with zeros where they were not written yet")
        try:
            ledger.supersede(doc.id, got.document_id, now=now, actor=actor,
                             why=f"{shown_path} settled again with {got.size} bytes, of which its "
                                 f"{doc.size} bytes {how} (a partial file)")
        except IllegalTransition:
            continue
        log.info("partial capture superseded", extra={"document": doc.id, "by": got.document_id,
                                                      "path": storable(str(path))})


def _written_over(vault: Vault, sha256: str, size: int, of_sha256: str) -> bool:
    # Each of the `size` bytes of `sha256` is the byte of `of_sha256` at
    # its place, or zero (not written yet): what the file held before its
    # writer was done. Read from the vault, a MiB at a time.
    try:
        with open(vault.path(sha256), "rb") as a, open(vault.path(of_sha256), "rb") as b:
            while size > 0:
                n = min(size, 1 << 20)
                old, new = a.read(n), b.read(n)
                if len(old) != n or len(new) != n:
                    return False
                if old != new and not all(x == y or x == 0 for x, y in zip(old, new)):
                    return False
                size -= n
            return True
    except OSError:
        return False
