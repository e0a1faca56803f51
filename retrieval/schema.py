"""Passages and the protocols retrieval is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ingest.errors import ConfigError, ErrorKind, GermanRagError, UsageError
from ingest.schema import P, StoredHit


class RetrievalError(GermanRagError):
    """Base class of every error retrieval raises on purpose. A direct one is bad usage (an invalid mode,
    fusion argument or stage option); errors from the store and the model keep their own kinds."""

    kind = ErrorKind.USAGE


class QueryError(UsageError, RetrievalError):
    """The caller's query or its options are invalid (empty, not text, out of range): bad input to fix,
    not a failure of retrieval (the CLI exits 2, the service answers 4xx)."""


class EmptyQueryError(QueryError):
    """A query that shows nothing (only spaces, controls, invisible characters): the service's `empty`."""


class RerankerUnavailableError(ConfigError, RetrievalError):
    """The cross-encoder cannot be loaded from its configured directory."""


DOCUMENT_FIELDS = (P.TITLE, P.AUTHOR, P.FILE_TYPE, P.FILE_SIZE, P.MODIFIED, P.PAGES, P.LANGUAGE, P.DATE,
                   P.DATE_PHRASE, P.META, P.OCR, P.OCR_PAGES)


def document_fields(payload: dict) -> dict[str, Any]:
    """The document's fields a payload holds (only those the document has)."""
    return {k: payload[k] for k in DOCUMENT_FIELDS if payload.get(k) is not None}


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk with its provenance and a score for every stage that ranked it."""

    chunk_id: str
    doc_id: str
    text: str
    source: str
    page: int | None
    heading_path: tuple[str, ...]
    start: int
    end: int
    chunk_index: int
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    # The document's fields as stored (title, author, file_type, file_size, modified, pages, language, date,
    # date_phrase, meta): what a generator cites and a user filters on; only those the document has.
    document: dict[str, Any] = field(default_factory=dict)
    # (chunk_id, start, end) of every stored chunk whose text this passage holds, when that is more than its own
    # chunk (neighbour expansion merges them in); empty = just this chunk.
    pieces: tuple[tuple[str, int, int], ...] = ()
    # Calibrated probability that the collection answers the query with this passage (retrieval/relevance.py);
    # None where no retriever computed one.
    relevance: float | None = None

    def chunk_spans(self) -> tuple[tuple[str, int, int], ...]:
        """The chunks this passage's text is made of, each with its span (its own chunk alone unless expanded)."""
        return self.pieces or ((self.chunk_id, self.start, self.end),)

    @classmethod
    def from_hit(cls, hit: StoredHit, stage: str) -> Passage:
        p = hit.payload
        return cls(
            chunk_id=hit.chunk_id,
            doc_id=p[P.DOC_ID],
            text=p[P.TEXT],
            source=p[P.SOURCE],
            page=p.get(P.PAGE),
            heading_path=tuple(p.get(P.HEADING_PATH) or ()),
            start=int(p[P.START]),
            end=int(p[P.END]),
            chunk_index=int(p.get(P.CHUNK_INDEX, 0)),
            score=hit.score,
            scores={stage: hit.score},
            document=document_fields(p),
        )

    def to_dict(self) -> dict:
        return {
            "chunk_id": self.chunk_id, "doc_id": self.doc_id, "score": self.score, "scores": self.scores,
            "source": self.source, "page": self.page, "heading_path": list(self.heading_path),
            "start": self.start, "end": self.end, "chunk_index": self.chunk_index, "text": self.text,
            "document": dict(self.document), "relevance": self.relevance,
        }


class QueryEmbedder(Protocol):
    def embed_query(self, text: str, truncate: bool = False) -> list[float]: ...


class Retriever(Protocol):
    """Query -> passages. `mode`, `rerank`, `expand` and `mmr` of None take the retriever's configured defaults."""

    def retrieve(self, query: str, top_k: int = 5, filters: dict | None = None, truncate: bool = False,
                 mode: str | None = None, rerank: bool | None = None, expand: int | None = None,
                 mmr: float | None = None) -> list[Passage]: ...
