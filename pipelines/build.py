"""The only module that names concrete classes: settings -> wired objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.embed import EmbedderOptions, HFEmbedder
from ingest.embed_use import MODEL_NAME as USE_MODEL
from ingest.limits import Limits
from ingest.schema import Chunker, Embedder, Tokenizer
from ingest.sparse import GermanAnalyzer, SparseEncoder
from ingest.store.base import VectorStore
from pipelines.config import Settings
from retrieval.schema import QueryEmbedder

# The modules named only in functions below import what a command may not need (qdrant-client: about
# 1 s; the reranker): a command pays for the parts it builds. `python -X importtime` shows the rest.
if TYPE_CHECKING:
    from pipelines.indexing.run import IngestRunner
    from pipelines.indexing.watch import Watcher, WatchMetrics
    from retrieval.hybrid import HybridRetriever
    from retrieval.rerank import CrossEncoderReranker


def model_identity(model: str) -> str:
    """The name a collection records for its model: a hub id as given, a directory as absolute path."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() or model.startswith((".", "/", "~")) else model


def build_embedder(settings: Settings) -> Embedder:
    """The embedder registered under `embed_model`; any other name is a transformers model (hub id or
    directory) for HFEmbedder. What a backend can do is on the Embedder protocol, not in this choice."""
    return EMBEDDERS.get(settings.embed_model, _transformers_embedder)(settings)


def _use_embedder(settings: Settings) -> Embedder:
    """The optional multilingual USE backend (numpy, offline)."""
    from ingest.embed_use import USEEmbedder

    return USEEmbedder(threads=settings.embed_threads)


def _transformers_embedder(settings: Settings) -> Embedder:
    return HFEmbedder(
        EmbedderOptions(
            model=settings.embed_model,
            cache_dir=settings.model_cache,
            offline=settings.offline,
            device=settings.device,
            max_batch_tokens=settings.embed_batch_tokens,
            threads=settings.embed_threads,
            backend=settings.embed_backend,
            backend_cache=settings.embed_backend_cache,
        )
    )


# Embedders that are not a transformers model, by the `embed_model` name that selects them.
EMBEDDERS: dict[str, Callable[[Settings], Embedder]] = {USE_MODEL: _use_embedder}


def build_store(settings: Settings) -> VectorStore:
    """A URL means a server (qdrant-client); otherwise the embedded engine `qdrant_engine` names. The store acts
    for the settings' principal (`tenant`, `groups`; unset: the local owner)."""
    from ingest.store.base import IndexOptions, StoreOptions

    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    options = StoreOptions(
        collection=settings.collection,
        path=settings.qdrant_path,
        url=settings.qdrant_url,
        api_key=key,
        batch_size=settings.upsert_batch,
        timeout=settings.qdrant_timeout,
        shard_number=settings.shard_number,
        replication_factor=settings.replication_factor,
        write_consistency_factor=settings.write_consistency_factor,
        retries=settings.store_retries,
        retry_backoff_s=settings.store_retry_backoff,
        vector_datatype=settings.vector_datatype,
        meta_fields=settings.meta_schema.declared,
        index=IndexOptions(hnsw_m=settings.hnsw_m, hnsw_ef_construct=settings.hnsw_ef_construct,
                           hnsw_ef=settings.hnsw_ef, quantization=settings.quantization,
                           oversampling=settings.quantization_oversampling, rescore=settings.quantization_rescore,
                           exact=settings.exact_search, optimize_threshold=settings.optimize_threshold,
                           indexing_threshold_kb=settings.indexing_threshold_kb),
    )
    if settings.qdrant_engine == "edge" and not settings.qdrant_url:
        from ingest.store.edge import EdgeStore

        return EdgeStore(options, principal=settings.principal)
    from ingest.store.qdrant import QdrantStore  # qdrant-client: only for a server or local mode

    return QdrantStore(options, principal=settings.principal)


def build_limits(settings: Settings) -> Limits:
    """Per-file ingest limits."""
    from ingest.ocr import OcrOptions

    ocr = OcrOptions(mode=settings.ocr_mode, languages=settings.ocr_languages, dpi=settings.ocr_dpi,
                     page_timeout_s=settings.ocr_page_timeout, max_pages=settings.ocr_max_pages,
                     min_confidence=settings.ocr_min_confidence)
    return Limits(max_file_bytes=settings.max_file_bytes, max_pages=settings.max_pages,
                  max_unzipped_bytes=settings.max_unzipped_bytes, max_text_chars=settings.max_text_chars,
                  max_elements=settings.max_elements, parse_timeout_s=settings.parse_timeout, ocr=ocr)


def build_chunker(settings: Settings, tokenizer: Tokenizer) -> Chunker:
    return TokenChunker(tokenizer, ChunkOptions(settings.chunk_tokens, settings.chunk_overlap))


def build_sparse_encoder(settings: Settings, store: VectorStore | None = None) -> SparseEncoder:
    """The BM25 encoder; with a `store` (queries), abbreviations expand with the curated list plus what that
    collection's ingests learned (re-read every 30 s, so a service sees later uploads)."""
    from ingest.abbreviations import AbbreviationExpander, LearnedExpander

    analyzer = GermanAnalyzer(stem=settings.bm25_stem, split_compounds=settings.bm25_compounds,
                              stopwords=settings.bm25_stopwords, fold=settings.bm25_fold)
    expander: AbbreviationExpander | LearnedExpander | None = None
    if settings.bm25_abbreviations:
        expander = (LearnedExpander(analyzer, lambda: stored_abbreviations(store)) if store is not None
                    else AbbreviationExpander.default(analyzer))
    return SparseEncoder(analyzer, k1=settings.bm25_k1, b=settings.bm25_b, avgdl=settings.bm25_avgdl,
                         expander=expander)


