"""The HTTP retrieval service (`german-rag serve`): FastAPI over the same pipeline objects as the CLI.

The app is built here from one ServiceRuntime (runtime.py); routes live in routes.py; the error table,
keys and metrics in http.py; the request gate in gate.py.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from pipelines.config import ConfigError, Settings
from pipelines.service.context_route import install_context
from pipelines.service.dify import install_dify
from pipelines.service.gate import GatePolicy, RequestGate
from pipelines.service.http import KeyRing, install_error_handlers
from pipelines.service.mcp import mount_mcp
from pipelines.service.openai_embeddings import install_embeddings
from pipelines.service.routes import install_routes
from pipelines.service.runtime import UPLOAD_PATH, ServiceRuntime
from pipelines.service.ui import install_ui
from pipelines.service.ui_api import install_ui_api

log = logging.getLogger(__name__)
JSON_BODY_LIMIT = 1 << 20  # a retrieve request is a query and a few filters; nothing needs more
MULTIPART_OVERHEAD = 64 << 10


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
    if not keys.enabled and not settings.keys_file and not is_loopback(settings.host) and not settings.allow_public:
        raise ConfigError(
            f"host {settings.host!r} is not a loopback address and no API keys are set: set GERMAN_RAG_KEYS_FILE "
            "(german-rag keys add), or GERMAN_RAG_READ_KEYS and GERMAN_RAG_WRITE_KEYS, or "
            "GERMAN_RAG_ALLOW_PUBLIC=true to serve without keys")


def create_app(settings: Settings, watch: Sequence[str] = ()) -> FastAPI:
    """A FastAPI app over one ServiceRuntime; the model loads when the app starts (lifespan). `watch`: folders
    the service keeps in step (a watcher thread over its own model and store)."""
    runtime = ServiceRuntime(settings, watch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime.start()
        async with mcp_sessions.run():  # the MCP endpoint's session manager lives as long as the app
            yield
        runtime.stop()

    closed = runtime.principals.enabled  # with keys set, the browsable docs are off and the schema needs a read key
    app = FastAPI(title="german-rag", version="1", lifespan=lifespan, docs_url=None if closed else "/docs",
                  redoc_url=None if closed else "/redoc",
                  description="Retrieval over German documents: hybrid search with sources, uploads as jobs.")
    app.state.runtime = runtime
    install_error_handlers(app)
    install_routes(app, runtime)
    # Doors for other platforms (Dify's /retrieval, OpenAI's /v1/embeddings): their errors in their own shapes
    shapes = {**install_dify(app, runtime), **install_embeddings(app, runtime)}
    mcp_sessions = mount_mcp(app, runtime)  # POST /mcp: the MCP tools, behind the same gate and keys
    install_context(app, runtime)  # POST /v1/context (context_route.py)
    install_ui_api(app, runtime)  # what the search page reads: /v1/whoami, /v1/highlight, document text, sources
    install_ui(app)  # the search page: /ui (ui.py), its CSP on every /ui answer
    # Middleware, innermost first: the gate (keys, lengths, upload slots) before any body byte is read,
    # CORS outside it (a refusal still carries CORS headers), metrics outermost (every answer counted).
    upload_limit = settings.max_upload_files * (settings.max_upload_bytes + 1024) + MULTIPART_OVERHEAD
    app.add_middleware(RequestGate, policy=GatePolicy(runtime.principals, UPLOAD_PATH, upload_limit, JSON_BODY_LIMIT,
                                                      settings.max_concurrent_uploads, settings.upload_read_timeout,
                                                      settings.upload_body_timeout, shapes))
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # CORS is off unless origins are configured
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    runtime.metrics.install(app)
    return app


def serve(settings: Settings, watch: Sequence[str] = ()) -> int:
    """Run the service until SIGINT/SIGTERM; open requests and running ingest jobs get `shutdown_timeout`
    (from the signal) to finish, then the job's parse worker is killed and the process exits."""
    import uvicorn

    check_bind(settings)
    started = time.perf_counter()
    app = create_app(settings, watch)
    runtime: ServiceRuntime = app.state.runtime

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if runtime.stopping_since is None:
                runtime.stopping_since = time.monotonic()
                if runtime.jobs is not None:
                    runtime.jobs.accepting = False
                if runtime.watcher is not None:
                    runtime.watcher.request_stop()  # after the current file
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=settings.host, port=settings.port, workers=1,
                            log_level=settings.log_level.lower(),
                            timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout)), access_log=False)
    Server(config).run()
    log.info("service stopped", extra={"seconds": round(time.perf_counter() - started, 1)})
    return 0
