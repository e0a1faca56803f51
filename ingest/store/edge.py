"""The embedded store on Qdrant's own engine in-process (`qdrant-edge-py`), same interface as QdrantStore.

qdrant-client's local mode scores every point in Python (hundreds of ms at 100k chunks, tens of seconds to
reopen); qdrant-edge runs Qdrant's Rust segments, payload indexes, sparse IDF and Query API fusion in this
process. Layout under `options.path`:

    edge/.lock                     held (flock) while a store is open: a second process gets a StoreLockedError
    edge/<collection>/shard/       the EdgeShard (segments + WAL)
    edge/<collection>/collection.json   model, dimension, schema version (the engine keeps no metadata)

Filters are built by `ingest.store.filters.build_filter` (one validation for both engines) and translated here.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from ingest.schema import P, StoredHit, StoreError
from ingest.store.access import OWNER, Principal
from ingest.store.base import (
    DENSE,
    SCHEMA_VERSION,
    SPARSE,
    IndexOptions,
    IndexState,
    OptimizeProgress,
    StoreLockedError,
    StoreOptions,
)
from ingest.store.edge_build import (
    INDEXED_DELETED_THRESHOLD,
    INDEXED_VACUUM_MIN,
    LEGACY_INDEX,
    PLAIN_KB,
    shard_config,
)
from ingest.store.edge_convert import edge_point, to_edge_filter
from ingest.store.edge_index import EdgeConnection, EdgeIndexer
from ingest.store.engine import EngineStore
from ingest.store.filters import FilterSpec, FilterValue, build_filter

log = logging.getLogger(__name__)

_INDEX_KIND = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer,
               "float": qe.PayloadSchemaType.Float, "datetime": qe.PayloadSchemaType.Datetime,
               "bool": qe.PayloadSchemaType.Bool}
_SCROLL_PAGE = 1024
_DATATYPE = {"float32": qe.VectorStorageDatatype.Float32, "float16": qe.VectorStorageDatatype.Float16}
# Writes and vacuums load the shard with indexing threshold 0 (PLAIN_KB): no graph is built (seconds at 10k,
# minutes at 100k) unless `optimize()` asks for it; the index lifecycle is ingest/store/edge_index.py.


@dataclass(frozen=True)
class EdgeSearch:
    """How dense search runs: `exact` scans every vector (what local mode does); otherwise HNSW where built.

    Segments stay plain (exact scan in Rust) until `EdgeStore.optimize()` builds HNSW, so the default gives
    local mode's results; `hnsw_ef` matters only after an optimize.
    """

    exact: bool = False
    hnsw_ef: int | None = 512

    @classmethod
    def of(cls, index: IndexOptions) -> EdgeSearch:
        return cls(exact=index.exact, hnsw_ef=index.hnsw_ef)


class EdgeStore(EngineStore):
    """Collection schema, idempotent batched writes, deletes and searches on an in-process Qdrant shard."""

    def __init__(self, options: StoreOptions, search: EdgeSearch | None = None, principal: Principal = OWNER) -> None:
        if not options.path:
            raise StoreError("the edge engine needs an embedded path (qdrant_path); a URL means a server")
        self.options = options
        self.search = search or EdgeSearch.of(options.index)
        self.principal = principal
        self._conn = EdgeConnection()  # shared with this store's scoped views (copies)

    # -- paths, lock, shard ----------------------------------------------------------------------
    @property
    def location(self) -> str:
        return f"edge:{self.options.path}"

    @property
    def _root(self) -> Path:
        return Path(str(self.options.path)) / "edge"

    @property
    def _dir(self) -> Path:
        return self._root / self.options.collection

    @property
    def _meta_file(self) -> Path:
        return self._dir / "collection.json"

    def _acquire(self) -> None:
        if self._conn.lock is not None:
            return
        self._root.mkdir(parents=True, exist_ok=True)
        handle = open(self._root / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise StoreLockedError(
                f"embedded Qdrant (edge engine) at {self.options.path} is in use by another process; stop it "
                "or use a server (GERMAN_RAG_QDRANT_URL)"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._conn.lock = handle

    @property
    def shard(self) -> qe.EdgeShard:
        """The open shard; opening takes the path's lock first."""
        if self._conn.shard is None:
            if self._conn.building:  # the child owns the folder until it ends; a second opener could corrupt it
                raise StoreError(f"the index of {self.location} is being built; searches wait until it is done")
            self._acquire()
            if not self.exists():
                raise StoreError(f"collection {self.options.collection!r} does not exist at {self.location}")
            return self._load(PLAIN_KB)
        return self._conn.shard

    @property
    def _index(self) -> dict[str, Any]:
        """The HNSW and quantization settings this collection was created with (older ones: Qdrant's defaults)."""
        if self._conn.index is None:
            recorded = self.metadata().get("index") if self.exists() else None
            self._conn.index = dict(recorded) if isinstance(recorded, dict) else dict(LEGACY_INDEX)
        return self._conn.index

    def _load(self, indexing_kb: int) -> qe.EdgeShard:
        """Open the shard. Without a graph every segment with a deleted point is vacuumed (exact BM25 IDF; plain
        segments are cheap to rebuild); with one, Qdrant's rule (>= 20 % deleted) decides, since rebuilding a
        segment rebuilds its graph (minutes at a million points)."""
        rule = (INDEXED_DELETED_THRESHOLD, INDEXED_VACUUM_MIN) if EdgeIndexer(self).has_graph() else (0.0, 1)
        try:
            shard = qe.EdgeShard.load(str(self._dir / "shard"), shard_config(self._index, indexing_kb, *rule))
        except Exception as exc:  # the binding raises plain Exception
            raise StoreError(f"cannot open the edge shard at {self._dir / 'shard'}: {exc}") from exc
        self._conn.shard, self._conn.indexing_kb = shard, indexing_kb
        return shard

    def _reconfigure(self, indexing_kb: int) -> qe.EdgeShard:
        """The open shard with this indexing threshold (a config is fixed while a shard is loaded: reload)."""
        shard = self.shard
        if self._conn.indexing_kb == indexing_kb:
            return shard
        shard.flush()
        shard.close()
        self._conn.shard = None
        return self._load(indexing_kb)

    def close(self) -> None:
        if self.is_view:  # a scoped view shares its store's shard: the store closes it
            return
        if self._conn.shard is not None:
            if self._conn.changed:  # a caller that never called compact() still leaves exact IDF on disk
                self.compact()
            EdgeIndexer(self).store_written()
            self._conn.shard.flush()
            self._conn.shard.close()
            self._conn.shard = None
        if self._conn.lock is not None:
            fcntl.flock(self._conn.lock, fcntl.LOCK_UN)
            self._conn.lock.close()
            self._conn.lock = None

    # -- the index (ingest/store/edge_index.py) --------------------------------------------------
    def index_state(self) -> IndexState:
        return EdgeIndexer(self).state()

    def optimize(self, progress: Callable[[OptimizeProgress], None] | None = None) -> bool:
        """Build HNSW and the quantized copies in a child process; searches through this store wait (see
        `EdgeIndexer.optimize`)."""
        return EdgeIndexer(self).optimize(progress)

    def compact(self) -> bool:
        """Vacuum segments with deleted points in this process, never building a graph (`EdgeIndexer.compact`).
        `close()` calls it when the store was written to. True if a segment was rebuilt."""
        return EdgeIndexer(self).compact()

    # -- collection ------------------------------------------------------------------------------
    def exists(self) -> bool:
        self._acquire()
        return self._meta_file.is_file() and (self._dir / "shard").is_dir()

    def metadata(self) -> dict:
        self._acquire()
        try:
            return dict(json.loads(self._meta_file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read collection metadata {self._meta_file}: {exc}") from exc

    def update_metadata(self, values: Mapping[str, Any]) -> None:
        meta = self.metadata()
        meta.update(values)
        self._write_meta({k: v for k, v in meta.items() if v is not None})

    def _write_meta(self, meta: dict) -> None:
        tmp = self._meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self._meta_file)  # atomic: a reader sees the old file or the new one

    def ensure_collection(self, model: str, dimension: int) -> None:
        """Create the collection for this model, or check that the existing one was built by it."""
        if self.exists():
            self.check_compatible(model, dimension)
            self._add_missing_indexes()
            return
        shard_dir = self._dir / "shard"
        if shard_dir.exists():  # a create that died before its metadata was written: nothing was stored
            shutil.rmtree(shard_dir)
        index = self.options.index
        self._conn.index = index.recorded()
        base = shard_config(self._conn.index, PLAIN_KB)
        # quantized: the originals stay on disk (memory-mapped, not preloaded: only rescoring reads them); else in
        # RAM, read by every search
        memory = qe.Memory.Cold if index.quantized else None
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine,
                                                datatype=_DATATYPE[self.options.vector_datatype], memory=memory)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=base.hnsw_config, quantization_config=base.quantization_config, optimizers=base.optimizers,
        )
        self._conn.shard = qe.EdgeShard.create(str(shard_dir), config)
        for key, kind in self.options.index_fields().items():  # the engine uses payload indexes for filters
            self._conn.shard.update(qe.UpdateOperation.create_field_index(key, _INDEX_KIND[kind]))
        self._conn.shard.flush()
        meta = {"embed_model": model, "dimension": dimension, "schema_version": SCHEMA_VERSION, "engine": "edge",
                "index": self._conn.index}
        self._write_meta(meta)  # the collection exists only once its metadata does
        log.info("collection created", extra={"collection": self.options.collection, "model": model,
                                              "dimension": dimension, "engine": "edge"})

    def _add_missing_indexes(self) -> None:
        """Payload indexes for filter fields a collection from an older version lacks (tenant, groups, the
        document fields) and for user fields declared since (`meta.KEY`)."""
        present = set(self.shard.info().payload_schema)
        wanted = self.options.index_fields()
        missing = [key for key in wanted if key not in present]
        for key in missing:
            self.shard.update(qe.UpdateOperation.create_field_index(key, _INDEX_KIND[wanted[key]]))
        if missing:
            self.shard.flush()
            log.info("payload indexes added", extra={"collection": self.options.collection, "fields": missing})

    # -- documents -------------------------------------------------------------------------------
    def _scroll(self, flt: FilterSpec | None, fields: list[str] | bool,
                vectors: list[str] | bool = False) -> Iterator[qe.Record]:
        offset = None
        efilter = self._native(flt)
        while True:
            points, offset = self.shard.scroll(qe.ScrollRequest(
                offset=offset, limit=_SCROLL_PAGE, filter=efilter, with_payload=fields, with_vector=vectors))
            yield from points
            if offset is None:
                return

    def begin_bulk(self) -> bool:
        """Nothing to defer: segments stay plain (no index is built during writes) until `optimize()`."""
        return False

    def end_bulk(self) -> bool:
        return False


    def _write_points(self, points: list) -> None:
        # each update is in the shard's write-ahead log when it returns (durable, like wait=True);
        # segments are flushed on close, not per call (a flush per document made ingest 50x slower)
        self.shard.update(qe.UpdateOperation.upsert_points(points))
        self._conn.written += len(points)  # new or updated: outside any graph until the next build
        self._conn.changed = True  # a point that existed in a vacuumed (read-only) segment moves: a deleted copy

    _point = staticmethod(edge_point)

    def _native(self, spec: FilterSpec | None) -> qe.Filter | None:
        """The only way a filter reaches the engine: narrowed to this store's principal first."""
        return to_edge_filter(self._visible(spec))

    def _set_payload(self, flt: FilterSpec, payload: dict) -> None:
        self.shard.update(qe.UpdateOperation.set_payload_by_filter(self._selection(flt), payload))
        self._conn.changed = True

    def _delete(self, flt: FilterSpec) -> int:
        efilter = self._selection(flt)
        n = self.shard.count(qe.CountRequest(exact=True, filter=efilter))
        if n:
            self.shard.update(qe.UpdateOperation.delete_points_by_filter(efilter))
            self._conn.changed = True
        return int(n)

    def count(self, filters: dict[str, FilterValue] | None = None) -> int:
        return int(self.shard.count(qe.CountRequest(exact=True, filter=self._native(self._filter(filters)))))

    # -- search ----------------------------------------------------------------------------------
    def _params(self) -> qe.SearchParams:
        exact = self.search.exact
        quantization = None
        if self._index.get("quantization", "none") != "none":
            index = self.options.index  # exact: the originals only, so exact means exact
            quantization = qe.QuantizationSearchParams(ignore=exact, rescore=index.rescore,
                                                       oversampling=index.oversampling)
        return qe.SearchParams(exact=exact, hnsw_ef=self.search.hnsw_ef, quantization=quantization)

    def _query(self, request: qe.QueryRequest) -> list[StoredHit]:
        return [StoredHit(str(p.id), float(p.score), dict(p.payload or {})) for p in self.shard.query(request)]

    def _dense_query(self, vector: Sequence[float]) -> qe.Query:
        return qe.Query.Nearest(list(map(float, vector)), using=DENSE)

    @staticmethod
    def _sparse_query(indices: Sequence[int], values: Sequence[float]) -> qe.Query:
        return qe.Query.Nearest(qe.SparseVector(list(indices), list(map(float, values))), using=SPARSE)

    def search_dense(self, vector: Sequence[float], top_k: int,
                     filters: dict[str, FilterValue] | None = None) -> list[StoredHit]:
        return self._query(qe.QueryRequest(
            limit=top_k, query=self._dense_query(vector), filter=self._native(self._filter(filters)),
            params=self._params(), with_payload=True))

    def search_sparse(self, indices: Sequence[int], values: Sequence[float], top_k: int,
                      filters: dict[str, FilterValue] | None = None) -> list[StoredHit]:
        """BM25 leg: the query's term weights against the IDF-weighted `bm25` sparse vector."""
        if not indices:
            return []
        return self._query(qe.QueryRequest(
            limit=top_k, query=self._sparse_query(indices, values), filter=self._native(self._filter(filters)),
            with_payload=True))

    def search_hybrid(self, dense: Sequence[float], sparse: tuple[Sequence[int], Sequence[float]], top_k: int,
                      filters: dict[str, FilterValue] | None = None, fusion: str = "rrf", rrf_k: int = 60,
                      weights: tuple[float, float] | None = None, candidates: int = 50) -> list[StoredHit]:
        """Both legs prefetched and fused inside the engine (Query API): RRF (constant, weights) or DBSF."""
        flt = self._native(self._filter(filters))
        prefetch = [qe.Prefetch(limit=candidates, query=self._dense_query(dense), filter=flt, params=self._params())]
        if sparse[0]:
            prefetch.append(qe.Prefetch(limit=candidates, query=self._sparse_query(*sparse), filter=flt))
        if fusion == "dbsf":
            query: Any = qe.Fusion.Dbsf()
        else:
            w = [float(x) for x in weights] if weights and len(prefetch) == 2 else None
            query = qe.Fusion.Rrf(k=rrf_k, weights=w)
        return self._query(qe.QueryRequest(limit=top_k, query=query, prefetches=prefetch, with_payload=True))

    def fetch_chunks(self, doc_id: str, indices: Sequence[int]) -> list[dict]:
        """Payloads of the given chunk indices of one document (for neighbour expansion)."""
        flt = build_filter({P.DOC_ID: doc_id, P.CHUNK_INDEX: list(indices)})
        return [dict(r.payload or {}) for r in self._scroll(flt, True)]

