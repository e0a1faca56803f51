"""Dify's External Knowledge API: `POST /retrieval` as Dify calls it (docs.dify.ai, "External Knowledge API").

Dify appends `/retrieval` to the endpoint a user registers, so the endpoint to enter in Dify is the service's
root URL. Mapping, decided here and documented in the README:
- `knowledge_id` is the served collection's name (settings `collection`), optionally with a retrieval mode:
  `NAME:dense`, `NAME:bm25`, `NAME:hybrid` (without one: the configured mode). Anything else: error 2001.
- `retrieval_setting.top_k` is the number of passages (1 to 100); `score_threshold` above 0 drops passages
  whose final score (Passage.score: the score of the last stage that ranked them) is below it; 0.0 (Dify's
  value when its threshold is off) drops nothing. Scales differ by mode (README).
- `metadata_condition` becomes filters (dify_filters.py); the caller's tenant and groups always apply.
- a record: `content` the chunk text, `title` the document's title or else its file name, `metadata` the
  provenance (source, page, heading path, span, chunk and document ids, stage scores, document fields).
Errors: `{"error_code", "error_msg"}`: 1001 no or malformed `Authorization: Bearer KEY`, 1002 an unknown key
(both 403, the status Dify documents for a denied request), 2001 an unknown knowledge_id (404); any other
error carries its HTTP status as its code (422 a field or condition, 400 an empty query, 429, 503, 500).
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, model_validator

from pipelines.service.dify_filters import to_filters
from pipelines.service.doors import READ_KEY, shaped_route
from pipelines.service.http import ErrorShape, InvalidKey, MissingKey, NotFound, http_error
from pipelines.service.models import MAX_FILTER_TEXT, MAX_FILTER_VALUES
from pipelines.service.routes import CallerOf
from pipelines.service.runtime import ServiceRuntime
from retrieval.query_check import MAX_QUERY_CHARS, MAX_TOP_K
from retrieval.schema import Passage

PATH = "/retrieval"
MODES = ("dense", "bm25", "hybrid")
MAX_CONDITIONS, MAX_VALUES, MAX_TEXT = 50, MAX_FILTER_VALUES, MAX_FILTER_TEXT  # a condition: as one filter


class UnknownKnowledge(NotFound):
    """A knowledge_id that names no knowledge this service serves (Dify's error 2001)."""


class RetrievalSetting(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    top_k: int = Field(..., ge=1, le=MAX_TOP_K)
    # Dify sends 0.0 when its threshold is off; null is taken the same way
    score_threshold: float | None = Field(..., ge=0.0, le=1.0)


class Condition(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    name: StrictStr | list[StrictStr] = Field(..., description="a metadata field (Dify's older docs: a list)")
    comparison_operator: str = Field(..., max_length=32)
    value: (StrictStr | StrictInt | StrictFloat | list[StrictStr | StrictInt | StrictFloat] | None) = None

    @model_validator(mode="after")
    def _bounds(self) -> Condition:
        """What one request may carry: a few names, at most MAX_VALUES values, strings of at most MAX_TEXT."""
        names = [self.name] if isinstance(self.name, str) else self.name
        values = self.value if isinstance(self.value, list) else [self.value]
        if not names or len(names) > 10 or any(not 0 < len(n) <= 200 for n in names):
            raise ValueError("name: give 1 to 10 names of 1 to 200 characters")
        if len(values) > MAX_VALUES or any(isinstance(v, str) and len(v) > MAX_TEXT for v in values):
            raise ValueError(f"value: at most {MAX_VALUES} values of at most {MAX_TEXT} characters")
        return self


class MetadataCondition(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    logical_operator: Literal["and", "or"] | None = "and"
    conditions: list[Condition] | None = Field(None, max_length=MAX_CONDITIONS)


class DifyRequest(BaseModel):
    # Fields Dify adds in a later version are ignored; the ones it documents are checked strictly.
    model_config = ConfigDict(extra="ignore", strict=True)

    knowledge_id: str = Field(..., min_length=1, max_length=200)
    query: str = Field(..., max_length=MAX_QUERY_CHARS)
    retrieval_setting: RetrievalSetting
    metadata_condition: MetadataCondition | None = None


class Record(BaseModel):
    content: str
    score: float
    title: str
    metadata: dict[str, Any]


class DifyResponse(BaseModel):
    records: list[Record]


class DifyError(BaseModel):
    error_code: int
    error_msg: str


def dify_error(exc: BaseException, extra_headers: dict[str, str]) -> Response:
    """Dify's error body; the codes it suggests where one fits, else the HTTP status as the code."""
    code = 1001 if isinstance(exc, MissingKey) else 1002 if isinstance(exc, InvalidKey) else \
        2001 if isinstance(exc, UnknownKnowledge) else None
    status = 403 if code in (1001, 1002) else 404 if code == 2001 else http_error(exc).status
    headers = {**(getattr(exc, "headers", None) or {}), **extra_headers}
    headers.pop("WWW-Authenticate", None)  # a 403 carries no challenge
    if row := http_error(exc).retry_after:
        headers.setdefault("Retry-After", row)
    return JSONResponse({"error_code": code or status, "error_msg": str(exc)}, status_code=status,
                        headers=headers or None)


def knowledge_mode(knowledge_id: str, collection: str) -> str | None:
    """The retrieval mode `knowledge_id` asks for (None: the configured one); UnknownKnowledge otherwise."""
    name, colon, mode = knowledge_id.partition(":")
    if name != collection or (colon and mode not in MODES):  # "name:" names no mode: unknown, like "name:x"
        shown = knowledge_id if len(knowledge_id) <= 80 else knowledge_id[:80] + "…"
        raise UnknownKnowledge(f"knowledge_id {shown!r} does not exist: this service serves {collection!r} "
                               f"(optionally {collection}:dense, :bm25 or :hybrid)")
    return mode or None


def file_name(source: str) -> str:
    """The file name of a source (`upload:NAME`, a POSIX or a Windows path)."""
    tail = source.removeprefix("upload:")
    return PureWindowsPath(PurePosixPath(tail).name).name or source


def to_record(p: Passage) -> Record:
    meta = {"source": p.source, "page": p.page, "heading_path": list(p.heading_path), "start": p.start,
            "end": p.end, "chunk_id": p.chunk_id, "doc_id": p.doc_id, "chunk_index": p.chunk_index,
            "scores": dict(p.scores), "document": dict(p.document)}
    title = p.document.get("title")
    return Record(content=p.text, score=p.score, title=title if isinstance(title, str) and title else
                  file_name(p.source), metadata=meta)


def install_dify(app: FastAPI, rt: ServiceRuntime) -> dict[str, ErrorShape]:
    """Add `POST /retrieval`; returns its path and error shape for the gate."""
    router = APIRouter(route_class=shaped_route(dify_error))

    @router.post(PATH, response_model=DifyResponse, tags=["dify"], dependencies=[READ_KEY], responses={
        s: {"model": DifyError} for s in (400, 403, 404, 408, 411, 413, 422, 429, 503)})
    async def retrieval(body: DifyRequest, caller: CallerOf) -> DifyResponse:
        """Dify's External Knowledge API: top passages of the served collection for `query`, as records."""
        mode = knowledge_mode(body.knowledge_id, rt.settings.collection)
        cond = body.metadata_condition
        conditions = [c.model_dump() for c in (cond.conditions or [])] if cond else []
        filters = to_filters(conditions, (cond.logical_operator if cond else None) or "and",
                             rt.settings.meta_schema) if conditions else {}
        if filters is None:  # an `and` no value satisfies
            return DifyResponse(records=[])
        setting = body.retrieval_setting
        with rt.admitted():
            _, passages = await run_in_threadpool(rt.retrieve, caller.principal, body.query, setting.top_k, mode,
                                                  filters, False, None, None)
        threshold = setting.score_threshold or 0.0
        return DifyResponse(records=[to_record(p) for p in passages if threshold <= 0 or p.score >= threshold])

    app.include_router(router)
    return {PATH: dify_error}
