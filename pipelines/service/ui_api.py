"""The few /v1 endpoints the search page (ui.py) needs beyond the API's own, usable by any client with a read key.

- `GET /v1/whoami`: what the caller's key may do (the page hides upload and delete for a read key; the gate
  refuses them anyway) and what the service has configured (modes, rerank, expand, MMR, meta fields).
- `POST /v1/highlight`: character spans of passages that match a query's terms under the BM25 analyzer.
- `GET /v1/documents/{doc_id}/text`: a document's stored text around one chunk, rebuilt from its chunks in order.
- `GET /v1/sources`: the caller's sources, searchable, with titles, chunk counts, ingest times and metadata.

Every read goes through the caller's view of the store (rt.store_for), like the routes in routes.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ingest.schema import P
from ingest.store.base import VectorStore
from ingest.store.filters import is_uuid
from pipelines.build import build_sparse_encoder
from pipelines.service.doors import READ_KEY
from pipelines.service.highlight import highlight
from pipelines.service.http import InvalidInput, NotFound
from pipelines.service.models import ErrorOut
from pipelines.service.routes import READ_ERRORS, CallerOf
from pipelines.service.runtime import ServiceRuntime
from retrieval.expand import merge_spans
from retrieval.query_check import MAX_EXPAND, MAX_QUERY_CHARS, MAX_TOP_K
from retrieval.schema import DOCUMENT_FIELDS, document_fields

MAX_HIGHLIGHT_TEXTS = 100
MAX_HIGHLIGHT_CHARS = 200_000  # characters of one text to mark (a merged passage with its neighbours)
MAX_WINDOW = 200  # chunks on each side of the chosen one that the document view returns


class Capabilities(BaseModel):
    tenant: str | None = Field(description="the key's tenant; none: the local owner (no keys set)")
    groups: list[str]
    role: str
    may_write: bool
    keys_required: bool
    modes: list[str]
    default_mode: str
    default_top_k: int
    max_top_k: int
    rerank: bool = Field(description="rerank is configured (the page offers the toggle)")
    expand: int
    max_expand: int
    mmr: float | None
    context_budget: int
    context_strategy: str
    meta_fields: dict[str, str]
    max_upload_files: int
    max_upload_bytes: int
    extensions: list[str]


class HighlightRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(..., max_length=MAX_QUERY_CHARS)
    texts: list[Annotated[str, Field(max_length=MAX_HIGHLIGHT_CHARS)]] = Field(..., max_length=MAX_HIGHLIGHT_TEXTS)


class HighlightResponse(BaseModel):
    terms: list[str] = Field(description="the query's index terms (stems, compound parts, folded spelling)")
    spans: list[list[list[int]]] = Field(description="per text: sorted [start, end] pairs of character offsets")


class DocumentText(BaseModel):
    doc_id: str
    source: str
    chunk_index: int
    chunk_count: int | None
    first_index: int
    last_index: int
    start: int = Field(description="offset of `text` in the document's stored text")
    end: int
    text: str
    chunks: list[dict[str, Any]] = Field(description="chunk_id, chunk_index, start, end, page, heading_path")
    document: dict[str, Any]


class SourceRow(BaseModel):
    source: str
    title: str | None
    doc_ids: list[str]
    chunks: int
    ingested_at: str | None
    fields: dict[str, Any]


class SourceList(BaseModel):
    total: int
    offset: int
    limit: int
    sources: list[SourceRow]


def install_ui_api(app: FastAPI, rt: ServiceRuntime) -> None:
    encoder_cache: list = []

    def encoder():
        """The retriever's own encoder (the analyzer and abbreviations queries are searched with), once loaded."""
        if rt.retriever is not None:
            return rt.retriever.encoder
        if not encoder_cache:
            encoder_cache.append(build_sparse_encoder(rt.settings))
        return encoder_cache[0]

    @app.get("/v1/whoami", response_model=Capabilities, dependencies=[READ_KEY], responses=READ_ERRORS)
    async def whoami(caller: CallerOf) -> Capabilities:
        """What this key may do and what the service has configured (no secrets, no server paths)."""
        s, p = rt.settings, caller.principal
        return Capabilities(tenant=p.tenant, groups=sorted(p.groups), role=p.role, may_write=p.may_write(),
                            keys_required=rt.principals.enabled, modes=["hybrid", "dense", "bm25"],
                            default_mode=s.retrieval_mode, default_top_k=s.top_k, max_top_k=MAX_TOP_K,
                            rerank=s.rerank, expand=s.expand, max_expand=MAX_EXPAND, mmr=s.mmr,
                            context_budget=s.context_budget, context_strategy=s.context_strategy,
                            meta_fields=dict(s.meta_fields), max_upload_files=s.max_upload_files,
                            max_upload_bytes=s.max_upload_bytes, extensions=sorted(rt.extensions))

    @app.post("/v1/highlight", response_model=HighlightResponse, dependencies=[READ_KEY], responses=READ_ERRORS)
    async def mark(body: HighlightRequest) -> HighlightResponse:
        """Spans of each text whose BM25 index terms are the query's: stems, compound parts and folded spellings
        match as they do in search (`Kündigungsfristen` for `Kündigungsfrist`, `gericht` in `Bundesgericht`)."""
        terms, spans = await run_in_threadpool(highlight, encoder(), body.query, body.texts)
        return HighlightResponse(terms=terms, spans=[[[a, b] for a, b in text] for text in spans])

    @app.get("/v1/documents/{doc_id}/text", response_model=DocumentText, dependencies=[READ_KEY],
             responses=READ_ERRORS | {404: {"model": ErrorOut}})
    async def document_text(doc_id: str, caller: CallerOf,
                            chunk_index: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                            chunk_id: Annotated[str | None, Query(max_length=64, description="instead of "
                                                                  "chunk_index: the chunk by its id")] = None,
                            window: Annotated[int, Query(ge=0, le=MAX_WINDOW)] = 50) -> DocumentText:
        """The document's text from `window` chunks before the chosen chunk to `window` after it, merged by span:
        `text[i]` is the stored document's character `start + i` (gaps between chunks are whitespace)."""
        rt.require_ready()
        for name, value in (("doc_id", doc_id), ("chunk_id", chunk_id)):
            if value is not None and not is_uuid(value):
                raise InvalidInput(f"{name}: {value[:80]!r} is not an id (a UUID)")
        doc_id = doc_id.lower()
        index, rows = await run_in_threadpool(_window, rt.store_for(caller.principal), doc_id, chunk_index, chunk_id,
                                              window)
        if not rows:
            raise NotFound(f"doc_id: no chunks of document {doc_id} at the chunk asked for")
        return _document_text(doc_id, index, rows)

    @app.get("/v1/sources", response_model=SourceList, dependencies=[READ_KEY], responses=READ_ERRORS)
    async def sources(caller: CallerOf, contains: Annotated[str, Query(max_length=200)] = "",
                      offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                      limit: Annotated[int, Query(ge=1, le=200)] = 20) -> SourceList:
        """The caller's sources sorted by name, one page; `contains` keeps those whose name or title has it."""
        rt.require_ready()
        rows = await run_in_threadpool(_source_rows, rt, caller)
        needle = contains.casefold()
        names = sorted(s for s, r in rows.items() if needle in s.casefold() or needle in (r.title or "").casefold())
        return SourceList(total=len(names), offset=offset, limit=limit,
                          sources=[rows[s] for s in names[offset: offset + limit]])


