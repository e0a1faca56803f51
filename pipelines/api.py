"""The programmatic entry points: what an ingestion job or a question-answering backend imports.

Each takes a `Settings` (pipelines/config.py: the same fields as the `GERMAN_RAG_*` environment, the
TOML file and the CLI flags) and opens what it needs for the call: the model, the store client. Errors
come from one root (`ingest.errors.GermanRagError`) with a `kind` a caller can act on.

    from pipelines.api import ingest_paths, retrieve
    from pipelines.config import Settings

    settings = Settings(collection="handbuch")
    report = ingest_paths(settings, ["docs/"], progress=False)
    print(report.summary())  # files seen, ingested, unchanged, failed, chunks, points written, balanced
    for p in retrieve(settings, "Wie viele Urlaubstage stehen mir zu?", top_k=3):
        print(f"{p.score:.3f} {p.source} {p.heading_path} {p.text[:80]}")

A long-running backend that answers many queries should keep one model and store open: the HTTP service
(`german-rag serve`) does that; `open_retriever` hands a Python caller one (also for the LangChain and
llama-index adapters); `retrieve_many` answers a batch with one load.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from pipelines.build import build_embedder, build_ingest_runner, build_retriever, build_store, model_identity
from pipelines.config import Settings
from retrieval.relevance import keep_relevant, resolve_min_relevance

if TYPE_CHECKING:
    from ingest.store.base import VectorStore
    from pipelines.indexing.report import IngestReport
    from pipelines.indexing.sync import SyncPlan
    from retrieval.context import PackedContext
    from retrieval.hybrid import HybridRetriever
    from retrieval.schema import Passage


def ingest_paths(settings: Settings, paths: list, progress: bool = True,
                 shard: tuple[int, int] | None = None, bulk: bool = False, meta: dict | None = None,
                 optimize: bool = True) -> IngestReport:
    """Ingest files and folders (recursively) into the configured collection; returns the per-file report.

        report = ingest_paths(Settings(), ["handbuch.pdf", "richtlinien/"], progress=False)
        assert report.count("failed") == 0

    Unchanged files are skipped, changed ones replaced after their new points are written, and a file that
    fails is reported as failed while the run goes on with the rest. `shard=(i, n)` takes the files whose
    path hashes to i of n (parallel jobs); `bulk` defers a server's index building to the end of the run.
    `meta` is user metadata for every document (payload `meta`; a file's sidecar `meta` wins per key).
    With `optimize`, a run that leaves `optimize_threshold` points or more outside the HNSW index builds it
    (report `index`); a sharded or bulk run leaves that to `german-rag optimize` once every shard is done.
    """
    embedder = build_embedder(settings)
    store = build_store(settings)
    try:
        runner = build_ingest_runner(settings, embedder, store, progress, shard, bulk)
        report = replace(runner, meta=dict(meta or {})).run(paths)
        if optimize and shard is None and not bulk:
            _build_index(settings, store, report, progress)
        return report
    finally:
        store.close()


def _build_index(settings: Settings, store: VectorStore, report: IngestReport, progress: bool) -> None:
    """The run's index build, when due (pipelines/indexing/index_build.py), recorded in its report."""
    from pipelines.indexing.index_build import optimize_if_due

    if report.outage:
        return
    build = optimize_if_due(store, settings.optimize_threshold, progress)
    report.index = build.to_dict() if build else None


def sync_paths(settings: Settings, roots: list, progress: bool = True, dry_run: bool = False,
               allow_mass_delete: bool = False, meta: dict | None = None,
               optimize: bool = True) -> IngestReport | SyncPlan:
    """Keep a collection in step with folders: ingest what is new or changed under the roots, then delete the
    stored sources under them whose files are gone (renamed files keep their vectors). A dry run returns the
    plan (add, replace, unchanged, rename, delete, refused) and changes nothing.

        report = sync_paths(Settings(collection="share"), ["/mnt/share/handbuch"], progress=False)
        print(report.summary()["deleted_sources"])

    A root that is missing or empty is a failed entry and nothing under it is deleted; deleting more than
    `sync_max_delete_share` of a root's sources needs `allow_mass_delete`.
    """
    from pipelines.indexing.sync import Syncer, SyncOptions

    embedder = build_embedder(settings)
    store = build_store(settings)
    options = SyncOptions(dry_run=dry_run, allow_mass_delete=allow_mass_delete,
                          max_delete_share=settings.sync_max_delete_share)
    try:
        runner = replace(build_ingest_runner(settings, embedder, store, progress), meta=dict(meta or {}))
        syncer = Syncer(runner, roots, options)
        if dry_run:
            embedder.prepare()  # the fingerprint needs the model's config (never its weights)
            return syncer.plan()
        report = syncer.sync()
        if optimize:
            _build_index(settings, store, report, progress)
        return report
    finally:
        store.close()


@contextmanager
def open_retriever(settings: Settings, rerank: bool | None = None) -> Iterator[HybridRetriever]:
    """A long-lived retriever: the model loaded and the store opened once, the store closed at exit. For a
    backend that answers many queries, and for the LangChain and llama-index adapters:

        with open_retriever(Settings(collection="handbuch")) as r:
            for p in r.retrieve("Wie lange ist die Probezeit?", top_k=3):
                print(p.source, p.text)
            lc = LangChainRetriever(retriever=r, top_k=5)  # retrieval/langchain.py

    The collection must exist and match the model (else a configuration error before the first query). The
    BM25 mode needs only the model's own config files (its vector size), never its weights. `rerank` of
    True locates the reranker now; None follows the settings.
    """
    embedder = build_embedder(settings)
    store = build_store(settings)
    try:
        store.require_collection()
        if settings.retrieval_mode == "bm25":
            embedder.prepare()
        else:
            embedder.load()
        store.check_compatible(model_identity(settings.embed_model), embedder.dimension)
        yield build_retriever(settings, embedder, store, with_reranker=rerank)
    finally:
        store.close()


def retrieve_many(settings: Settings, texts: list[str], top_k: int | None = None, filters: dict | None = None,
                  truncate: bool = False, rerank: bool | None = None, expand: int | None = None,
                  mmr: float | None = None) -> list[list[Passage]]:
    """Passages for each query, the model loaded and the store opened once (`open_retriever`).

        answers = retrieve_many(Settings(retrieval_mode="hybrid"), ["Kündigungsfrist?", "Probezeit?"], top_k=5)

    `filters` is `{field: value or [values]}` over the filterable payload fields. With the setting
    `min_relevance`, passages below it are left out (a query the collection cannot answer gets `[]`).
    """
    floor = resolve_min_relevance(settings.min_relevance)
    with open_retriever(settings, rerank) as retriever:
        return [keep_relevant(retriever.retrieve(t, top_k or settings.top_k, filters or {}, truncate, rerank=rerank,
                                                 expand=expand, mmr=mmr), floor)
                for t in texts]


def retrieve(settings: Settings, query: str, top_k: int | None = None, filters: dict | None = None,
             truncate: bool = False, rerank: bool | None = None, expand: int | None = None,
             mmr: float | None = None) -> list[Passage]:
    """The top passages for one query, each with its source, page, heading path, span and per-stage scores.

        for p in retrieve(Settings(), "Wie lange darf ich täglich arbeiten?", top_k=3, filters={"page": 1}):
            print(p.source, p.scores, p.text)
    """
    return retrieve_many(settings, [query], top_k, filters, truncate, rerank, expand, mmr)[0]


def evaluate(settings: Settings, dataset: str, fmt: str | None = None, modes: list[str] | None = None,
             ablation: bool = False, strategies: list[str] | None = None) -> dict:
    """Ingest a dataset's corpus through the real ingest path into a temporary store, run its queries per
    mode and score them (MRR@5/10, nDCG@10, recall@1/5/10/100).

        report = evaluate(Settings(), "../shared/data/xquad-de/xquad.de.json", modes=["bm25", "hybrid"])
        print(report["modes"]["hybrid"]["ndcg_at_10"])

    `strategies` (context packing: topk, merge, expand, mmr) adds `report["context"]`: answer_in_context@B per
    mode and strategy at 256, 512, 1024 and 2048 tokens (SQuAD and DPR sets, which carry answer texts).
    """
    from pipelines.evaluation.run import evaluate as run_evaluation

    return run_evaluation(settings, dataset, fmt, modes or ["dense", "bm25", "hybrid"], ablation, strategies)


def build_context(settings: Settings, query: str, budget: int | None = None, filters: dict | None = None,
                  mode: str | None = None, strategy: str | None = None, prompt: bool = False,
                  truncate: bool = False) -> PackedContext:
    """Context for a generator: passages retrieved, merged by span, numbered as sources and packed into
    `budget` tokens (default `context_budget`, counted with `context_tokenizer` or a conservative estimate).
    `strategy` (default `context_strategy`): topk, merge, expand, mmr or focus. With `prompt`, the QA template
    (`context_prompt` or the shipped German one) is filled in, counted towards the budget, returned as `.prompt`.

        ctx = build_context(Settings(), "Wie viele Urlaubstage stehen mir zu?", budget=512, prompt=True)
        print(ctx.prompt)  # "Beantworte die Frage ausschließlich ... [1] burlg.md · ... Frage: ..."
        print([c.to_dict() for c in ctx.citations], ctx.tokens)
    """
    from retrieval.context import ContextPacker, retrieve_context
    from retrieval.prompt import PromptTemplate
    from retrieval.tokens import token_counter

    # Configuration and request are checked before the model loads: a bad tokenizer or template fails fast.
    packer = ContextPacker(token_counter(settings.context_tokenizer), strategy or settings.context_strategy)
    template = PromptTemplate.load(settings.context_prompt) if prompt else None
    settings = settings.model_copy(update={"retrieval_mode": mode}) if mode else settings
    with open_retriever(settings) as retriever:
        return retrieve_context(retriever, packer, query, settings.context_budget if budget is None else budget,
                                settings.context_candidates, filters, truncate=truncate, template=template,
                                expand=settings.expand or None, mmr=settings.mmr,
                                min_relevance=resolve_min_relevance(settings.min_relevance))
