"""What a watcher has yet to apply: paths changed or removed, each held until it has settled.

A changed file is ready once its size and modification time have stayed the same for `debounce_s`
seconds (every event on it starts the wait again), so a file still being written is never ingested
half-way. A file that is gone when it is looked at is a removal. A removal is ready `debounce_s` after
its event; the source of a move waits for its destination, so that both go to the store in one call
(the store then re-points the file's vectors instead of embedding it again).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Stamp = tuple[int, int]  # (size, mtime_ns)


def stamp_of(path: Path) -> Stamp | None:
    """Size and modification time of a file, or None where there is none (gone, or unreadable to stat)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class Entry:
    kind: str  # "changed" | "removed"
    seen: float  # clock time of its last event, or of the last change found by looking at the file
    stamp: Stamp | None = None  # what the file looked like then (changed entries)
    moved_to: Path | None = None  # a removal that is a move's source: it goes with its destination


@dataclass
class Batch:
    """Ready paths for one apply call."""

    entries: dict[Path, Entry] = field(default_factory=dict)

    @property
    def changed(self) -> list[Path]:
        return [p for p, e in self.entries.items() if e.kind == "changed"]

    @property
    def removed(self) -> list[Path]:
        return [p for p, e in self.entries.items() if e.kind == "removed"]

    @property
    def moves(self) -> dict[Path, Path]:
        """Source -> destination of the moves whose both ends are in this batch."""
        return {p: e.moved_to for p, e in self.entries.items()
                if e.moved_to is not None and self.entries.get(e.moved_to, Entry("", 0)).kind == "changed"}

    def __len__(self) -> int:
        return len(self.entries)


class PendingSet:
    """Thread-safe: the observer's thread adds paths, the watcher's loop takes ready batches."""

    def __init__(self, debounce_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.debounce_s = debounce_s
        self._clock = clock
        self._entries: dict[Path, Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def changed(self, path: Path) -> None:
        """A file was created, written, closed after writing, or moved here: wait until it settles."""
        stamp = stamp_of(path)  # outside the lock: a stat may be slow on a network share
        with self._lock:
            self._entries[path] = Entry("changed", self._clock(), stamp)

    def removed(self, path: Path, moved_to: Path | None = None) -> None:
        """A file or folder was deleted or moved away (to `moved_to`, when that is a watched file)."""
        with self._lock:
            self._entries[path] = Entry("removed", self._clock(), moved_to=moved_to)

    def take_ready(self, limit: int) -> Batch:
        """Remove and return up to `limit` settled paths (a move's two ends count as one)."""
        now = self._clock()
        with self._lock:
            candidates = [(p, e) for p, e in self._entries.items() if now - e.seen >= self.debounce_s]
        looked = {p: stamp_of(p) for p, e in candidates if e.kind == "changed"}  # stat outside the lock
        batch = Batch()
        with self._lock:
            waiting = set()
            for path, entry in candidates:
                if self._entries.get(path) is not entry:  # a newer event came in meanwhile: it waits again
                    waiting.add(path)
                elif entry.kind == "changed" and looked[path] is not None and looked[path] != entry.stamp:
                    entry.stamp, entry.seen = looked[path], now  # still being written: wait another debounce
                    waiting.add(path)
                elif entry.kind == "changed" and looked[path] is None:
                    entry.kind = "removed"  # deleted before it settled: only a removal
            for path, entry in candidates:
                if len(batch) >= limit:
                    break
                if path in waiting or path in batch.entries or self._entries.get(path) is not entry:
                    continue
                partner = entry.moved_to
                if partner is not None and partner in self._entries and (
                        partner in waiting or now - self._entries[partner].seen < self.debounce_s):
                    continue  # the move's destination has not settled: both go later, together
                batch.entries[path] = self._entries.pop(path)
                if partner is not None and partner in self._entries and partner not in waiting:
                    batch.entries[partner] = self._entries.pop(partner)
            if batch.changed:
                self._join_removals(batch, limit)
        return batch

    def _join_removals(self, batch: Batch, limit: int) -> None:
        """Removals that have not waited out the debounce join a batch of changes: a removal needs no settling,
        and a move into a folder made a moment before reaches us as a creation first and a deletion about
        half a second later (inotify had no watch on the new folder yet; watchdog holds a move's first half
        back to pair it). In one call the store can still re-point the moved file's vectors."""
        for path, entry in list(self._entries.items()):
            if len(batch) >= limit:
                return
            if entry.kind == "removed" and entry.moved_to is None:
                batch.entries[path] = self._entries.pop(path)

    def put_back(self, batch: Batch) -> None:
        """An apply that did not happen (the store was away): its paths wait again, ready at once, unless a
        newer event on a path came in meanwhile (that one wins)."""
        with self._lock:
            for path, entry in batch.entries.items():
                if path not in self._entries:
                    entry.seen = self._clock() - self.debounce_s
                    self._entries[path] = entry
