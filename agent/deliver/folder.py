"""folder://PATH: an import folder, as many finance packages read one.

Each invoice becomes `<号码>.<ext>` plus a `<号码>.json` sidecar. Both are
written to a hidden temp file, fsynced, renamed into place and the folder
fsynced, so an importer never sees half a file. The sidecar is written last:
its presence means the delivery is complete, and it names the invoice key, so
two invoices sharing a 号码 (old-style invoices differ only by 代码) are told
apart instead of overwriting each other.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import tempfile

from agent.deliver.base import (
    Misconfigured, Parcel, Receipt, destination_name, extension_of, read_parcel_file,
    safe_name_part, sidecar_bytes, where,
)
from agent.errors import ConfigError, Permanent, Transient
from agent.fsutil import fsync_dir

FILE_MODE = 0o640  # delivered files: the agent writes, its group (the importer) reads

# Errors that a person must fix at the folder; retrying cannot help.
_REFUSALS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}


class FolderDestination:
    """A local or mounted import folder. Does not create the folder: a missing
    one usually means an unmounted share, and writing to the bare mount point
    would hide invoices on the local disk."""

    def __init__(self, name: str, folder: pathlib.Path):
        self.name = name
        self.folder = folder

    @classmethod
    def from_config(cls, cfg: dict) -> "FolderDestination":
        """folder://PATH; a relative PATH resolves against cfg["base_dir"] when given."""
        raw = cfg["url"].split("://", 1)[1]
        if not raw:
            raise ConfigError(f"{where(cfg)}url: folder:// needs a path, e.g. folder:///srv/finance/import")
        path = pathlib.Path(raw).expanduser()
        if not path.is_absolute() and cfg.get("base_dir"):
            path = pathlib.Path(cfg["base_dir"]) / path
        return cls(destination_name(cfg), path)

    def __repr__(self) -> str:
        return f"FolderDestination(name={self.name!r}, folder={str(self.folder)!r})"

    def put(self, parcel: Parcel) -> Receipt:
        """Write the file and its sidecar atomically; an existing sidecar with the
        same key is success (the file is not rewritten). A sidecar naming another
        key under the same 号码 is Permanent: the folder's naming cannot hold both."""
        data_name, side_name = self._names(parcel)
        existing = self._read_sidecar(side_name)
        if existing is not None:
            if existing.get("key") == parcel.key and (self.folder / data_name).exists():
                return self._receipt(parcel.key, data_name, existing)
            if not existing:
                raise Permanent(f"{self.name}: {side_name} exists but is not a sidecar this agent wrote; "
                                f"refusing to overwrite it for {parcel.key}")
            if existing.get("key") != parcel.key:
                raise Permanent(f"{self.name}: {side_name} already holds invoice {existing.get('key')!r}, "
                                f"not {parcel.key!r}; two invoices share 号码 {parcel.number}")
        data = read_parcel_file(parcel)
        side = sidecar_bytes(parcel)
        self._check_folder()
        self._write_atomic(data_name, data)
        self._write_atomic(side_name, side)
        self._fsync_folder()
        return self._receipt(parcel.key, data_name, json.loads(side))

    def lookup(self, key: str) -> Receipt | None:
        """The receipt if a sidecar naming `key` and its file are both present."""
        number = key.rsplit("-", 1)[-1]
        try:
            safe_name_part(number, "invoice number")
        except Permanent:
            return None
        side = self._read_sidecar(f"{number}.json")
        if side is None or side.get("key") != key:
            return None
        data_name = self._data_name_from_sidecar(number, side)
        if not (self.folder / data_name).exists():
            return None
        return self._receipt(key, data_name, side)

    def probe(self) -> None:
        """Healthy when the folder exists and a file can be created and removed in it."""
        self._check_folder()
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".probe-", suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
        except OSError as e:
            raise self._error("cannot write to", e) from None

    # -- internals ---------------------------------------------------------

    def _names(self, parcel: Parcel) -> tuple[str, str]:
        number = safe_name_part(parcel.number, "invoice number")
        return f"{number}.{extension_of(parcel)}", f"{number}.json"

    @staticmethod
    def _data_name_from_sidecar(number: str, side: dict) -> str:
        suffix = pathlib.PurePath(str(side.get("filename", ""))).suffix.lower().lstrip(".")
        media = str(side.get("media_type", ""))
        probe = Parcel(key="", number=number, filename=f"x.{suffix}" if suffix else "", media_type=media,
                       sha256="", fields={}, path=pathlib.Path())
        return f"{number}.{extension_of(probe)}"

    def _receipt(self, key: str, data_name: str, side: dict) -> Receipt:
        return Receipt(destination=self.name, key=key, remote_id=data_name,
                       location=str(self.folder / data_name),
                       raw={"file": data_name, "sidecar": data_name.rsplit(".", 1)[0] + ".json",
                            "sha256": side.get("sha256")})

    def _read_sidecar(self, side_name: str) -> dict | None:
        try:
            raw = (self.folder / side_name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._error(f"cannot read {side_name} in", e) from None
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        # A sidecar we cannot read is not ours: put refuses to overwrite it.
        return doc if isinstance(doc, dict) else {}

    def _check_folder(self) -> None:
        if not self.folder.is_dir():
            raise Misconfigured(f"{self.name}: import folder {str(self.folder)!r} does not exist "
                                f"or is not a directory (unmounted share?)")

    def _write_atomic(self, name: str, data: bytes) -> None:
        tmp = None
        try:
            # A leading dot keeps importers that skip hidden files away from it.
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=".tmp")
            # mkstemp makes it 0600: an importer running as another user of the
            # agent's group could not read it. Group-readable, never world-readable.
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / name)
            tmp = None
        except OSError as e:
            raise self._error(f"cannot write {name} to", e) from None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def _fsync_folder(self) -> None:
        try:
            fsync_dir(self.folder)
        except OSError as e:
            raise self._error("cannot sync", e) from None

    def _error(self, doing: str, e: OSError) -> Exception:
        msg = f"{self.name}: {doing} {str(self.folder)!r}: {e.strerror or e}"
        if e.errno in _REFUSALS:
            return Misconfigured(msg)
        return Transient(msg)  # full disk, I/O error, stale NFS handle: may pass
