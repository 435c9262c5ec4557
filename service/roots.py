"""Which watched folders the daemon may use: each must still be the very
folder it was when first watched, across reloads and restarts.

`agent/beneath.py` pins a root in memory for the life of one watcher; this
keeps the identity in the ledger, so a folder swapped for a symlink to the
outbox, the state folder or /etc while the daemon was down (or just before
a SIGHUP) is refused with a reason instead of being pinned afresh. An
operator who replaced the folder on purpose runs `config repin PATH`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.config import Config, WatchConfig
from agent.config_paths import nest_of, watch_overlaps
from agent.ledger import Ledger
from service.display import local_time


@dataclass(frozen=True)
class RefusedRoot:
    """A configured watch the daemon does not watch, and why."""

    path: str
    reason: str


def usable_watches(cfg: Config, ledger: Ledger, *, now: str) -> tuple[list[WatchConfig], list[RefusedRoot]]:
    """The watches to start and the ones refused with their reason.
    Guarantees: a watch is usable only when its folder exists, neither lies
    inside nor holds another watch's folder, does not overlap the agent's
    own folders, and leads to the folder (st_dev,
    st_ino) recorded when it was first watched; a first watch is recorded
    here, durably, before it is used."""
    usable, refused = [], []
    for w in cfg.watches:
        path = os.fspath(w.path)
        try:
            st = os.stat(path)
        except OSError as e:
            refused.append(RefusedRoot(path, f"cannot be reached ({e.strerror})"))
            continue
        if not os.path.isdir(path):
            refused.append(RefusedRoot(path, "is not a folder"))
            continue
        if nested := nest_of(cfg, w):
            # Neither of the two: an outer one would take the inner one's
            # files, and with after = "delete" delete what it moved.
            refused.append(RefusedRoot(path, nested))
            continue
        if watch_overlaps(cfg, w):
            refused.append(RefusedRoot(path, f"holds or lies inside the agent's own folders "
                                             f"(it leads to {os.path.realpath(path)})"))
            continue
        pin = ledger.root_pin(path)
        if pin is None:
            ledger.pin_root(path, dev=st.st_dev, ino=st.st_ino, real=os.path.realpath(path), now=now)
        elif (pin["dev"], pin["ino"]) != (st.st_dev, st.st_ino):
            refused.append(RefusedRoot(path, (
                f"is not the folder it was when first watched ({pin['real']}, {local_time(pin['pinned_at'])}); it now "
                f"leads to {os.path.realpath(path)}. Nothing is taken, moved or deleted there. If it was "
                f"replaced on purpose: fapiao-agent config repin {path}, then reload the daemon")))
            continue
        usable.append(w)
    return usable, refused
