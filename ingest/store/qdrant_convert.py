"""Translations between the store's terms and qdrant-client's: filters, payload index schemas and quantization
(used by qdrant.py; edge_convert.py is the edge engine's twin)."""

from __future__ import annotations

from qdrant_client import models

from ingest.schema import P
from ingest.store.filters import Condition, FilterSpec, Range


def to_client_filter(spec: FilterSpec | None) -> models.Filter | None:
    """The neutral filter spec as qdrant-client's filter (server and local mode); None stays None."""
    return None if spec is None else _client_filter(spec)


def _client_clause(c: Condition | FilterSpec) -> models.Condition:
    if isinstance(c, FilterSpec):
        return _client_filter(c)
    if c.empty:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=c.key))
    if c.range is not None:
        return models.FieldCondition(key=c.key, range=_client_range(c.range))
    match = models.MatchAny(any=c.value) if isinstance(c.value, list) else models.MatchValue(value=c.value)
    return models.FieldCondition(key=c.key, match=match)


def _client_range(r: Range) -> models.Range | models.DatetimeRange:
    bounds = {"gt": r.gt, "gte": r.gte, "lt": r.lt, "lte": r.lte}
    # ISO strings: pydantic parses them; a date alone is midnight UTC, as stored dates are read
    return models.DatetimeRange(**bounds) if r.kind == "datetime" else models.Range(**bounds)  # type: ignore[arg-type]


def _client_filter(spec: FilterSpec) -> models.Filter:
    return models.Filter(must=[_client_clause(c) for c in spec.must] or None,
                         must_not=[_client_clause(c) for c in spec.must_not] or None,
                         should=[_client_clause(c) for c in spec.should] or None)


def index_schema(key: str, kind: str) -> models.PayloadSchemaType | models.KeywordIndexParams:
    """A field's payload index on a server (kind: keyword, integer, float, datetime or bool; a `meta.KEY` path
    indexes the nested key); `tenant` is marked is_tenant (Qdrant's multitenancy layout: points
    of one tenant stored together, every read filters by it)."""
    if key == P.TENANT:
        return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
    return models.PayloadSchemaType(kind)


def client_quantization(kind: str) -> models.QuantizationConfig | None:
    """A quantization setting as qdrant-client's config, the same as the edge engine's
    (ingest/store/edge_build.py): compressed copies in RAM."""
    if kind == "scalar":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
    if kind in ("binary", "binary2"):
        encoding = models.BinaryQuantizationEncoding.ONE_BIT if kind == "binary" else \
            models.BinaryQuantizationEncoding.TWO_BITS
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True, encoding=encoding))
    if kind in ("turbo2", "turbo4"):
        bits = models.TurboQuantBitSize.BITS2 if kind == "turbo2" else models.TurboQuantBitSize.BITS4
        return models.TurboQuantization(turbo=models.TurboQuantQuantizationConfig(always_ram=True, bits=bits))
    return None
