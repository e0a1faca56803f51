"""The one store contract: what every engine (qdrant-client server or local mode, qdrant-edge in-process)
offers, and the terms it is configured and answered in. Every caller is typed with `VectorStore`;
`pipelines/build.py` is the only place that picks an engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ingest.errors import UnavailableError
from ingest.meta_fields import MetaFieldError, MetaSchema
from ingest.schema import DEFAULT_ACCESS, FILTER_FIELDS, Access, Chunk, P, StoredHit, StoreError
from ingest.store.access import Principal
from ingest.store.filters import FilterValue

_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

DENSE = "dense"
SPARSE = "bm25"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DocState:
    """What the store holds for one source: points per doc_id and the count each expects."""

    present: dict[str, int]
    expected: dict[str, int]
    access: dict[str, Access | None] = field(default_factory=dict)  # per doc_id as stored; None: no fields yet
    hashes: dict[str, str] = field(default_factory=dict)  # per doc_id: the stored file's hash (its bytes)

    def complete(self, doc_id: str) -> bool:
        return doc_id in self.present and self.present[doc_id] == self.expected.get(doc_id, -1)

    def file_hash(self) -> str | None:
        """The file hash of the source's only stored version (a rename is recognised by it), else None."""
        found = set(self.hashes.values())
        return found.pop() if len(found) == 1 else None


class StoreUnavailableError(UnavailableError, StoreError):
    """The Qdrant server did not answer (or answered 5xx) through every retry: retry later."""


class StoreLockedError(UnavailableError, StoreError):
    """An embedded store is held by another process (most often another ingest run, still going): retry
    when it has finished, or use a server, which many processes may share."""


class CollectionNameError(StoreError, ValueError):
    """A collection name Qdrant would refuse (a ValueError too, so a pydantic validator may call the check)."""


def check_collection_name(name: str) -> str:
    """The one rule for collection names (settings, StoreOptions): 1-63 letters, digits, '_', '-' or '.',
    starting with a letter or digit."""
    if not isinstance(name, str) or not _COLLECTION.match(name):
        raise CollectionNameError(f"collection name {name!r} is invalid: must be 1-63 letters, digits, '_', '-' "
                                  "or '.', starting with a letter or digit")
    return name


QUANTIZATIONS = ("none", "scalar", "binary", "binary2", "turbo2", "turbo4")


@dataclass(frozen=True)
class IndexOptions:
    """How dense vectors are indexed and searched once a collection is large; defaults chosen by measurement on
    real embeddings at 100k and 1M points (docs/bench/scale.md).

    HNSW (`hnsw_m` links per node, `hnsw_ef_construct` candidates while building, `hnsw_ef` while searching) is
    built by `optimize()`, on a segment only when it holds more than Qdrant's indexing threshold of vectors: a
    small collection stays an exact scan. `quantization` keeps a compressed copy of every vector in memory and the
    originals on disk (memory-mapped): a search scores the compressed copies, takes `oversampling` times the
    asked-for hits and, with `rescore`, orders those by the originals. Fixed when a collection is created (the
    edge engine records them with the collection). `exact` scans every vector whatever was built.
    """

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 512  # the smallest tried with dense recall@10 >= 0.98 at 1M chunks, with margin (0.996)
    quantization: str = "scalar"
    oversampling: float = 2.0
    rescore: bool = True
    exact: bool = False
    # points not yet in an HNSW index after an ingest or sync that make it call optimize() (0: never by itself)
    optimize_threshold: int = 20_000
    # KB of vectors a segment holds before optimize() gives it a graph (Qdrant's default; about 5,000 1024-d
    # float16 vectors): below it a segment is scanned exactly, which is as fast
    indexing_threshold_kb: int = 10_000

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise StoreError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {self.quantization!r}")
        if (self.hnsw_m < 2 or self.hnsw_ef_construct < 4 or self.hnsw_ef < 1 or self.oversampling < 1
                or self.optimize_threshold < 0 or self.indexing_threshold_kb < 1):
            raise StoreError("index options: hnsw_m >= 2, hnsw_ef_construct >= 4, hnsw_ef >= 1, oversampling >= 1, "
                             "optimize_threshold >= 0, indexing_threshold_kb >= 1")

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"

    def recorded(self) -> dict[str, Any]:
        """What a collection records of these at creation (the search-time ones may change later)."""
        return {"hnsw_m": self.hnsw_m, "hnsw_ef_construct": self.hnsw_ef_construct, "quantization": self.quantization}


