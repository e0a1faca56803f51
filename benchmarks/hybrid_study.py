"""Offline replay of hybrid retrieval over what `benchmarks.hybrid_collect` stored (issue #16 item 6).

Dense scores are the cosines of the stored vectors; BM25 is recomputed from the chunk texts with the
project's analyzer and query encoder and Qdrant's IDF (`ln(1 + (N - n + 0.5) / (n + 0.5))`), so k1, b,
avgdl and the query's tokens can vary without a re-ingest (`check_bm25` compares it with the store).
Fusion is weighted DBSF over each leg's top `depth` chunks, as `retrieval/hybrid.py` does; rankings
map chunks to documents (a document takes its best chunk's rank) and score MRR@5 per query.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse

from ingest.sparse import SparseEncoder, token_id
from pipelines.build import build_sparse_encoder
from pipelines.config import Settings
from pipelines.evaluation.metrics import dedupe_ranked, mrr_at

DEPTH = 100  # chunks per leg: `german-rag eval` retrieves 100, and each leg returns max(candidates, top_k)


@dataclass
class Study:
    """One data set with one model: chunk and query vectors, texts and judgements."""

    name: str
    model: str
    chunk_ids: list[str]
    chunk_docs: np.ndarray  # doc index per chunk
    docs: list[str]
    texts: list[str]
    chunk_vecs: np.ndarray
    sent_vecs: np.ndarray
    sent_owner: np.ndarray
    query_vecs: np.ndarray
    stripped_vecs: np.ndarray
    queries: list[str]
    stripped: list[str]
    relevant: list[set[int]]  # doc indices per query

    @classmethod
    def load(cls, folder: Path) -> Study:
        meta = json.loads((folder / "study.json").read_text())
        arrays = np.load(folder / "study.npz")
        docs = sorted({c["doc"] for c in meta["chunks"]} | {d for q in meta["qids"] for d in meta["qrels"][q]})
        index = {d: i for i, d in enumerate(docs)}
        return cls(meta["dataset"], meta["model"], [c["id"] for c in meta["chunks"]],
                   np.asarray([index[c["doc"]] for c in meta["chunks"]]), docs, [c["text"] for c in meta["chunks"]],
                   _unit(arrays["chunks"]), _unit(arrays["sentences"]), arrays["owner"], _unit(arrays["queries"]),
                   _unit(arrays["stripped"]), meta["queries"], meta["stripped"],
                   [{index[d] for d in meta["qrels"][q]} for q in meta["qids"]])

    @cached_property
    def dense(self) -> np.ndarray:
        """Queries x chunks cosine."""
        return self.query_vecs @ self.chunk_vecs.T

    @cached_property
    def dense_stripped(self) -> np.ndarray:
        return self.stripped_vecs @ self.chunk_vecs.T

    @cached_property
    def sentence_max(self) -> np.ndarray:
        """Queries x chunks: the best cosine of the query to one of the chunk's sentences (chunk cosine when a
        chunk has no sentence)."""
        sims = self.query_vecs @ self.sent_vecs.T
        out = self.dense.copy()
        best = np.full_like(out, -np.inf)
        np.maximum.at(best.T, self.sent_owner, sims.T)
        has = np.isfinite(best)
        out[has] = best[has]
        return out


def _unit(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1, norms)


class Bm25:
    """BM25 over the chunk texts with the project's analyzer; documents weighed by (k1, b, avgdl)."""

    def __init__(self, texts: list[str], encoder: SparseEncoder | None = None) -> None:
        self.encoder = encoder or build_sparse_encoder(Settings())
        self.vocab: dict[int, int] = {}
        rows, cols, tfs, lengths = [], [], [], []
        for i, text in enumerate(texts):
            tokens = self.encoder.analyzer.analyze(text)
            lengths.append(len(tokens))
            for tid, tf in Counter(token_id(t) for t in tokens).items():
                rows.append(i)
                cols.append(self.vocab.setdefault(tid, len(self.vocab)))
                tfs.append(tf)
        self.tf = sparse.csr_matrix((tfs, (rows, cols)), shape=(len(texts), len(self.vocab)), dtype=np.float64)
        self.lengths = np.asarray(lengths, dtype=np.float64)
        n = len(texts)
        df = np.bincount(cols, minlength=len(self.vocab))
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))

    @property
    def corpus_avgdl(self) -> float:
        return float(self.lengths.mean())

    def weights(self, k1: float = 1.2, b: float = 0.75, avgdl: float | None = None) -> sparse.csr_matrix:
        avg = avgdl if avgdl is not None else self.corpus_avgdl
        tf = self.tf.tocoo()
        norm = k1 * (1 - b + b * self.lengths[tf.row] / avg)
        data = tf.data * (k1 + 1) / (tf.data + norm)
        return sparse.csr_matrix((data, (tf.row, tf.col)), shape=tf.shape)

    def query_matrix(self, queries: list[dict[int, float]]) -> sparse.csr_matrix:
        """Rows of {token id: weight}; tokens the corpus lacks score nothing and are dropped."""
        rows, cols, vals = [], [], []
        for i, q in enumerate(queries):
            for tid, w in q.items():
                col = self.vocab.get(tid)
                if col is not None:
                    rows.append(i)
                    cols.append(col)
                    vals.append(w)
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(queries), len(self.vocab)))

    def encode(self, texts: list[str]) -> list[dict[int, float]]:
        return [dict(zip(*self.encoder.encode_query(t), strict=True)) for t in texts]

    def scores(self, queries: list[dict[int, float]], doc_weights: sparse.csr_matrix) -> np.ndarray:
        """Queries x chunks BM25 (Qdrant's IDF modifier times query weight times document weight)."""
        q = self.query_matrix(queries).multiply(self.idf[None, :]).tocsr()
        return np.asarray((q @ doc_weights.T).todense())


