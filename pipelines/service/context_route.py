"""POST /v1/context: the cited context for a question packed into a token budget (retrieval/context.py).

It reads through the caller's view of the store as /v1/retrieve does (retriever_over + rt.store_for), so the
access filter applies to every passage and every neighbour an `expand` adds; it is admitted like /v1/retrieve.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingest.schema import FILTER_FIELDS
from pipelines.service.doors import READ_KEY
from pipelines.service.models import ContextOut, FilterValue, MinRelevance, check_filters
from pipelines.service.routes import READ_ERRORS, CallerOf
from pipelines.service.runtime import ServiceRuntime
from retrieval.query_check import MAX_QUERY_CHARS

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
    min_relevance: MinRelevance = Field(None, description="calibrated relevance (0..1) or \"auto\" a passage "
                                        "needs; none reaching it gives an empty context with `abstained: true`")

    @field_validator("filters")
    @classmethod
    def _known_fields(cls, filters: dict) -> dict:
        """The same filter rule and bounds as /v1/retrieve."""
        return check_filters(filters)


class ContextResponse(ContextOut):
    """PackedContext.to_dict() and the time the request took."""

    took_ms: float


def install_context(app: FastAPI, rt: ServiceRuntime) -> None:
    @app.post("/v1/context", response_model=ContextResponse, dependencies=[READ_KEY], responses=READ_ERRORS)
    async def context(body: ContextRequest, caller: CallerOf) -> ContextResponse:
        """The numbered, cited context for a question within a token budget (PackedContext): blocks merged by
        span, cut at sentence ends, never over the budget by the configured count; with `prompt`, the filled
        German QA prompt. Reads only what the key may read."""
        started = time.perf_counter()
        with rt.admitted():
            ctx = await run_in_threadpool(rt.context, caller.principal, body.query, body.budget,
                                          body.filters or None, body.strategy, body.mode, body.truncate, body.prompt,
                                          body.min_relevance)
        took = round((time.perf_counter() - started) * 1000, 2)
        return ContextResponse.model_validate({**ctx.to_dict(), "took_ms": took})
