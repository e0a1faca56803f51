"""What both engines share: the checks, reads, deletes and batched writes of the VectorStore contract that
need only an engine's primitives (qdrant.py: qdrant-client; edge.py: Qdrant's engine in-process)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self

from ingest.errors import InternalError
from ingest.schema import DEFAULT_ACCESS, Access, AccessError, Chunk, P, StoredHit, StoreError
from ingest.store.access import OWNER, Principal, restrict
from ingest.store.base import DENSE, DocState, StoreOptions
from ingest.store.filters import (
    Condition,
    FilterSpec,
    FilterValue,
    all_of,
    build_filter,
    match_filter,
    reuse_filter,
    stale_filter,
)

STATE_FIELDS = [P.SOURCE, P.DOC_ID, P.CHUNK_COUNT, P.TENANT, P.GROUPS, P.DOC_HASH]
_STATE_BATCH = 256  # sources per scroll when asking for many doc states at once


def states_by_source(sources: Sequence[str], pages: Callable[[list[str]], Iterable]) -> dict[str, DocState]:
    """DocState for every source, asking `pages(batch)` (records with STATE_FIELDS) once per batch of sources."""
    out = {source: DocState({}, {}) for source in sources}
    unique = list(out)
    for i in range(0, len(unique), _STATE_BATCH):
        for rec in pages(unique[i : i + _STATE_BATCH]):
            payload = rec.payload or {}
            state = out.setdefault(payload[P.SOURCE], DocState({}, {}))
            doc_id = payload[P.DOC_ID]
            state.present[doc_id] = state.present.get(doc_id, 0) + 1
            state.expected[doc_id] = int(payload.get(P.CHUNK_COUNT, -1))
            if payload.get(P.DOC_HASH):
                state.hashes[doc_id] = payload[P.DOC_HASH]
            # None: points from before access fields (tenant `default` to every reader; a re-ingest writes them)
            tenant = payload.get(P.TENANT)
            state.access[doc_id] = Access(tenant, tuple(payload.get(P.GROUPS) or ())) if tenant else None
    return out


def summarize_sources(payloads: Iterable[dict]) -> dict[str, dict]:
    """Every source with its doc_id(s), chunk count and content hash, from the points' payloads."""
    out: dict[str, dict] = {}
    for p in payloads:
        entry = out.setdefault(p[P.SOURCE], {"doc_ids": set(), "chunks": 0, "doc_hash": p.get(P.DOC_HASH)})
        entry["doc_ids"].add(p[P.DOC_ID])
        entry["chunks"] += 1
    return out


def vectors_by_hash(records: Iterable[Any]) -> dict[str, list[float]]:
    """content hash -> dense vector from scrolled records (the first one wins: equal texts, equal vectors)."""
    found: dict[str, list[float]] = {}
    for rec in records:
        vec = rec.vector.get(DENSE) if isinstance(rec.vector, dict) else rec.vector
        key = (rec.payload or {}).get(P.CONTENT_HASH)
        if key and vec is not None and key not in found:
            found[key] = list(vec)
    return found


def check_built_by(collection: str, meta: dict, model: str, dimension: int) -> None:
    """A collection's recorded model and vector size must be the configured ones (every engine)."""
    built_model, built_dim = meta.get("embed_model"), meta.get("dimension")
    if built_dim != dimension or built_model != model:
        raise StoreError(
            f"collection {collection!r} was built with model {built_model!r} ({built_dim}-d vectors), "
            f"but the configured model is {model!r} ({dimension}-d). "
            "Use the model that built it, another --collection, or delete the collection."
        )


