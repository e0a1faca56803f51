"""Dense, German BM25 and hybrid retrieval over one collection.

The lexical leg uses the same analyzer as ingestion (ingest.sparse), so a query term matches the
stems and compound parts that were indexed. Hybrid fusion happens inside Qdrant (Query API prefetch
of both legs, then RRF or DBSF), so one request answers a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ingest.citations import query_citations
from ingest.schema import StoredHit
from ingest.sparse import SparseEncoder
from ingest.store.base import VectorStore
from retrieval.citation_leg import check_method, citation_passages, merge
from retrieval.diversify import diversify
from retrieval.fusion import dbsf
from retrieval.query_check import check_expand, check_mmr, check_query, check_top_k
from retrieval.question import strip_question
from retrieval.relevance import with_relevance
from retrieval.schema import Passage, QueryEmbedder, RetrievalError

MODES = ("dense", "bm25", "hybrid")
FUSIONS = ("rrf", "dbsf", "dbsf_open")


@dataclass(frozen=True)
class FusionOptions:
    method: str = "rrf"  # rrf | dbsf | dbsf_open (DBSF without the clip at the top; docs/eval/hybrid.md)
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = 50  # per leg, before fusion
    # A query citing "§ 3 BUrlG": the cited sections' chunks first (boost), fused by rank (rrf) or off
    # (retrieval/citation_leg.py; docs/eval/citations.md measures them)
    citations: str = "boost"
    # In hybrid mode the dense leg embeds the query without its question frame ("Wie viele", retrieval/question.py)
    strip_question: bool = False

    def __post_init__(self) -> None:
        check_method(self.citations)
        if self.method not in FUSIONS:
            raise RetrievalError(f"fusion: {self.method!r} is not one of {sorted(FUSIONS)}")
        if self.rrf_k < 1 or self.candidates < 1:
            raise RetrievalError("fusion: rrf_k and candidates must be at least 1")


class Reranker(Protocol):
    def rerank(self, query: str, passages: Sequence[Passage], top_k: int) -> list[Passage]: ...


class Expander(Protocol):
    def expand(self, passages: Sequence[Passage], window: int) -> list[Passage]: ...


@dataclass(frozen=True)
class StageOptions:
    """Defaults for the optional stages; each request may override them."""

    rerank: bool = False
    rerank_candidates: int = 30
    expand: int = 0  # neighbour chunks on each side
    mmr: float | None = None  # MMR lambda (1 = relevance only); None = off
    mmr_candidates: int = 30


class HybridRetriever:
    """Query -> passages: search by `mode` (dense, bm25, hybrid), then optional rerank and expansion."""

    def __init__(self, embedder: QueryEmbedder, encoder: SparseEncoder, index: VectorStore,
                 mode: str = "hybrid", fusion: FusionOptions | None = None, reranker: Reranker | None = None,
                 expander: Expander | None = None, stages: StageOptions | None = None) -> None:
        if mode not in MODES:
            raise RetrievalError(f"mode: {mode!r} is not one of {list(MODES)}")
        self.embedder, self.encoder, self.index = embedder, encoder, index
        self.mode = mode
        self.fusion = fusion or FusionOptions()
        self.reranker, self.expander = reranker, expander
        self.stages = stages or StageOptions()

    def retrieve(self, query: str, top_k: int = 5, filters: dict | None = None, truncate: bool = False,
                 mode: str | None = None, rerank: bool | None = None, expand: int | None = None,
                 mmr: float | None = None) -> list[Passage]:
        """Top passages for `query`. `rerank`/`expand`/`mmr` of None take the configured defaults."""
        query, top_k = check_query(query), check_top_k(top_k)
        mode = mode or self.mode
        if mode not in MODES:
            raise RetrievalError(f"mode: {mode!r} is not one of {list(MODES)}")
        rerank = self.stages.rerank if rerank is None else rerank
        expand = self.stages.expand if expand is None else expand
        reranker = self.reranker if rerank else None
        if rerank and reranker is None:
            raise RetrievalError("rerank: no reranker is configured (set GERMAN_RAG_RERANK_MODEL)")
        check_expand(expand)
        mmr = self.stages.mmr if mmr is None else mmr
        if mmr is not None:
            check_mmr(mmr)
        depth = max(top_k, self.stages.rerank_candidates if rerank else 0,
                    self.stages.mmr_candidates if mmr is not None else 0)
        # Errors of the stages keep their own kinds: a query over the token limit (input), a bad filter
        # (usage), a store that does not answer (unavailable) are told apart by the CLI and the service.
        passages = self._cited(query, self._search(mode, query, depth, filters, truncate), depth, filters)
        if reranker is not None:
            keep = depth if mmr is not None else top_k  # MMR still needs the candidates
            passages = reranker.rerank(query, passages, keep)
        passages = with_relevance(self.encoder, query, passages if mmr is not None else passages[:top_k], mode)
        if mmr is not None:
            passages = diversify(self.encoder, passages, top_k, mmr)
        if expand and self.expander is not None:
            passages = self.expander.expand(passages, expand)
        return passages[:top_k]

    def _cited(self, query: str, passages: list[Passage], depth: int, filters: dict | None) -> list[Passage]:
        """`passages` with the exact-match leg of the query's legal citations merged in (none: unchanged)."""
        # law names in a query come from the curated table (ingest/law_names.py)
        keys = query_citations(query) if self.fusion.citations != "off" else []
        if not keys:
            return passages
        own, citing = citation_passages(self.index, keys, depth, filters)
        return merge(passages, own, citing, self.fusion.citations, self.fusion.rrf_k)[:depth]

    def _search(self, mode: str, query: str, top_k: int, filters: dict | None, truncate: bool) -> list[Passage]:
        if mode == "bm25":
            indices, values = self.encoder.encode_query(query)
            return [Passage.from_hit(h, "bm25") for h in self.index.search_sparse(indices, values, top_k, filters)]
        # The frame is cut only where it was measured to help: the dense leg of hybrid; dense alone ranks worse
        # without it (docs/eval/hybrid.md)
        cut = self.fusion.strip_question and mode == "hybrid"
        vector = self.embedder.embed_query(strip_question(query) if cut else query, truncate=truncate)
        if mode == "dense":
            return [Passage.from_hit(h, "dense") for h in self.index.search_dense(vector, top_k, filters)]
        f = self.fusion
        if f.method == "dbsf_open" or (f.method == "dbsf" and f.dense_weight != f.bm25_weight):
            return self._weighted_dbsf(vector, query, top_k, filters)
        hits = self.index.search_hybrid(vector, self.encoder.encode_query(query), top_k, filters, f.method,
                                        f.rrf_k, (f.dense_weight, f.bm25_weight), max(f.candidates, top_k))
        return _with_cosines([Passage.from_hit(h, "fused") for h in hits],
                             self.index.search_dense(vector, max(f.candidates, top_k), filters))

    def _weighted_dbsf(self, vector: list[float], query: str, top_k: int, filters: dict | None) -> list[Passage]:
        """DBSF with leg weights (or without the clip at the top), fused here: Qdrant's DBSF has neither. Both
        legs' scores are kept."""
        depth = max(self.fusion.candidates, top_k)
        dense = self.index.search_dense(vector, depth, filters)
        sparse = self.index.search_sparse(*self.encoder.encode_query(query), depth, filters)
        fused = dbsf([[(h.chunk_id, h.score) for h in dense], [(h.chunk_id, h.score) for h in sparse]],
                     weights=[self.fusion.dense_weight, self.fusion.bm25_weight], limit=top_k,
                     clip_top=self.fusion.method != "dbsf_open")
        legs = {"dense": {h.chunk_id: h for h in dense}, "bm25": {h.chunk_id: h for h in sparse}}
        out = []
        for chunk_id, score in fused:
            hit = legs["dense"].get(chunk_id) or legs["bm25"][chunk_id]
            scores = {leg: hits[chunk_id].score for leg, hits in legs.items() if chunk_id in hits}
            out.append(replace(Passage.from_hit(hit, "fused"), score=score, scores={**scores, "fused": score}))
        return out



def _with_cosines(passages: list[Passage], dense: Sequence[StoredHit]) -> list[Passage]:
    """Qdrant's fusion returns only the fused score; the dense leg's cosine is what tells a weak best hit
    from a good one across queries (retrieval/relevance.py), so it is kept where the leg returned the chunk."""
    cosine = {h.chunk_id: h.score for h in dense}
    return [replace(p, scores={**p.scores, "dense": cosine[p.chunk_id]}) if p.chunk_id in cosine else p
            for p in passages]
