"""When and how a collection's HNSW index is built: after an ingest or sync that left enough points outside it
(setting `optimize_threshold`), and on `german-rag optimize`; with a progress bar on a terminal.

The edge engine builds in a child process while this store waits (ingest/store/edge.py), a server in the
background while it keeps answering; either way the caller gets what was built and how long it took.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ingest.store.base import IndexState, OptimizeProgress, VectorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexBuild:
    """What an optimize did: the state before and after, and its duration."""

    before: IndexState
    after: IndexState
    seconds: float
    changed: bool

    def to_dict(self) -> dict:
        return {"before": asdict(self.before), "after": asdict(self.after), "seconds": round(self.seconds, 3),
                "changed": self.changed}

    def summary(self) -> str:
        return (f"index: {self.after.indexed:,} of {self.after.points:,} points in HNSW, {self.after.segments} "
                f"segments ({self.seconds:.1f} s)")


def due(state: IndexState, threshold: int) -> bool:
    """A build is due when at least `threshold` points are outside the index (0: never by itself)."""
    return threshold > 0 and state.unindexed >= threshold


def optimize(store: VectorStore, progress: bool = False) -> IndexBuild:
    """Build the index now, with a progress line on stderr when `progress` (searches on an embedded store wait
    until it returns; the line says for about how long)."""
    before = store.index_state()
    started = time.perf_counter()
    report = _ProgressLine(before) if progress else None
    try:
        changed = store.optimize(report)
    finally:
        if report:
            report.close()
    build = IndexBuild(before, store.index_state(), time.perf_counter() - started, changed)
    log.info("index built", extra=build.to_dict())
    return build


def optimize_if_due(store: VectorStore, threshold: int, progress: bool = False) -> IndexBuild | None:
    """`optimize` when `due`, else None; a failure is logged and left to the next run or `german-rag optimize`
    (the run's documents are stored and searchable, only slower): it never hides the run's own outcome."""
    try:
        if not due(store.index_state(), threshold):
            return None
        return optimize(store, progress)
    except Exception as exc:
        log.warning("index not built; run `german-rag optimize`", extra={"error": str(exc)})
        return None


class _ProgressLine:
    """One line rewritten in place: points, time spent, and the estimate from the collection's last build."""

    def __init__(self, before: IndexState, write: Callable[[str], object] = sys.stderr.write) -> None:
        self._write = write
        self._shown = False
        self._write(f"building the index over {before.unindexed:,} points; searches of this store wait until "
                    "it is done\n")

    def __call__(self, p: OptimizeProgress) -> None:
        if p.indexed is not None:
            done = f"{p.indexed:,} of {p.points:,} indexed"
        elif p.estimate_s:
            done = f"about {min(99, int(100 * p.elapsed_s / p.estimate_s))} % (estimate {p.estimate_s:.0f} s)"
        else:
            done = "no estimate yet (the first build of this collection times the next ones)"
        self._write(f"\r  index: {p.elapsed_s:.0f} s, {done}   ")
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._write("\n")
