"""The one store interface over Qdrant: embedded (local mode on a path) or a server, same code.

Writes are idempotent (point ids are deterministic) and ordered so that nothing is lost: a changed
document's new points are written before its stale ones are deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ingest.schema import Access, Chunk, P, StoredHit, StoreError, chunk_payload
from ingest.store.access import OWNER, Principal
from ingest.store.base import (
    DENSE,
    SCHEMA_VERSION,
    SPARSE,
    IndexState,
    OptimizeProgress,
    StoreLockedError,
    StoreOptions,
    StoreUnavailableError,
)
from ingest.store.engine import EngineStore
from ingest.store.filters import FilterSpec, FilterValue, build_filter
from ingest.store.qdrant_convert import client_quantization, index_schema, to_client_filter

log = logging.getLogger(__name__)

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: no connection, timeouts, a proxy or server answering 5xx/429."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_STATUS
    return isinstance(exc, ResponseHandlingException | httpx.TransportError | ConnectionError | TimeoutError)


BULK_KEY = "german_rag_bulk_indexing_threshold"  # collection metadata: the threshold to restore after a bulk load
_QDRANT_INDEXING = 20_000  # Qdrant's default indexing_threshold (KB of vectors per segment before HNSW)


@dataclass
class _ClientConnection:
    """The qdrant-client connection, shared by a store and its scoped views."""

    client: QdrantClient | None = None


class QdrantStore(EngineStore):
    """Collection schema, idempotent batched writes, deletes and searches."""

    def __init__(self, options: StoreOptions, principal: Principal = OWNER) -> None:
        self.options = options
        self.principal = principal
        self._conn = _ClientConnection()  # shared with this store's scoped views (copies)

    # -- connection ------------------------------------------------------------------------------
    @property
    def client(self) -> QdrantClient:
        if self._conn.client is None:
            self._conn.client = self._connect()
        return self._conn.client

    @property
    def location(self) -> str:
        return self.options.url or f"embedded:{self.options.path}"

    def _connect(self) -> QdrantClient:
        o = self.options
        if o.url:
            return QdrantClient(url=o.url, api_key=o.api_key, timeout=o.timeout)
        if not o.path:
            raise StoreError("neither a Qdrant URL nor an embedded path is configured")
        Path(o.path).mkdir(parents=True, exist_ok=True)
        try:
            return QdrantClient(path=o.path)
        except RuntimeError as exc:
            # qdrant-client's local mode raises a bare RuntimeError when another process holds the folder
            # (its portalocker lock); that message is the only thing telling it from any other RuntimeError.
            # It is read here, once, and becomes a typed error; nothing downstream looks at messages.
            if "already accessed" not in str(exc):
                raise
            raise StoreLockedError(
                f"embedded Qdrant at {o.path} is in use by another process; stop it or use a server "
                "(GERMAN_RAG_QDRANT_URL)"
            ) from exc

    def _call(self, what: str, *args, **kwargs):
        """One client call; transient server errors are retried with bounded exponential backoff.

        Every write is idempotent (deterministic ids, deletes by filter), so repeating one that may
        have reached the server before the connection broke is safe.
        """
        o = self.options
        delay, started = o.retry_backoff_s, time.monotonic()
        for attempt in range(o.retries + 1):
            try:
                return getattr(self.client, what)(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if attempt == o.retries:
                    raise StoreUnavailableError(
                        f"Qdrant at {self.location} is unavailable: {what} failed {attempt + 1} times in "
                        f"{time.monotonic() - started:.1f} s (last error: {type(exc).__name__}: {exc})"
                    ) from exc
                log.warning("qdrant call failed, retrying", extra={"op": what, "attempt": attempt + 1,
                                                                    "error": f"{type(exc).__name__}: {exc}"})
                time.sleep(delay)
                delay = min(delay * 2, o.retry_max_backoff_s)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.is_view:  # a scoped view shares its store's client: the store closes it
            return
        if self._conn.client is not None:
            self._conn.client.close()
            self._conn.client = None

    # -- collection ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self._call("collection_exists", self.options.collection)

    def metadata(self) -> dict:
        info = self._call("get_collection", self.options.collection)
        return dict(info.config.metadata or {})

    def update_metadata(self, values: Mapping[str, Any]) -> None:
        self._call("update_collection", self.options.collection, metadata=dict(values))  # merged by Qdrant

    def ensure_collection(self, model: str, dimension: int) -> None:
        """Create the collection for this model, or check that the existing one was built by it."""
        name = self.options.collection
        if self.exists():
            self.check_compatible(model, dimension)
            self._add_missing_indexes()
            return
        o = self.options
        try:
            self._create(name, model, dimension)
        except StoreError:
            raise
        except Exception:
            # Another run (a second shard, a parallel job) created it first: use theirs if it matches.
            if not self.exists():
                raise
            self.check_compatible(model, dimension)
            return
        if o.url:  # embedded mode ignores payload indexes (and warns); a server needs them for filters
            for key, kind in o.index_fields().items():
                self._call("create_payload_index", name, key, index_schema(key, kind))
        log.info("collection created", extra={"collection": name, "model": model, "dimension": dimension})

    def _add_missing_indexes(self) -> None:
        """On a server: payload indexes for filter fields a collection from an older version lacks (tenant,
        groups, the document fields) and for user fields declared since (`meta.KEY`); embedded local mode has
        none to add."""
        if not self.options.url:
            return
        name = self.options.collection
        present = set(self._call("get_collection", name).payload_schema or {})
        wanted = self.options.index_fields()
        missing = [key for key in wanted if key not in present]
        for key in missing:
            self._call("create_payload_index", name, key, index_schema(key, wanted[key]))
        if missing:
            log.info("payload indexes added", extra={"collection": name, "fields": missing})

    def _create(self, name: str, model: str, dimension: int) -> None:
        o = self.options
        index = o.index
        server = bool(o.url)  # local mode has neither HNSW nor quantization (and warns about both)
        self._call("create_collection",
            name,
            vectors_config={DENSE: models.VectorParams(
                size=dimension, distance=models.Distance.COSINE, datatype=models.Datatype(o.vector_datatype),
                on_disk=True if server and index.quantized else None)},  # quantized: originals memory-mapped
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            hnsw_config=models.HnswConfigDiff(m=index.hnsw_m, ef_construct=index.hnsw_ef_construct)
            if server else None,
            quantization_config=client_quantization(index.quantization) if server else None,
            shard_number=o.shard_number,
            replication_factor=o.replication_factor,
            write_consistency_factor=o.write_consistency_factor,
            metadata={"embed_model": model, "dimension": dimension, "schema_version": SCHEMA_VERSION},
        )

    # -- documents -------------------------------------------------------------------------------
    def _scroll(self, flt: FilterSpec | None, fields: list[str] | bool,
                vectors: list[str] | bool = False) -> Iterator[models.Record]:
        offset = None
        while True:
            points, offset = self._call(
                "scroll", self.options.collection, scroll_filter=self._native(flt), limit=1024, offset=offset,
                with_payload=fields, with_vectors=vectors,
            )
            yield from points
            if offset is None:
                return

    # -- bulk loads -------------------------------------------------------------------------------
    def begin_bulk(self) -> bool:
        """On a server: stop HNSW indexing (indexing_threshold 0) while a large load runs.

        Qdrant then appends to plain segments instead of rebuilding graphs during the load. The old
        threshold is kept in the collection's metadata first, so a run that dies mid-load leaves the
        way back behind: `end_bulk` (called by the next ingest) restores it. Embedded engines build no
        index during writes, so there is nothing to defer: returns False there.
        """
        if not self.options.url:
            return False
        name = self.options.collection
        info = self._call("get_collection", name)
        if (info.config.metadata or {}).get(BULK_KEY) is None:  # a second worker keeps the first's value
            threshold = info.config.optimizer_config.indexing_threshold
            self._call("update_collection", name, metadata={BULK_KEY: threshold if threshold is not None else -1})
        self._call("update_collection", name, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0))
        log.info("bulk load: indexing deferred", extra={"collection": name})
        return True

    def end_bulk(self) -> bool:
        """Restore the indexing threshold a bulk load set aside (if any); Qdrant then builds the index."""
        if not self.options.url or not self.exists():
            return False
        name = self.options.collection
        saved = self.metadata().get(BULK_KEY)
        if saved is None:
            return False
        threshold = None if saved == -1 else int(saved)  # -1: the server default (left unset)
        self._call("update_collection", name,
                   optimizers_config=models.OptimizersConfigDiff(indexing_threshold=threshold or _QDRANT_INDEXING))
        self._call("update_collection", name, metadata={BULK_KEY: None})
        log.info("bulk load finished: indexing restored", extra={"collection": name, "indexing_threshold": threshold})
        return True


    def _write_points(self, points: list) -> None:
        self._call("upsert", self.options.collection, points, wait=True)

    @staticmethod
    def _point(chunk: Chunk, dense, sparse, count: int, doc_hash: str, now: str,
               access: Access, fields: Mapping[str, Any] | None = None) -> models.PointStruct:
        vector: dict = {DENSE: list(dense)}
        if sparse is not None and sparse[0]:
            vector[SPARSE] = models.SparseVector(indices=list(sparse[0]), values=list(sparse[1]))
        payload = chunk_payload(chunk, count, doc_hash, now, access, fields)
        return models.PointStruct(id=chunk.chunk_id, vector=vector, payload=payload)

    def _native(self, spec: FilterSpec | None) -> models.Filter | None:
        """The only way a filter reaches qdrant-client: narrowed to this store's principal first."""
        return to_client_filter(self._visible(spec))

    def _delete(self, spec: FilterSpec) -> int:
        flt = self._selection(spec)
        n = self._call("count", self.options.collection, count_filter=flt, exact=True).count
        if n:
            self._call("delete", self.options.collection, points_selector=models.FilterSelector(filter=flt),
                       wait=True)
        return n

    def _set_payload(self, flt: FilterSpec, payload: dict) -> None:
        self._call("set_payload", self.options.collection, payload=payload,
                   points=models.FilterSelector(filter=self._selection(flt)), wait=True)

    def count(self, filters: dict[str, FilterValue] | None = None) -> int:
        flt = self._native(self._filter(filters))
        return self._call("count", self.options.collection, count_filter=flt, exact=True).count

    # -- index ----------------------------------------------------------------------------------
    def index_state(self) -> IndexState:
        """A server's counts; local mode has no index to build: every point counts as indexed (scanned exactly)."""
        if not self.options.url:
            return IndexState(points=self.count(), indexed=self.count(), segments=1)
        info = self._call("get_collection", self.options.collection)
        return IndexState(points=int(info.points_count or 0), indexed=self._dense_indexed(info),
                          segments=int(info.segments_count or 0))

    def _dense_indexed(self, info: models.CollectionInfo) -> int:
        """Qdrant counts every sparse vector as indexed (its inverted index): taken off, to count the dense
        vectors in an HNSW graph."""
        has_sparse = models.Filter(must=[models.HasVectorCondition(has_vector=SPARSE)])
        sparse = self._call("count", self.options.collection, count_filter=has_sparse, exact=True).count
        return max(0, int(info.indexed_vectors_count or 0) - int(sparse))

    def optimize(self, progress: Callable[[OptimizeProgress], None] | None = None) -> bool:
        """On a server: restore indexing a bulk load deferred, then wait (reporting progress) until its optimizer
        has indexed what it will; searches keep answering meanwhile. Local mode has no index: False."""
        if not self.options.url:
            return False
        restored = self.end_bulk()
        started, state = time.perf_counter(), self.index_state()
        nudged, polls = False, 0
        while True:
            info = self._call("get_collection", self.options.collection)
            if info.status == models.CollectionStatus.GREEN:
                return restored or state.indexed != self._dense_indexed(info)
            if info.status == models.CollectionStatus.RED:
                raise StoreError(f"collection {self.options.collection!r} at {self.location} is red (an optimizer "
                                 f"failed): {info.optimizer_status}")
            if info.status == models.CollectionStatus.GREY and not nudged:
                # grey: optimizations pending but not started until the next update; an empty one starts them
                self._call("update_collection", self.options.collection,
                           optimizers_config=models.OptimizersConfigDiff())
                nudged = True
            polls += 1
            if progress and polls % 5 == 1:  # an exact count of the sparse vectors each time: not every second
                progress(OptimizeProgress(int(info.points_count or 0), time.perf_counter() - started, None,
                                          self._dense_indexed(info)))
            time.sleep(1.0)

    def _params(self) -> models.SearchParams | None:
        """HNSW candidates and quantization rescoring on a server (local mode scans exactly, always)."""
        if not self.options.url:
            return None
        index = self.options.index
        quantization = models.QuantizationSearchParams(ignore=index.exact, rescore=index.rescore,
                                                       oversampling=index.oversampling) if index.quantized else None
        return models.SearchParams(hnsw_ef=index.hnsw_ef, exact=index.exact, quantization=quantization)

    # -- search ----------------------------------------------------------------------------------
    def search_dense(self, vector: Sequence[float], top_k: int,
                     filters: dict[str, FilterValue] | None = None) -> list[StoredHit]:
        res = self._call("query_points",
            self.options.collection, query=list(vector), using=DENSE, limit=top_k,
            query_filter=self._native(self._filter(filters)), with_payload=True, search_params=self._params(),
        )
        return [StoredHit(str(p.id), float(p.score), dict(p.payload or {})) for p in res.points]

    def search_sparse(self, indices: Sequence[int], values: Sequence[float], top_k: int,
                      filters: dict[str, FilterValue] | None = None) -> list[StoredHit]:
        """BM25 leg: the query's term weights against the IDF-weighted `bm25` sparse vector."""
        if not indices:
            return []
        res = self._call("query_points",
            self.options.collection, query=models.SparseVector(indices=list(indices), values=list(values)),
            using=SPARSE, limit=top_k, query_filter=self._native(self._filter(filters)), with_payload=True,
        )
        return [StoredHit(str(p.id), float(p.score), dict(p.payload or {})) for p in res.points]

    def search_hybrid(self, dense: Sequence[float], sparse: tuple[Sequence[int], Sequence[float]], top_k: int,
                      filters: dict[str, FilterValue] | None = None, fusion: str = "rrf", rrf_k: int = 60,
                      weights: tuple[float, float] | None = None, candidates: int = 50) -> list[StoredHit]:
        """Both legs prefetched and fused inside Qdrant (Query API): RRF (constant, weights) or DBSF."""
        flt = self._native(self._filter(filters))
        prefetch = [models.Prefetch(query=list(dense), using=DENSE, limit=candidates, filter=flt,
                                    params=self._params())]
        if sparse[0]:
            prefetch.append(models.Prefetch(
                query=models.SparseVector(indices=list(sparse[0]), values=list(sparse[1])),
                using=SPARSE, limit=candidates, filter=flt))
        if fusion == "dbsf":
            query: models.Query = models.FusionQuery(fusion=models.Fusion.DBSF)
        else:
            w = list(weights) if weights and len(prefetch) == 2 else None
            query = models.RrfQuery(rrf=models.Rrf(k=rrf_k, weights=w))
        res = self._call("query_points", self.options.collection, prefetch=prefetch, query=query, limit=top_k,
                                       with_payload=True)
        return [StoredHit(str(p.id), float(p.score), dict(p.payload or {})) for p in res.points]

    def fetch_chunks(self, doc_id: str, indices: Sequence[int]) -> list[dict]:
        """Payloads of the given chunk indices of one document (for neighbour expansion)."""
        flt = build_filter({P.DOC_ID: doc_id, P.CHUNK_INDEX: list(indices)})
        return [dict(r.payload or {}) for r in self._scroll(flt, True)]
