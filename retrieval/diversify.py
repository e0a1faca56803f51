"""MMR diversity over the German lexical vectors of the candidates (no extra model call).

Passage similarity is the cosine of their BM25 term vectors from the shared analyzer, so two chunks
that say the same thing in the same words (repeated boilerplate, overlapping chunks) count as
redundant. Dense vectors would need a second model pass over every candidate, which a CPU cannot
afford per query with a BERT-large model.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from ingest.sparse import SparseEncoder
from retrieval.fusion import mmr
from retrieval.schema import Passage


def compact_vectors(sparse: dict[str, dict[int, float]]) -> dict[str, list[float]]:
    """Dense vectors with the same pairwise cosines: shared terms get a column each, and each
    passage's terms that no other passage has are folded into one private column (same norm)."""
    df = Counter(t for terms in sparse.values() for t in terms)
    shared = sorted(t for t, n in df.items() if n > 1)
    ids = list(sparse)
    out = {}
    for i, key in enumerate(ids):
        terms = sparse[key]
        private = math.sqrt(sum(w * w for t, w in terms.items() if df[t] == 1))
        row = [terms.get(t, 0.0) for t in shared] + [0.0] * len(ids)
        row[len(shared) + i] = private if private else 1e-9  # empty text: orthogonal to everything
        out[key] = row
    return out


def diversify(encoder: SparseEncoder, passages: Sequence[Passage], top_k: int, lambda_: float) -> list[Passage]:
    """Re-order by MMR: relevance = the current score min-max scaled to [0, 1]."""
    if len(passages) <= 1:
        return list(passages)[:top_k]
    scores = [p.score for p in passages]
    low, high = min(scores), max(scores)
    relevance = {p.chunk_id: (p.score - low) / (high - low) if high > low else 1.0 for p in passages}
    sparse = {p.chunk_id: dict(zip(*encoder.encode_document(p.text), strict=True)) for p in passages}
    order = mmr([p.chunk_id for p in passages], relevance, compact_vectors(sparse), lambda_, top_k)
    by_id = {p.chunk_id: p for p in passages}
    return [replace(by_id[c], scores={**by_id[c].scores, "mmr_rank": float(r)}) for r, c in enumerate(order, 1)]
