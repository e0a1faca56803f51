"""HTTP edges of the service: the error table, API keys and Prometheus metrics (the gate: service_gate.py)."""

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
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class RequestTimeout(ServiceError):
    kind = "timeout"


class UnsupportedType(ServiceError):
    kind = "unsupported_type"


# Starlette's form parser has one exception type for a broken form and for one over max_files,
# max_fields or max_part_size; only its message tells them apart.
_FORM_LIMIT_MESSAGES = ("Too many files", "Too many fields", "Part exceeded maximum size")

# The one table from error kind to HTTP status (text-embeddings-inference style).
ERRORS: dict[str, int] = {
    "invalid": 422, "empty": 400, "overloaded": 429, "not_ready": 503, "not_found": 404,
    "unauthorized": 401, "forbidden": 403, "too_large": 413, "length_required": 411,
    "unsupported_type": 415, "timeout": 408, "internal": 500,
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
        form_error = exc.__context__
        if isinstance(form_error, MultiPartException):  # Starlette turns it into a bare 400
            over = form_error.message.startswith(_FORM_LIMIT_MESSAGES)
            return error_response("too_large" if over else "invalid", f"multipart body: {form_error.message}")
        if exc.status_code == 400:  # a body FastAPI could not decode (not UTF-8, broken form): the table says 422
            return error_response("invalid", f"{exc.detail} (malformed or not UTF-8)")
        kind = {404: "not_found", 405: "invalid"}.get(exc.status_code, "invalid")
        return error_response(kind, str(exc.detail), dict(exc.headers or {}), status=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response("internal", "internal error; see the service log")


# -- API keys ------------------------------------------------------------------------------------------
def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def raw_header(value: str | bytes | None) -> bytes:
    """A header as the bytes the client sent (the ASGI server hands Starlette bytes; it decodes latin-1)."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode("latin-1", errors="replace")


@dataclass(frozen=True)
class KeyRing:
    """Read and write keys, kept as digests of their UTF-8 bytes, so every comparison has the same
    length and time, and a key with non-ASCII characters matches what a client sends as UTF-8."""

    read: tuple[bytes, ...]
    write: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, read: SecretStr | None, write: SecretStr | None) -> KeyRing:
        def split(secret: SecretStr | None) -> tuple[bytes, ...]:
            raw = secret.get_secret_value() if secret else ""
            return tuple(_digest(k.strip().encode("utf-8")) for k in raw.split(",") if k.strip())
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

    def role(self, authorization: str | bytes | None) -> str | None:
        """"write", "read" or None (no key, an unknown key, or a header that is not `Bearer KEY`)."""
        token = _bearer(authorization)
        return None if token is None else self._role_of(token)

    def check(self, authorization: str | bytes | None, scope: str | None) -> None:
        """Raise Unauthorized (no or unknown key) or Forbidden (a read key on a write endpoint).
        `scope` None: an open endpoint."""
        if not self.enabled or scope is None:
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        token = _bearer(authorization)
        if token is None:
            raise Unauthorized("missing API key: send 'Authorization: Bearer KEY'", challenge)
        role = self._role_of(token)
        if role is None:
            raise Unauthorized("invalid API key", challenge)
        if scope == "write" and role != "write":
            raise Forbidden("this API key may only read; uploads and deletes need a write key")

    def _role_of(self, token: bytes) -> str | None:
        given = _digest(token)
        is_write, is_read = self._match(given, self.write), self._match(given, self.read)  # both: same time
        return "write" if is_write else "read" if is_read else None


def _bearer(authorization: str | bytes | None) -> bytes | None:
    """The KEY of `Authorization: Bearer KEY`, as the bytes the client sent; None for anything else."""
    scheme, _, token = raw_header(authorization).partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" and token.strip() else None


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
        """Count every answer, 500s included. Added last, so it runs outside the app's other middleware;
        an unhandled error is answered here (Starlette's ServerErrorMiddleware would answer it after
        this middleware has given up on the request, and uvicorn would then drop the connection)."""
        app.add_middleware(_Measure, metrics=self)


class _Measure:
    """ASGI middleware: requests by endpoint (the route's path template), method and status; latency;
    and the one answer to an unhandled error: a 500 of kind `internal`, the traceback in the log only."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            if status[0]:  # the answer had begun: nothing can be said any more
                raise
            status[0] = 500
            await error_response("internal", "internal error; see the service log")(scope, receive, send)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(endpoint, scope["method"], str(status[0] or 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
