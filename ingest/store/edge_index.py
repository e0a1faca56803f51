"""The edge engine's index lifecycle: which points an HNSW graph covers, graphs built in a child process while
the store keeps its folder's lock, and vacuums that keep or give back graphs (used by edge.py).

qdrant-edge's `optimize()` holds Python's GIL for the whole build (minutes at a million points): in the
process that calls it nothing else runs, not a progress line, not a health check. So `optimize()` closes the
store's shard, runs ingest/store/edge_build.py as a child process on the same folder, reports progress while it
waits, and opens the shard again. Qdrant counts a deleted point in its segment's BM25 IDF until the segment is
vacuumed, and its defaults vacuum only at 20 % deleted: `compact()` vacuums every segment with a deleted point
while the collection has no graph (docs/bench/edge_vacuum-*.md, docs/bench/scale.md).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import qdrant_edge as qe

from ingest.schema import StoreError
from ingest.store.base import DENSE, IndexState, OptimizeProgress, StoreOptions
from ingest.store.edge_build import PLAIN_KB

log = logging.getLogger(__name__)

_POLL_S = 1.0
_RATE_KEY = "hnsw_build_points_per_s"  # collection metadata: the last build's speed, for the next estimate
# collection metadata: points written (new or updated) since the last index build. The engine cannot say which
# points sit outside a graph (an updated point's old copy still counts as indexed until a vacuum), so we count.
_WRITTEN_KEY = "points_written_since_index"


def _child_env() -> dict[str, str]:
    """This process's environment with this code's folder first on the module path: the child imports the same
    `ingest` package this process runs, installed or not."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class EdgeConnection:
    """The open shard and the path's lock, shared by a store and its scoped views."""

    lock: IO[str] | None = None
    shard: qe.EdgeShard | None = None
    indexing_kb: int = PLAIN_KB  # what a shard.optimize() may index: 0 except while optimize() builds HNSW
    index: dict[str, Any] | None = None  # the collection's recorded HNSW and quantization settings
    changed: bool = False  # written since the last compact(): a delete, or an update that moved a point
    written: int = 0  # points written since _WRITTEN_KEY was last stored
    building: bool = False  # a child process has the shard: nothing may open it meanwhile


class IndexedStore(Protocol):
    """What the indexer uses of its store (EdgeStore; a protocol, so this module does not import edge.py)."""

    options: StoreOptions
    _conn: EdgeConnection

    @property
    def shard(self) -> qe.EdgeShard: ...

    @property
    def location(self) -> str: ...

    @property
    def _dir(self) -> Path: ...

    @property
    def _index(self) -> dict[str, Any]: ...

    def exists(self) -> bool: ...

    def metadata(self) -> dict: ...

    def update_metadata(self, values: Mapping[str, Any]) -> None: ...

    def _load(self, indexing_kb: int) -> qe.EdgeShard: ...

    def _reconfigure(self, indexing_kb: int) -> qe.EdgeShard: ...


