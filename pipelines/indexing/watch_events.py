"""File events (watchdog, inotify on Linux) -> a watcher's pending set.

What a document is follows discovery (discover.py): hidden files and anything in a hidden folder are not
watched, and a sidecar (`NAME.meta.json`, `NAME.meta.yaml`) is no document itself; an event on a sidecar
marks its document changed instead (its metadata or access changed). Opening and reading a file is no
change (the watcher's own ingest reads every file it applies): those events are not even asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from pipelines.indexing.watch_pending import PendingSet

SIDECAR_SUFFIXES = (".meta.json", ".meta.yaml")
# Every event that can change what a folder holds; FileAttribEvent: chmod (a file that became unreadable
# fails now) and `touch`. Directory modified/attrib events say nothing a file's own event does not.
EVENT_TYPES: list[type[FileSystemEvent]] = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileAttribEvent,
                                            FileDeletedEvent, FileMovedEvent, DirCreatedEvent, DirDeletedEvent,
                                            DirMovedEvent]


class FolderEvents(FileSystemEventHandler):
    """Turns events under `roots` into pending changes and removals; `seen(event_type)` counts each one used."""

    def __init__(self, pending: PendingSet, roots: Sequence[Path], ignore: Sequence[Path] = (),
                 seen: Callable[[str], None] = lambda kind: None) -> None:
        self.pending, self.roots, self.ignore, self.seen = pending, list(roots), list(ignore), seen

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not isinstance(event, tuple(EVENT_TYPES)):
            return
        if event.event_type == "modified" and event.is_directory:
            return
        self.seen(event.event_type)
        src = Path(os.fsdecode(event.src_path))
        if event.event_type == "moved":
            dest = Path(os.fsdecode(event.dest_path))
            landed = self._changed(dest, event.is_directory)
            self._removed(src, moved_to=dest if landed and not event.is_directory else None)
        elif event.event_type == "deleted":
            self._removed(src)
        else:
            self._changed(src, event.is_directory)

    def document(self, path: Path) -> Path | None:
        """The document an event on `path` concerns: itself, the file a sidecar describes, or None (not watched)."""
        root = next((r for r in self.roots if path == r or path.is_relative_to(r)), None)
        if root is None or any(path == i or path.is_relative_to(i) for i in self.ignore):
            return None
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            return None
        for suffix in SIDECAR_SUFFIXES:
            if path.name.endswith(suffix) and len(path.name) > len(suffix):
                return path.with_name(path.name[: -len(suffix)])
        return path

    def _changed(self, path: Path, is_dir: bool) -> bool:
        """Mark a file (or every file of a folder that appeared) changed; whether anything watched was marked."""
        if is_dir:  # a folder moved or copied in: its files (watchdog also reports them; marking twice is one)
            marked = False
            for folder, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    marked = self._changed(Path(folder) / name, False) or marked
            return marked
        doc = self.document(path)
        if doc is None or (doc != path and not doc.exists()):  # a sidecar of no document: nothing to update
            return False
        self.pending.changed(doc)
        return doc == path

    def _removed(self, path: Path, moved_to: Path | None = None) -> None:
        doc = self.document(path)
        if doc is None:
            return
        if doc != path:  # a sidecar went away: its document's metadata changed
            if doc.exists():
                self.pending.changed(doc)
            return
        self.pending.removed(path, moved_to)