class EngineStore:
    """Checks, reads, deletes and batched writes written once for every engine; an adapter supplies
    `exists`, `metadata`, `location`, `_scroll`, `_delete`, `_point` (a chunk and its vectors as the
    engine's point), `_write_points` (one batch) and `_set_payload`.

    A store acts for one principal (`OWNER` unless scoped): every filter an engine is given passes through
    `_visible` first (the engines translate only there), so no read, count or delete reaches a point the
    principal may not see. `scoped()` gives a view for another principal over the same connection."""

    options: StoreOptions
    principal: Principal = OWNER
    is_view: bool = False  # a scoped view: shares its store's connection and leaves closing to it

    def scoped(self, principal: Principal) -> Self:
        """This store as `principal` sees it: a cheap view over the same connection (close the store, not
        the view). Reads, counts and deletes see only the principal's points; writes take only its tenant."""
        view = copy.copy(self)
        view.principal, view.is_view = principal, True
        return view

    def _filter(self, filters: dict[str, FilterValue] | None) -> FilterSpec | None:
        """A user's filter dict as a spec, checked with this store's declared fields (build_filter)."""
        return build_filter(filters, self.options.meta_schema)

    def _visible(self, spec: FilterSpec | None) -> FilterSpec | None:
        """`spec` narrowed to this store's principal: what every engine filter is made from."""
        return restrict(spec, self.principal)

    def _native(self, spec: FilterSpec | None) -> Any:
        """The engine's own filter for `spec`, narrowed by `_visible`: the only way a filter reaches an engine."""
        raise NotImplementedError

    def _selection(self, spec: FilterSpec) -> Any:
        """`_native` of a filter that must select (a delete, a payload update): never every point by accident."""
        flt = self._native(spec)
        if flt is None:
            raise InternalError("a delete or payload update without a filter")
        return flt

    @property
    def location(self) -> str:
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    def metadata(self) -> dict:
        raise NotImplementedError

    def check_compatible(self, model: str, dimension: int) -> None:
        check_built_by(self.options.collection, self.metadata(), model, dimension)

    def require_collection(self) -> None:
        if not self.exists():
            raise StoreError(
                f"collection {self.options.collection!r} does not exist at {self.location}; ingest first"
            )

    def _scroll(self, flt: FilterSpec | None, fields: list[str] | bool,
                vectors: list[str] | bool = False) -> Iterator:
        raise NotImplementedError

    def _delete(self, flt: FilterSpec) -> int:
        raise NotImplementedError

    @staticmethod
    def _point(chunk: Chunk, dense, sparse, count: int, doc_hash: str, now: str, access: Access,
               fields: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def _set_payload(self, flt: FilterSpec, payload: dict) -> None:
        raise NotImplementedError

    def _write_points(self, points: list) -> None:
        raise NotImplementedError

    def upsert_chunks(
        self,
        chunks: Sequence[Chunk],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[tuple[list[int], list[float]]] | None = None,
        doc_hash: str = "",
        access: Access = DEFAULT_ACCESS,
        fields: Mapping[str, Any] | None = None,
    ) -> int:
        """Write chunks with their vectors, access fields and document fields (title, meta, ...) in batches;
        returns the number of points written."""
        if len(chunks) != len(dense) or (sparse is not None and len(sparse) != len(chunks)):
            raise InternalError("chunks and vectors differ in number")
        self._check_writable(access)
        now = datetime.now(UTC).isoformat()
        total = len(chunks)
        points = [self._point(c, dense[i], sparse[i] if sparse else None, total, doc_hash, now, access, fields)
                  for i, c in enumerate(chunks)]
        for i in range(0, len(points), self.options.batch_size):
            self._write_points(points[i : i + self.options.batch_size])
        return len(points)

    def scan(self, fields: list[str], vectors: bool = False) -> Iterator[tuple[str, dict, list[float] | None]]:
        """Every point as (id, payload fields, dense vector or None), page by page (for `verify`)."""
        for rec in self._scroll(None, fields, [DENSE] if vectors else False):
            vec = rec.vector.get(DENSE) if isinstance(rec.vector, dict) else rec.vector
            yield str(rec.id), dict(rec.payload or {}), (list(vec) if vec is not None else None)

    def doc_state(self, source: str) -> DocState:
        return self.doc_states([source])[source]

    def doc_states(self, sources: Sequence[str]) -> dict[str, DocState]:
        """doc_state of many sources in one scroll per 256 (a large re-ingest asks once, not per file)."""
        return states_by_source(sources, lambda batch: self._scroll(build_filter({P.SOURCE: batch}), STATE_FIELDS))

    def stored_vectors(self, source: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        """Dense vectors this source already has, by chunk content hash: a changed file re-embeds only new text."""
        if not content_hashes:
            return {}
        return vectors_by_hash(self._scroll(reuse_filter(source, content_hashes), [P.CONTENT_HASH], [DENSE]))

    def delete_stale(self, source: str, keep_doc_id: str) -> int:
        """Delete the source's points that belong to any other doc_id than `keep_doc_id`."""
        return self._delete(stale_filter(source, keep_doc_id))

    def set_access(self, doc_id: str, access: Access) -> int:
        """Give a stored document new access fields without re-embedding it; returns the points changed."""
        self._check_writable(access)
        spec = match_filter(P.DOC_ID, doc_id)
        n = self.count({P.DOC_ID: doc_id})
        if n:
            self._set_payload(spec, access.payload())
        return n

    def _check_writable(self, access: Access) -> None:
        if not self.principal.may_store(access):
            raise AccessError(f"tenant {self.principal.tenant!r} may not store documents of tenant {access.tenant!r}")

    def count(self, filters: dict | None = None) -> int:
        raise NotImplementedError

    def delete_source(self, source: str) -> int:
        return self._delete(match_filter(P.SOURCE, source))

    def delete_doc(self, doc_id: str) -> int:
        return self._delete(match_filter(P.DOC_ID, doc_id))

    def compact(self) -> bool:
        """Nothing to vacuum by default (qdrant-client: local mode's IDF counts live points, a server
        vacuums itself); the edge engine overrides it."""
        return False

    def fetch_chunk(self, chunk_id: str) -> dict | None:
        """One chunk's payload by its id, through the principal's filter (`_scroll` narrows every read)."""
        for rec in self._scroll(FilterSpec(must=(Condition(P.CHUNK_ID, chunk_id),)), True):
            return dict(rec.payload or {})
        return None

    def match_points(self, key: str, values: Sequence[str], limit: int,
                     filters: dict[str, FilterValue] | None = None) -> list[StoredHit]:
        """Points whose keyword `key` holds one of `values`, through the user's filter and `_visible` (`_scroll`
        narrows every read); the first `limit` in (source, chunk index) order, so every engine answers alike."""
        if not values or limit < 1:
            return []
        spec = all_of(self._filter(filters), build_filter({key: list(values)}))
        hits = [StoredHit(str(rec.id), 1.0, dict(rec.payload or {})) for rec in self._scroll(spec, True)]
        hits.sort(key=lambda h: (str(h.payload.get(P.SOURCE, "")), int(h.payload.get(P.CHUNK_INDEX) or 0), h.chunk_id))
        return hits[:limit]

    def sources(self) -> dict[str, dict]:
        """Every source with its doc_id(s), chunk count and content hash."""
        return summarize_sources(rec.payload or {} for rec in self._scroll(None, [P.SOURCE, P.DOC_ID, P.DOC_HASH]))
