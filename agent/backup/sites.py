"""One backup target shared by the sites of a fleet (docs/fleet.md, "Shared backups").

With `[fleet] site` set, a target is seen through `SiteTarget`: what
describes ONE site's ledger goes under `sites/<site>/`, and the
content-addressed originals stay where they are, shared by every site:

    objects/ab/cd/<sha256>                      an original, stored once for the fleet
    sites/<site>/sidecars/<time>-<random>.json  sidecar batches as this site's ledger knows them
    sites/<site>/objects/ab/cd/<sha256>.json    its sidecar, as written before sidecar batches
    sites/<site>/ledger/<snapshot name>         this site's ledger snapshots
    sites/<site>/manifests/YYYY-MM-DD.json      what this site added that day

Mirror, snapshot, retention, verify, drill and restore keep using the
plain keys (`object_key`, `sidecar_key`, `snapshot_key`...): the mapping is
here only, so two sites can never overwrite each other's sidecars or prune
each other's snapshots (retention lists `ledger/`, which is this site's).
Originals are never deleted for being unknown to a ledger: only a
mismatching one is replaced (`verify.repair_object`), with the same bytes.
Without `[fleet]` targets are used as they are: the layout stays as before.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

from agent.backup.base import (OBJECTS_PREFIX, BackupTarget, InvalidKey, ObjectInfo, Source,
                               check_prefix, sha256_of_object_key)
from agent.backup.snapshot import parse_snapshot_time
from agent.errors import ConfigError

SITES_PREFIX = "sites/"
# The rule of [fleet] site (agent/config.py): never a path, never '..'.
_SITE_RE = re.compile(r"[a-z0-9-]{1,63}")
# A site's snapshot names are snapshot.py's to parse (they carry a ledger id now).
_SNAPSHOT_IN_SITE = re.compile(r"sites/([^/]+)/ledger/([^/]+)")


def check_site(site: str) -> str:
    """`site` when it is a fleet site name (1-63 of a-z, 0-9 and -, the rule
    of [fleet] site), else `ConfigError`: a name is a key segment, so
    `../x`, `a/b` or an empty name never reach a target."""
    if not isinstance(site, str) or not _SITE_RE.fullmatch(site):
        raise ConfigError(f"site {site!r} is not a fleet site name (1-63 characters of a-z, 0-9 and -)")
    return site


def is_original(key: str) -> bool:
    """True for `objects/ab/cd/<sha256>` (not its `.json` sidecar): the shared part."""
    return not key.endswith(".json") and sha256_of_object_key(key) is not None


class SiteTarget:
    """`inner` as site `site` of a shared target; see the module doc for the
    layout. Every BackupTarget guarantee holds with the keys mapped."""

    def __init__(self, inner: BackupTarget, site: str):
        self.inner = inner
        self.site = check_site(site)
        self.name = inner.name
        self.url = inner.url
        self.base = f"{SITES_PREFIX}{self.site}/"

    def __repr__(self) -> str:
        return f"SiteTarget({self.inner!r}, site={self.site!r})"

    def _map(self, key: str) -> str:
        if key.startswith(SITES_PREFIX):
            raise InvalidKey(f"backup key {key!r}: a site sees only its own keys")
        return key if is_original(key) else self.base + key

    def put(self, key: str, path_or_bytes: Source, sha256: str) -> None:
        """See BackupTarget.put. An original another site already stored is
        left as it is when the store vouches for its SHA-256 (put is idempotent)."""
        self.inner.put(self._map(key), path_or_bytes, sha256)

    def head(self, key: str) -> ObjectInfo | None:
        """See BackupTarget.head (the key in the answer is the unmapped one)."""
        info = self.inner.head(self._map(key))
        return None if info is None else ObjectInfo(key, info.size, info.sha256, info.modified)

    def get(self, key: str, dest: str | os.PathLike | None = None) -> bytes | None:
        """See BackupTarget.get."""
        return self.inner.get(self._map(key), dest)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """See BackupTarget.list: the shared originals under `prefix` and this
        site's own objects, each with its unmapped key. Other sites' keys and
        the sidecars of a pre-fleet layout never appear."""
        check_prefix(prefix)
        if prefix.startswith(SITES_PREFIX):
            return
        if OBJECTS_PREFIX.startswith(prefix) or prefix.startswith(OBJECTS_PREFIX):
            shared = prefix if prefix.startswith(OBJECTS_PREFIX) else OBJECTS_PREFIX
            for info in self.inner.list(shared):
                if is_original(info.key):
                    yield info
        for info in self.inner.list(self.base + prefix):
            yield ObjectInfo(info.key[len(self.base):], info.size, info.sha256, info.modified)

    def delete(self, key: str) -> None:
        """See BackupTarget.delete (retention deletes only this site's snapshots)."""
        self.inner.delete(self._map(key))


def site_target(target: BackupTarget, site: str | None) -> BackupTarget:
    """`target` seen as site `site` of a shared target, or as it is when `site` is None."""
    return target if not site else SiteTarget(target, site)


def layout_of(target: BackupTarget) -> str:
    """"site:<name>" for a site of a shared target, "flat" for a target used as
    it is (as `Ledger.adopt_backup_layout` records it)."""
    return f"site:{target.site}" if isinstance(target, SiteTarget) else "flat"


def sites_on(target: BackupTarget) -> list[str]:
    """The sites that have at least one ledger snapshot on `target`, sorted."""
    found = set()
    for info in target.list(SITES_PREFIX):
        m = _SNAPSHOT_IN_SITE.fullmatch(info.key)
        if m and _SITE_RE.fullmatch(m.group(1)) and parse_snapshot_time(m.group(2)) is not None:
            found.add(m.group(1))
    return sorted(found)
