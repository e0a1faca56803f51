"""Translations between the store's terms and qdrant-edge's: filters and points (used by ingest/store_edge.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from ingest.schema import Chunk, StoreError, chunk_payload
from ingest.store_shared import DENSE, SPARSE


def to_edge_filter(flt: models.Filter | None) -> qe.Filter | None:
    """Translate the filters `build_filter` (and delete_stale) make: field match value / any, must, must_not."""
    if flt is None:
        return None

    def cond(c: Any) -> qe.FieldCondition:
        if not isinstance(c, models.FieldCondition) or c.match is None:
            raise StoreError(f"internal: the edge engine adapter cannot translate filter condition {c!r}")
        if isinstance(c.match, models.MatchAny):
            return qe.FieldCondition(c.key, match=qe.MatchAny(list(c.match.any)))
        if isinstance(c.match, models.MatchValue):
            return qe.FieldCondition(c.key, match=qe.MatchValue(c.match.value))
        raise StoreError(f"internal: unsupported match {c.match!r} on field {c.key!r}")

    def conds(items: Any) -> list[qe.FieldCondition] | None:
        if items is None:
            return None
        return [cond(c) for c in (items if isinstance(items, list) else [items])] or None

    return qe.Filter(must=conds(flt.must), must_not=conds(flt.must_not))


def edge_point(chunk: Chunk, dense: Sequence[float], sparse: tuple[list[int], list[float]] | None, count: int,
               doc_hash: str, now: str) -> qe.Point:
    """One chunk as an edge Point: the same vectors and payload as QdrantStore writes."""
    vector: dict[str, Any] = {DENSE: list(map(float, dense))}
    if sparse is not None and sparse[0]:
        vector[SPARSE] = qe.SparseVector(list(sparse[0]), list(map(float, sparse[1])))
    payload = chunk_payload(chunk, count, doc_hash, now)
    return qe.Point(chunk.chunk_id, vector, payload)
