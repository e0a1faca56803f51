"""The contract between ingestion and retrieval: documents, chunks, ids, payload keys, protocols.

Everything here is immutable (frozen dataclasses); a stage returns new objects instead of editing
the ones it was handed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ingest.citations import chunk_citations
from ingest.errors import ConfigError, ErrorKind, GermanRagError, InputError, UsageError

# A fixed namespace so that chunk ids are the same on every machine and every run.
ID_NAMESPACE = uuid.UUID("8f0c6a52-3f0e-5b7a-9d51-6b2f3c1e4a77")


class IngestError(GermanRagError):
    """Base class of every error ingestion raises on purpose (the store's errors are StoreError)."""


class ParseError(InputError, IngestError):
    """A file could not be turned into a Document (unreadable, corrupt, unsupported, empty)."""


class EmptyDocumentError(ParseError):
    """A file holds no text (0 bytes, or nothing but whitespace and markup): there is nothing to index,
    and a stored older version of it is removed."""


class ModelUnavailableError(ConfigError, IngestError):
    """The embedding model cannot be loaded (not cached, no network, bad directory): fix the setting."""


class TokenLimitError(InputError, IngestError):
    """A text is longer than the model accepts and the caller did not ask for truncation."""


class StoreError(GermanRagError):
    """The vector store refused an operation or does not match the configuration (no collection, another
    model's collection): a configuration error; subclasses name other kinds (unavailable, usage)."""

    kind = ErrorKind.CONFIGURATION


@dataclass(frozen=True)
class Section:
    """A span of a Document's text that came from one parsed element."""

    start: int
    end: int
    category: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Document:
    """One parsed file: its normalised text and where each element of it came from."""

    source: str
    text: str
    sections: tuple[Section, ...]
    content_hash: str
    # Parser facts (file_type, bytes, encoding, title, author, pages, language, date, ...) and, under
    # "front_matter", a Markdown file's front matter scalars.
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max((s.page or 0 for s in self.sections), default=0)


@dataclass(frozen=True)
class Chunk:
    """A piece of a Document's text; `doc_text[start:end] == text` always holds."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    start: int
    end: int
    index: int
    page: int | None
    heading_path: tuple[str, ...]
    content_hash: str
    token_count: int


@dataclass(frozen=True)
class StoredHit:
    """A point the store returned for a query, with the score of the leg that found it."""

    chunk_id: str
    score: float
    payload: dict


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_doc_id(source: str, content_hash: str, fingerprint: str) -> str:
    """Document id from its source, its content (the file's bytes) and the pipeline that made it.

    The fingerprint (model and chunking settings) is part of the id so that changing the model or the
    chunk size re-ingests a file instead of silently keeping chunks made under other settings.
    """
    return str(uuid.uuid5(ID_NAMESPACE, f"doc\x1f{source}\x1f{content_hash}\x1f{fingerprint}"))


def make_chunk_id(doc_id: str, start: int, end: int) -> str:
    """Chunk id (UUIDv5) from its document and its span: stable across runs, unique per span."""
    return str(uuid.uuid5(ID_NAMESPACE, f"chunk\x1f{doc_id}\x1f{start}\x1f{end}"))


class P:
    """Payload keys: the names retrieval reads back. Change them here only."""

    TEXT = "text"
    SOURCE = "source"
    PAGE = "page"
    HEADING_PATH = "heading_path"
    START = "start"
    END = "end"
    DOC_ID = "doc_id"
    CHUNK_ID = "chunk_id"
    CHUNK_INDEX = "chunk_index"
    CHUNK_COUNT = "chunk_count"
    CONTENT_HASH = "content_hash"
    DOC_HASH = "doc_hash"
    INGESTED_AT = "ingested_at"
    TOKEN_COUNT = "token_count"
    TENANT = "tenant"
    GROUPS = "groups"
    # Document fields: the same on every chunk of a document (ingest/doc_meta.py and the runner fill them)
    TITLE = "title"
    AUTHOR = "author"
    FILE_TYPE = "file_type"
    FILE_SIZE = "file_size"
    MODIFIED = "modified"  # the file's modification time, ISO 8601 UTC
    PAGES = "pages"
    LANGUAGE = "language"  # ISO 639-1
    DATE = "date"  # the document's own date found in its text, ISO date
    DATE_PHRASE = "date_phrase"  # the phrase the date came from ("Stand: 1. März 2024")
    META = "meta"  # user metadata (front matter, sidecar, --meta, upload form fields): an object of scalars
    META_HASH = "meta_hash"  # hash of the user metadata (part of the document id)
    OCR = "ocr"  # true: some of the document's text was read by OCR
    OCR_PAGES = "ocr_pages"  # {"<page>": mean word confidence 0-100} of the OCR'd pages
    # Legal references (ingest/citations.py): the chunk's own section from its heading path and its document's
    # law ("BURLG §3"), and every key it cites (its section and the references in its text)
    LAW_SECTION = "law_section"
    CITATIONS = "citations"


class AccessError(UsageError, ValueError):
    """Access fields or a principal that cannot be used (an empty tenant, a role that does not exist)."""


DEFAULT_TENANT = "default"
_MAX_ACCESS_CHARS = 128


@dataclass(frozen=True)
class Access:
    """Who may read a document's points: its tenant, and the groups of that tenant (empty: all its users)."""

    tenant: str = DEFAULT_TENANT
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what, name in [("tenant", self.tenant), *(("group", g) for g in self.groups)]:
            if not isinstance(name, str) or not name.strip() or len(name) > _MAX_ACCESS_CHARS or not name.isprintable():
                raise AccessError(f"{what} {name!r}: use 1-{_MAX_ACCESS_CHARS} printable characters")
        object.__setattr__(self, "groups", tuple(sorted(set(self.groups))))

    def payload(self) -> dict:
        return {P.TENANT: self.tenant, P.GROUPS: list(self.groups)}


DEFAULT_ACCESS = Access()


def chunk_payload(chunk: Chunk, count: int, doc_hash: str, ingested_at: str, access: Access = DEFAULT_ACCESS,
                  fields: Mapping[str, Any] | None = None) -> dict:
    """The payload every engine stores with a chunk's vectors: what retrieval reads back. `fields` are the
    document's fields (P.TITLE ... P.META, P.META_HASH); the chunk's own keys and its access fields come after
    them, so no document field can overwrite a tenant, a source or a text."""
    fields = fields or {}
    meta = fields.get(P.META)
    section, cited = chunk_citations(chunk.text, chunk.heading_path, fields.get(P.TITLE),
                                     meta if isinstance(meta, dict) else None)
    return {**fields, **access.payload(), P.LAW_SECTION: section, P.CITATIONS: cited,
        P.TEXT: chunk.text, P.SOURCE: chunk.source, P.PAGE: chunk.page,
        P.HEADING_PATH: list(chunk.heading_path), P.START: chunk.start, P.END: chunk.end,
        P.DOC_ID: chunk.doc_id, P.CHUNK_ID: chunk.chunk_id, P.CHUNK_INDEX: chunk.index,
        P.CHUNK_COUNT: count, P.CONTENT_HASH: chunk.content_hash, P.DOC_HASH: doc_hash,
        P.TOKEN_COUNT: chunk.token_count, P.INGESTED_AT: ingested_at,
    }


# Fields a user may filter on, with their payload kind (keyword, integer, float, datetime or bool); each gets a
# payload index. User metadata is filtered as `meta.KEY` (ingest/meta_fields.py: kinds from `meta_fields`).
# date_phrase is not filterable: it is the text a date came from, shown, never matched.
FILTER_FIELDS: dict[str, str] = {
    P.SOURCE: "keyword",
    P.DOC_ID: "keyword",
    P.PAGE: "integer",
    P.HEADING_PATH: "keyword",
    P.CHUNK_INDEX: "integer",
    P.TENANT: "keyword",
    P.GROUPS: "keyword",
    P.TITLE: "keyword",
    P.AUTHOR: "keyword",
    P.FILE_TYPE: "keyword",
    P.FILE_SIZE: "integer",
    P.MODIFIED: "datetime",
    P.PAGES: "integer",
    P.LANGUAGE: "keyword",
    P.DATE: "datetime",
    P.OCR: "bool",
    P.LAW_SECTION: "keyword",
    P.CITATIONS: "keyword",
}


@runtime_checkable
class Tokenizer(Protocol):
    """What the chunker needs from a model's tokenizer."""

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the model sees a document, special tokens and prompt included."""
        ...

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        """`count_tokens` of each text, in one tokenizer call where the backend can batch."""
        ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of `text`, special tokens left out."""
        ...

    @property
    def max_tokens(self) -> int: ...


@runtime_checkable
class Embedder(Tokenizer, Protocol):
    """A dense text embedder. One model per instance; `load()` is where weights are read.

    `prepare()` finds the model and reads what tokenizing needs (it may load everything)."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def prepare(self) -> None: ...

    def load(self) -> None: ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str, truncate: bool = False) -> list[float]: ...

    @property
    def symmetric(self) -> bool:
        """True where a query is embedded exactly as a document is (same prompt, same tokens): a batch of
        queries may then go through `embed_documents` and get each query's `embed_query` vector."""
        ...


class Chunker(Protocol):
    """Splits a Document into Chunks; `fingerprint` names what shapes them (a change re-ingests)."""

    def fingerprint(self) -> str: ...

    def chunk(self, doc: Document, doc_id: str) -> list[Chunk]: ...