def stored_abbreviations(store: VectorStore) -> list[tuple[str, str]]:
    """The abbreviations a collection learned at ingest ([] before its first ingest)."""
    from ingest.abbreviations import LEARNED_KEY, merge_learned

    return merge_learned(store.metadata().get(LEARNED_KEY), ()) if store.exists() else []


def build_ingest_runner(settings: Settings, embedder: Embedder, store: VectorStore, progress: bool = True,
                        shard: tuple[int, int] | None = None, bulk: bool = False) -> IngestRunner:
    """The ingest pipeline over this embedder and store (imports the parse worker and the chunker)."""
    from pipelines.indexing.run import IngestRunner

    return IngestRunner(embedder, build_chunker(settings, embedder), store, model_identity(settings.embed_model),
                        build_sparse_encoder(settings), progress, build_limits(settings), shard, bulk=bulk,
                        access=settings.access, learn_abbreviations=settings.bm25_abbreviations)


def build_watcher(settings: Settings, runner: IngestRunner, roots: list, metrics: WatchMetrics | None = None,
                  allow_mass_delete: bool = False) -> Watcher:
    """A watcher keeping `roots` in step through a Syncer over `runner`; the embedded store's own folder is never
    watched (its writes would be events)."""
    from dataclasses import replace

    from pipelines.indexing.run import compact_quietly
    from pipelines.indexing.sync import Syncer, SyncOptions
    from pipelines.indexing.watch import Watcher, WatchOptions

    options = WatchOptions(settings.watch_debounce, settings.watch_batch, settings.watch_retry,
                           settings.watch_retry_max)
    # Not after every batch (a vacuum takes seconds on a large store): the watcher compacts once it is idle.
    runner = replace(runner, compact=False)
    syncer = Syncer(runner, roots, SyncOptions(allow_mass_delete=allow_mass_delete,
                                               max_delete_share=settings.sync_max_delete_share))
    ignore = [] if settings.qdrant_url else [settings.qdrant_path]
    # the store deletes go through: the owner's whole store, or the tenant's every group (as Syncer deletes)
    store = runner.store if runner.store.principal.is_owner else runner.io
    return Watcher(syncer, roots, options, metrics, ignore, compact=lambda: compact_quietly(store))


def build_reranker(settings: Settings) -> CrossEncoderReranker:
    """The cross-encoder, found like the embedder (directory, cache, hub); loaded on first use."""
    from ingest.model_files import resolve_model_dir
    from ingest.schema import ModelUnavailableError
    from retrieval.rerank import CrossEncoderReranker, RerankerOptions
    from retrieval.schema import RerankerUnavailableError

    setting = "rerank_model (GERMAN_RAG_RERANK_MODEL)"
    try:
        directory = resolve_model_dir(settings.rerank_model, settings.model_cache, settings.offline,
                                      role="reranker", env="GERMAN_RAG_RERANK_MODEL")
    except ModelUnavailableError as exc:  # the reranker's own error kind, naming its setting
        raise RerankerUnavailableError(f"reranker (setting {setting}): {exc}") from exc
    return CrossEncoderReranker(RerankerOptions(str(directory), settings.rerank_batch, device=settings.device,
                                                setting=setting))


def build_retriever(settings: Settings, embedder: QueryEmbedder, store: VectorStore,
                    with_reranker: bool | None = None) -> HybridRetriever:
    """The retriever with its optional stages; the reranker is located only when it may be used."""
    from retrieval.expand import NeighbourExpander
    from retrieval.hybrid import FusionOptions, HybridRetriever, StageOptions

    fusion = FusionOptions(settings.fusion, settings.rrf_k, settings.dense_weight, settings.bm25_weight,
                           settings.fusion_candidates, settings.citations, settings.dense_strip_question)
    want_reranker = settings.rerank if with_reranker is None else with_reranker
    reranker = build_reranker(settings) if want_reranker else None
    stages = StageOptions(settings.rerank, settings.rerank_candidates, settings.expand, settings.mmr,
                          settings.mmr_candidates)
    return HybridRetriever(embedder, build_sparse_encoder(settings, store), store, settings.retrieval_mode, fusion,
                           reranker, NeighbourExpander(store), stages)


def retriever_over(retriever: HybridRetriever, store: VectorStore) -> HybridRetriever:
    """The same retriever (embedder, encoder, reranker and options shared) over another store, e.g. a
    principal's view: searches and neighbour expansion then read only what that view lets through. Cheap."""
    import copy

    from retrieval.expand import NeighbourExpander

    view = copy.copy(retriever)
    view.index = store
    if retriever.expander is not None:
        view.expander = NeighbourExpander(store)
    return view


def embed_backend_status(settings: Settings, measure: bool = False) -> dict | None:
    """What `embed_backend = auto` runs on this machine for the configured model (None for a fixed backend):
    the stored measurement, or with `measure` the one made now (loads the model; measures if none is stored)."""
    from pipelines.indexing.report import backend_info, describe_backend

    if settings.embed_backend != "auto":
        return None
    embedder = build_embedder(settings)
    if not isinstance(embedder, HFEmbedder):
        return {"backend": backend_info(embedder)["backend"]}
    if measure:
        embedder.load()
        return backend_info(embedder)
    calibration = embedder.cached_calibration()
    if calibration is None:
        return {"backend": None, "summary": "auto: not measured on this machine yet; the first embedding measures "
                "it (or `german-rag config --calibrate`); with a CUDA GPU it runs cuda-bf16"}
    return describe_backend(calibration.chosen, calibration)
