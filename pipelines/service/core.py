"""What the HTTP service shares between requests: one model, one store client, locks, admission, batching.

qdrant-client's embedded mode allows one client per storage path per process and is not thread-safe,
and a Hugging Face fast tokenizer must not be used from two threads at once. So the service owns exactly
one store and one embedder and serializes every call on each behind its own lock; retrieves (threadpool)
and the ingest worker (its own thread) interleave call by call instead of excluding each other for a
whole job.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ingest.schema import TokenLimitError

log = logging.getLogger(__name__)
EMBED_SLICE = 8  # texts per locked embed call during ingest: bounds how long a retrieve waits for the model


class Serialized:
    """Every method call on the wrapped object runs under `lock`; plain attributes pass through."""

    def __init__(self, inner: Any, lock: threading.Lock | threading.RLock) -> None:
        self._inner, self._lock = inner, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


class SlicedEmbedder(Serialized):
    """The ingest side of the model: document batches are cut into slices, each under the model lock."""

    def embed_documents(self, texts: Sequence[str], token_ids: Sequence[Sequence[int]] | None = None
                        ) -> list[list[float]]:
        # Slices of similar length (by characters): a slice pads to its longest text, so mixing a
        # 20-token heading with 256-token chunks would waste most of the model's work.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float] | None] = [None] * len(texts)
        for start in range(0, len(order), EMBED_SLICE):
            picked = order[start : start + EMBED_SLICE]
            extra = {} if token_ids is None else {"token_ids": [token_ids[i] for i in picked]}
            with self._lock:
                vectors = self._inner.embed_documents([texts[i] for i in picked], **extra)
            for i, vec in zip(picked, vectors, strict=True):
                out[i] = vec
        return out  # type: ignore[return-value]


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

    def __init__(self, embedder: Any, lock: threading.Lock, wait_s: float = 0.0, max_batch: int = 32,
                 observe: Callable[[float, int], None] | None = None) -> None:
        self._embedder, self._lock = embedder, lock
        self._wait_s, self._max_batch = wait_s, max_batch
        self._observe = observe or (lambda seconds, size: None)
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="query-batcher", daemon=True)
        self._thread.start()

    def embed_query(self, text: str, truncate: bool = False) -> list[float]:
        future: Future = Future()
        self._queue.put(_Pending(text, truncate, future))
        return future.result()

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

    def _same_prompts(self) -> bool:
        spec = getattr(self._embedder, "spec", None)  # a backend without a spec is answered query by query
        if spec is None:
            return False
        prompts = getattr(spec, "prompts", {}) or {}
        return prompts.get("query", "") == prompts.get("document", "")

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
            vectors: list | None = None
            if len(batch) > 1 and self._same_prompts():
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
