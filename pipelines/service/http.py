"""HTTP edges of the service: the error table, API keys and Prometheus metrics (the gate: service_gate.py)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.errors import (
    ConfigError,
    ErrorKind,
    GermanRagError,
    InputError,
    InternalError,
    UnavailableError,
    UsageError,
    kind_of,
)
from retrieval.schema import EmptyQueryError

log = logging.getLogger(__name__)


class ServiceError(GermanRagError):
    """An error of the HTTP layer; the message is safe to show to the caller. Its kind (below, by base
    class) says what the caller can do; its status and the body's `kind` come from HTTP_ERRORS."""

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class InvalidInput(UsageError, ServiceError):
    """A request the API does not accept (a field, a parameter, a malformed body)."""


class EmptyInput(UsageError, ServiceError):
    """A request that asks for nothing (an empty query)."""


class Overloaded(UnavailableError, ServiceError):
    """Too many requests in flight: retry shortly (Retry-After)."""


class NotReady(UnavailableError, ServiceError):
    """The model is loading or the store does not answer: retry later."""


class Misconfigured(ConfigError, NotReady):
    """The service cannot serve until its configuration is fixed (a model it cannot load, another model's
    collection): 503 like NotReady, without a Retry-After."""


class NotFound(UsageError, ServiceError):
    """The caller named a job or a document that is not there."""


class Unauthorized(UsageError, ServiceError):
    """No API key, or an unknown one."""


class MissingKey(Unauthorized):
    """No `Authorization: Bearer KEY` header, or one of another form (Dify's error 1001)."""


class InvalidKey(Unauthorized):
    """A key that is not known (Dify's error 1002)."""


class Forbidden(UsageError, ServiceError):
    """A read key on a write endpoint."""


class TooLarge(InputError, ServiceError):
    """A body, a file or a form over its limit."""


class LengthRequired(UsageError, ServiceError):
    """A body without a Content-Length."""


class RequestTimeout(InputError, ServiceError):
    """A body that stalled or took too long."""


class UnsupportedType(InputError, ServiceError):
    """An uploaded file of a type the service does not parse."""


@dataclass(frozen=True)
class HttpError:
    status: int
    name: str  # the body's `error.kind`: the API's published names (text-embeddings-inference style)
    retry_after: str | None = None  # sent unless the error brings its own


# The one table from error to HTTP status. A class row wins (the first class on the error's MRO that has
# one), else the row of the error's kind; an error that is not a GermanRagError is internal. Nothing here
# looks at a message.
HTTP_ERRORS: dict[type[BaseException] | ErrorKind, HttpError] = {
    EmptyInput: HttpError(400, "empty"),
    EmptyQueryError: HttpError(400, "empty"),
    Unauthorized: HttpError(401, "unauthorized"),
    Forbidden: HttpError(403, "forbidden"),
    NotFound: HttpError(404, "not_found"),
    RequestTimeout: HttpError(408, "timeout"),
    LengthRequired: HttpError(411, "length_required"),
    TooLarge: HttpError(413, "too_large"),
    UnsupportedType: HttpError(415, "unsupported_type"),
    Overloaded: HttpError(429, "overloaded"),
    ErrorKind.USAGE: HttpError(422, "invalid"),  # a bad field, filter, query or option
    ErrorKind.INPUT: HttpError(422, "invalid"),  # a query over the model's token limit
    ErrorKind.CONFIGURATION: HttpError(503, "not_ready"),  # another model's collection, a model not found
    ErrorKind.UNAVAILABLE: HttpError(503, "not_ready", retry_after="10"),  # Qdrant down through its retries
    ErrorKind.INTERNAL: HttpError(500, "internal"),
}


def http_error(exc: BaseException) -> HttpError:
    """The HTTP_ERRORS row of an error: its class's (walking the MRO), else its kind's."""
    for cls in type(exc).__mro__:
        row = HTTP_ERRORS.get(cls)
        if row is not None:
            return row
    return HTTP_ERRORS[kind_of(exc)]


# How a door answers an error: the error and extra headers in, the response in the door's own body shape
# (error_response for the /v1 API; Dify's and OpenAI's doors bring their own).
ErrorShape = Callable[[BaseException, dict[str, str]], Response]


def error_response(exc: BaseException, message: str | None = None,
                   extra_headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer to an error: its status and name from HTTP_ERRORS, its message (or `message`: what an
    internal error may show), its own headers (Retry-After, WWW-Authenticate) and `extra_headers`."""
    row = http_error(exc)
    headers = {"Retry-After": row.retry_after} if row.retry_after else {}
    headers.update(getattr(exc, "headers", None) or {})
    headers.update(extra_headers or {})
    return JSONResponse({"error": {"kind": row.name, "message": str(exc) if message is None else message}},
                        status_code=row.status, headers=headers or None)


def form_error(exc: MultiPartException) -> ServiceError:
    """Starlette's form parser has one exception type for a broken form and for one over max_files,
    max_fields or max_part_size; only its message tells them apart. It is read here, once, and turned
    into a typed error (413 or 422)."""
    over = exc.message.startswith(("Too many files", "Too many fields", "Part exceeded maximum size"))
    return (TooLarge if over else InvalidInput)(f"multipart body: {exc.message}")


INTERNAL_MESSAGE = "internal error; see the service log"


def invalid_input(exc: RequestValidationError) -> InvalidInput:
    """A body FastAPI could not validate as one InvalidInput naming each field and what is wrong with it."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return InvalidInput("; ".join(parts) or "invalid request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GermanRagError)
    async def _ours(request: Request, exc: GermanRagError) -> JSONResponse:
        if exc.kind is ErrorKind.INTERNAL:
            log.error("internal error", exc_info=exc, extra={"path": request.url.path})
            return error_response(exc, INTERNAL_MESSAGE)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(invalid_input(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__context__, MultiPartException):  # Starlette turns it into a bare 400
            return error_response(form_error(exc.__context__))
        if exc.status_code == 400:  # a body FastAPI could not decode (not UTF-8, broken form): the table says 422
            return error_response(InvalidInput(f"{exc.detail} (malformed or not UTF-8)"))
        # Routing's own answers (404 no such path, 405 method not allowed) keep Starlette's status.
        name = "not_found" if exc.status_code == 404 else "invalid"
        return JSONResponse({"error": {"kind": name, "message": str(exc.detail)}}, status_code=exc.status_code,
                            headers=dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(exc, INTERNAL_MESSAGE)


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
        token = bearer(authorization)
        return None if token is None else self.role_of(token)

    def check(self, authorization: str | bytes | None, scope: str | None) -> None:
        """Raise Unauthorized (no or unknown key) or Forbidden (a read key on a write endpoint).
        `scope` None: an open endpoint."""
        if not self.enabled or scope is None:
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        token = bearer(authorization)
        if token is None:
            raise MissingKey("missing API key: send 'Authorization: Bearer KEY'", challenge)
        role = self.role_of(token)
        if role is None:
            raise InvalidKey("invalid API key", challenge)
        if scope == "write" and role != "write":
            raise Forbidden("this API key may only read; uploads and deletes need a write key")

    def role_of(self, token: bytes) -> str | None:
        given = _digest(token)
        is_write, is_read = self._match(given, self.write), self._match(given, self.read)  # both: same time
        return "write" if is_write else "read" if is_read else None


def bearer(authorization: str | bytes | None) -> bytes | None:
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
            await error_response(InternalError(INTERNAL_MESSAGE))(scope, receive, send)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(endpoint, scope["method"], str(status[0] or 500)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
