"""Fusion functions against hand-computed values; inputs stay untouched; bad input raises."""

from __future__ import annotations

import ast
import copy
import math
from pathlib import Path

import pytest

from retrieval.fusion import dbsf, mmr
from retrieval.schema import RetrievalError

# ---------------------------------------------------------------- dbsf

# Two-point lists normalise to 0.5 ± z/6 with z = ±1/sqrt(2) (sample std): 0.5 ± 1/(6*sqrt(2)).
TWO_POINT_OFFSET = 1 / (6 * math.sqrt(2))


def test_dbsf_normalises_each_list_with_mean_and_three_sample_std() -> None:
    # list 0: mean 2, sample std 2, range [-4, 8]: a 8/12, b 6/12, c 4/12.
    # list 1: two points: b 0.5 + offset, d 0.5 - offset.
    fused = dbsf([[("a", 4.0), ("b", 2.0), ("c", 0.0)], [("b", 1.0), ("d", 0.0)]])
    assert [item for item, _ in fused] == ["b", "a", "d", "c"]
    expected = {"a": 2 / 3, "b": 0.5 + 0.5 + TWO_POINT_OFFSET, "c": 1 / 3, "d": 0.5 - TWO_POINT_OFFSET}
    assert dict(fused) == pytest.approx(expected, abs=1e-12)


def test_dbsf_clips_outliers_beyond_three_std() -> None:
    # eleven points: one 10, ten 0. mean 10/11, sample std 10/sqrt(11); mean + 3 std < 10, so the
    # outlier is clipped to 1.0; a zero maps to 0.5 - mean / (6 std) = 0.5 - sqrt(11)/66.
    points = [("top", 10.0)] + [(f"z{i}", 0.0) for i in range(10)]
    fused = dict(dbsf([points]))
    assert fused["top"] == 1.0
    assert fused["z0"] == pytest.approx(0.5 - math.sqrt(11) / 66, abs=1e-12)


def test_dbsf_without_the_top_clip_keeps_an_outlier_apart() -> None:
    # The same eleven points: the outlier keeps its distance, (10 - (mean - 3 std)) / 6 std > 1;
    # the zeros are as before. Two clipped outliers of different height stop tying.
    points = [("top", 10.0)] + [(f"z{i}", 0.0) for i in range(10)]
    fused = dict(dbsf([points], clip_top=False))
    mean, std = 10 / 11, 10 / math.sqrt(11)
    assert fused["top"] == pytest.approx((10 - mean + 3 * std) / (6 * std), abs=1e-12)
    assert fused["top"] > 1.0
    assert fused["z0"] == pytest.approx(0.5 - math.sqrt(11) / 66, abs=1e-12)
    two = [("a", 12.0), ("b", 10.0)] + [(f"z{i}", 0.0) for i in range(50)]
    assert dict(dbsf([two]))["a"] == dict(dbsf([two]))["b"] == 1.0
    assert [item for item, _ in dbsf([two], clip_top=False)][:2] == ["a", "b"]
    assert dict(dbsf([two], clip_top=False))["a"] > dict(dbsf([two], clip_top=False))["b"]


def test_dbsf_degenerate_lists_give_one_half() -> None:
    # one point, or all scores equal: 0.5 each, as in Qdrant; an empty list adds nothing.
    fused = dbsf([[("a", 7.0)], [("b", 3.0), ("c", 3.0)], []])
    assert fused == [("a", 0.5), ("b", 0.5), ("c", 0.5)]


def test_dbsf_weights_and_limit() -> None:
    fused = dbsf([[("a", 1.0), ("b", 0.0)], [("b", 1.0), ("a", 0.0)]], weights=[3.0, 1.0], limit=1)
    # a = 3 * (0.5 + offset) + (0.5 - offset) = 2 + 2 * offset
    assert fused == [("a", pytest.approx(2 + 2 * TWO_POINT_OFFSET, abs=1e-12))]


def test_dbsf_ties_break_by_best_position_then_id() -> None:
    # Symmetric lists: a and b both get (0.5 + offset) + (0.5 - offset), best position 1 each.
    fused = dbsf([[("b", 1.0), ("a", 0.0)], [("a", 1.0), ("b", 0.0)]])
    assert [item for item, _ in fused] == ["a", "b"]
    assert fused[0][1] == fused[1][1]


def test_dbsf_leaves_inputs_untouched() -> None:
    scored = [[("a", 4.0), ("b", 2.0)], [("b", 1.0)]]
    before = copy.deepcopy(scored)
    dbsf(scored)
    assert scored == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": [1.0]}, "1 weights for 2 lists"),
        ({"weights": [1.0, -0.5]}, "weight 1 is -0.5"),
        ({"weights": [1.0, math.nan]}, "weight 1 is nan"),
        ({"limit": -1}, "limit must be >= 0"),
    ],
)
def test_dbsf_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(RetrievalError, match=match):
        dbsf([[("a", 1.0)], [("b", 1.0)]], **kwargs)


