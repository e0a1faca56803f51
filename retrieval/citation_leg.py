"""The exact-match leg for legal citations: a query that cites "§ 3 BUrlG" gets the chunks of that section.

The query's references are parsed with the ingest parser (ingest/citations.py; both sides must normalise
alike), looked up in the payload (`law_section`: the chunks *of* the section, then `citations`: the chunks
that cite it) through the store's access filter, and merged with the searched passages:

- `boost` (the default): the leg's passages first (the section's own chunks, then the citing ones; each group
  in the order the search ranked them, unranked ones after in document order), then the rest of the search;
- `rrf`: reciprocal rank fusion of the search's ranking and the leg's (k = 60).

A query without a citation never reaches the store here: its passages are the search's, unchanged.
docs/eval/citations.md measures both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ingest.schema import P
from ingest.store.base import VectorStore
from retrieval.schema import Passage, RetrievalError

METHODS = ("boost", "rrf", "off")
STAGE = "citation"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise RetrievalError(f"citations: {method!r} is not one of {list(METHODS)}")
    return method


def citation_passages(index: VectorStore, keys: Sequence[str], limit: int,
                      filters: dict | None = None) -> tuple[list[Passage], list[Passage]]:
    """(the chunks of the cited sections, the other chunks citing them), each at most `limit`."""
    own = index.match_points(P.LAW_SECTION, keys, limit, filters)
    seen = {h.chunk_id for h in own}
    citing = [h for h in index.match_points(P.CITATIONS, keys, limit + len(own), filters) if h.chunk_id not in seen]
    return [Passage.from_hit(h, STAGE) for h in own], [Passage.from_hit(h, STAGE) for h in citing[:limit]]


def merge(searched: Sequence[Passage], own: Sequence[Passage], citing: Sequence[Passage], method: str,
          rrf_k: int = 60) -> list[Passage]:
    """The searched passages merged with the leg's (`boost` or `rrf`); inputs are not modified."""
    exact = [*own, *citing]
    if not exact or method == "off":
        return list(searched)
    if method == "rrf":
        return _rrf(searched, exact, rrf_k)
    rank = {p.chunk_id: i for i, p in enumerate(searched)}
    first: list[Passage] = []
    for group in (own, citing):
        order = sorted(range(len(group)), key=lambda i: (rank.get(group[i].chunk_id, math.inf), i))
        first.extend(_marked(searched[rank[group[i].chunk_id]]) if group[i].chunk_id in rank else group[i]
                     for i in order)
    taken = {p.chunk_id for p in first}
    return first + [p for p in searched if p.chunk_id not in taken]


def _marked(p: Passage) -> Passage:
    return p if STAGE in p.scores else replace(p, scores={**p.scores, STAGE: 1.0})


def _rrf(searched: Sequence[Passage], exact: Sequence[Passage], k: int) -> list[Passage]:
    fused: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}
    by_id: dict[str, Passage] = {}
    for leg, passages in enumerate((searched, exact)):
        for pos, p in enumerate(passages):
            fused[p.chunk_id] = math.fsum((fused.get(p.chunk_id, 0.0), 1.0 / (k + pos + 1)))
            best.setdefault(p.chunk_id, (pos, leg))
            by_id.setdefault(p.chunk_id, p)
    ids = sorted(fused, key=lambda c: (-fused[c], best[c], c))
    exact_ids = {p.chunk_id for p in exact}
    out = []
    for c in ids:
        p = by_id[c]
        scores = {**p.scores, **({STAGE: 1.0} if c in exact_ids else {}), "fused": fused[c]}
        out.append(replace(p, score=fused[c], scores=scores))
    return out
