"""What the doors for other platforms share (Dify's /retrieval, OpenAI's /v1/embeddings): a route class that
answers every error of its routes in the door's own body shape, and the bearer scheme (admission is
ServiceRuntime.admitted, shared with /v1).

The app-wide error handlers (http.py) answer in the /v1 API's shape; a client of another platform's API
reads only its own (`{"error_code", "error_msg"}`, `{"error": {"message", "type", ...}}`), so a door's routes
catch their errors themselves, a malformed body included. The gate (gate.py) refuses keys, lengths and
bodies before a route runs; it answers those for a door's path with the same shape (GatePolicy.shapes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.errors import ErrorKind, InternalError, kind_of
from pipelines.service.http import INTERNAL_MESSAGE, ErrorShape, InvalidInput, invalid_input

log = logging.getLogger(__name__)
# The bearer scheme in the OpenAPI schema (the gate checks the key): the same scheme as the /v1 routes'
READ_KEY = Security(HTTPBearer(auto_error=False, description="a read key; uploads and deletes: a write key"))


def door_error(exc: BaseException) -> BaseException:
    """The error a door shows for `exc`: a body FastAPI could not validate or decode is an InvalidInput naming
    the fields; anything that is not one of ours (a bug) is an InternalError with the log's message."""
    if isinstance(exc, RequestValidationError):
        return invalid_input(exc)
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 400:
        return InvalidInput(f"{exc.detail} (malformed or not UTF-8)")
    if kind_of(exc) is ErrorKind.INTERNAL:
        return InternalError(INTERNAL_MESSAGE)
    return exc


def shaped_route(shape: ErrorShape) -> type[APIRoute]:
    """An APIRoute class whose handler answers any error (validation, ours, a bug) with `shape`."""

    class ShapedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def shaped(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    shown = door_error(exc)
                    if isinstance(shown, InternalError):
                        log.error("internal error", exc_info=exc, extra={"path": request.url.path})
                    return shape(shown, {})

            return shaped

    return ShapedRoute

