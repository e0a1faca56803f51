"""Dify's `metadata_condition` as this project's filters (`{field: value, [values] or {op: bound}}`).

What the filter layer can express, and so what is accepted:
- `is`, `=` (a value) and `in` (a list): equality, any of the values;
- `>`, `<`, `≥`, `≤` (also `>=`, `<=`) and `before`, `after` (exclusive): a range on an integer, float or
  datetime field;
- `and` of any of these; `or` only of equalities on one field (they become one "any of" list).
Everything else (`contains`, `start with`, `is not`, `not in`, `empty`, ..., `or` across fields) is an
UnsupportedCondition: a 422 naming the condition, never a filter silently dropped.

A condition's `name` is a filter field (source, title, page, date, ...), `meta.KEY`, or a bare KEY of the
user metadata (`projekt` means `meta.projekt`). Dify's older docs give `name` as a list of names: each name
gets the condition, joined by the request's logical operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ingest.meta_fields import MetaSchema
from ingest.schema import FILTER_FIELDS
from ingest.store.filters import META_PREFIX, FilterValue, filter_kind
from pipelines.service.http import InvalidInput

EQUALITY = frozenset({"is", "=", "in"})
RANGES = {">": "gt", "<": "lt", "≥": "gte", "≤": "lte", ">=": "gte", "<=": "lte", "after": "gt", "before": "lt"}
SUPPORTED = sorted(EQUALITY | set(RANGES))
NOTHING = object()  # an `and` of equalities that no value satisfies: no point can match


class UnsupportedCondition(InvalidInput):
    """A Dify metadata condition the filter layer cannot express (an operator, an `or` across fields)."""


def field_of(name: str) -> str:
    """The filter field a Dify metadata name stands for: a FILTER_FIELDS name or `meta.KEY` as given, any
    other name the user metadata field `meta.NAME`."""
    return name if name in FILTER_FIELDS or name.startswith(META_PREFIX) else f"{META_PREFIX}{name}"


def to_filters(conditions: Sequence[dict[str, Any]], logical: str, schema: MetaSchema
               ) -> dict[str, FilterValue] | None:
    """The filter dict of Dify's conditions, or None when no point can match (an `and` of different values of
    one field). The values are checked by the store as any filter's are (a FilterError: 422)."""
    clauses = [(i, field_of(name), c) for i, c in enumerate(conditions) for name in _names(c)]
    if logical == "or" and len(clauses) > 1:
        return _any_of(clauses, schema)
    merged: dict[str, Any] = {}
    for i, key, cond in clauses:
        op, value = _clause(i, key, cond, schema)
        merged[key] = _merge(i, key, merged.get(key), op, value)
    if any(v is NOTHING for v in merged.values()):
        return None
    return {k: _shown(v) for k, v in merged.items()}


def _names(cond: dict[str, Any]) -> list[str]:
    name = cond["name"]
    return [name] if isinstance(name, str) else list(name)


def _clause(i: int, key: str, cond: dict[str, Any], schema: MetaSchema) -> tuple[str, Any]:
    """("eq", set of values) or ("range", {op: bound}) for one condition on `key`."""
    op, value = cond["comparison_operator"], cond.get("value")
    where = f"metadata_condition.conditions[{i}] ({key!r} {op!r})"
    if op not in EQUALITY and op not in RANGES:
        raise UnsupportedCondition(f"{where}: this service's filters cannot express {op!r}; supported operators: "
                                   f"{', '.join(SUPPORTED)}")
    if value is None:
        raise InvalidInput(f"{where}: needs a value")
    kind = filter_kind(key, schema)  # an unknown field or a bad meta.KEY: a FilterError naming it
    if op == "=" and kind == "keyword" and key.startswith(META_PREFIX):
        kind = "integer"  # Dify's numeric equality on an undeclared field: an integer is stored as one
    if op in EQUALITY:
        values = value if isinstance(value, list) else [value]
        if op != "in" and isinstance(value, list):
            raise InvalidInput(f"{where}: takes one value; use 'in' for a list")
        return "eq", [_typed(v, kind) for v in values]
    if isinstance(value, list):
        raise InvalidInput(f"{where}: a comparison takes one value, not a list")
    return "range", {RANGES[op]: _typed(value, kind)}


def _typed(value: Any, kind: str) -> Any:
    """Dify sends numbers of its number fields as text at times: "3" is 3 on an integer field, 2.5 on a float
    one. Anything else goes to the store's checks as it came."""
    if isinstance(value, str) and kind in ("integer", "float"):
        try:
            number = float(value) if kind == "float" else int(value.strip())
        except ValueError:
            return value
        return number
    return value


def _merge(i: int, key: str, old: Any, op: str, value: Any) -> Any:
    """An `and` of two conditions on one field: equalities intersect; ranges combine their bounds."""
    if old is None:
        return ("eq", value) if op == "eq" else ("range", value)
    if old is NOTHING:
        return NOTHING
    old_op, old_value = old
    if old_op != op:
        raise UnsupportedCondition(f"metadata_condition.conditions[{i}]: {key!r} is compared for equality and by "
                                   "range in one request; the filters take one or the other per field")
    if op == "eq":
        kept = [v for v in old_value if v in value]
        return ("eq", kept) if kept else NOTHING
    twice = set(old_value) & set(value)
    if twice:
        raise UnsupportedCondition(f"metadata_condition.conditions[{i}]: {key!r} has two bounds {sorted(twice)}")
    return ("range", {**old_value, **value})


def _any_of(clauses: list[tuple[int, str, dict[str, Any]]], schema: MetaSchema) -> dict[str, FilterValue]:
    """An `or`: equalities on one field become one list of values (any of them)."""
    keys = {key for _, key, _ in clauses}
    if len(keys) > 1:
        raise UnsupportedCondition(f"metadata_condition: 'or' across fields {sorted(keys)} cannot be expressed by "
                                   "this service's filters ('or' joins equalities on one field; use 'and')")
    values: list[Any] = []
    for i, key, cond in clauses:
        op, value = _clause(i, key, cond, schema)
        if op != "eq":
            raise UnsupportedCondition(f"metadata_condition.conditions[{i}]: 'or' joins equalities (is, =, in) "
                                       f"only, not {cond['comparison_operator']!r}")
        values += [v for v in value if v not in values]
    return {keys.pop(): values}


def _shown(entry: tuple[str, Any]) -> FilterValue:
    op, value = entry
    if op == "range":
        return value
    return value[0] if len(value) == 1 else value