def test_dbsf_rejects_bad_input() -> None:
    with pytest.raises(RetrievalError, match="non-finite score"):
        dbsf([[("a", 1.0), ("b", math.inf)]])
    with pytest.raises(RetrievalError, match=r"dbsf: list 0 holds id 'a' twice"):
        dbsf([[("a", 1.0), ("a", 0.5)]])
    with pytest.raises(RetrievalError, match="2 weights for 1 lists"):
        dbsf([[("a", 1.0)]], weights=[1.0, 1.0])


# ---------------------------------------------------------------- mmr

PLANE = {"a": [1.0, 0.0], "b": [2.0, 2.0], "c": [0.0, -3.0]}
PLANE_RELEVANCE = {"a": 1.0, "b": 0.9, "c": 0.3}


def test_mmr_first_pick_is_the_most_relevant() -> None:
    assert mmr(["c", "b", "a"], PLANE_RELEVANCE, PLANE, limit=1) == ["a"]


def test_mmr_high_lambda_keeps_the_similar_relevant_candidate() -> None:
    # after a: b = 0.7*0.9 - 0.3*cos(a,b) = 0.63 - 0.3/sqrt(2) = 0.4179; c = 0.7*0.3 - 0.3*0 = 0.21.
    assert mmr(["a", "b", "c"], PLANE_RELEVANCE, PLANE, lambda_=0.7) == ["a", "b", "c"]


def test_mmr_low_lambda_prefers_the_diverse_candidate() -> None:
    # after a: b = 0.3*0.9 - 0.7/sqrt(2) = -0.2250; c = 0.3*0.3 - 0.7*0 = 0.09.
    assert mmr(["a", "b", "c"], PLANE_RELEVANCE, PLANE, lambda_=0.3) == ["a", "c", "b"]


def test_mmr_lambda_one_is_plain_relevance_order() -> None:
    same = {"a": [1.0, 0.0], "b": [1.0, 0.0], "c": [5.0, 0.0]}
    relevance = {"a": 0.2, "b": 0.9, "c": 0.5}
    assert mmr(["a", "b", "c"], relevance, same, lambda_=1.0) == ["b", "c", "a"]


def test_mmr_negative_similarity_counts_as_a_bonus() -> None:
    # after a: d = 0.5*0.1 - 0.5*cos(a,d) = 0.05 + 0.5 = 0.55; e = 0.5*0.5 - 0.5*0 = 0.25.
    vectors = {"a": [1.0, 0.0], "d": [-1.0, 0.0], "e": [0.0, 1.0]}
    relevance = {"a": 1.0, "d": 0.1, "e": 0.5}
    assert mmr(["a", "d", "e"], relevance, vectors, lambda_=0.5, limit=2) == ["a", "d"]


def test_mmr_ties_go_to_the_candidate_listed_first() -> None:
    vectors = {"x": [1.0, 0.0], "y": [0.0, 1.0]}
    assert mmr(["y", "x"], {"x": 0.5, "y": 0.5}, vectors) == ["y", "x"]


def test_mmr_limit_and_inputs_untouched() -> None:
    candidates = ["a", "b", "c"]
    vectors = copy.deepcopy(PLANE)
    relevance = dict(PLANE_RELEVANCE)
    assert mmr(candidates, relevance, vectors, limit=0) == []
    assert len(mmr(candidates, relevance, vectors, limit=2)) == 2
    assert len(mmr(candidates, relevance, vectors, limit=99)) == 3
    assert (candidates, vectors, relevance) == (["a", "b", "c"], PLANE, PLANE_RELEVANCE)


@pytest.mark.parametrize(
    ("candidates", "relevance", "vectors", "lambda_", "match"),
    [
        (["a"], {"a": 1.0}, {"a": [1.0]}, 1.5, r"lambda_ must be in \[0, 1\], got 1.5"),
        (["a", "a"], {"a": 1.0}, {"a": [1.0]}, 0.5, "candidates holds id 'a' twice"),
        (["a"], {}, {"a": [1.0]}, 0.5, "'a' has no relevance score"),
        (["a"], {"a": 1.0}, {}, 0.5, "'a' has no vector"),
        (["a"], {"a": 1.0}, {"a": [0.0, 0.0]}, 0.5, "vector of 'a' has norm 0.0"),
        (["a", "b"], {"a": 1, "b": 1}, {"a": [1.0], "b": [1.0, 0.0]}, 0.5, "has 2 dimensions, expected 1"),
    ],
)
def test_mmr_rejects_bad_input(
    candidates: list[str], relevance: dict, vectors: dict, lambda_: float, match: str
) -> None:
    with pytest.raises(RetrievalError, match=match):
        mmr(candidates, relevance, vectors, lambda_=lambda_)


# ---------------------------------------------------------------- boundaries


def test_fusion_imports_only_the_standard_library_and_retrieval_schema() -> None:
    source = Path(__file__).resolve().parents[1] / "retrieval" / "fusion.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"__future__", "math", "statistics", "collections.abc", "retrieval.schema"}
