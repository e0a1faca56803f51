"""The door of the HTTP service: who may call, how large a body may be, how many uploads run at once.

Everything here is decided from the request line and headers, before the application reads one byte
of the body: an unauthenticated upload is refused while the client has sent only its headers (FastAPI
parses a form before it runs any dependency, so a key checked in a dependency comes too late). The
body is then counted as it streams, so a server that does not hold the client to its Content-Length
still cannot make the service read past the limit, and timed: uvicorn has no timeout for a body, so a
client that stalls mid-body would hold its upload slot for as long as it keeps the connection open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.service.http import (
    ErrorShape,
    LengthRequired,
    Overloaded,
    RequestTimeout,
    ServiceError,
    TooLarge,
    bearer,
    error_response,
)
from pipelines.service.principals import Caller, Principals

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # /readyz shows details only to a read key (the route decides)
# The search page's shells and static files (ui.py): they hold no data; their scripts call /v1 with the user's key
OPEN_PREFIXES = ("/ui/",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A body declared a little over its limit is read and dropped before the 413 goes out: a server that answers
# and closes while the client is still sending makes the kernel reset the connection, and the client sees
# "connection reset" instead of the 413 (under load, for a body of a megabyte). Larger ones are cut at once.
# Keys not seen before are derived with scrypt (tens of ms of CPU each) off the event loop; at most this many at
# once, so made-up keys cannot take every core: more answer 429 while keys already seen keep working.
MAX_DERIVATIONS = 4
DRAIN_BYTES = 2 << 20
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class GatePolicy:
    keys: Principals
    upload_path: str
    upload_limit: int  # bytes of one upload request, multipart framing included
    other_limit: int  # bytes of any other request body
    max_uploads: int  # upload requests being received or saved at once
    read_timeout: float = 30.0  # seconds a body may send nothing (then 408)
    body_timeout: float = 900.0  # seconds a whole body may take (then 408), against a trickle that never stalls
    # path -> the error shape of a door whose clients expect their own (Dify's /retrieval, OpenAI's /v1/embeddings)
    shapes: Mapping[str, ErrorShape] = field(default_factory=dict)

    def shape(self, path: str) -> ErrorShape:
        return self.shapes.get(path, _default_shape)


def required_scope(method: str, path: str, upload_path: str) -> str | None:
    """The key a request needs: None (open), "read" or "write". Anything not named open needs a key,
    so a route added later is closed by default (the OpenAPI schema and unknown paths included)."""
    if path in OPEN_PATHS or (method in ("GET", "HEAD") and (path == "/ui" or path.startswith(OPEN_PREFIXES))):
        return None
    if method == "DELETE" or (method in BODY_METHODS and path == upload_path):
        return "write"
    return "read"


class RequestGate:
    """ASGI middleware in front of the app (inside CORS, so refusals still carry CORS headers)."""

    def __init__(self, app: ASGIApp, policy: GatePolicy) -> None:
        self.app, self.policy = app, policy
        self.uploads_in_flight = 0  # one event loop: no lock needed
        self.derivations = 0  # new keys being derived right now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        p = self.policy
        headers = dict(scope["headers"])
        is_upload = scope["path"] == p.upload_path and scope["method"] in BODY_METHODS
        limit = p.upload_limit if is_upload else p.other_limit
        try:
            caller = await self._caller(headers.get(b"authorization"),
                                        required_scope(scope["method"], scope["path"], p.upload_path))
            scope.setdefault("state", {})["caller"] = caller  # what routes act as (routes.caller_of)
            declared = _declared_length(headers, scope["method"], limit)
        except ServiceError as exc:
            if isinstance(exc, TooLarge) and _declared(headers) - limit <= DRAIN_BYTES:
                await _drain(receive)
            await _refuse(scope, receive, send, exc, p.shape(scope["path"]))
            return
        body = _CountedBody(self.app, limit, declared, p.read_timeout, p.body_timeout, p.shape(scope["path"]))
        if not is_upload:
            await body(scope, receive, send)
            return
        if self.uploads_in_flight >= p.max_uploads:
            await _refuse(scope, receive, send, Overloaded(f"{p.max_uploads} uploads are being received; "
                                                          "retry shortly", {"Retry-After": "5"}), _default_shape)
            return
        self.uploads_in_flight += 1
        try:
            await body(scope, receive, send)
        finally:
            self.uploads_in_flight -= 1

    async def _caller(self, authorization: bytes | None, needs: str | None) -> Caller | None:
        """The request's caller, resolved once here; a key the keys file must derive (scrypt, tens of ms)
        is derived off the event loop."""
        keys = self.policy.keys
        token = bearer(authorization)
        caller: Caller | None = None
        if token is not None and keys.enabled:
            known = keys.cached(token)
            if known is False:  # not seen yet: a derivation (a flood of made-up keys must not starve the service)
                if self.derivations >= MAX_DERIVATIONS:
                    raise Overloaded("too many new API keys are being checked; retry shortly", {"Retry-After": "1"})
                self.derivations += 1
                try:
                    caller = await asyncio.to_thread(keys.resolve, token)
                finally:
                    self.derivations -= 1
            else:
                caller = known
        return keys.check(caller, token, needs)


def _declared_length(headers: dict[bytes, bytes], method: str, limit: int) -> int:
    """The Content-Length of a request with a body (411 without one, 413 over `limit`); 0 for others."""
    length = headers.get(b"content-length")
    if method not in BODY_METHODS:
        return int(length) if length is not None and length.isdigit() else 0
    if length is None or not length.isdigit():
        raise LengthRequired("send the request with a Content-Length header")
    if int(length) > limit:
        raise TooLarge(f"request body of {int(length)} bytes is over the limit of {limit} bytes")
    return int(length)


def _declared(headers: dict[bytes, bytes]) -> int:
    length = headers.get(b"content-length", b"")
    return int(length) if length.isdigit() else 0


async def _drain(receive: Receive) -> None:
    """Read and drop a request body (at most DRAIN_SECONDS), so the refusal reaches a client still sending."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(receive(), timeout=left)
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _default_shape(exc: BaseException, extra_headers: dict[str, str]) -> Response:
    return error_response(exc, extra_headers=extra_headers)


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: ServiceError, shape: ErrorShape) -> None:
    # Connection: close, so the server does not go on reading a body nobody will use.
    response = shape(exc, {"Connection": "close"})
    await response(scope, receive, send)


