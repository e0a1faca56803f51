"""All configuration in one place: defaults < TOML file < GERMAN_RAG_* environment < CLI flags."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError, TomlConfigSettingsSource

from ingest.chunk import check_overlap
from ingest.errors import ConfigError, UsageError
from ingest.meta_fields import MetaSchema
from ingest.schema import DEFAULT_TENANT, Access
from ingest.sparse import DEFAULT_AVGDL, DEFAULT_B, DEFAULT_K1
from ingest.store.access import OWNER, Principal
from ingest.store.base import check_collection_name
from retrieval.relevance import resolve_min_relevance
from retrieval.rerank import DEFAULT_RERANKER

DEFAULT_MODEL = "aari1995/German_Semantic_STS_V2"
DEFAULT_CONFIG_FILE = "german-rag.toml"
_toml_file: ContextVar[Path | None] = ContextVar("toml_file", default=None)
# ConfigError and UsageError are the project's own (ingest/errors.py); they are named here too, where
# the CLI and the service have always imported them from.
__all__ = ["ConfigError", "Settings", "UsageError", "load_settings"]


class Settings(BaseSettings):
    """Effective settings of a run. Environment variables are the field names prefixed GERMAN_RAG_."""

    model_config = SettingsConfigDict(env_prefix="GERMAN_RAG_", extra="forbid", validate_default=True)

    # embedding model
    embed_model: str = Field(DEFAULT_MODEL, description="hub id or local sentence-transformers directory")
    model_cache: str | None = Field(None, description="Hugging Face cache folder (default: HF_HOME)")
    offline: bool = Field(False, description="never contact the model hub")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    embed_batch_tokens: int = Field(8192, ge=64, le=1_000_000)
    embed_threads: int = Field(0, ge=0, le=1024, description="0 = every core")
    # embedding backend
    embed_backend: Literal["torch", "torch-int8", "torch-bf16", "onnx", "onnx-int8", "ct2-int8", "openvino",
                           "openvino-bf16", "cuda-bf16", "auto"] = Field(
        "auto", description="auto: cuda-bf16 on a GPU; on a CPU the fastest backend whose vectors agree with fp32 "
        "(cosine >= 0.99), measured once per model and machine; see ingest.embed_backends, ingest.embed_calibrate")
    embed_backend_cache: str | None = Field(None, description="folder for exported models (~/.cache/german-rag)")
    # chunking
    chunk_tokens: int = Field(256, ge=16, le=8192, description="chunk size in model tokens (capped by the model)")
    chunk_overlap: int = Field(32, ge=0, le=4096)
    # Qdrant
    qdrant_path: str = Field("./.german-rag/qdrant", description="embedded store folder (used without a URL)")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; set it to use a server")
    qdrant_api_key: SecretStr | None = None
    collection: str = "german_rag"
    qdrant_timeout: int = Field(60, ge=1, le=3600)
    upsert_batch: int = Field(128, ge=1, le=10_000)
    shard_number: int | None = Field(None, ge=1, le=1024)
    replication_factor: int | None = Field(None, ge=1, le=16)
    write_consistency_factor: int | None = Field(None, ge=1, le=16)
    # store engine
    qdrant_engine: Literal["local", "edge"] = Field(
        "edge", description="embedded engine: local (qdrant-client local mode) or edge (qdrant-edge-py); "
        "a qdrant_url always means a server")
    vector_datatype: Literal["float32", "float16"] = Field(
        "float16", description="dense vector storage on a server or the edge engine (local mode: always float32); "
        "fixed when a collection is created")
    # index lifecycle (HNSW and quantization; docs/bench/scale.md has the measurements behind the defaults)
    hnsw_m: int = Field(16, ge=2, le=128, description="HNSW links per point (fixed when a collection is created)")
    hnsw_ef_construct: int = Field(100, ge=4, le=4096, description="HNSW candidates while building (fixed when a "
                                   "collection is created)")
    hnsw_ef: int = Field(512, ge=1, le=4096, description="HNSW candidates while searching (512: dense recall@10 "
                         "0.996 at 1M chunks, docs/bench/scale.md)")
    quantization: Literal["none", "scalar", "binary", "binary2", "turbo2", "turbo4"] = Field(
        "scalar", description="compressed vectors in RAM, originals on disk (memory-mapped) for rescoring; fixed "
        "when a collection is created")
    quantization_oversampling: float = Field(2.0, ge=1, le=16, description="candidates scored on compressed "
                                             "vectors per hit asked for, rescored with the originals")
    quantization_rescore: bool = Field(True, description="order the oversampled candidates by the original vectors")
    exact_search: bool = Field(False, description="scan every vector (no HNSW, no quantization): exact, slow at scale")
    optimize_threshold: int = Field(20_000, ge=0, description="after an ingest or sync, build the index when at "
                                    "least this many points are not in one (0: only `german-rag optimize`)")
    indexing_threshold_kb: int = Field(10_000, ge=1, description="KB of vectors a segment needs to get an HNSW "
                                       "graph (smaller ones are scanned exactly)")
    # retrieval
    top_k: int = Field(5, ge=1, le=100)
    retrieval_mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    # Fusion, dense weight, candidates, BM25 k1/b and the question frame were chosen together by cross-validation
    # over xquad-de and germandpr-derived with both dense models we could run (MiniLM, USE): docs/eval/hybrid.md.
    # `dbsf_open` is DBSF without the clip at the top (Qdrant's clips, and its best hits then tie); it and the
    # weights are fused client-side from two searches; `rrf` fuses inside Qdrant in one request.
    fusion: Literal["rrf", "dbsf", "dbsf_open"] = "dbsf_open"
    rrf_k: int = Field(60, ge=1, le=10_000)
    dense_weight: float = Field(0.7, ge=0, le=100)
    bm25_weight: float = Field(1.0, ge=0, le=100)
    fusion_candidates: int = Field(100, ge=1, le=1000, description="hits per leg before fusion")
    dense_strip_question: bool = Field(True, description="in hybrid mode, cut the question frame (\"Wie viele\", "
                                       "\"Was versteht man unter\") from the query the dense leg embeds "
                                       "(retrieval/question.py)")
    citations: Literal["boost", "rrf", "off"] = Field(
        "boost", description="a query citing a law section (\"§ 3 BUrlG\"): its chunks first (boost), fused by rank "
        "(rrf) or off; docs/eval/citations.md")
    bm25_avgdl: float = Field(DEFAULT_AVGDL, gt=0, description="average analyzed chunk length for BM25 weights")
    bm25_k1: float = Field(DEFAULT_K1, ge=0, le=10, description="BM25 term-frequency saturation (per collection: a "
                           "change re-indexes)")
    bm25_b: float = Field(DEFAULT_B, ge=0, le=1, description="BM25 length normalisation (per collection: a change "
                          "re-indexes)")
    bm25_stem: bool = Field(True, description="Snowball German stemming in the BM25 analyzer")
    bm25_compounds: bool = Field(True, description="compound splitting in the BM25 analyzer")
    bm25_stopwords: bool = Field(True, description="drop German stopwords in the BM25 analyzer")
    bm25_fold: bool = Field(True, description="umlaut and ß folding in the BM25 analyzer")
    bm25_abbreviations: bool = Field(True, description="expand abbreviations to their long forms and back in "
                                     "BM25 queries (ingest/resources/german_abbreviations.tsv)")
    rerank: bool = Field(False, description="rerank candidates with the cross-encoder by default")
    rerank_model: str = Field(DEFAULT_RERANKER,
                              description="cross-encoder hub id or local directory")
    rerank_candidates: int = Field(30, ge=1, le=100, description="fused candidates the reranker scores")
    rerank_batch: int = Field(16, ge=1, le=256)
    expand: int = Field(0, ge=0, le=5, description="neighbour chunks added on each side of a passage")
    mmr: float | None = Field(None, ge=0, le=1, description="MMR diversity lambda (1 = relevance only); unset = off")
    min_relevance: float | Literal["auto"] | None = Field(
        None, description="calibrated relevance (0..1) a passage needs to be returned; below it nothing is "
        "(an empty list, a context that says it abstained); auto = the measured default (docs/eval/abstention.md); "
        "unset = off")
    mmr_candidates: int = Field(30, ge=1, le=100, description="candidates MMR chooses from")
    # context for a generator (`german-rag context`, POST /v1/context, the MCP tool get_context)
    context_budget: int = Field(1024, ge=16, le=1_000_000, description="tokens of context a generator receives")
    context_tokenizer: str | None = Field(None, description="the generator's tokenizer.json (or its folder) to "
                                          "count the budget with; unset = a conservative estimate")
    context_strategy: Literal["topk", "merge", "expand", "mmr", "focus"] = Field(
        "focus", description="how passages become context blocks: topk (chunks as ranked), merge (by span), "
        "expand (neighbour chunks added, then merged), mmr (MMR order, then merged), focus (merged, each block "
        "cut to a window of sentences around its most relevant one); docs/eval/context.md")
    context_prompt: str | None = Field(None, description="QA prompt template file with {context} and {question} "
                                       "(replaces the shipped German one, used when a prompt is asked for)")
    context_candidates: int = Field(20, ge=1, le=100, description="passages retrieved before packing")
    # service (`german-rag serve`)
    host: str = Field("127.0.0.1", description="address the HTTP service binds")
    port: int = Field(8000, ge=1, le=65535)
    read_keys: SecretStr | None = Field(None, description="comma-separated API keys that may read")
    write_keys: SecretStr | None = Field(None, description="comma-separated API keys that may read and write")
    keys_file: str | None = Field(None, description="TOML file of API keys with their tenant, groups and role "
                                  "(`german-rag keys add`); with it set, every request needs a key")
    allow_public: bool = Field(False, description="bind a non-loopback address although no API key is set")
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS (empty: CORS off)")
    max_upload_bytes: int = Field(50_000_000, ge=1, le=10_000_000_000, description="per uploaded file")
    max_upload_files: int = Field(20, ge=1, le=1000, description="files per upload request")
    max_concurrent_uploads: int = Field(2, ge=1, le=1000, description="upload requests received at once before 429")
    upload_read_timeout: float = Field(30.0, gt=0, le=3600, description="seconds a body may send nothing (408)")
    upload_body_timeout: float = Field(900.0, gt=0, le=86_400, description="seconds one body may take (408)")
    service_parse_timeout: float = Field(120.0, gt=0, le=86_400, description="seconds per uploaded file, in a "
                                         "worker process (the CLI's parse_timeout is separate)")
    queue_size: int = Field(64, ge=1, le=100_000, description="retrieve requests in flight before 429")
    job_queue_size: int = Field(16, ge=1, le=10_000, description="ingest jobs waiting before 429")
    batch_wait_ms: float = Field(0.0, ge=0, le=1000, description="extra wait to gather concurrent queries")
    batch_max: int = Field(32, ge=1, le=256, description="queries per model call at most (1: no batching)")
    shutdown_timeout: float = Field(60.0, ge=0, le=86_400, description="seconds a running job may finish")
    upload_dir: str | None = Field(None, description="where private upload folders are made (default: TMPDIR)")
    # limits and retries (ingest; 0 switches a limit off)
    max_file_bytes: int = Field(512 * 1024 * 1024, ge=0, description="per file; larger files are reported")
    max_pages: int = Field(5000, ge=0, description="PDF pages per file")
    max_unzipped_bytes: int = Field(1024 * 1024 * 1024, ge=0, description="unpacked size of DOCX/XLSX/PPTX/ODT/EPUB")
    max_text_chars: int = Field(50_000_000, ge=0, description="characters of parsed text per file")
    max_elements: int = Field(100_000, ge=0, description="paragraphs, rows and blocks per file, counted before "
                              "parsing (bounds parse work: a small zip can hold millions)")
    parse_timeout: float = Field(600.0, ge=0, description="seconds per file, in a worker process; 0 = in process")
    store_retries: int = Field(5, ge=0, le=100, description="retries of a Qdrant call that found no server")
    store_retry_backoff: float = Field(0.5, ge=0, le=60, description="first wait before a retry (doubles, max 8 s)")
    # OCR of scans and images (tesseract 5; `make venv` installs it): pages without usable text are read
    ocr_mode: Literal["auto", "off", "force"] = Field("auto", description="auto: pages and files without usable "
                                                      "text; off: never (a scan is reported); force: every page")
    ocr_languages: str = Field("deu", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$", description="tesseract languages, "
                               "e.g. deu, deu+eng, deu+frk (Fraktur: apt-get install tesseract-ocr-frk)")
    ocr_dpi: int = Field(300, ge=72, le=1200, description="resolution PDF pages are rendered at for OCR")
    ocr_page_timeout: float = Field(60.0, gt=0, le=3600, description="seconds per OCR'd page; a page over it is "
                                    "reported, the rest of the file kept")
    ocr_max_pages: int = Field(200, ge=1, le=100_000, description="OCR'd pages per file at most (more: reported)")
    ocr_min_confidence: float = Field(60.0, ge=0, le=100, description="mean word confidence below which an "
                                      "OCR'd page is reported as low confidence (its text is kept)")
    # sync (`german-rag sync`, `watch`): deletions of sources whose files are gone
    sync_max_delete_share: float = Field(0.5, gt=0, le=1, description="share of a sync root's stored sources "
                                         "a sync may delete without --allow-mass-delete")
    # user metadata (front matter, sidecars, --meta, upload form fields): declared kinds of `meta.KEY` fields
    meta_fields: dict[str, str] = Field(
        default_factory=dict, description="user metadata field -> kind (keyword, integer, float, datetime, bool): "
        "values are parsed as that kind, filters on meta.KEY may use ranges, the store indexes it; TOML table "
        "[meta_fields], env GERMAN_RAG_META_FIELDS as JSON")
    # watch (`german-rag watch`, `serve --watch`): file events applied as they settle
    watch_debounce: float = Field(1.0, ge=0.05, le=3600, description="seconds a changed file's size and "
                                  "modification time must stay the same before it is ingested")
    watch_batch: int = Field(256, ge=1, le=100_000, description="paths applied per store call at most (bursts)")
    watch_retry: float = Field(1.0, gt=0, le=600, description="first wait after the store was unavailable "
                               "(doubles per failed try, up to watch_retry_max)")
    watch_retry_max: float = Field(60.0, gt=0, le=3600, description="longest wait between tries")
    # access (CLI and API runs; the service takes its principal from the request's key)
    tenant: str | None = Field(None, description="act as this tenant: ingest writes its documents, queries "
                               "see only its points (unset: the local owner, every tenant; ingest writes "
                               "tenant 'default')")
    groups: str = Field("", description="comma-separated groups: on ingest the documents' groups (empty: every "
                        "user of the tenant), on reads the reader's memberships")
    # logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    log_json: bool = False

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        sources = [init_settings, env_settings]
        toml = _toml_file.get()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @field_validator("min_relevance", mode="before")
    @classmethod
    def _min_relevance(cls, value: object) -> object:
        try:
            number = resolve_min_relevance(value)  # type: ignore[arg-type]
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return "auto" if isinstance(value, str) and value.strip().lower() == "auto" else number

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        return check_collection_name(value)  # the store's rule; its error is a ValueError for pydantic

    @field_validator("qdrant_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must start with http:// or https:// and name a host")
        return value.rstrip("/")

    @field_validator("meta_fields")
    @classmethod
    def _meta_fields(cls, value: dict[str, str]) -> dict[str, str]:
        return MetaSchema.of(value).as_dict()  # a bad key or kind: a MetaFieldError (a ValueError) naming it

    @property
    def meta_schema(self) -> MetaSchema:
        """The declared user metadata fields: how their values are stored and filtered."""
        return MetaSchema.of(self.meta_fields)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        Access(value)  # the stored field's rule; an AccessError is a ValueError for pydantic
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: str) -> str:
        Access(DEFAULT_TENANT, group_list(value))
        return value

    @property
    def access(self) -> Access:
        """Tenant and groups of the documents an ingest run writes."""
        return Access(self.tenant or DEFAULT_TENANT, group_list(self.groups))

    @property
    def principal(self) -> Principal:
        """Whom reads and deletes act for: the tenant with its groups, or the local owner (every tenant)."""
        if self.tenant is None:
            return OWNER
        return Principal(self.tenant, frozenset(group_list(self.groups)), "admin")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        check_overlap(self.chunk_tokens, self.chunk_overlap, ("chunk_tokens", "chunk_overlap"))  # the chunker's rule
        return self

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain values with secrets hidden."""
        data = self.model_dump()
        for key, value in data.items():
            if isinstance(getattr(self, key), SecretStr):
                data[key] = "**********" if value else None
        return data


