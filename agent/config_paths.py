"""What the filesystem says of a loaded config: folders missing or not
writable, and watched folders that overlap the agent's own (`config check`
and the daemon's start both ask, by the same calls); and where a command
may not write its output (`output_refusal`: into the agent's own folders).
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import Config, WatchConfig
from agent.config_adapters import local_folder
from agent.config_metrics import textfile_problems


def check_paths(cfg: Config) -> list[str]:
    """Filesystem problems, one line each naming the key: missing or
    unwritable watched folders, an unwritable state folder, a missing local
    destination or backup folder, a [metrics] textfile folder that cannot
    take it. Empty when all is well."""
    problems = []
    state = cfg.state_dir
    existing = next((p for p in (state, *state.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK):
        problems.append(f"agent.state_dir: {state} is not writable")
    for i, w in enumerate(cfg.watches):
        if not w.path.is_dir():
            problems.append(f"watch[{i}].path: folder {w.path} does not exist")
        elif not os.access(w.path, os.R_OK | os.X_OK):
            problems.append(f"watch[{i}].path: folder {w.path} is not readable")
        elif w.after != "keep" and not os.access(w.path, os.W_OK):
            problems.append(f"watch[{i}].path: folder {w.path} is not writable (after = \"{w.after}\")")
    for kind, entries in (("destination", cfg.destinations), ("backup", cfg.backups)):
        for i, e in enumerate(entries):
            local = local_folder(e)
            if local is None:
                continue
            if not local.is_dir():
                problems.append(f"{kind}[{i}].url: folder {local} does not exist")
            elif not os.access(local, os.W_OK):
                problems.append(f"{kind}[{i}].url: folder {local} is not writable")
    problems += textfile_problems(cfg.metrics)
    problems += _overlaps(cfg)
    problems += nested_watches(cfg)
    return problems


def nested_watches(cfg: Config) -> list[str]:
    """One line per watch lying inside another watch's folder (symlinks
    followed; of two on one folder, the second), naming both. Such a pair
    is never watched: the outer one would take the inner one's files with
    its own settings, its moved files too (an outer after = "delete"
    deleting what the inner one kept in processed/). The daemon refuses a
    reload to it and, at start, watches neither (`nest_of`)."""
    problems = []
    for i, (w, j) in enumerate(zip(cfg.watches, _outer_indexes(cfg))):
        if j is not None:
            problems.append(f"watch[{i}].path: folder {w.path} lies inside watch[{j}].path ({cfg.watches[j].path}), "
                            "which takes its files with its own settings; give each watch its own folder")
    return problems


def nest_of(cfg: Config, watch: WatchConfig) -> str | None:
    """Why `watch` (by identity, as in cfg.watches) is not watched because it
    lies inside another watch's folder or holds another watch's, or None."""
    i = next(k for k, w in enumerate(cfg.watches) if w is watch)
    outer = _outer_indexes(cfg)
    j = outer[i]
    if j is not None:
        return f"lies inside the folder of another watch ({cfg.watches[j].path}); give each watch its own folder"
    inner = [cfg.watches[k].path for k in range(len(cfg.watches)) if k != i and outer[k] == i]
    if inner:
        return (f"holds the folder of another watch ({', '.join(map(str, inner))}), whose files it would take "
                "with its own settings; give each watch its own folder")
    return None


def _overlaps(cfg: Config) -> list[str]:
    """A watched folder holding (or lying inside) the state folder, the vault,
    a folder:// outbox, a backup folder or the weekly reports' folder would take the agent's own files
    as invoices, and move or delete them with after = move/delete."""
    owned = [("agent.state_dir", cfg.state_dir), ("agent.vault_dir", cfg.vault_dir)]
    for kind, entries in (("destination", cfg.destinations), ("backup", cfg.backups)):
        owned += [(f"{kind}[{i}].url", local) for i, e in enumerate(entries)
                  if (local := local_folder(e)) is not None]
    if cfg.report.get("dir"):   # the weekly reports would come back in as junk every week
        owned.append(("report.dir", cfg.base_dir / cfg.report["dir"]))
    problems = []
    for i, w in enumerate(cfg.watches):
        watched = _real(w.path)
        for key, folder in owned:
            mine = _real(folder)
            if watched == mine or mine.is_relative_to(watched) or watched.is_relative_to(mine):
                problems.append(f"watch[{i}].path: folder {w.path} overlaps {key} ({folder}); a watched folder "
                                "must neither hold nor lie inside the agent's own folders")
    return problems


def _agent_folders(cfg: Config) -> list[tuple[str, Path, str]]:
    # (key, folder, what becomes of a file written there) for every folder the
    # agent reads, keeps or hands on.
    folders = [(f"watch[{i}].path", w.path, "the agent would take it in as a document (or refuse it)")
               for i, w in enumerate(cfg.watches)]
    folders.append(("agent.state_dir", cfg.state_dir, "the agent's own state (ledger, vault)"))
    for kind, entries, fate in (("destination", cfg.destinations, "it would go to the finance system with "
                                 "the invoices"), ("backup", cfg.backups, "the backup target holds only "
                                                   "what the agent puts there")):
        folders += [(f"{kind}[{i}].url", local, fate) for i, e in enumerate(entries)
                    if (local := local_folder(e)) is not None]
    return folders


def output_refusal(cfg: Config, target: Path, *, what: str, allow: Path | None = None) -> str | None:
    """Why a command must not write its output (`what`: "--out", "--to"...)
    at `target`, a folder or file, or None. Refused: at or inside a watched
    folder (it would come back in as a document or a refusal), the state
    folder or vault, a folder:// destination's folder (finance would import
    it) or a file:// backup target; symlinks followed on both sides (of
    `target` as far as it exists). `allow` is a folder inside the state
    folder that may take it (the weekly reports' folder), never inside
    another of these folders. One line naming the key and the folder."""
    real = _real(target)
    allowed = _real(allow) if allow is not None else None
    for key, folder, fate in _agent_folders(cfg):
        mine = _real(folder)
        if not real.is_relative_to(mine):
            continue
        if key == "agent.state_dir" and allowed is not None and real.is_relative_to(allowed) \
                and not real.is_relative_to(_real(cfg.vault_dir)):
            continue
        where = "is" if real == mine else "lies inside"
        return (f"{what} {target} {where} {key} ({folder}): {fate}; "
                "write it to a folder of your own")
    return None


def watch_overlaps(cfg: Config, watch: WatchConfig) -> bool:
    """True when `watch` (now, symlinks followed) holds or lies inside one of
    the agent's own folders: the daemon does not watch it (see `check_paths`)."""
    i = cfg.watches.index(watch)
    return any(p.startswith(f"watch[{i}].path:") for p in _overlaps(cfg))


def _outer_indexes(cfg: Config) -> list[int | None]:
    # For each watch, the watch whose folder holds its folder (symlinks
    # followed; of two on one folder, the first holds the second), or None.
    # Every watch is recursive and a file belongs to the first watch it
    # lies in: the inner one's kind, after and label would never apply, and
    # its files would be seen twice. By index: two watches written alike
    # are equal, and .index() would find the first for both. Each folder is
    # resolved once (a realpath is a walk of lstat calls).
    real = [_real(w.path) for w in cfg.watches]
    return [next((j for j, outer in enumerate(real)
                  if j != i and inner.is_relative_to(outer) and (inner != outer or j < i)), None)
            for i, inner in enumerate(real)]


def _real(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except OSError:
        return Path(os.path.abspath(path))


def folder_identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the folder `path` leads to now, None when it cannot be reached."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def reload_refusal(running: Config, new: Config, state_identity: tuple[int, int] | None = None) -> str | None:
    """Why a running daemon must not take `new` on a reload (SIGHUP), or
    None. Its state folder differs, by name or, when `state_identity` (the
    folder the running daemon opened) is given, by what it leads to now (a
    symlink re-pointed): the ledger, vault and lock it holds cannot move
    under it; restart to use another. Or it drops every watched folder,
    every destination or every backup target the running config has: an
    empty or cut-off file, which would stop intake, delivery or backups in
    silence; to do that on purpose, restart. Or it has watches inside
    another's folder (`nested_watches`), which `config check` refuses."""
    if new.state_dir.resolve() != running.state_dir.resolve() or (
            state_identity is not None and folder_identity(new.state_dir) != state_identity):
        return (f"agent.state_dir {new.state_dir} is not the folder the daemon opened ({running.state_dir}): "
                "a reload cannot move the ledger and vault of a running daemon; restart it to use the new folder")
    for section, old, now in (("[[watch]] folder", running.watches, new.watches),
                              ("[[destination]]", running.destinations, new.destinations),
                              ("[[backup]] target", running.backups, new.backups)):
        if old and not now:
            return (f"the new config has no {section} where the running one has {len(old)} (an empty or "
                    "cut-off file?); to drop them all on purpose, restart the daemon")
    if nested := nested_watches(new):
        return "; ".join(nested)
    return None
