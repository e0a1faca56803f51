"""A calibrated relevance in [0, 1] per passage, and the `min_relevance` cut below which nothing is returned.

Fused scores cannot say "no answer": RRF and DBSF scores are relative to the query's own hits, so the best
passage of a hopeless query scores like the best passage of an easy one. The signal here is built from
features that mean the same thing for every query:

- `cosine`: the dense leg's cosine of query and passage (dense and hybrid modes; hybrid asks the dense leg
  for it, retrieval/hybrid.py). A passage the dense leg did not return gets the lowest cosine known in the
  list (its own is lower still: an upper bound, so it is never refused for lack of a number).
- `coverage`: the share of the query's distinct analyzed terms (the German BM25 analyzer, stopwords gone,
  compounds split) that occur in the passage.
- `bm25_per_term`: the BM25 score divided by the query's term count (bm25 mode only, where it is known).

A logistic regression per family (semantic: dense/hybrid; lexical: bm25) maps them to a probability that the
collection holds the answer, fitted offline by benchmarks/abstention.py on xquad-de questions (answerable)
versus germandpr-derived questions (not answerable) against the xquad-de corpus with the real MiniLM; the
figures are in docs/eval/abstention.md. Within a query the relevance never rises down the ranking (each
passage is capped by the one above it), so it is monotone with the stage's score; below rank FEATURE_DEPTH
the last computed value is carried down. A reranked list uses
the cross-encoder instead: sigmoid of its logit (not calibrated here; no reranker was measured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ingest.sparse import SparseEncoder
from retrieval.citation_leg import STAGE as CITATION_STAGE
from retrieval.schema import Passage, QueryError


@dataclass(frozen=True)
class Calibration:
    """sigmoid(bias + sum(weight * feature)): the coefficients and the data they were fitted on."""

    weights: tuple[tuple[str, float], ...]
    bias: float
    fitted_on: str

    def probability(self, features: Mapping[str, float]) -> float:
        z = self.bias + math.fsum(w * features[name] for name, w in self.weights)
        return sigmoid(z)


# Fitted by `python -m benchmarks.abstention fit` (docs/eval/abstention.md): MiniLM (all-MiniLM-L6-v2), the
# default hybrid and bm25 modes, top passage of 1,190 xquad-de questions (label 1) and 1,025 germandpr-derived
# questions (label 0), both against the xquad-de corpus; standardisation folded into the weights.
FITTED_ON = ("all-MiniLM-L6-v2, default settings (hybrid = dbsf_open, dense 0.7 / bm25 1.0, 100 candidates, BM25 "
             "k1 0.6 b 0.3); xquad-de corpus: 1,190 xquad-de questions (answerable) vs 1,025 germandpr-derived "
             "questions (not); docs/eval/abstention.md")
SEMANTIC = Calibration((("cosine", 13.0042), ("coverage", 10.1161)), -9.3809, FITTED_ON)
LEXICAL = Calibration((("coverage", 1.4380), ("bm25_per_term", 2.6698)), -5.9190, FITTED_ON)
CALIBRATIONS = {"dense": SEMANTIC, "hybrid": SEMANTIC, "bm25": LEXICAL}

# The `min_relevance = "auto"` threshold: the largest cut that keeps >= 0.98 of the answerable xquad-de
# questions in hybrid mode (0.981 kept, 0.472 of the unanswerable refused; held out on the germandpr-derived
# corpus: 0.996 kept, 0.154 refused; docs/eval/abstention.md). One number for every mode: in bm25 mode it
# keeps 0.99 and refuses about 0.4 (fit direction).
AUTO_MIN_RELEVANCE = 0.082


# Coverage analyzes each passage's text (~3-9 ms for a 256-token chunk on the shared CPU); passages ranked below
# this share the relevance of the last one computed, an upper bound of their own (an eval asks for 100).
FEATURE_DEPTH = 20


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def resolve_min_relevance(value: float | str | None, field: str = "min_relevance") -> float | None:
    """None (off), a number in [0, 1], or "auto" (AUTO_MIN_RELEVANCE); anything else is a QueryError naming
    `field`. Strings of numbers are accepted (environment variables and CLI flags are text)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return AUTO_MIN_RELEVANCE
    if isinstance(value, bool):
        raise QueryError(f"{field}: {value!r} is not a number in [0, 1] or 'auto'")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"{field}: {value!r} is not a number in [0, 1] or 'auto'") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise QueryError(f"{field}: {value!r} is outside [0, 1]")
    return number


def keep_relevant(passages: Sequence[Passage], min_relevance: float | None) -> list[Passage]:
    """The passages whose relevance reaches `min_relevance` (all of them when it is None). A passage without
    a relevance (made by a retriever that computes none) is kept: the cut refuses only what it can judge."""
    if min_relevance is None:
        return list(passages)
    return [p for p in passages if p.relevance is None or p.relevance >= min_relevance]


def features_of(encoder: SparseEncoder, query: str, passages: Sequence[Passage]) -> list[dict[str, float]]:
    """The calibration features of each passage (see the module docstring)."""
    terms = set(encoder.encode_query(query)[0])
    known = [p.scores["dense"] for p in passages if "dense" in p.scores]
    floor = min(known) if known else 0.0
    out = []
    for p in passages:
        covered = len(terms.intersection(encoder.encode_document(p.text)[0])) / len(terms) if terms else 0.0
        out.append({"cosine": p.scores.get("dense", floor), "coverage": covered,
                    "bm25_per_term": p.scores.get("bm25", 0.0) / max(1, len(terms))})
    return out


def with_relevance(encoder: SparseEncoder, query: str, passages: Sequence[Passage], mode: str) -> list[Passage]:
    """`passages` (in rank order) with `relevance` set: the reranker's sigmoid when they were reranked, else the
    mode's calibration; capped down the ranking so it never rises."""
    if not passages:
        return []
    if all("rerank" in p.scores for p in passages):
        raw = [sigmoid(p.scores["rerank"]) for p in passages]
    else:
        calibration = CALIBRATIONS[mode]
        raw = [calibration.probability(f) for f in features_of(encoder, query, passages[:FEATURE_DEPTH])]
        # A passage the query's legal citation matched exactly (retrieval/citation_leg.py) is what was asked
        # for, whatever its wording: without this, a cited section at rank 1 (often no dense cosine) would cap
        # every passage below it and `min_relevance` would refuse "Was regelt § 3 BUrlG?".
        raw = [1.0 if CITATION_STAGE in p.scores else r for p, r in zip(passages, raw, strict=False)]
    out, cap = [], 1.0
    for i, p in enumerate(passages):
        cap = min(cap, raw[i]) if i < len(raw) else cap
        out.append(replace(p, relevance=round(cap, 6)))
    return out