class EdgeIndexer:
    """The index side of one EdgeStore (its state lives in the store's connection and collection metadata)."""

    def __init__(self, store: IndexedStore) -> None:
        self._store = store

    def state(self) -> IndexState:
        """Points, points in an HNSW graph (all but those written since the last build; none without a graph on
        disk), segments."""
        info = self._store.shard.info()
        points = int(info.points_count)
        indexed = max(0, points - self.written_since_build()) if self.has_graph() else 0
        return IndexState(points=points, indexed=indexed, segments=int(info.segments_count))

    def written_since_build(self) -> int:
        return int(self._store.metadata().get(_WRITTEN_KEY) or 0) + self._store._conn.written

    def store_written(self) -> None:
        """Add this connection's written points to the collection's count (once per close, not per write); a
        collection without a graph keeps no count (its first build covers every point)."""
        if self._store._conn.written and self._store.exists() and self.has_graph():
            self._store.update_metadata({_WRITTEN_KEY: self.written_since_build()})
        self._store._conn.written = 0

    def has_graph(self) -> bool:
        """A segment with a dense HNSW graph exists (the engine says so only on disk)."""
        return any((self._store._dir / "shard" / "segments").glob(f"*/vector_index-{DENSE}/graph.bin"))

    def optimize(self, progress: Callable[[OptimizeProgress], None] | None = None) -> bool:
        """Build HNSW and the quantized copies on segments over 10,000 KB of vectors (Qdrant's default), vacuum
        and merge segments, in a child process (ingest/store/edge_build.py: the engine holds the GIL while it
        builds); searches through this store wait until it returns. `progress` gets the time spent and an
        estimate from this collection's last build. True if a segment was rebuilt."""
        state = self.state()
        started = time.perf_counter()
        done = self._build(self._store.options.index.indexing_threshold_kb, state, progress)
        elapsed = time.perf_counter() - started
        facts: dict[str, Any] = {_WRITTEN_KEY: 0}  # every segment large enough has its graph now
        if state.unindexed >= 10_000 and elapsed > 1:  # a build long enough to time: the next estimate's rate
            facts[_RATE_KEY] = round(state.unindexed / elapsed, 1)
        self._store._conn.written = 0
        self._store.update_metadata(facts)
        self._store._conn.changed = False
        return done

    def compact(self) -> bool:
        """Vacuum segments with deleted points so BM25's IDF counts only live points (as local mode's does), in
        this process, never building a graph (`optimize()` does). Without an index every segment with a deleted
        point is vacuumed (plain segments: cheap); with one only segments with >= 20 % deleted (Qdrant's rule,
        see `_load`): such a segment comes back plain, so its points count as written and the next ingest or
        sync past `optimize_threshold` rebuilds it. Call once after a batch of deletes or updates (an ingest run,
        a sync): it rebuilds each such segment whole (docs/bench/edge_vacuum-*.md). `close()` calls it when the
        store was written to. True if a segment was rebuilt."""
        if self._store._conn.shard is None and not self._store.exists():
            return False
        indexed = self.has_graph()
        done = bool(self._store._reconfigure(PLAIN_KB).optimize())
        if done and indexed:
            self._store._conn.written += self.state().points  # unknown which segment lost its graph: rebuild all
        self._store._conn.changed = False
        return done

    def _build(self, indexing_kb: int, state: IndexState, progress: Callable[[OptimizeProgress], None] | None,
               deleted_threshold: float = 0.0, vacuum_min: int = 1) -> bool:
        """The shard's optimizers in a child process on this shard's folder, this store's shard closed (its lock
        kept) meanwhile and opened again after, also when the child fails or this process is interrupted."""
        shard = self._store.shard
        self._store._conn.shard = None  # from here on nothing uses the old handle, also if closing it fails
        shard.flush()
        shard.close()
        spec = {"index": self._store._index, "indexing_kb": indexing_kb, "deleted_threshold": deleted_threshold,
                "vacuum_min": vacuum_min}
        rate = self._store.metadata().get(_RATE_KEY)
        estimate = state.unindexed / float(rate) if rate and state.unindexed else None
        started = time.perf_counter()
        try:
            child = subprocess.Popen([sys.executable, "-m", "ingest.store.edge_build", str(self._store._dir / "shard"),
                                      json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=_child_env())
        except OSError as exc:
            self._store._load(PLAIN_KB)
            raise StoreError(f"cannot start the index build of {self._store.location}: {exc}") from exc
        self._store._conn.building = True
        try:
            while True:
                try:
                    out, err = child.communicate(timeout=_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if progress:
                        progress(OptimizeProgress(state.unindexed, time.perf_counter() - started, estimate))
        except BaseException:
            # SIGINT reaches the child too, but it holds its GIL inside the engine: only a signal stops it. The
            # engine's optimizer writes new segments aside and swaps them in, so a stopped build loses nothing.
            child.terminate()
            child.wait()
            raise
        finally:
            self._store._conn.building = False
            self._reopen()
        if child.returncode != 0:
            raise StoreError(f"building the index of {self._store.location} failed (exit {child.returncode}): "
                             f"{err.strip()[-2000:]}")
        return bool(json.loads(out.strip().splitlines()[-1])["changed"])

    def _reopen(self) -> None:
        """Open the shard again; if that fails while another error is on its way out, that error is kept and
        this one logged (the store opens the shard again on its next use)."""
        try:
            self._store._load(PLAIN_KB)
        except StoreError as exc:
            if sys.exc_info()[0] is None:
                raise
            log.error("shard not reopened after the index build", extra={"error": str(exc)})
