"""A scanner file's move or delete after its capture, and an e-mail file's.

A source is moved or deleted only once its capture is durable (vault object
fsynced, ledger rows committed: `service/intake.py` runs these steps after
its group's COMMIT) and, for a scanner file, only once extraction has read
the capture: the step waits in the ledger (`source_actions`) and is carried
out by `finish_sources`, after a restart too, and only while the name still
holds the very file that was captured.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
from pathlib import Path

from agent import beneath
from agent.beneath import Changed, Escapes, Identity, RootReplaced
from agent.config import WatchConfig
from agent.filenames import readable_path, storable
from agent.ledger import Ledger
from agent.ledger.rows import parse_utc

log = logging.getLogger("fapiao.intake")
# processed/ holds originals: the vault's modes, whatever the umask.
PROCESSED_DIR_MODE = 0o750
PROCESSED_FILE_MODE = 0o640
PAGE = 500  # waiting steps read at once by finish_sources


def finish_sources(ledger: Ledger, watches: list[WatchConfig], *, now: str, today: dt.date, actor: str,
                   doc_ids: list[int] | None = None) -> int:
    """Carry out the waiting moves and deletes of source files whose
    capture has left `captured` (only those of `doc_ids` when given).
    Guarantees: a file is moved or deleted only when its capture was read
    (not unreadable, failed or superseded), its folder is still watched
    with after = move/delete, it is still beneath the folder, and it is
    still the file captured (inode, size, mtime, ctime), checked right
    before the act, unchanged for its folder's quiet_seconds before `now`
    (until then the step waits). Otherwise it stays and the reason is recorded on the
    document. Only a call for every document (`doc_ids` None, every
    watched folder in `watches`) closes an action of a folder `watches`
    lacks as no longer watched. Never raises for a file. Returns how many
    actions closed."""
    by_root = {os.fsencode(w.path): w for w in watches}
    now_s = parse_utc(now).timestamp()
    closed, after_id = 0, 0
    while True:
        # Page by id: steps left waiting (not quiet yet, a share not
        # mounted) never hide the ones behind them, in this folder or another.
        due = ledger.due_source_actions(doc_ids, limit=PAGE, after_id=after_id)
        for a in due:
            after_id = a["id"]
            root, path = Path(os.fsdecode(a["root"])), Path(os.fsdecode(a["path"]))
            watch = by_root.get(a["root"])
            if watch is None and doc_ids is not None:
                continue  # a call for some documents may not know every folder: the full pass decides
            acting = watch is not None and watch.after != "keep"
            if acting and a["verdict"] == "read" and _changed_within(a["identity"], watch.quiet_seconds, now_s):
                # Read, but written to lately: a writer that paused with the
                # file open (an mbox gaining its next message, a PDF its
                # signed revision) may still come back, and its bytes would
                # go into a file moved away or deleted. Waits; the next pass
                # (the daemon's, every few seconds) looks again.
                continue
            if acting and not watch.path.is_dir():
                continue  # its share is not mounted: the step waits for it
            replaced = beneath.root_problem(root) if acting else None
            if replaced:
                # Never acted on through another folder; waits until it is back.
                log.error("source step waits: " + replaced, extra={"path": storable(str(path)),
                                                                    "document": a["document_id"]})
                continue
            if a["verdict"] == "superseded":
                state, outcome = "kept", "its capture was superseded"
            elif a["verdict"] == "unread":
                state, outcome = "kept", ("its capture could not be read (a partial file from a slow "
                                          "writer?); left in place, captured again when it changes")
            elif not acting:
                state, outcome = "kept", "its folder is no longer watched with after = move or delete"
            else:
                state, outcome = act(root, path, a["identity"], watch.after, processed_folder(path, today))
                if state == "wait":
                    continue  # replaced between the look above and the act
            ledger.finish_source_action(a["id"], state=state, outcome=storable(outcome), now=now, actor=actor)
            log_act(path, state, outcome, document=a["document_id"])
            closed += 1
        if len(due) < PAGE:
            return closed


def log_act(path: Path, state: str, outcome: str, document: int | None = None) -> None:
    """One log line for what became of a source file."""
    extra = {"path": storable(str(path)), "outcome": storable(outcome)}
    if document is not None:
        extra["document"] = document
    if state in ("kept", "wait"):
        log.warning("source left in place", extra=extra)
    else:
        log.info("source " + ("moved or deleted" if state == "done" else "already gone"), extra=extra)


def processed_folder(path: Path, today: dt.date) -> Path:
    """Where `after = "move"` puts a file: processed/DATE beside it."""
    return path.parent / "processed" / today.isoformat()


def act(root: Path, path: Path, identity: Identity, after: str, target: Path, *, name: str | None = None,
        dir_mode: int | None = PROCESSED_DIR_MODE, moved_to: list[Path] | None = None) -> tuple[str, str]:
    """Move (into `target`) or delete `path` beneath `root` if it is still
    the file `identity`: ("done" | "gone" | "kept" | "wait", what happened;
    "wait": the watched folder was replaced, or the file cannot be moved
    or deleted just now (another program holds it): nothing was done, the
    step is tried again later). Never raises for the file."""
    try:
        if after == "delete":
            beneath.unlink_if_same(root, path, identity)
            return "done", "deleted"
        dest = beneath.move_if_same(root, path, identity, target, name=name, dir_mode=dir_mode,
                                    file_mode=PROCESSED_FILE_MODE if dir_mode else None)
        if moved_to is not None:
            moved_to.append(dest)
        return "done", f"moved to {readable_path(str(dest))}"   # for people: a GBK folder as its Chinese
    except FileNotFoundError:
        if after == "move" and _still_there(root, path):
            # The folder it was to go to is missing (a Maildir without
            # cur/), not the file: kept, never "gone" and taken again.
            return "kept", f"could not move it: the folder {readable_path(str(target))} is missing"
        return "gone", "no longer there (moved or deleted by someone else, or by a run killed right after)"
    except RootReplaced as e:
        log.error("source step waits: %s", e, extra={"path": storable(str(path))})
        return "wait", str(e)
    except Escapes as e:
        return "kept", f"{e}; not touched"
    except Changed as e:
        return "kept", f"changed since its capture ({e}); not touched"
    except OSError as e:
        if e.errno in _FOR_NOW:
            # Another program holds it (a lease, as Samba's oplocks take),
            # or its disk hiccups: tried again at the next rescan, not
            # left where it is for good.
            log.warning("source step waits: the file cannot be %s just now", "moved" if after == "move" else
                        "deleted", extra={"path": storable(str(path)), "error": e.strerror})
            return "wait", f"could not {after} it just now: {e.strerror or e}"
        return "kept", f"could not {after} it: {e.strerror or e}"


def _changed_within(identity: Identity, seconds: float, now_s: float) -> bool:
    # The file's last change as captured (act() checks it is still that
    # file) is less than `seconds` before `now_s` (epoch seconds). Its
    # ctime, which the server's kernel sets at every write: an mtime is the
    # writer's to set, and a scanner whose clock runs a year ahead would
    # hold its files' moves for that year. A ctime ahead of now (the clock
    # set back) is no reason to wait.
    age = now_s - identity.ctime_ns / 1e9
    return seconds > 0 and 0 <= age < seconds


def _still_there(root: Path, path: Path) -> bool:
    try:
        beneath.lstat_beneath(root, path)
        return True
    except (OSError, Escapes):
        return False


# Errors of a move or delete that pass: the step waits for the next try.
_FOR_NOW = frozenset({errno.EAGAIN, errno.EBUSY, errno.ETXTBSY, errno.EINTR})


