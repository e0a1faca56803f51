"""What the HTTP service shares between requests: one model, one store client, locks, admission, batching.

qdrant-client's embedded mode allows one client per storage path per process and is not thread-safe,
and a Hugging Face fast tokenizer must not be used from two threads at once. So the service owns exactly
one store and one embedder and serializes every call on each behind its own lock; retrieves (threadpool)
and the ingest worker (its own thread) interleave call by call instead of excluding each other for a
whole job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ingest.schema import DEFAULT_ACCESS, Access, Chunk, Embedder, StoredHit, TokenLimitError
from ingest.store.access import Principal
from ingest.store.base import DocState, IndexState, OptimizeProgress, StoreFilters, VectorStore

log = logging.getLogger(__name__)
EMBED_SLICE = 8  # texts per locked embed call during ingest: bounds how long a retrieve waits for the model


class LockedStore(VectorStore):
    """The service's one store client: every call runs under `lock` (a scan, step by step)."""

    def __init__(self, inner: VectorStore, lock: threading.Lock | threading.RLock) -> None:
        self._inner, self._lock = inner, lock
        self.options = inner.options
        self.principal, self.is_view = inner.principal, inner.is_view

    def scoped(self, principal: Principal) -> LockedStore:
        """The inner store's view for `principal`, behind the same lock."""
        return LockedStore(self._inner.scoped(principal), self._lock)

    def set_access(self, doc_id: str, access: Access) -> int:
        with self._lock:
            return self._inner.set_access(doc_id, access)

    @property
    def location(self) -> str:
        return self._inner.location

    def exists(self) -> bool:
        with self._lock:
            return self._inner.exists()

    def metadata(self) -> dict:
        with self._lock:
            return self._inner.metadata()

    def update_metadata(self, values: Mapping[str, Any]) -> None:
        with self._lock:
            self._inner.update_metadata(values)

    def ensure_collection(self, model: str, dimension: int) -> None:
        with self._lock:
            self._inner.ensure_collection(model, dimension)

    def check_compatible(self, model: str, dimension: int) -> None:
        with self._lock:
            self._inner.check_compatible(model, dimension)

    def require_collection(self) -> None:
        with self._lock:
            self._inner.require_collection()

    def doc_state(self, source: str) -> DocState:
        with self._lock:
            return self._inner.doc_state(source)

    def doc_states(self, sources: Sequence[str]) -> dict[str, DocState]:
        with self._lock:
            return self._inner.doc_states(sources)

    def begin_bulk(self) -> bool:
        with self._lock:
            return self._inner.begin_bulk()

    def end_bulk(self) -> bool:
        with self._lock:
            return self._inner.end_bulk()

    def stored_vectors(self, source: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        with self._lock:
            return self._inner.stored_vectors(source, content_hashes)

    def upsert_chunks(self, chunks: Sequence[Chunk], dense: Sequence[Sequence[float]],
                      sparse: Sequence[tuple[list[int], list[float]]] | None = None, doc_hash: str = "",
                      access: Access = DEFAULT_ACCESS, fields: Mapping[str, Any] | None = None) -> int:
        with self._lock:
            return self._inner.upsert_chunks(chunks, dense, sparse, doc_hash, access, fields)

    def delete_stale(self, source: str, keep_doc_id: str) -> int:
        with self._lock:
            return self._inner.delete_stale(source, keep_doc_id)

    def delete_source(self, source: str) -> int:
        with self._lock:
            return self._inner.delete_source(source)

    def delete_doc(self, doc_id: str) -> int:
        with self._lock:
            return self._inner.delete_doc(doc_id)

    def compact(self) -> bool:
        with self._lock:
            return self._inner.compact()

    def index_state(self) -> IndexState:
        with self._lock:
            return self._inner.index_state()

    def optimize(self, progress: Callable[[OptimizeProgress], None] | None = None) -> bool:
        with self._lock:  # an embedded store's searches wait for the build (its shard is closed meanwhile)
            return self._inner.optimize(progress)

    def count(self, filters: StoreFilters | None = None) -> int:
        with self._lock:
            return self._inner.count(filters)

    def sources(self) -> dict[str, dict]:
        with self._lock:
            return self._inner.sources()

    def search_dense(self, vector: Sequence[float], top_k: int,
                     filters: StoreFilters | None = None) -> list[StoredHit]:
        with self._lock:
            return self._inner.search_dense(vector, top_k, filters)

    def search_sparse(self, indices: Sequence[int], values: Sequence[float], top_k: int,
                      filters: StoreFilters | None = None) -> list[StoredHit]:
        with self._lock:
            return self._inner.search_sparse(indices, values, top_k, filters)

    def search_hybrid(self, dense: Sequence[float], sparse: tuple[Sequence[int], Sequence[float]], top_k: int,
                      filters: StoreFilters | None = None, fusion: str = "rrf", rrf_k: int = 60,
                      weights: tuple[float, float] | None = None, candidates: int = 50) -> list[StoredHit]:
        with self._lock:
            return self._inner.search_hybrid(dense, sparse, top_k, filters, fusion, rrf_k, weights, candidates)

    def fetch_chunks(self, doc_id: str, indices: Sequence[int]) -> list[dict]:
        with self._lock:
            return self._inner.fetch_chunks(doc_id, indices)

    def fetch_chunk(self, chunk_id: str) -> dict | None:
        with self._lock:
            return self._inner.fetch_chunk(chunk_id)

    def match_points(self, key: str, values: Sequence[str], limit: int,
                     filters: StoreFilters | None = None) -> list[StoredHit]:
        with self._lock:
            return self._inner.match_points(key, values, limit, filters)

    def scan(self, fields: list[str], vectors: bool = False) -> Iterator[tuple[str, dict, list[float] | None]]:
        with self._lock:
            rows = self._inner.scan(fields, vectors)
        while True:  # the lock is held per row, never while the caller works on one
            with self._lock:
                row = next(rows, None)
            if row is None:
                return
            yield row

    def close(self) -> None:
        with self._lock:
            self._inner.close()


class SlicedEmbedder(Embedder):
    """The ingest side of the model: every call runs under the model lock (a fast tokenizer must not be
    used from two threads), and document batches are cut into slices, each under the lock on its own."""

    def __init__(self, inner: Embedder, lock: threading.Lock | threading.RLock) -> None:
        self._inner, self._lock = inner, lock

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def dimension(self) -> int:
        with self._lock:
            return self._inner.dimension

    @property
    def max_tokens(self) -> int:
        with self._lock:
            return self._inner.max_tokens

    @property
    def symmetric(self) -> bool:
        with self._lock:
            return self._inner.symmetric

    def prepare(self) -> None:
        with self._lock:
            self._inner.prepare()

    def load(self) -> None:
        with self._lock:
            self._inner.load()

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return self._inner.count_tokens(text)

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return self._inner.count_tokens_many(texts)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        with self._lock:
            return self._inner.token_offsets(text)

    def embed_query(self, text: str, truncate: bool = False) -> list[float]:
        with self._lock:
            return self._inner.embed_query(text, truncate)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        # Slices of similar length (by characters): a slice pads to its longest text, so mixing a
        # 20-token heading with 256-token chunks would waste most of the model's work.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]  # every row is filled: the slices cover every index
        for start in range(0, len(order), EMBED_SLICE):
            picked = order[start : start + EMBED_SLICE]
            with self._lock:
                vectors = self._inner.embed_documents([texts[i] for i in picked])
            for i, vec in zip(picked, vectors, strict=True):
                out[i] = vec
        return out


@dataclass
class _Pending:
    text: str
    truncate: bool
    future: Future


class QueryBatcher:
    """`embed_query` for many request threads: queries that arrive together go through the model together.

    A batch is embedded with `embed_documents` only when the model uses the same prompt for queries and
    documents (then both paths tokenize identically); otherwise, or when a query is over the token limit,
    each query goes through `embed_query` so that it gets its own result or error.
    """

    def __init__(self, embedder: Embedder, lock: threading.Lock, wait_s: float = 0.0, max_batch: int = 32,
                 observe: Callable[[float, int], None] | None = None) -> None:
        self._embedder, self._lock = embedder, lock
        self._wait_s, self._max_batch = wait_s, max_batch
        self._observe = observe or (lambda seconds, size: None)
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="query-batcher", daemon=True)
        self._thread.start()

    def embed_query(self, text: str, truncate: bool = False) -> list[float]:
        return self.embed_queries([text], truncate)[0]

    def embed_queries(self, texts: Sequence[str], truncate: bool = False) -> list[list[float]]:
        """Queries queued all at once, so the loop batches them (up to max_batch) instead of one round each."""
        futures: list[Future] = [Future() for _ in texts]
        for text, future in zip(texts, futures, strict=True):
            self._queue.put(_Pending(text, truncate, future))
        return [f.result() for f in futures]

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # Take what queued up while the model was busy; wait longer only if asked (`wait_s`):
            # a lone query pays nothing, and under concurrency batches form by themselves.
            batch = [first]
            deadline = time.monotonic() + self._wait_s
            while len(batch) < self._max_batch:
                try:
                    left = deadline - time.monotonic()
                    item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._run(batch)

    def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            self._embed(batch)
        except BaseException as exc:  # never leave a request thread waiting on a future nobody sets
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        self._observe(time.perf_counter() - started, len(batch))

    def _embed(self, batch: list[_Pending]) -> None:
        with self._lock:
            vectors: list[list[float]] | None = None
            if len(batch) > 1 and self._embedder.symmetric:
                try:
                    vectors = self._embedder.embed_documents([p.text for p in batch])
                except TokenLimitError:
                    vectors = None  # one query is too long: answer each alone, with its own error
            for i, pending in enumerate(batch):
                try:
                    vec = vectors[i] if vectors is not None else self._embedder.embed_query(
                        pending.text, truncate=pending.truncate)
                    pending.future.set_result(vec)
                except Exception as exc:  # handed to the waiting request thread, which maps it
                    pending.future.set_exception(exc)


class Admission:
    """A bounded number of requests in flight; beyond it the caller gets `False` (HTTP 429), no waiting."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_enter(self) -> bool:
        with self._lock:
            if self._in_flight >= self.limit:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
