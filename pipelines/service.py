"""The HTTP retrieval service (`german-rag serve`): FastAPI over the same pipeline objects as the CLI.

One process owns one model, one store client, one ingest worker; run a single uvicorn worker per
process (embedded Qdrant allows one client per folder, and each worker would load its own model).
Routes live in service_routes.py; the error table, keys and metrics in service_http.py.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ingest.parse import SUPPORTED_EXTENSIONS
from pipelines.build import (
    build_chunker,
    build_embedder,
    build_limits,
    build_retriever,
    build_sparse_encoder,
    build_store,
    model_identity,
)
from pipelines.config import ConfigError, Settings
from pipelines.report import FileResult
from pipelines.service_core import Admission, QueryBatcher, Serialized, SlicedEmbedder
from pipelines.service_gate import GatePolicy, RequestGate
from pipelines.service_http import (
    EmptyInput,
    InvalidInput,
    KeyRing,
    NotReady,
    ServiceMetrics,
    install_error_handlers,
)
from pipelines.service_jobs import JobManager, UploadRoot, UploadRunner
from retrieval.query_check import check_query
from retrieval.schema import EmptyQueryError, Passage, RetrievalError

log = logging.getLogger(__name__)
UPLOAD_PATH = "/v1/documents"
JSON_BODY_LIMIT = 1 << 20  # a retrieve request is a query and a few filters; nothing needs more
MULTIPART_OVERHEAD = 64 << 10


class ServiceRuntime:
    """The objects one service process shares; the model loads in `start()` on a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_id = model_identity(settings.embed_model)
        self.embedder = build_embedder(settings)
        self.store = build_store(settings)
        self.model_lock, self.store_lock = threading.Lock(), threading.RLock()
        self.locked_store = Serialized(self.store, self.store_lock)
        self.metrics = ServiceMetrics()
        self.keys = KeyRing.from_settings(settings.read_keys, settings.write_keys)
        self.admission = Admission(settings.queue_size)
        self.loaded = threading.Event()
        self.startup_error: str | None = None
        self.batcher: QueryBatcher | None = None
        self.retriever: Any = None
        self.jobs: JobManager | None = None
        self.extensions = frozenset(SUPPORTED_EXTENSIONS)
        self.uploads = UploadRoot(settings.upload_dir)
        self.stopping_since: float | None = None  # monotonic time of SIGTERM/SIGINT (see serve)

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
            self.retriever = build_retriever(self.settings, self.batcher, self.locked_store)  # type: ignore[arg-type]
            embedder = SlicedEmbedder(self.embedder, self.model_lock)
            # The CLI's limits, with the service's own parse timeout (a caller waits for the job).
            limits = replace(build_limits(self.settings), parse_timeout_s=self.settings.service_parse_timeout)
            runner = UploadRunner(embedder, build_chunker(self.settings, embedder), self.locked_store,  # type: ignore[arg-type]
                                  self.model_id, build_sparse_encoder(self.settings), progress=False, limits=limits)
            self.jobs = JobManager(runner, self.settings.job_queue_size, self._count_result)
            self.loaded.set()
            log.info("service ready", extra={"model": self.model_id, "store": self.store.location})
        except Exception as exc:  # reported by /readyz and every request that needs the model
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.error("service cannot start", extra={"error": self.startup_error})

    def stop(self) -> None:
        """`shutdown_timeout` counts from the signal: the time uvicorn spent closing connections is
        taken from what the running job gets."""
        timeout = self.settings.shutdown_timeout
        if self.stopping_since is not None:
            timeout = max(0.0, timeout - (time.monotonic() - self.stopping_since))
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
        if self.startup_error:
            raise NotReady(f"service failed to start: {self.startup_error}")
        if not self.loaded.is_set():
            raise NotReady("the model is still loading", {"Retry-After": "5"})

    def check_ready(self) -> None:
        """Model loaded, Qdrant reachable, collection built by this model (asked anew each time)."""
        self.require_ready()
        try:
            with self.store_lock:
                self.store.check_compatible(self.model_id, self.embedder.dimension)
        except Exception as exc:
            raise NotReady(f"store not ready: {type(exc).__name__}: {exc}") from exc

    # -- retrieve -----------------------------------------------------------------------------------
    def supports(self, name: str) -> bool:
        return name in inspect.signature(self.retriever.retrieve).parameters

    def retrieve(self, query: str, top_k: int, mode: str | None, filters: dict, truncate: bool,
                 rerank: bool | None, expand: int | None) -> tuple[str, list[Passage]]:
        self.require_ready()
        try:
            query = check_query(query)
        except RetrievalError as exc:
            raise (EmptyInput if isinstance(exc, EmptyQueryError) else InvalidInput)(str(exc)) from exc
        extra: dict[str, Any] = {}
        for name, value in (("rerank", rerank), ("expand", expand)):
            if value is not None:
                if not self.supports(name):
                    raise InvalidInput(f"{name}: not supported by this version of the retriever")
                extra[name] = value
        mode = mode or self.settings.retrieval_mode
        return mode, self.retriever.retrieve(query, top_k, filters or None, truncate, mode=mode, **extra)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Without API keys the service stays on loopback unless `allow_public` says otherwise."""
    keys = KeyRing.from_settings(settings.read_keys, settings.write_keys)
    if not keys.enabled and not is_loopback(settings.host) and not settings.allow_public:
        raise ConfigError(
            f"host {settings.host!r} is not a loopback address and no API keys are set: set GERMAN_RAG_READ_KEYS"
            " and GERMAN_RAG_WRITE_KEYS, or GERMAN_RAG_ALLOW_PUBLIC=true to serve without keys")


def create_app(settings: Settings) -> FastAPI:
    """A FastAPI app over one ServiceRuntime; the model loads when the app starts (lifespan)."""
    from pipelines.service_routes import install_routes

    runtime = ServiceRuntime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime.start()
        yield
        runtime.stop()

    closed = runtime.keys.enabled  # with keys set, the browsable docs are off and the schema needs a read key
    app = FastAPI(title="german-rag", version="1", lifespan=lifespan, docs_url=None if closed else "/docs",
                  redoc_url=None if closed else "/redoc",
                  description="Retrieval over German documents: hybrid search with sources, uploads as jobs.")
    app.state.runtime = runtime
    install_error_handlers(app)
    install_routes(app, runtime)
    # Middleware, innermost first: the gate (keys, lengths, upload slots) before any body byte is read,
    # CORS outside it (a refusal still carries CORS headers), metrics outermost (every answer counted).
    upload_limit = settings.max_upload_files * (settings.max_upload_bytes + 1024) + MULTIPART_OVERHEAD
    app.add_middleware(RequestGate, policy=GatePolicy(runtime.keys, UPLOAD_PATH, upload_limit, JSON_BODY_LIMIT,
                                                      settings.max_concurrent_uploads, settings.upload_read_timeout,
                                                      settings.upload_body_timeout))
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # CORS is off unless origins are configured
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    runtime.metrics.install(app)
    return app


def serve(settings: Settings) -> int:
    """Run the service until SIGINT/SIGTERM; open requests and running ingest jobs get `shutdown_timeout`
    (from the signal) to finish, then the job's parse worker is killed and the process exits."""
    import uvicorn

    check_bind(settings)
    started = time.perf_counter()
    app = create_app(settings)
    runtime: ServiceRuntime = app.state.runtime

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if runtime.stopping_since is None:
                runtime.stopping_since = time.monotonic()
                if runtime.jobs is not None:
                    runtime.jobs.accepting = False
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=settings.host, port=settings.port, workers=1,
                            log_level=settings.log_level.lower(),
                            timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout)), access_log=False)
    Server(config).run()
    log.info("service stopped", extra={"seconds": round(time.perf_counter() - started, 1)})
    return 0
