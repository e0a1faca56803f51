"""Translations between the store's terms and qdrant-edge's: filters and points (used by edge.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

import qdrant_edge as qe

from ingest.schema import Access, Chunk, chunk_payload
from ingest.store.base import DENSE, SPARSE
from ingest.store.filters import Condition, FilterSpec, Range


@overload
def to_edge_filter(spec: FilterSpec) -> qe.Filter: ...


@overload
def to_edge_filter(spec: FilterSpec | None) -> qe.Filter | None: ...


def to_edge_filter(spec: FilterSpec | None) -> qe.Filter | None:
    """The neutral filter spec as qdrant-edge's filter: field match value / any, must, must_not."""
    if spec is None:
        return None
    return qe.Filter(must=[_edge_clause(c) for c in spec.must] or None,
                     must_not=[_edge_clause(c) for c in spec.must_not] or None,
                     should=[_edge_clause(c) for c in spec.should] or None)


def _edge_clause(c: Condition | FilterSpec) -> Any:
    if isinstance(c, FilterSpec):
        return to_edge_filter(c)
    if c.empty:
        return qe.IsEmptyCondition(c.key)
    if c.range is not None:
        return qe.FieldCondition(c.key, range=_edge_range(c.range))
    match = qe.MatchAny(c.value) if isinstance(c.value, list) else qe.MatchValue(_edge_scalar(c.value))
    return qe.FieldCondition(c.key, match=match)


def _edge_scalar(value: str | int | bool) -> Any:
    """A match value as the engine's binding reads it. qdrant-edge-py (0.9) reads a Python bool as the integer
    0 or 1 (so `true` would match a stored 1 and never a stored true); numpy's bool reaches it as a bool."""
    if isinstance(value, bool):
        import numpy as np  # only where a bool is matched: a plain read need not import numpy

        return np.bool_(value)
    return value


def _edge_range(r: Range) -> qe.RangeFloat | qe.RangeDateTime:
    """A range as the engine's: datetimes as ISO strings (a date alone is midnight UTC), numbers as floats (the
    engine compares an integer field's values with float bounds)."""
    if r.kind == "datetime":
        return qe.RangeDateTime(gt=_iso(r.gt), gte=_iso(r.gte), lt=_iso(r.lt), lte=_iso(r.lte))
    return qe.RangeFloat(gt=_num(r.gt), gte=_num(r.gte), lt=_num(r.lt), lte=_num(r.lte))


def _iso(bound: object) -> str | None:
    return None if bound is None else str(bound)


def _num(bound: object) -> float | None:
    return None if bound is None else float(bound)  # type: ignore[arg-type]


def edge_point(chunk: Chunk, dense: Sequence[float], sparse: tuple[list[int], list[float]] | None, count: int,
               doc_hash: str, now: str, access: Access, fields: Mapping[str, Any] | None = None) -> qe.Point:
    """One chunk as an edge Point: the same vectors and payload as QdrantStore writes."""
    vector: dict[str, Any] = {DENSE: list(map(float, dense))}
    if sparse is not None and sparse[0]:
        vector[SPARSE] = qe.SparseVector(list(sparse[0]), list(map(float, sparse[1])))
    payload = chunk_payload(chunk, count, doc_hash, now, access, fields)
    return qe.Point(chunk.chunk_id, vector, payload)