def _window(store: VectorStore, doc_id: str, index: int, chunk_id: str | None,
            window: int) -> tuple[int, list[dict]]:
    """The chosen chunk's index (given, or found by its id within `doc_id`) and the chunks from `window` before
    it to `window` after it ([] when there are none the caller may read)."""
    if chunk_id is not None:
        hit = store.fetch_chunk(chunk_id.lower())
        if hit is None or hit.get(P.DOC_ID) != doc_id:  # another document's chunk, or one the caller may not read
            return index, []
        index = int(hit.get(P.CHUNK_INDEX, 0))
    return index, store.fetch_chunks(doc_id, list(range(max(0, index - window), index + window + 1)))


def _document_text(doc_id: str, chunk_index: int, rows: list[dict]) -> DocumentText:
    rows = sorted(rows, key=lambda r: (int(r[P.START]), int(r[P.END])))
    start, end, text = merge_spans([(int(r[P.START]), int(r[P.END]), r[P.TEXT]) for r in rows])
    first = rows[0]
    indices = [int(r.get(P.CHUNK_INDEX, 0)) for r in rows]
    count = first.get(P.CHUNK_COUNT)
    chunks = [{"chunk_id": r[P.CHUNK_ID], "chunk_index": int(r.get(P.CHUNK_INDEX, 0)), "start": int(r[P.START]),
               "end": int(r[P.END]), "page": r.get(P.PAGE), "heading_path": list(r.get(P.HEADING_PATH) or ())}
              for r in rows]
    return DocumentText(doc_id=doc_id, source=first[P.SOURCE], chunk_index=chunk_index,
                        chunk_count=int(count) if count is not None else None, first_index=min(indices),
                        last_index=max(indices), start=start, end=end, text=text, chunks=chunks,
                        document=document_fields(first))


def _source_rows(rt: ServiceRuntime, caller) -> dict[str, SourceRow]:
    """One pass over the points the caller may read: per source its title, doc ids, chunks, latest ingest time."""
    found: dict[str, SourceRow] = {}
    fields = [P.SOURCE, P.DOC_ID, P.INGESTED_AT, *DOCUMENT_FIELDS]
    for _, payload, _ in rt.store_for(caller.principal).scan(fields):
        row = found.get(payload[P.SOURCE])
        if row is None:
            title = payload.get(P.TITLE)
            row = found[payload[P.SOURCE]] = SourceRow(
                source=payload[P.SOURCE], title=str(title) if title else None, doc_ids=[], chunks=0,
                ingested_at=None, fields={k: v for k, v in document_fields(payload).items() if k != P.TITLE})
        if payload[P.DOC_ID] not in row.doc_ids:
            row.doc_ids.append(payload[P.DOC_ID])
        row.chunks += 1
        when = payload.get(P.INGESTED_AT)
        if when is not None and (row.ingested_at is None or str(when) > row.ingested_at):
            row.ingested_at = str(when)
    for row in found.values():
        row.doc_ids.sort()
    return found
