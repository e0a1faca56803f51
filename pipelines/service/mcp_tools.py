"""What the MCP tools do, over one ServiceRuntime (its model, its store behind the lock, the caller's view).

Every read goes through `runtime.store_for(principal)`: the store layer narrows searches, chunk lookups and
listings to what the principal may read, so a chunk of another tenant is "not found" exactly like an id that
does not exist. The transport (mcp.py) decides who the principal is.
"""

from __future__ import annotations

import time
from typing import TypeVar

from ingest.schema import P
from ingest.store.access import Principal
from ingest.store.filters import is_uuid
from pipelines.service.http import InvalidInput, NotFound
from pipelines.service.mcp_results import ContextResult, Hit, PassageResult, SearchResult, SourceOut, SourcePage
from pipelines.service.runtime import ServiceRuntime
from retrieval.expand import merge_spans
from retrieval.schema import DOCUMENT_FIELDS, document_fields

LOAD_WAIT_S = 120.0  # a tool call that arrives while the model loads waits for it (a client starts us and asks)
T = TypeVar("T")


class McpTools:
    """search, get_context, get_passage and list_sources for a principal; errors are the service's own."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.rt = runtime

    # -- the tools --------------------------------------------------------------------------------------
    def search(self, principal: Principal, query: str, top_k: int, mode: str | None,
               filters: dict | None, truncate: bool = False, min_relevance: float | str | None = None) -> SearchResult:
        self._wait_ready()
        with self.rt.admitted():
            used, passages = self.rt.retrieve(principal, query, top_k, mode, filters or {}, truncate, None, None,
                                              min_relevance)
        return SearchResult(query=query, mode=used, passages=[Hit.of(i + 1, p) for i, p in enumerate(passages)])

    def get_context(self, principal: Principal, query: str, budget: int | None, filters: dict | None,
                    strategy: str | None, mode: str | None, truncate: bool = False,
                    min_relevance: float | str | None = None) -> ContextResult:
        self._wait_ready()
        with self.rt.admitted():
            packed = self.rt.context(principal, query, budget, filters, strategy, mode, truncate, False, min_relevance)
        return ContextResult.model_validate(packed.to_dict())

    def get_passage(self, principal: Principal, chunk_id: str, neighbours: int) -> PassageResult:
        self._wait_ready()
        if not is_uuid(chunk_id):
            raise InvalidInput(f"chunk_id: {chunk_id[:80]!r} is not a chunk id (a UUID, as search returns it)")
        store = self.rt.store_for(principal)
        hit = store.fetch_chunk(chunk_id.lower())
        if hit is None:  # the same answer for an id nobody has and one this caller may not read
            raise NotFound(f"chunk_id: no chunk {chunk_id.lower()} found")
        index = int(hit.get(P.CHUNK_INDEX, 0))
        rows = [hit]
        if neighbours:
            wanted = [i for i in range(index - neighbours, index + neighbours + 1) if i >= 0 and i != index]
            rows += store.fetch_chunks(hit[P.DOC_ID], wanted)
        rows.sort(key=lambda r: int(r[P.START]))
        start, end, text = merge_spans([(int(r[P.START]), int(r[P.END]), r[P.TEXT]) for r in rows])
        title = hit.get(P.TITLE)
        return PassageResult(chunk_id=hit[P.CHUNK_ID], chunk_ids=[r[P.CHUNK_ID] for r in rows], doc_id=hit[P.DOC_ID],
                             source=hit[P.SOURCE], title=str(title) if title else None, page=hit.get(P.PAGE),
                             heading_path=list(hit.get(P.HEADING_PATH) or ()), chunk_index=index,
                             first_index=min(int(r.get(P.CHUNK_INDEX, 0)) for r in rows),
                             last_index=max(int(r.get(P.CHUNK_INDEX, 0)) for r in rows), start=start, end=end,
                             text=text, document=document_fields(hit))

    def list_sources(self, principal: Principal, contains: str | None, offset: int, limit: int) -> SourcePage:
        """The caller's sources, sorted, one page; `contains` keeps those whose source or title has it (any case).
        One pass over the points the caller may read, like GET /v1/documents."""
        self._wait_ready()
        fields = [P.SOURCE, P.DOC_ID, *DOCUMENT_FIELDS]
        found: dict[str, SourceOut] = {}
        for _, payload, _ in self.rt.store_for(principal).scan(fields):
            entry = found.get(payload[P.SOURCE])
            if entry is None:
                title = payload.get(P.TITLE)
                entry = found[payload[P.SOURCE]] = SourceOut(
                    source=payload[P.SOURCE], title=str(title) if title else None, doc_ids=[], chunks=0,
                    fields={k: v for k, v in document_fields(payload).items() if k != P.TITLE})
            if payload[P.DOC_ID] not in entry.doc_ids:
                entry.doc_ids.append(payload[P.DOC_ID])
            entry.chunks += 1
        needle = (contains or "").casefold()
        names = sorted(s for s, e in found.items() if needle in s.casefold() or needle in (e.title or "").casefold())
        page = [found[s] for s in names[offset: offset + limit]]
        for entry in page:
            entry.doc_ids.sort()
        following = offset + limit if offset + limit < len(names) else None
        return SourcePage(total=len(names), offset=offset, limit=limit, next_offset=following, sources=page)

    # -- shared ------------------------------------------------------------------------------------------
    def _wait_ready(self) -> None:
        """Wait (up to LOAD_WAIT_S) while the model loads, then the runtime's own readiness rule."""
        deadline = time.monotonic() + LOAD_WAIT_S
        while not self.rt.loaded.wait(0.1) and self.rt.startup_error is None and time.monotonic() < deadline:
            pass
        self.rt.require_ready()
