"""Where watchdog meets the folder watcher: which observer a folder gets
(inotify, or polling for a network share), the events it is subscribed to,
the handler that turns them into `FolderWatcher.note` calls, and the alarm
that turns a logged inotify overflow into a rescan. Apart from
service/watch.py so that it keeps only settling and intake order, and so
that the only module importing watchdog is this small one."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import watchdog.events
from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileClosedEvent,
                             FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileSystemEvent,
                             FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

if TYPE_CHECKING:
    from service.watch import FolderWatcher

POLL_INTERVAL_S = 2.0
# The events `_Handler` acts on; the observers ask the kernel for these
# alone. Every other event went through watchdog's three threads for nothing,
# each holding the GIL the main loop needs: reading a file raises an open and
# a close-without-write, so capture's own read of each file in a burst
# (and every backup tool, indexer or Samba client reading the share)
# tripled the events per file. An inotify overflow is subscribed too
# (watchdog >= 7 reports it as EventsLostEvent): a rescan, see _Handler.
# Deleted folders too, though the handler ignores them: without IN_DELETE
# watchdog forgets a removed subfolder only once the kernel drops its watch,
# which waits while anything still holds it (a shell sitting in it), and a
# folder made again under that name meanwhile was never watched: its files
# waited for the periodic rescan.
# Not FileAttribEvent (watchdog >= 5 says it for a chmod, chown or touch):
# a file handled already would be looked at, read and hashed again at each
# one, and an unreadable or junk one refused again (its ctime moved), so a
# `chown -R` in a loop, or Samba storing DOS attributes, would flood the
# ledger (an outside attack: 1,064 refusals in 20 s); a file held for a lock
# would be opened at each touch, breaking the lock every time. Rescans and
# the hold's own retry take such files again.
_EVENTS_LOST = getattr(watchdog.events, "EventsLostEvent", None)
HANDLED_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent, DirCreatedEvent,
                  DirMovedEvent, DirDeletedEvent, *([_EVENTS_LOST] if _EVENTS_LOST else [])]
_NOTED = (FileCreatedEvent, FileModifiedEvent)


def observer_for(poll: bool):
    """A new, not yet started observer for one watched folder: a polling
    one (every POLL_INTERVAL_S) when `poll`, else the platform's event
    observer (`_event_observer`)."""
    return PollingObserver(timeout=POLL_INTERVAL_S) if poll else _event_observer()


def _event_observer():
    # On Linux, inotify with unmatched moves reported as moves: a file moved
    # in from outside the watched folders comes as a move (ready at once,
    # see _Handler), not as a "created" file left to settle. Elsewhere the
    # platform's observer, whose moves in settle like any new file.
    try:
        return Observer(generate_full_events=True)
    except TypeError:
        return Observer()


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if _EVENTS_LOST is not None and isinstance(event, _EVENTS_LOST):
            self.watcher.ask_rescan()  # the kernel's queue overflowed: what changed is unknown
            return
        if event.is_directory:
            if isinstance(event, (FileMovedEvent,)) or event.event_type in ("moved", "created"):
                # A folder moved in brings files that raise no events of their own.
                self.watcher.ask_rescan()
            return
        if isinstance(event, FileMovedEvent):
            # A name renamed into place is the writer saying the file is
            # done (write under a temporary name, then rename; a copy tool
            # moving a batch in from another folder): ready without waiting
            # settle_seconds. A writer still at it afterwards raises modify
            # and close events of its own: the file is taken again, and the
            # first capture, a prefix of the second, ends `superseded`
            # (service/intake.py). No destination: moved out, nothing to take.
            if event.dest_path:
                self.watcher.note(Path(os.fsdecode(event.dest_path)), closed=True)
        elif isinstance(event, FileClosedEvent):
            self.watcher.note(Path(os.fsdecode(event.src_path)), closed=True)
        elif isinstance(event, _NOTED):
            self.watcher.note(Path(os.fsdecode(event.src_path)))


class _OverflowAlarm(logging.Handler):
    """watchdog reports a kernel inotify queue overflow only as a log
    warning; turn that warning into an immediate rescan."""

    _watchers: set = set()
    _installed: "_OverflowAlarm | None" = None

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            for w in list(self._watchers):
                w.ask_rescan()

    @classmethod
    def install(cls, watcher: FolderWatcher) -> None:
        """Have an inotify overflow ask `watcher` for a rescan."""
        cls._watchers.add(watcher)
        if cls._installed is None:
            cls._installed = cls(level=logging.WARNING)
            logging.getLogger("watchdog").addHandler(cls._installed)

    @classmethod
    def remove(cls, watcher: FolderWatcher) -> None:
        """Stop telling `watcher` about overflows."""
        cls._watchers.discard(watcher)