def group_list(text: str) -> tuple[str, ...]:
    """`a, b,,c` -> ("a", "b", "c")."""
    return tuple(g.strip() for g in text.split(",") if g.strip())


def load_settings(config_file: str | Path | None = None, *, flags: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build Settings from a TOML file (explicit, GERMAN_RAG_CONFIG, or ./german-rag.toml if present).

    `overrides` win over everything; `flags` names the command-line flag each came from (field ->
    "--flag"), so an error blames the flag the user typed rather than an environment variable.
    """
    path = config_file or os.environ.get("GERMAN_RAG_CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file {path} does not exist")
    token = _toml_file.set(Path(path) if path else None)
    try:
        clean = {k: v for k, v in overrides.items() if v is not None}
        return Settings(**clean)
    except ValidationError as exc:
        given = {k: f"flag {flags[k]}" if flags and k in flags else f"argument {k}" for k in clean}
        raise ConfigError(_describe(exc, path, given)) from exc
    except SettingsError as exc:  # a value a source could not decode (GERMAN_RAG_META_FIELDS that is not JSON)
        raise ConfigError(f"invalid configuration: {exc}") from exc
    except Exception as exc:  # a malformed TOML file
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    finally:
        _toml_file.reset(token)


def _value_source(field: str, path: Any, given: Mapping[str, str]) -> str:
    """Where a field's value came from, in the order the sources win: flag, environment, file, default."""
    if field in given:
        return given[field]
    env = f"GERMAN_RAG_{field.upper()}"
    if any(name.upper() == env for name in os.environ):  # pydantic-settings reads env names case-blind
        return f"env {env}"
    if path is not None:
        try:
            with open(path, "rb") as fh:
                in_file = field in tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError):
            in_file = False
        if in_file:
            return f"key {field} in {path}"
    return "default"


def _describe(exc: ValidationError, path: Any, given: Mapping[str, str]) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"])
        if field:
            lines.append(f"{field} ({_value_source(str(err['loc'][0]), path, given)}): {err['msg']}")
        else:  # a check across fields (e.g. chunk_overlap vs chunk_tokens): the message names them
            lines.append(f"settings: {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