class _CountedBody:
    """Runs the app with a receive that counts and times body bytes. Past the limit (or past the declared
    length), after `read_timeout` seconds without a byte or `body_timeout` seconds in all, the app sees a
    disconnect, and whatever it answers is replaced by a 413 or a 408; the caller's slot is then free."""

    def __init__(self, app: ASGIApp, limit: int, declared: int, read_timeout: float, body_timeout: float,
                 shape: ErrorShape) -> None:
        self.app, self.limit, self.allowed, self.shape = app, limit, min(limit, declared), shape
        self.read_timeout, self.body_timeout = read_timeout, body_timeout
        self.seen, self.started, self.body_done = 0, False, False
        self.deadline = time.monotonic() + body_timeout
        self.refusal: ServiceError | None = None  # the error whose answer replaces the app's

    async def receive_counted(self, receive: Receive) -> Message:
        if self.refusal:
            return {"type": "http.disconnect"}
        if self.body_done:  # the app may still wait for a disconnect: no timeout once the body is in
            return await receive()
        message = await self._receive_in_time(receive)
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            self.body_done = not message.get("more_body", False)
            if self.seen > self.allowed:
                log.warning("request body over its limit", extra={"bytes": self.seen, "limit": self.allowed})
                return self._refuse_body(TooLarge(f"request body is over the limit of {self.allowed} bytes "
                                                  "(or over its Content-Length)"))
        return message

    async def _receive_in_time(self, receive: Receive) -> Message:
        left = self.deadline - time.monotonic()
        try:
            return await asyncio.wait_for(receive(), timeout=max(0.0, min(self.read_timeout, left)))
        except TimeoutError:
            log.warning("request body timed out", extra={"bytes": self.seen})
            if left <= self.read_timeout:
                return self._refuse_body(RequestTimeout(f"request body not complete within {self.body_timeout:g}"
                                                        f" s ({self.seen} bytes received)"))
            return self._refuse_body(RequestTimeout(f"no request body bytes for {self.read_timeout:g} s "
                                                    f"({self.seen} bytes received)"))

    def _refuse_body(self, refusal: ServiceError) -> Message:
        self.refusal = refusal
        return {"type": "http.disconnect"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            return await self.receive_counted(receive)

        async def guarded(message: Message) -> None:
            if self.refusal:  # the app answers a cut-off body (400, a disconnect): the caller gets the refusal
                if message["type"] == "http.response.start" and not self.started:
                    await self._refuse_now(scope, receive, send)
                return
            self.started = self.started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not self.refusal:
                raise
        if self.refusal and not self.started:
            await self._refuse_now(scope, receive, send)

    async def _refuse_now(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.refusal is not None
        self.started = True
        await _refuse(scope, receive, send, self.refusal, self.shape)
