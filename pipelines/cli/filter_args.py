"""`--filter` items as store filters: `FIELD=VALUE` (repeated: any of the values) and the ranges `FIELD>=V`,
`FIELD<=V`, `FIELD>V`, `FIELD<V` (several on one field AND together into one range: `date>=2023-01-01` and
`date<2024-01-01`). FIELD is a filterable document field or `meta.KEY`.

The CLI parses the text (operators, integers, source paths); the store's one filter rule (check_filter_value,
with the declared user fields) checks the rest. Anything wrong is a UsageError naming the item (exit 2).
"""

from __future__ import annotations

import os
import re

from ingest.errors import UsageError
from ingest.meta_fields import NO_FIELDS, MetaSchema
from ingest.store.filters import FilterError, check_filter_value, filter_kind
from pipelines.sources import file_path, source_query, typed_source

# The first operator splits: a field name holds none of = < >, a value may (a source path with '=')
_ITEM = re.compile(r"(?s)([^=<>]*)(>=|<=|=|>|<)(.*)")
_RANGE_OPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}


def parse_filters(items: list[str], schema: MetaSchema = NO_FIELDS) -> dict:
    """`--filter` items as `{field: value, [values] or {op: bound}}`, checked as the store checks them."""
    filters: dict = {}
    for item in items:
        match = _ITEM.fullmatch(item)
        if not match or not match.group(1) or not match.group(3):
            raise UsageError(f"--filter {_cut(item)!r}: expected FIELD=VALUE, FIELD>=VALUE, FIELD<=VALUE, "
                             "FIELD>VALUE or FIELD<VALUE")
        key, op, text = match.groups()
        try:
            value = _filter_text(key, text, op == "=")
            if op == "=":
                _add_value(filters, key, check_filter_value(key, value, ids=True, schema=schema))
            else:
                bound = check_filter_value(key, {_RANGE_OPS[op]: value}, schema=schema)
                _add_bound(filters, key, _RANGE_OPS[op], bound)
        except FilterError as exc:
            raise UsageError(f"--filter {key}{op}{_cut(text)}: {exc}") from exc
    return filters


def _cut(text: str) -> str:
    return text[:40] + ("…" if len(text) > 40 else "")


def _add_value(filters: dict, key: str, parsed: object) -> None:
    if isinstance(filters.get(key), dict):
        raise FilterError(f"filter field {key!r}: give either values (=) or a range (>=, <=, >, <), not both")
    if key in filters:
        prev = filters[key]
        filters[key] = [*prev, parsed] if isinstance(prev, list) else [prev, parsed]
    else:
        filters[key] = parsed


def _add_bound(filters: dict, key: str, op: str, bound: object) -> None:
    prev = filters.setdefault(key, {})
    if not isinstance(prev, dict):
        raise FilterError(f"filter field {key!r}: give either values (=) or a range (>=, <=, >, <), not both")
    if op in prev:
        raise FilterError(f"filter field {key!r}: the bound {op} is given twice")
    prev.update(bound)  # type: ignore[call-overload]


def _filter_text(key: str, value: str, equals: bool) -> str | int:
    """A --filter value as the store's filter takes it: an integer field's number, a source's stored name;
    `meta.KEY` values stay text (a declared field's kind parses them in check_filter_value)."""
    if key.startswith("meta."):
        return value
    kind = filter_kind(key)  # an unknown field is a FilterError
    if kind == "integer":
        return _filter_integer(key, value)
    if key == "source" and equals:  # the name ingest stored, whether or not the file still exists
        return _source_filter(value)
    return value


def _source_filter(value: str) -> str:
    """A file's stored name, or the name as a report spells it where no such file exists; a folder is an
    error: the filter matches sources exactly (`delete FOLDER` is what takes every source under a folder)."""
    if not value.startswith("upload:") and os.path.isdir(value):
        raise UsageError(f"--filter source={value}: is a folder; a source filter names one file")
    target, typed = source_query(value), typed_source(value)
    return typed if typed and not os.path.lexists(file_path(target)) else target


def _filter_integer(key: str, value: str) -> int:
    """An ASCII decimal; its range is the store's rule (check_filter_value)."""
    # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
    match = re.fullmatch(r"(-?)0*([0-9]+)", value)
    if not match:
        raise UsageError(f"--filter {key}={value[:40]!r}: needs an integer")
    sign, digits = match.groups()
    # Past 20 digits a value is out of range anyway; cut it so that int() never meets its 4300-digit limit.
    return int(sign + digits[:21])
