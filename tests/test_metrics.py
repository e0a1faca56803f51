"""Retrieval metrics against values computed by hand (log2(3) = 1.5849625, log2(5) = 2.3219281)."""

from __future__ import annotations

import pytest

from pipelines.evaluation.metrics import dedupe_ranked, evaluate_run, mrr_at, ndcg_at, recall_at

RANKED = ["d1", "d2", "d3", "d4", "d5"]
RELEVANT = {"d2", "d4", "d9"}

# 1/log2(3) = 0.6309298, 1/log2(5) = 0.4306766
# nDCG@5: DCG = 0.6309298 + 0.4306766 = 1.0616064; IDCG (3 relevant) = 1 + 0.6309298 + 0.5 = 2.1309298
NDCG_5 = 1.0616064 / 2.1309298  # 0.4981892
# nDCG@2: DCG = 0.6309298; IDCG (min(2, 3) = 2) = 1 + 0.6309298 = 1.6309298
NDCG_2 = 0.6309298 / 1.6309298  # 0.3868528


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 0.5), (5, 0.5), (100, 0.5)])
def test_mrr_is_the_reciprocal_rank_of_the_first_hit_within_k(k: int, expected: float) -> None:
    assert mrr_at(RANKED, RELEVANT, k) == expected


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 1 / 3), (3, 1 / 3), (4, 2 / 3), (10, 2 / 3)])
def test_recall_divides_by_all_relevant_docs(k: int, expected: float) -> None:
    assert recall_at(RANKED, RELEVANT, k) == pytest.approx(expected)


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, NDCG_2), (5, NDCG_5), (10, NDCG_5)])
def test_ndcg_binary_gains_log2_discount(k: int, expected: float) -> None:
    assert ndcg_at(RANKED, RELEVANT, k) == pytest.approx(expected, abs=1e-6)


def test_ndcg_ideal_uses_min_of_k_and_relevant_count() -> None:
    assert ndcg_at(["a", "x", "y"], {"a"}, 10) == 1.0
    assert ndcg_at(["d2", "d4", "d9", "x"], RELEVANT, 10) == pytest.approx(1.0)
    # one relevant doc at rank 2: (1/log2(3)) / 1
    assert ndcg_at(["x", "a"], {"a"}, 10) == pytest.approx(0.6309298, abs=1e-6)


def test_ndcg_with_grades() -> None:
    # gains a=3, b=1; ranking [b, a]: DCG = 1 + 3/log2(3) = 2.8927893; IDCG = 3 + 1/log2(3) = 3.6309298
    value = ndcg_at(["b", "a"], {"a", "b"}, 2, grades={"a": 3.0, "b": 1.0})
    assert value == pytest.approx(2.8927893 / 3.6309298, abs=1e-6)  # 0.7967035


def test_metrics_of_an_empty_ranking_are_zero() -> None:
    assert (mrr_at([], {"a"}, 10), ndcg_at([], {"a"}, 10), recall_at([], {"a"}, 10)) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("metric", [mrr_at, ndcg_at, recall_at])
def test_metrics_reject_bad_input(metric) -> None:
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        metric(RANKED, RELEVANT, 0)
    with pytest.raises(ValueError, match="relevant is empty"):
        metric(RANKED, set(), 5)
    with pytest.raises(ValueError, match=r"lists doc 'd2' twice.*dedupe_ranked"):
        metric(["d1", "d2", "d2"], RELEVANT, 5)


def test_dedupe_ranked_keeps_the_first_occurrence() -> None:
    chunks = ["x", "y", "x", "z", "y"]
    assert dedupe_ranked(chunks) == ["x", "y", "z"]
    assert chunks == ["x", "y", "x", "z", "y"]
    assert dedupe_ranked([]) == []


def test_dedupe_then_score_a_chunk_ranking() -> None:
    # chunks of d1, d1, d2 -> documents d1, d2: the relevant d2 sits at rank 2.
    assert mrr_at(dedupe_ranked(["d1", "d1", "d2"]), {"d2"}, 5) == 0.5


def test_evaluate_run_averages_over_judged_queries() -> None:
    qrels = {"q1": RELEVANT, "q2": {"a"}, "q3": {"z"}}
    results = {"q1": RANKED, "q2": ["b", "a"], "q4": ["a"]}  # q3 missing, q4 unjudged
    report = evaluate_run(results, qrels, ks=(1, 5))
    # q1: mrr 0.5, ndcg@10 0.4981892, recall@1 0, recall@5 2/3
    # q2: mrr 0.5, ndcg@10 0.6309298, recall@1 0, recall@5 1
    # q3: no results, all 0
    assert report["mean"] == pytest.approx(
        {
            "mrr_at_5": 1 / 3,
            "mrr_at_10": 1 / 3,
            "ndcg_at_10": (0.4981892 + 0.6309298) / 3,  # 0.3763730
            "recall_at_1": 0.0,
            "recall_at_5": (2 / 3 + 1) / 3,  # 5/9
        },
        abs=1e-6,
    )
    assert report["per_query"]["q2"]["ndcg_at_10"] == pytest.approx(0.6309298, abs=1e-6)
    assert report["per_query"]["q3"] == dict.fromkeys(report["mean"], 0.0)
    assert set(report["per_query"]) == {"q1", "q2", "q3"}
    assert (report["num_queries"], report["queries_without_results"], report["unjudged_queries"]) == (3, 1, 1)


def test_evaluate_run_default_ks() -> None:
    report = evaluate_run({"q": ["a"]}, {"q": {"a"}})
    assert list(report["mean"]) == [
        "mrr_at_5", "mrr_at_10", "ndcg_at_10", "recall_at_1", "recall_at_5", "recall_at_10", "recall_at_100",
    ]
    assert set(report["mean"].values()) == {1.0}


def test_evaluate_run_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="qrels is empty"):
        evaluate_run({"q": ["a"]}, {})
    with pytest.raises(ValueError, match="query 'q2': relevant is empty"):
        evaluate_run({}, {"q1": {"a"}, "q2": set()})
    with pytest.raises(ValueError, match="query 'q1': ranking lists doc 'a' twice"):
        evaluate_run({"q1": ["a", "a"]}, {"q1": {"a"}})
