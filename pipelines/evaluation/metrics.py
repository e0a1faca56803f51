"""Retrieval metrics over one ranking per query: MRR@k, nDCG@k, recall@k, and a run-level summary.

Conventions (those of pytrec_eval, which MTEB and BEIR use, except where noted):
- ranks start at 1; only the first k entries of a ranking count;
- a ranking lists each doc id once (a chunk ranking goes through `dedupe_ranked` first), so no
  document is credited twice and nDCG stays within [0, 1];
- nDCG uses linear gains (1 per relevant doc unless grades are given) and a log2(rank + 1) discount;
  the ideal DCG places the min(k, |relevant|) best gains at the top;
- recall@k divides by |relevant|, not by min(k, |relevant|);
- unlike pytrec_eval, `evaluate_run` scores a judged query that has no results as 0 instead of
  leaving it out, so a retriever cannot gain by returning nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

MRR_KS = (5, 10)
NDCG_KS = (10,)


def dedupe_ranked(chunk_doc_ids: Iterable[str]) -> list[str]:
    """Map a ranking of chunks (given as their doc ids) to a ranking of documents.

    A document takes the rank of its best chunk: the first occurrence wins, later ones are dropped.
    """
    return list(dict.fromkeys(chunk_doc_ids))


def mrr_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Reciprocal of the rank of the first relevant doc within the top k; 0.0 when there is none."""
    _check(ranked, relevant, k)
    for rank, doc_id in enumerate(ranked[:k], start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant docs that appear in the top k."""
    _check(ranked, relevant, k)
    return sum(1 for doc_id in ranked[:k] if doc_id in relevant) / len(relevant)


def ndcg_at(
    ranked: Sequence[str],
    relevant: Collection[str],
    k: int,
    grades: Mapping[str, float] | None = None,
) -> float:
    """Normalised discounted cumulative gain of the top k.

    Without `grades` every doc in `relevant` has gain 1 (binary). With `grades`, a doc in `relevant`
    gains `grades[doc_id]` (missing grades count 1); docs outside `relevant` gain 0 either way.
    """
    _check(ranked, relevant, k)
    gains = {d: (1.0 if grades is None else float(grades.get(d, 1.0))) for d in relevant}
    dcg = math.fsum(gains.get(d, 0.0) / math.log2(rank + 1) for rank, d in enumerate(ranked[:k], start=1))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = math.fsum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def query_metrics(ranked: Sequence[str], relevant: Collection[str], ks: Sequence[int]) -> dict[str, float]:
    """MRR@5, MRR@10, nDCG@10 and recall at each k of `ks` for one query, keyed MTEB-style."""
    values = {f"mrr_at_{k}": mrr_at(ranked, relevant, k) for k in MRR_KS}
    values.update({f"ndcg_at_{k}": ndcg_at(ranked, relevant, k) for k in NDCG_KS})
    values.update({f"recall_at_{k}": recall_at(ranked, relevant, k) for k in ks})
    return values


def evaluate_run(
    results: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Collection[str]],
    ks: Sequence[int] = (1, 5, 10, 100),
) -> dict:
    """Score a run (query id -> ranked doc ids) against qrels (query id -> relevant doc ids).

    Every query in `qrels` is scored; one missing from `results` counts as an empty ranking. Queries
    in `results` without qrels are not scored and are counted in `unjudged_queries`. Returns::

        {"mean": {"mrr_at_5": .., "mrr_at_10": .., "ndcg_at_10": .., "recall_at_1": .., ...},
         "per_query": {qid: {same keys}}, "num_queries": n,
         "queries_without_results": m, "unjudged_queries": u}

    Raises ValueError for an empty `qrels`, a query with no relevant docs, a k < 1 or a ranking that
    lists a doc twice.
    """
    if not qrels:
        raise ValueError("evaluate_run: qrels is empty; nothing to evaluate")
    per_query: dict[str, dict[str, float]] = {}
    for qid, relevant in qrels.items():
        try:
            per_query[qid] = query_metrics(results.get(qid, ()), relevant, ks)
        except ValueError as exc:
            raise ValueError(f"evaluate_run: query {qid!r}: {exc}") from exc
    names = next(iter(per_query.values())).keys()
    mean = {name: math.fsum(v[name] for v in per_query.values()) / len(per_query) for name in names}
    return {
        "mean": mean,
        "per_query": per_query,
        "num_queries": len(per_query),
        "queries_without_results": sum(1 for qid in qrels if qid not in results),
        "unjudged_queries": sum(1 for qid in results if qid not in qrels),
    }


def _check(ranked: Sequence[str], relevant: Collection[str], k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not relevant:
        raise ValueError("relevant is empty; the metric is undefined for a query with no relevant docs")
    if len(set(ranked)) != len(ranked):
        dup = next(d for i, d in enumerate(ranked) if d in ranked[:i])
        raise ValueError(f"ranking lists doc {dup!r} twice; map chunk rankings through dedupe_ranked first")
