"""POST /v1/context: the cited context for a question packed into a token budget (retrieval/context.py).

It reads through the caller's view of the store as /v1/retrieve does (retriever_over + rt.store_for), so the
access filter applies to every passage and every neighbour an `expand` adds; it is admitted like /v1/retrieve.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from fastapi import FastAPI, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingest.schema import FILTER_FIELDS
from ingest.store.access import Principal
from pipelines.build import retriever_over
from pipelines.service.http import NotReady, Overloaded
from pipelines.service.models import FilterValue, RetrieveRequest
from pipelines.service.principals import Caller
from pipelines.service.routes import READ_ERRORS, CallerOf
from pipelines.service.runtime import ServiceRuntime
from retrieval.context import ContextPacker, PackedContext, retrieve_context
from retrieval.prompt import PromptTemplate
from retrieval.query_check import MAX_QUERY_CHARS
from retrieval.tokens import TokenCounter, token_counter

MAX_BUDGET = 1_000_000  # the setting's own bound (pipelines/config.py context_budget)


class ContextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(..., max_length=MAX_QUERY_CHARS, description="the question, in German")
    budget: int | None = Field(None, ge=1, le=MAX_BUDGET, description="tokens the context (with `prompt`: the "
                               "prompt) may take; default: setting context_budget")
    strategy: Literal["topk", "merge", "expand", "mmr", "focus"] | None = Field(
        None, description="topk, merge, expand, mmr or focus; default: setting context_strategy")
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(None, description="default: the configured mode")
    filters: dict[str, FilterValue] = Field(default_factory=dict, description="as for /v1/retrieve; fields: "
                                            f"{sorted(FILTER_FIELDS)} and meta.KEY")
    prompt: bool = Field(False, description="fill the German QA prompt template around the context (its tokens "
                         "count towards the budget); returned as `prompt`")
    truncate: bool = Field(False, description="cut a query over the model's token limit instead of refusing it")

    @field_validator("filters")
    @classmethod
    def _known_fields(cls, filters: dict) -> dict:
        """The same filter rule and bounds as /v1/retrieve."""
        return RetrieveRequest._known_fields(filters)


class CitationOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    number: int
    source: str
    doc_id: str
    title: str | None
    page: int | None
    heading_path: list[str]
    start: int
    end: int
    chunk_ids: list[str]
    score: float
    cut: bool
    document: dict[str, Any]


class ContextResponse(BaseModel):
    """PackedContext.to_dict() and the time the request took."""

    model_config = ConfigDict(extra="allow")

    query: str
    text: str
    citations: list[CitationOut]
    tokens: int
    budget: int
    tokenizer: str
    strategy: str
    prompt: str | None
    context_tokens: int
    took_ms: float


class ContextDoor:
    """The service's counter (built once, on the first request: a bad `context_tokenizer` is a 503 naming it)."""

    def __init__(self, rt: ServiceRuntime) -> None:
        self.rt = rt
        self._counter: TokenCounter | None = None
        self._lock = threading.Lock()

    def counter(self) -> TokenCounter:
        with self._lock:
            if self._counter is None:
                self._counter = token_counter(self.rt.settings.context_tokenizer)
            return self._counter

    def pack(self, principal: Principal, body: ContextRequest) -> PackedContext:
        rt, settings = self.rt, self.rt.settings
        rt.require_ready()
        if rt.retriever is None:
            raise NotReady("the model is still loading", {"Retry-After": "5"})
        packer = ContextPacker(self.counter(), body.strategy or settings.context_strategy)
        template = PromptTemplate.load(settings.context_prompt) if body.prompt else None
        retriever = retriever_over(rt.retriever, rt.store_for(principal))
        budget = settings.context_budget if body.budget is None else body.budget
        return retrieve_context(retriever, packer, body.query, budget, settings.context_candidates,
                                body.filters or None, body.mode or settings.retrieval_mode, body.truncate, template,
                                settings.expand or None, settings.mmr)


def install_context(app: FastAPI, rt: ServiceRuntime) -> None:
    door = ContextDoor(rt)
    read = Security(HTTPBearer(auto_error=False, description="a read key"))

    @app.post("/v1/context", response_model=ContextResponse, dependencies=[read], responses=READ_ERRORS)
    async def context(body: ContextRequest, caller: CallerOf) -> ContextResponse:
        """The numbered, cited context for a question within a token budget (PackedContext): blocks merged by
        span, cut at sentence ends, never over the budget by the configured count; with `prompt`, the filled
        German QA prompt. Reads only what the key may read."""
        if not rt.admission.try_enter():
            raise Overloaded(f"{rt.admission.limit} retrieve requests are in flight; retry shortly",
                             {"Retry-After": "1"})
        rt.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            ctx = await run_in_threadpool(door.pack, rt_principal(caller), body)
        finally:
            rt.admission.leave()
            rt.metrics.in_flight.dec()
        took = round((time.perf_counter() - started) * 1000, 2)
        return ContextResponse.model_validate({**ctx.to_dict(), "took_ms": took})


def rt_principal(caller: Caller) -> Principal:
    return caller.principal