@dataclass(frozen=True)
class IndexState:
    """How much of a collection an HNSW index covers."""

    points: int
    indexed: int
    segments: int

    @property
    def unindexed(self) -> int:
        return max(0, self.points - self.indexed)


@dataclass(frozen=True)
class OptimizeProgress:
    """An index build under way: `elapsed_s` of about `estimate_s` (None: no estimate yet), for `points`."""

    points: int
    elapsed_s: float
    estimate_s: float | None
    indexed: int | None = None  # where the engine reports it while building (a server)


@dataclass(frozen=True)
class StoreOptions:
    collection: str = "german_rag"
    path: str | None = "./.german-rag/qdrant"
    url: str | None = None
    api_key: str | None = None
    batch_size: int = 128
    timeout: int = 60
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    retries: int = 5  # attempts after the first, for a server that is down, slow or restarting
    retry_backoff_s: float = 0.5  # first wait; doubles per attempt up to retry_max_backoff_s
    retry_max_backoff_s: float = 8.0
    # How a server or the edge engine stores dense vectors (local mode keeps float32 whatever this says).
    # float16 halves the memory an exact scan reads (2.4x faster at 100k) for scores within ~1e-3.
    vector_datatype: str = "float16"
    # Declared user metadata fields, key -> kind (settings' `meta_fields`): filters on `meta.KEY` take that kind
    # and the store keeps a payload index on each.
    meta_fields: tuple[tuple[str, str], ...] = ()
    index: IndexOptions = field(default_factory=IndexOptions)

    def __post_init__(self) -> None:
        check_collection_name(self.collection)
        if self.vector_datatype not in ("float32", "float16"):
            raise StoreError(f"vector_datatype must be float32 or float16, not {self.vector_datatype!r}")
        if self.batch_size < 1 or self.retries < 0 or self.retry_backoff_s < 0:
            raise StoreError("store options: batch_size must be >= 1, retries and retry_backoff_s >= 0")
        try:
            object.__setattr__(self, "meta_fields", MetaSchema(tuple(self.meta_fields)).declared)
        except MetaFieldError as exc:
            raise StoreError(f"store options: meta_fields: {exc}") from exc

    @property
    def meta_schema(self) -> MetaSchema:
        return MetaSchema(self.meta_fields)

    def index_fields(self) -> dict[str, str]:
        """Every payload field the store keeps an index on, with its kind: FILTER_FIELDS and `meta.KEY` of each
        declared user field."""
        return {**FILTER_FIELDS, **{f"{P.META}.{key}": kind for key, kind in self.meta_fields}}




StoreFilters = dict[str, FilterValue]


