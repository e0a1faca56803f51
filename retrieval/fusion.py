"""Fusion and diversification over ranked lists of ids: pure functions, inputs never modified.

Reciprocal rank fusion runs inside Qdrant (the Query API's RRF); DBSF with leg weights is fused here,
because Qdrant's DBSF takes no weights (retrieval/hybrid.py).

- `dbsf`: distribution-based score fusion as Qdrant defines it (each list normalised with
  mean ± 3 sample standard deviations, then summed); with `clip_top=False` a score above mean + 3 sd
  keeps its distance instead of being cut to 1 (the `dbsf_open` fusion, docs/eval/hybrid.md).
- `mmr`: maximal marginal relevance (Carbonell & Goldstein 1998) with cosine similarity.

Every function returns a new list, and equal scores are ordered the same way on every run: by the
best (smallest) position the id held in any input list, then by the id itself. Sums are taken with
`math.fsum`, so an id's score does not depend on the order of the input lists and exact ties stay ties.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from retrieval.schema import RetrievalError


def dbsf(
    scored: Sequence[Sequence[tuple[str, float]]],
    weights: Sequence[float] | None = None,
    limit: int | None = None,
    clip_top: bool = True,
) -> list[tuple[str, float]]:
    """Fuse scored lists by distribution-based score fusion, the way Qdrant does it.

    Each list is normalised on its own: with mean m and sample standard deviation s of its scores,
    a score x becomes (x - (m - 3s)) / 6s, clipped to [0, 1]. As in Qdrant, a list of one point, or
    one whose scores are all equal, gives every point 0.5. The normalised scores are multiplied by
    the list's weight (default 1.0) and summed per id; an empty list contributes nothing. Position in
    a list (for tie-breaking) is the order of the list as given. With `clip_top=False` only the clip at
    0 applies: a list's best hits, often more than 3 sd above its mean, keep their distance instead of
    tying at 1.0 (ties that then go by position and hide which leg was sure). Raises RetrievalError for a negative
    `limit`, a weights sequence whose length differs from the number of lists, a negative or non-finite
    weight, a non-finite score or an id listed twice in one list.
    """
    _check_limit(limit)
    ws = _check_weights(weights, len(scored))
    parts: dict[str, list[float]] = {}
    best: dict[str, int] = {}
    for i, points in enumerate(scored):
        _check_unique([item for item, _ in points], f"dbsf: list {i}")
        normalised = _distr_norm(points, i, clip_top)
        for pos, ((item, _), norm) in enumerate(zip(points, normalised, strict=True), start=1):
            parts.setdefault(item, []).append(ws[i] * norm)
            best[item] = min(best.get(item, pos), pos)
    fused = {item: math.fsum(p) for item, p in parts.items()}
    return _ordered(fused, best, limit)


def mmr(
    candidates: Sequence[str],
    relevance: Mapping[str, float],
    vectors: Mapping[str, Sequence[float]],
    lambda_: float = 0.5,
    limit: int = 10,
) -> list[str]:
    """Select up to `limit` candidates by maximal marginal relevance with cosine similarity.

    Each step picks the remaining candidate c maximising
    `lambda_ * relevance[c] - (1 - lambda_) * max(cos(c, s) for s already selected)` (the second term
    is 0 for the first pick, so it is the most relevant candidate). lambda_=1 ranks by relevance
    alone; lambda_=0 by diversity alone. Relevance should be on a scale comparable to cosine (e.g.
    normalised or a cosine itself). Equal values go to the candidate listed first. Raises
    RetrievalError for lambda_ outside [0, 1], a negative limit, a duplicate candidate, a candidate
    without relevance or vector, a zero or non-finite vector, or vectors of different lengths.
    """
    if not 0.0 <= lambda_ <= 1.0:
        raise RetrievalError(f"mmr: lambda_ must be in [0, 1], got {lambda_}")
    _check_limit(limit)
    _check_unique(candidates, "mmr: candidates")
    units = _unit_vectors(candidates, relevance, vectors)
    remaining = list(candidates)
    # Highest cosine to anything selected so far; -inf until the first pick (then no penalty applies).
    max_sim = dict.fromkeys(candidates, -math.inf)
    selected: list[str] = []
    while remaining and len(selected) < limit:
        pick = max(remaining, key=lambda c: _mmr_value(c, relevance, max_sim, lambda_, bool(selected)))
        remaining.remove(pick)
        selected.append(pick)
        for c in remaining:
            max_sim[c] = max(max_sim[c], _dot(units[c], units[pick]))
    return selected


def _mmr_value(
    c: str, relevance: Mapping[str, float], max_sim: Mapping[str, float], lambda_: float, penalise: bool
) -> float:
    penalty = max_sim[c] if penalise else 0.0
    return lambda_ * relevance[c] - (1.0 - lambda_) * penalty


def _distr_norm(points: Sequence[tuple[str, float]], list_index: int, clip_top: bool = True) -> list[float]:
    """Qdrant's `distr_norm`: mean ± 3 sample std mapped to [0, 1], clipped (at 0 only without `clip_top`);
    0.5 when degenerate."""
    values = [float(v) for _, v in points]
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise RetrievalError(f"dbsf: list {list_index} holds a non-finite score {bad[0]!r}")
    if len(values) < 2:
        return [0.5] * len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values, mean)
    if std == 0.0:
        return [0.5] * len(values)
    low, high = mean - 3.0 * std, mean + 3.0 * std
    top = 1.0 if clip_top else math.inf
    return [min(top, max(0.0, (v - low) / (high - low))) for v in values]


def _unit_vectors(
    candidates: Sequence[str], relevance: Mapping[str, float], vectors: Mapping[str, Sequence[float]]
) -> dict[str, list[float]]:
    units: dict[str, list[float]] = {}
    dims: int | None = None
    for c in candidates:
        if c not in relevance:
            raise RetrievalError(f"mmr: candidate {c!r} has no relevance score")
        if c not in vectors:
            raise RetrievalError(f"mmr: candidate {c!r} has no vector")
        vec = [float(x) for x in vectors[c]]
        dims = len(vec) if dims is None else dims
        if len(vec) != dims:
            raise RetrievalError(f"mmr: vector of {c!r} has {len(vec)} dimensions, expected {dims}")
        norm = math.sqrt(math.fsum(x * x for x in vec))
        if norm == 0.0 or not math.isfinite(norm):
            raise RetrievalError(f"mmr: vector of {c!r} has norm {norm}; cosine needs a finite non-zero one")
        units[c] = [x / norm for x in vec]
    return units


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def _ordered(
    fused: Mapping[str, float], best: Mapping[str, int], limit: int | None
) -> list[tuple[str, float]]:
    order = sorted(fused, key=lambda item: (-fused[item], best[item], item))
    if limit is not None:
        order = order[:limit]
    return [(item, fused[item]) for item in order]


def _check_weights(weights: Sequence[float] | None, n_lists: int) -> list[float]:
    if weights is None:
        return [1.0] * n_lists
    if len(weights) != n_lists:
        raise RetrievalError(f"weights: got {len(weights)} weights for {n_lists} lists; give one per list")
    for i, w in enumerate(weights):
        if not (math.isfinite(w) and w >= 0.0):
            raise RetrievalError(f"weights: weight {i} is {w!r}; weights must be finite and >= 0")
    return [float(w) for w in weights]


def _check_unique(items: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise RetrievalError(f"{where} holds id {item!r} twice; each id may appear once per list")
        seen.add(item)


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise RetrievalError(f"limit must be >= 0 or None, got {limit}")
