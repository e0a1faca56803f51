"""Request and response bodies of the HTTP API (they are also its published OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator

from ingest.schema import FILTER_FIELDS
from ingest.store.filters import META_PREFIX, check_filter_shape, check_filter_value, filter_kind
from retrieval.query_check import MAX_EXPAND, MAX_QUERY_CHARS, MAX_TOP_K

MAX_FILTER_VALUES = 100
MAX_FILTER_TEXT = 4096  # characters of one string value in a filter
Bound = StrictInt | StrictFloat | StrictStr
# {field: value}, {field: [values]} or {field: {"gte": x, "lt": y}} (a range on an integer, float or datetime field)
FilterValue = (StrictInt | StrictFloat | StrictBool | StrictStr | list[StrictInt] | list[StrictStr]
               | list[StrictFloat] | dict[str, Bound])


MinRelevance = Annotated[float, Field(ge=0, le=1)] | Literal["auto"] | None


class RetrieveRequest(BaseModel):
    # strict: `true`, "5" and 5.0 are not a top_k, "yes" is not a bool
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(..., max_length=MAX_QUERY_CHARS, description="the question, in German")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(None, description="default: the configured mode")
    filters: dict[str, FilterValue] = Field(
        default_factory=dict, description="field -> value, list of values (any of them) or range "
        "{\"gte\": x, \"lt\": y} (gt, gte, lt, lte; integer, float and datetime fields; dates as ISO "
        f"YYYY-MM-DD); fields: {sorted(FILTER_FIELDS)} and meta.KEY (a user metadata field)")
    truncate: bool = Field(False, description="cut a query over the model's token limit instead of refusing it")
    rerank: bool | None = Field(None, description="rerank with the cross-encoder (default: setting `rerank`)")
    expand: int | None = Field(None, ge=0, le=MAX_EXPAND, description="neighbour chunks added on each side")
    min_relevance: MinRelevance = Field(None, description="calibrated relevance (0..1) or \"auto\" a passage "
                                        "needs; below it nothing is returned (default: setting min_relevance)")

    @field_validator("filters")
    @classmethod
    def _known_fields(cls, filters: dict) -> dict:
        return check_filters(filters)


def check_filters(filters: dict) -> dict:
    """The store's filter rule (check_filter_value: its FilterError is a ValueError), after the bounds of a
    request: how many values and how long a string one body may carry (the HTTP API and the MCP tools)."""
    checked = {}
    for key, value in filters.items():
        filter_kind(key)  # an unknown field (or a bad meta.KEY) is named before its values are counted
        values = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
        if not values or len(values) > MAX_FILTER_VALUES:
            raise ValueError(f"filter {key!r}: give 1 to {MAX_FILTER_VALUES} values")
        if any(isinstance(v, str) and not 0 < len(v) <= MAX_FILTER_TEXT for v in values):
            raise ValueError(f"filter {key!r}: strings must have 1 to {MAX_FILTER_TEXT} characters")
        # A meta.KEY's kind is the service's settings' (meta_fields): the store checks its values with them
        # (a FilterError: 422 naming the field); here only its shape.
        checked[key] = check_filter_shape(key, value) if key.startswith(META_PREFIX) else \
            check_filter_value(key, value, ids=True)
    return checked


class PassageOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    chunk_id: str
    doc_id: str
    score: float
    scores: dict[str, float]
    source: str
    page: int | None
    heading_path: list[str]
    start: int
    end: int
    chunk_index: int
    text: str
    relevance: float | None = Field(None, description="calibrated relevance 0..1 (retrieval/relevance.py)")
    document: dict[str, Any] = Field(default_factory=dict, description="the document's stored fields: title, "
                                     "author, file_type, file_size, modified, pages, language, date, date_phrase, "
                                     "meta (those it has)")


class RetrieveResponse(BaseModel):
    query: str
    mode: str
    passages: list[PassageOut]
    took_ms: float


class JobFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    source: str
    status: str


class JobOut(BaseModel):
    job_id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    counts: dict | None
    files: list[JobFile]


class JobPage(BaseModel):
    total: int
    jobs: list[JobOut]


class DocumentOut(BaseModel):
    source: str
    doc_ids: list[str]
    chunks: int
    doc_hash: str | None


class DocumentPage(BaseModel):
    total: int
    offset: int
    limit: int
    documents: list[DocumentOut]


class Deleted(BaseModel):
    doc_id: str
    points_deleted: int


class SourceDeleted(BaseModel):
    source: str
    points_deleted: int


class Health(BaseModel):
    status: str
    detail: str | None = None


class ErrorBody(BaseModel):
    kind: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class CitationOut(BaseModel):
    """A numbered source of a packed context (retrieval/context.py Citation.to_dict)."""

    model_config = ConfigDict(extra="allow")

    number: int
    source: str
    doc_id: str
    title: str | None
    page: int | None
    heading_path: list[str]
    start: int = Field(description="character span of the cited text in the document's stored text")
    end: int
    chunk_ids: list[str]
    score: float
    cut: bool = Field(description="the block was cut at a sentence end to fit the budget")
    document: dict[str, Any]


class ContextOut(BaseModel):
    """PackedContext.to_dict(): the text a generator receives, its numbered citations, the tokens it takes."""

    model_config = ConfigDict(extra="allow")

    query: str
    text: str
    citations: list[CitationOut]
    tokens: int = Field(description="tokens of what is returned: the prompt when one was asked for, else the text")
    budget: int
    tokenizer: str
    strategy: str
    prompt: str | None
    context_tokens: int
    abstained: bool = Field(False, description="min_relevance refused every passage: answer 'nicht in den Unterlagen'")