@runtime_checkable
class VectorStore(Protocol):
    """One store interface for every engine: qdrant-client (server or local mode) and qdrant-edge in-process.

    Filters are `{field: value or [values]}` over FILTER_FIELDS; hits carry the stored payload.
    """

    options: StoreOptions
    principal: Principal  # whom reads, counts, deletes and writes act for (OWNER: everything)
    is_view: bool

    def scoped(self, principal: Principal) -> VectorStore:
        """The same store as `principal` sees it (a view over the same connection)."""
        ...

    def set_access(self, doc_id: str, access: Access) -> int:
        """New access fields for a stored document's points, without re-embedding; returns the points changed."""
        ...

    @property
    def location(self) -> str: ...

    def exists(self) -> bool: ...

    def metadata(self) -> dict: ...

    def update_metadata(self, values: Mapping[str, Any]) -> None:
        """Merge top-level keys into the collection's metadata (a None value removes its key): collection-level
        facts such as learned abbreviations (ingest/abbreviations.py). Never a point: no search, count or
        source list sees it. Values must be JSON."""
        ...

    def ensure_collection(self, model: str, dimension: int) -> None: ...

    def check_compatible(self, model: str, dimension: int) -> None: ...

    def require_collection(self) -> None: ...

    def doc_state(self, source: str) -> DocState:
        """Points present and expected per doc_id of one source."""
        ...

    def doc_states(self, sources: Sequence[str]) -> dict[str, DocState]:
        """DocStates of many sources, fetched together."""
        ...

    def begin_bulk(self) -> bool:
        """Defer index building for a large load (a server); False where there is nothing to defer."""
        ...

    def end_bulk(self) -> bool:
        """Restore what `begin_bulk` deferred, also after a run that died; False if nothing was deferred."""
        ...

    def stored_vectors(self, source: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        """Dense vectors already stored for this source's chunks, by chunk content hash."""
        ...

    def upsert_chunks(self, chunks: Sequence[Chunk], dense: Sequence[Sequence[float]],
                      sparse: Sequence[tuple[list[int], list[float]]] | None = None, doc_hash: str = "",
                      access: Access = DEFAULT_ACCESS, fields: Mapping[str, Any] | None = None) -> int:
        """Write a document's chunks; `fields` are its document fields (title, date, meta, ...) on every point."""
        ...

    def delete_stale(self, source: str, keep_doc_id: str) -> int: ...

    def delete_source(self, source: str) -> int: ...

    def delete_doc(self, doc_id: str) -> int: ...

    def index_state(self) -> IndexState:
        """Points, points in an HNSW index, segments."""
        ...

    def optimize(self, progress: Callable[[OptimizeProgress], None] | None = None) -> bool:
        """Build HNSW (and the quantized copies) on segments large enough, vacuum and merge segments, blocking
        until done; `progress` is called about every second. Searches wait meanwhile on the edge engine (its
        build runs in a child process; this store's shard is closed until it ends); a server keeps answering
        from the old segments. True if anything was rebuilt."""
        ...

    def compact(self) -> bool:
        """Let the deletes and updates since the last call count in scoring: the edge engine vacuums segments
        holding deleted points, which its BM25 IDF still counts until then. Call it once after a batch of
        writes (an ingest run, a sync, a delete request), not per document: it rebuilds each such segment
        whole. A no-op (False) for qdrant-client: local mode counts live points only; a server vacuums by
        its own optimizer settings. True if the store rebuilt anything."""
        ...

    def count(self, filters: StoreFilters | None = None) -> int: ...

    def sources(self) -> dict[str, dict]: ...

    def search_dense(self, vector: Sequence[float], top_k: int,
                     filters: StoreFilters | None = None) -> list[StoredHit]: ...

    def search_sparse(self, indices: Sequence[int], values: Sequence[float], top_k: int,
                      filters: StoreFilters | None = None) -> list[StoredHit]: ...

    def search_hybrid(self, dense: Sequence[float], sparse: tuple[Sequence[int], Sequence[float]], top_k: int,
                      filters: StoreFilters | None = None, fusion: str = "rrf", rrf_k: int = 60,
                      weights: tuple[float, float] | None = None, candidates: int = 50) -> list[StoredHit]: ...

    def match_points(self, key: str, values: Sequence[str], limit: int,
                     filters: StoreFilters | None = None) -> list[StoredHit]:
        """Up to `limit` points whose keyword field `key` holds any of `values` (and that `filters` and the
        principal's access filter admit), each with score 1.0, ordered by source and chunk index: an exact-match
        leg (a query's legal citations, retrieval/citation_leg.py)."""
        ...

    def fetch_chunks(self, doc_id: str, indices: Sequence[int]) -> list[dict]: ...

    def fetch_chunk(self, chunk_id: str) -> dict | None:
        """One chunk's payload by its id; None when no point has it or this store's principal may not read it."""
        ...

    def scan(self, fields: list[str], vectors: bool = False) -> Iterator[tuple[str, dict, list[float] | None]]: ...

    def close(self) -> None: ...
