"""HTTP edges of the service: the error table, API keys, body limits and Prometheus metrics."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.schema import StoreError
from retrieval.schema import RetrievalError

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with a kind from ERRORS; the message is safe to show to the caller."""

    kind = "invalid"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class InvalidInput(ServiceError):
    kind = "invalid"


class EmptyInput(ServiceError):
    kind = "empty"


class Overloaded(ServiceError):
    kind = "overloaded"


class NotReady(ServiceError):
    kind = "not_ready"


class NotFound(ServiceError):
    kind = "not_found"


class Unauthorized(ServiceError):
    kind = "unauthorized"


class Forbidden(ServiceError):
    kind = "forbidden"


class TooLarge(ServiceError):
    kind = "too_large"


class LengthRequired(ServiceError):
    kind = "length_required"


class UnsupportedType(ServiceError):
    kind = "unsupported_type"


# The one table from error kind to HTTP status (text-embeddings-inference style).
ERRORS: dict[str, int] = {
    "invalid": 422, "empty": 400, "overloaded": 429, "not_ready": 503, "not_found": 404,
    "unauthorized": 401, "forbidden": 403, "too_large": 413, "length_required": 411,
    "unsupported_type": 415, "internal": 500,
}


def error_response(kind: str, message: str, headers: dict[str, str] | None = None,
                   status: int | None = None) -> JSONResponse:
    return JSONResponse({"error": {"kind": kind, "message": message}}, status_code=status or ERRORS[kind],
                        headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.kind, str(exc), exc.headers)

    @app.exception_handler(RetrievalError)
    async def _retrieval(request: Request, exc: RetrievalError) -> JSONResponse:
        return error_response("invalid", str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        return error_response("not_ready", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response("invalid", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "invalid", 400: "invalid"}.get(exc.status_code, "invalid")
        return error_response(kind, str(exc.detail), dict(exc.headers or {}), status=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response("internal", "internal error; see the service log")


# -- API keys ------------------------------------------------------------------------------------------
def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class KeyRing:
    """Read and write keys, kept as digests so every comparison has the same length and time."""

    read: tuple[bytes, ...]
    write: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, read: SecretStr | None, write: SecretStr | None) -> KeyRing:
        def split(secret: SecretStr | None) -> tuple[bytes, ...]:
            raw = secret.get_secret_value() if secret else ""
            return tuple(_digest(k.strip()) for k in raw.split(",") if k.strip())
        return cls(split(read), split(write))

    @property
    def enabled(self) -> bool:
        return bool(self.read or self.write)

    @staticmethod
    def _match(given: bytes, keys: tuple[bytes, ...]) -> bool:
        found = False
        for key in keys:  # no early exit: the time does not tell which key (or whether any) matched
            found |= hmac.compare_digest(given, key)
        return found

    def check(self, authorization: str | None, scope: str) -> None:
        """Raise Unauthorized (no or unknown key) or Forbidden (a read key on a write endpoint)."""
        if not self.enabled:
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing API key: send 'Authorization: Bearer KEY'", challenge)
        given = _digest(token.strip())
        is_write, is_read = self._match(given, self.write), self._match(given, self.read)
        if not (is_write or is_read):
            raise Unauthorized("invalid API key", challenge)
        if scope == "write" and not is_write:
            raise Forbidden("this API key may only read; uploads and deletes need a write key")


# -- body limits ----------------------------------------------------------------------------------------
class BodyLimit:
    """ASGI middleware: a request body must declare its length, and the length must be within the limit.

    Checked before any byte is read, so an oversized upload is refused without being spooled to disk;
    the HTTP server (h11) then holds the client to the length it declared.
    """

    def __init__(self, app: ASGIApp, upload_path: str, upload_limit: int, other_limit: int) -> None:
        self.app, self.upload_path = app, upload_path
        self.upload_limit, self.other_limit = upload_limit, other_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            limit = self.upload_limit if scope["path"] == self.upload_path else self.other_limit
            length = headers.get(b"content-length")
            response = None
            if length is None or not length.isdigit():
                response = error_response("length_required", "send the request with a Content-Length header")
            elif int(length) > limit:
                response = error_response("too_large", f"request body of {int(length)} bytes is over the "
                                          f"limit of {limit} bytes")
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- metrics --------------------------------------------------------------------------------------------
class ServiceMetrics:
    """Prometheus series of one app (own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("german_rag_http_requests_total", "HTTP requests", ["endpoint", "method", "status"],
                                registry=r)
        self.latency = Histogram("german_rag_http_request_seconds", "HTTP request latency", ["endpoint"],
                                 registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.embed = Histogram("german_rag_query_embed_seconds", "time in the model per query batch",
                               registry=r, buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.embed_batch = Histogram("german_rag_query_embed_batch_size", "queries per model call", registry=r,
                                     buckets=(1, 2, 4, 8, 16, 32))
        self.ingest_files = Counter("german_rag_ingest_files_total", "uploaded files by outcome", ["status"],
                                    registry=r)
        self.ingest_chunks = Counter("german_rag_ingest_chunks_total", "chunks written by ingest jobs",
                                     registry=r)
        self.in_flight = Gauge("german_rag_retrieve_in_flight", "retrieve requests being answered", registry=r)
        self.job_queue = Gauge("german_rag_ingest_jobs_queued", "ingest jobs waiting", registry=r)

    def observe_embed(self, seconds: float, size: int) -> None:
        self.embed.observe(seconds)
        self.embed_batch.observe(size)

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def _measure(request: Request, call_next):
            started = time.perf_counter()
            response = await call_next(request)
            route = request.scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.requests.labels(endpoint, request.method, str(response.status_code)).inc()
            self.latency.labels(endpoint).observe(time.perf_counter() - started)
            return response
