"""What the MCP tools answer: the structured results (their JSON schemas are the tools' output schemas) and the
text a model reads beside them (a short rendering with numbered sources)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from pipelines.service.models import ContextOut
from retrieval.schema import Passage

SNIPPET_CHARS = 600  # a search hit's text in the text rendering; the structured result has it whole


class Hit(BaseModel):
    """One passage of a search, with its provenance."""

    rank: int = Field(description="1 for the best passage; the text rendering cites it as [rank]")
    chunk_id: str = Field(description="the chunk's id: get_passage takes it")
    doc_id: str
    source: str
    title: str | None
    page: int | None
    heading_path: list[str]
    start: int = Field(description="character span in the document's stored text")
    end: int
    chunk_index: int
    score: float
    scores: dict[str, float] = Field(description="score per stage: dense, bm25, fused, rerank")
    relevance: float | None = Field(None, description="calibrated relevance 0..1 (min_relevance cuts on it)")
    text: str
    document: dict[str, Any] = Field(default_factory=dict, description="the document's stored fields")

    @classmethod
    def of(cls, rank: int, p: Passage) -> Hit:
        title = p.document.get("title")
        return cls(rank=rank, chunk_id=p.chunk_id, doc_id=p.doc_id, source=p.source,
                   title=str(title) if title else None, page=p.page, heading_path=list(p.heading_path),
                   start=p.start, end=p.end, chunk_index=p.chunk_index, score=p.score, scores=p.scores, text=p.text,
                   document=p.document, relevance=p.relevance)


class SearchResult(BaseModel):
    query: str
    mode: str
    passages: list[Hit]


ContextResult = ContextOut  # get_context's output schema: the same model as POST /v1/context's body


class PassageResult(BaseModel):
    """One chunk merged with its neighbours, with where the merged text lies in its document."""

    chunk_id: str = Field(description="the chunk asked for")
    chunk_ids: list[str] = Field(description="every chunk merged into `text`, in document order")
    doc_id: str
    source: str
    title: str | None
    page: int | None = Field(description="the page of the chunk asked for")
    heading_path: list[str]
    chunk_index: int
    first_index: int = Field(description="chunk_index of the first merged chunk")
    last_index: int
    start: int = Field(description="character span of `text` in the document's stored text")
    end: int
    text: str
    document: dict[str, Any] = Field(default_factory=dict)


class SourceOut(BaseModel):
    source: str
    title: str | None
    doc_ids: list[str]
    chunks: int
    fields: dict[str, Any] = Field(description="the document's stored fields (author, file_type, date, meta, ...)")


class SourcePage(BaseModel):
    total: int = Field(description="sources that match, on every page")
    offset: int
    limit: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last one")
    sources: list[SourceOut]


def where(source: str, title: str | None, heading_path: list[str], page: int | None) -> str:
    parts = [source, *([title] if title else []), *([" > ".join(heading_path)] if heading_path else []),
             *([f"S. {page}"] if page is not None else [])]
    return " · ".join(parts)


def search_text(result: SearchResult) -> str:
    if not result.passages:
        return f"Keine Treffer / no passages for {result.query!r} ({result.mode})."
    lines = []
    for h in result.passages:
        text = h.text if len(h.text) <= SNIPPET_CHARS else h.text[:SNIPPET_CHARS].rstrip() + " …"
        lines.append(f"[{h.rank}] {where(h.source, h.title, h.heading_path, h.page)} (score {h.score:.4f}, "
                     f"chunk_id {h.chunk_id}, Zeichen/chars {h.start}-{h.end})\n{text}")
    return "\n\n".join(lines)


def context_text(result: ContextResult) -> str:
    if getattr(result, "abstained", False):
        return f"Nicht in den Unterlagen / the collection holds no answer above min_relevance for {result.query!r}."
    if not result.citations:
        return f"Kein Kontext / no context for {result.query!r}."
    return f"{result.text}\n\n({result.tokens} von/of {result.budget} Tokens, {len(result.citations)} Quellen/sources)"


def passage_text(result: PassageResult) -> str:
    return (f"{where(result.source, result.title, result.heading_path, result.page)} (chunks {result.first_index}-"
            f"{result.last_index}, Zeichen/chars {result.start}-{result.end})\n{result.text}")


def sources_text(page: SourcePage) -> str:
    if not page.sources:
        return f"Keine Quellen / no sources (total {page.total})."
    lines = [f"{page.offset + i + 1}. {s.source}" + (f" · {s.title}" if s.title else "") + f" ({s.chunks} chunks)"
             for i, s in enumerate(page.sources)]
    more = f"; next_offset {page.next_offset}" if page.next_offset is not None else ""
    return "\n".join(lines) + f"\n({len(page.sources)} von/of {page.total}{more})"
