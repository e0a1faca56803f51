"""Peak memory of a process tree: the largest sum of RSS over a process and all its descendants.

A pipeline that forks workers (german-rag parses in a worker process) is not described by its largest
single process, so a thread samples the whole tree every `interval` seconds from /proc:
`/proc/<pid>/task/<tid>/children` (recursively, every thread's children) and `/proc/<pid>/statm`.
`ru_maxrss` from `wait4` is no measure of a child either: Linux carries the parent's high-water mark
over `fork` and `exec`, so `/bin/true` started by a 500 MiB parent reports 500 MiB.
Caveats a report should state: a peak shorter than the interval can be missed, and a sum of RSS counts
pages shared between processes (copy-on-write after a fork, shared libraries) once per process.
Linux only; elsewhere `supported()` is False and the peaks stay 0.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def supported() -> bool:
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a process that exits meanwhile is left out)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                todo += [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0  # exited between listing and reading


def tree_rss(pid: int) -> list[int]:
    """The RSS of every process in the tree right now."""
    return [rss_bytes(p) for p in descendants(pid)]


class TreePeak:
    """Samples `tree_rss(pid)` on a daemon thread until `stop()`; keeps the largest sum (`peak_bytes`), the
    largest single process (`largest_bytes`) and the most processes seen at once."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak_bytes = self.largest_bytes = self.max_processes = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def start(self) -> TreePeak:
        if supported():
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = tree_rss(self.pid)
            self.peak_bytes = max(self.peak_bytes, sum(sizes))
            self.largest_bytes = max(self.largest_bytes, *sizes, 0)
            self.max_processes = max(self.max_processes, len(sizes))
            self.samples += 1
            self._stop.wait(self.interval)
