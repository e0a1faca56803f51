"""What one service process shares: the model, the store client, the ingest jobs (`ServiceRuntime`).

One process owns one model, one store client, one ingest worker; run a single uvicorn worker per
process (embedded Qdrant allows one client per folder, and each worker would load its own model).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from ingest.errors import ErrorKind, kind_of
from ingest.parse import SUPPORTED_EXTENSIONS
from ingest.store.access import Principal
from ingest.store.base import VectorStore
from pipelines.build import (
    build_chunker,
    build_embedder,
    build_ingest_runner,
    build_limits,
    build_retriever,
    build_sparse_encoder,
    build_store,
    build_watcher,
    model_identity,
    retriever_over,
)
from pipelines.config import Settings
from pipelines.indexing.report import FileResult
from pipelines.indexing.watch import Watcher, WatchMetrics, check_roots
from pipelines.service.core import Admission, LockedStore, QueryBatcher, SlicedEmbedder
from pipelines.service.http import KeyRing, Misconfigured, NotReady, Overloaded, ServiceMetrics
from pipelines.service.jobs import JobManager, UploadRoot, UploadRunner
from pipelines.service.principals import KeysFile, Principals
from retrieval.context import ContextPacker, PackedContext, retrieve_context
from retrieval.prompt import PromptTemplate
from retrieval.relevance import keep_relevant, resolve_min_relevance
from retrieval.schema import Passage
from retrieval.tokens import TokenCounter, token_counter

if TYPE_CHECKING:
    from retrieval.hybrid import HybridRetriever

log = logging.getLogger(__name__)
UPLOAD_PATH = "/v1/documents"


class ServiceRuntime:
    """The objects one service process shares; the model loads in `start()` on a background thread."""

    def __init__(self, settings: Settings, watch: Sequence[str] = ()) -> None:
        self.settings = settings
        self.model_id = model_identity(settings.embed_model)
        self.embedder = build_embedder(settings)
        self.store = build_store(settings)
        self.model_lock, self.store_lock = threading.Lock(), threading.RLock()
        self.locked_store = LockedStore(self.store, self.store_lock)
        self.metrics = ServiceMetrics()
        self.principals = principals_of(settings)
        self.admission = Admission(settings.queue_size)
        self.loaded = threading.Event()
        self.startup_error: str | None = None
        self.batcher: QueryBatcher | None = None
        self.retriever: HybridRetriever | None = None  # over the shared store: only ever used through a view
        self.jobs: JobManager | None = None
        self.extensions = frozenset(SUPPORTED_EXTENSIONS)
        self.uploads = UploadRoot(settings.upload_dir)
        self.stopping_since: float | None = None  # monotonic time of SIGTERM/SIGINT (see serve)
        # `serve --watch ROOT`: roots checked now (a bad one stops the service before it binds); the watcher
        # starts once the model is loaded, and its counters are on /metrics from the start.
        self.watch_roots = [str(r) for r in check_roots(watch)] if watch else []
        self.watch_metrics = WatchMetrics(self.metrics.registry) if watch else None
        self.watcher: Watcher | None = None
        self._counter: TokenCounter | None = None  # the generator's token counter, read on first use
        self._counter_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.uploads.open()
        threading.Thread(target=self._load, name="model-load", daemon=True).start()

    def _load(self) -> None:
        try:
            self.embedder.load()
            with self.store_lock:
                self.store.ensure_collection(self.model_id, self.embedder.dimension)
            self.batcher = QueryBatcher(self.embedder, self.model_lock, self.settings.batch_wait_ms / 1000,
                                        self.settings.batch_max, observe=self.metrics.observe_embed)
            self.retriever = build_retriever(self.settings, self.batcher, self.locked_store)
            embedder = SlicedEmbedder(self.embedder, self.model_lock)
            # The CLI's limits, with the service's own parse timeout (a caller waits for the job).
            limits = replace(build_limits(self.settings), parse_timeout_s=self.settings.service_parse_timeout)
            runner = UploadRunner(embedder, build_chunker(self.settings, embedder), self.locked_store,
                                  self.model_id, build_sparse_encoder(self.settings), progress=False, limits=limits,
                                  learn_abbreviations=self.settings.bm25_abbreviations)
            self.jobs = JobManager(runner, self.settings.job_queue_size, self._count_result)
            if self.watch_roots:
                self._start_watch(embedder)
            self.loaded.set()
            log.info("service ready", extra={"model": self.model_id, "store": self.store.location})
        except Exception as exc:  # reported by /readyz and every request that needs the model
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.error("service cannot start", extra={"error": self.startup_error})

    def _start_watch(self, embedder: SlicedEmbedder) -> None:
        """The watcher thread: the service's own store (behind its lock; the embedded engine is single-process)
        and model (slices under the model lock, so queries interleave with the watcher's embedding)."""
        runner = build_ingest_runner(self.settings, embedder, self.locked_store, progress=False)
        self.watcher = build_watcher(self.settings, runner, self.watch_roots, self.watch_metrics)
        self.watcher.start()

    def stop(self) -> None:
        """`shutdown_timeout` counts from the signal: the time uvicorn spent closing connections is
        taken from what the running job gets."""
        timeout = self.settings.shutdown_timeout
        if self.stopping_since is not None:
            timeout = max(0.0, timeout - (time.monotonic() - self.stopping_since))
        if self.watcher is not None:  # stops after its current file; a file's write is never cut in half
            self.watcher.stop(max(timeout, 1.0))
        if self.jobs is not None:
            self.jobs.shutdown(timeout)
        if self.batcher is not None:
            self.batcher.close()
        with self.store_lock:
            self.store.close()
        self.uploads.close()

    def _count_result(self, result: FileResult) -> None:
        self.metrics.ingest_files.labels(result.status).inc()
        self.metrics.ingest_chunks.inc(result.points_written)

    # -- readiness ----------------------------------------------------------------------------------
    def require_ready(self) -> None:
        if self.startup_error:  # the model loads once: a retry cannot help until the service restarts
            raise Misconfigured(f"service failed to start: {self.startup_error}")
        if not self.loaded.is_set():
            raise NotReady("the model is still loading", {"Retry-After": "5"})

    def check_ready(self) -> None:
        """Model loaded, Qdrant reachable, collection built by this model (asked anew each time)."""
        self.require_ready()
        try:
            with self.store_lock:
                self.store.check_compatible(self.model_id, self.embedder.dimension)
        except Exception as exc:  # a store that may answer later (Retry-After), or one that is set up wrong
            not_ready = NotReady if kind_of(exc) is ErrorKind.UNAVAILABLE else Misconfigured
            raise not_ready(f"store not ready: {type(exc).__name__}: {exc}") from exc

    # -- what a request acts on ----------------------------------------------------------------------
    def store_for(self, principal: Principal) -> VectorStore:
        """The store as `principal` sees it (a view behind the shared lock): every route reads, lists and
        deletes through one, so the store layer narrows every call to what the caller may see."""
        return self.locked_store.scoped(principal)

    def retrieve(self, principal: Principal, query: str, top_k: int, mode: str | None, filters: dict,
                 truncate: bool, rerank: bool | None, expand: int | None,
                 min_relevance: float | str | None = None) -> tuple[str, list[Passage]]:
        """Search, rerank candidates and neighbour expansion, all over `principal`'s view of the store; passages
        below `min_relevance` (default: the setting) are left out."""
        self.require_ready()  # the query itself is checked by the retriever (retrieval/query_check.py)
        if self.retriever is None:  # set before the service reports itself loaded
            raise NotReady("the model is still loading", {"Retry-After": "5"})
        mode = mode or self.settings.retrieval_mode
        retriever = retriever_over(self.retriever, self.store_for(principal))
        floor = self.min_relevance(min_relevance)
        return mode, keep_relevant(retriever.retrieve(query, top_k, filters or None, truncate, mode=mode,
                                                      rerank=rerank, expand=expand), floor)

    def min_relevance(self, requested: float | str | None) -> float | None:
        """The request's min_relevance (a number or "auto"), else the setting's; a bad value is a QueryError
        (a 4xx over HTTP, a tool error over MCP, like a bad query)."""
        return resolve_min_relevance(self.settings.min_relevance if requested is None else requested)


    @contextmanager
    def admitted(self) -> Iterator[None]:
        """A place among the requests in flight (`queue_size`), or Overloaded (429, a tool error over MCP)
        at once: every door that searches counts against the same bound."""
        if not self.admission.try_enter():
            raise Overloaded(f"{self.admission.limit} requests are in flight; retry shortly", {"Retry-After": "1"})
        self.metrics.in_flight.inc()
        try:
            yield
        finally:
            self.admission.leave()
            self.metrics.in_flight.dec()

    def token_counter(self) -> TokenCounter:
        """The `context_tokenizer` counter, built on first use (a bad setting fails that request, naming it)."""
        with self._counter_lock:
            if self._counter is None:
                self._counter = token_counter(self.settings.context_tokenizer)
            return self._counter

    def context(self, principal: Principal, query: str, budget: int | None = None, filters: dict | None = None,
                strategy: str | None = None, mode: str | None = None, truncate: bool = False,
                prompt: bool = False, min_relevance: float | str | None = None) -> PackedContext:
        """The cited context for `query` within `budget` tokens (/v1/context, MCP get_context), over
        `principal`'s view of the store: every passage and every neighbour it adds passes the access filter."""
        self.require_ready()
        if self.retriever is None:  # set before the service reports itself loaded
            raise NotReady("the model is still loading", {"Retry-After": "5"})
        s = self.settings
        packer = ContextPacker(self.token_counter(), strategy or s.context_strategy)
        template = PromptTemplate.load(s.context_prompt) if prompt else None
        retriever = retriever_over(self.retriever, self.store_for(principal))
        return retrieve_context(retriever, packer, query, s.context_budget if budget is None else budget,
                                s.context_candidates, filters or None, mode or s.retrieval_mode, truncate, template,
                                s.expand or None, s.mmr, self.min_relevance(min_relevance))


def principals_of(settings: Settings) -> Principals:
    """Who requests may be: the env shortcut keys, the keys file, or (neither set) the settings' principal."""
    ring = KeyRing.from_settings(settings.read_keys, settings.write_keys)
    return Principals(ring, KeysFile(settings.keys_file) if settings.keys_file else None, settings.principal)