def top_lists(scores: np.ndarray, depth: int = DEPTH, positive: bool = False) -> np.ndarray:
    """Per query the indices of the `depth` best chunks, best first; -1 pads (a BM25 leg returns only chunks
    sharing a token, so with `positive` a zero score is no hit)."""
    k = min(depth, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable"), 1)
    if positive:
        order = np.where(np.take_along_axis(scores, order, 1) > 0, order, -1)
    return order


def dbsf_norm(scores: np.ndarray, lists: np.ndarray, how: str = "dbsf") -> np.ndarray:
    """Queries x chunks: each leg's hits normalised, 0 for chunks the leg did not return. `dbsf` as Qdrant's
    DBSF (mean ± 3 sample std -> [0, 1], clipped); `open`: the same without the clip; `minmax`: best 1, worst
    of the list 0; `z`: (x - mean) / std."""
    out = np.zeros_like(scores)
    for q in range(scores.shape[0]):
        hits = lists[q][lists[q] >= 0]
        if len(hits) == 0:
            continue
        values = scores[q, hits]
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        if std == 0.0:
            out[q, hits] = 0.5
            continue
        if how == "minmax":
            out[q, hits] = (values - values.min()) / (values.max() - values.min())
        elif how == "z":
            out[q, hits] = (values - values.mean()) / std
        else:
            norm = (values - (values.mean() - 3 * std)) / (6 * std)
            out[q, hits] = np.clip(norm, 0.0, 1.0) if how == "dbsf" else norm
    return out


def member(lists: np.ndarray, n_chunks: int) -> np.ndarray:
    """Queries x chunks booleans: the chunk is in the query's list."""
    out = np.zeros((lists.shape[0], n_chunks), dtype=bool)
    for q, row in enumerate(lists):
        out[q, row[row >= 0]] = True
    return out


def positions(lists: np.ndarray, n_chunks: int) -> np.ndarray:
    """Queries x chunks: 1-based position of the chunk in the query's list (a large number when absent)."""
    out = np.full((lists.shape[0], n_chunks), 1 << 20, dtype=np.int64)
    for q, row in enumerate(lists):
        hits = row[row >= 0]
        out[q, hits] = np.arange(1, len(hits) + 1)
    return out


def mrr_at_5(study: Study, fused: np.ndarray, candidates: np.ndarray, tiebreak: np.ndarray | None = None
             ) -> np.ndarray:
    """MRR@5 per query of the ranking of `fused` over the candidate chunks, chunks mapped to documents. Equal
    scores go by `tiebreak` (smaller first: the best position in any leg, as retrieval.fusion orders them)."""
    out = np.zeros(len(study.relevant))
    for q in range(len(study.relevant)):
        cand = np.flatnonzero(candidates[q])
        keys = (tiebreak[q, cand],) if tiebreak is not None else ()
        order = cand[np.lexsort((*keys, -fused[q, cand]))]
        ranked = dedupe_ranked(study.docs[int(study.chunk_docs[c])] for c in order[:40])
        out[q] = mrr_at(ranked, {study.docs[d] for d in study.relevant[q]}, 5)
    return out


def check_bm25(folder: Path, study: Study, bm25: Bm25, queries: int = 50) -> float:
    """Share of the first `queries` queries whose top-10 chunks from the offline BM25 (weights at the
    configured avgdl) equal the store's sparse search: the replay is trusted only when this is ~1."""
    from pipelines.build import build_store

    settings = Settings().model_copy(update={"qdrant_path": str(folder / "store"), "collection": "levers"})
    store = build_store(settings)
    weights = bm25.weights(1.2, 0.75, settings.bm25_avgdl)
    offline = top_lists(bm25.scores(bm25.encode(study.queries[:queries]), weights), 10, positive=True)
    same = 0
    try:
        for q in range(queries):
            hits = store.search_sparse(*bm25.encoder.encode_query(study.queries[q]), 10, None)
            ours = [study.chunk_ids[c] for c in offline[q] if c >= 0]
            same += [h.chunk_id for h in hits] == ours
    finally:
        store.close()
    return same / queries
