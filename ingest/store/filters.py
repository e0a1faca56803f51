"""The one neutral filter spec that every read and delete is built from, validated once.

A user's filter is `{field: value}`, `{field: [values]}` (any of them) or `{field: {"gte": x, "lt": y}}` (a
range: gt, gte, lt, lte, on integer, float and datetime fields). A field is a FILTER_FIELDS name or `meta.KEY`,
a user metadata field whose kind the MetaSchema declares (undeclared: keyword).

`check_filter_value` is the one rule for one entry (fields, kinds, integer range, dates, text), called by
`build_filter` and by the CLI and the service before a request starts; each engine translates the spec into
its own filter (qdrant.py: qdrant-client models; edge_convert.py: qdrant-edge). Nothing here imports an
engine's client library, so a command that only reads the edge engine (an unchanged re-ingest, verify, a BM25
query) never pays for importing qdrant-client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ingest.errors import UsageError
from ingest.meta_fields import INT_MAX as META_INT_MAX
from ingest.meta_fields import INT_MIN as META_INT_MIN
from ingest.meta_fields import NO_FIELDS, MetaFieldError, MetaSchema, parse_bool, parse_datetime
from ingest.schema import FILTER_FIELDS, P, StoreError

Bound = int | float | str  # a range bound: a number, or an ISO date/datetime
Match = str | int | bool | list[str] | list[int]  # what a condition matches by value
FilterValue = Match | float | list[float] | dict[str, Bound]  # what a user's filter names
RANGE_OPS = ("gt", "gte", "lt", "lte")
RANGE_KINDS = ("integer", "float", "datetime")
META_PREFIX = f"{P.META}."


@dataclass(frozen=True)
class Range:
    """Bounds on a number or a datetime (`kind` says which; datetimes are ISO strings); None: unbounded."""

    kind: str
    gt: Bound | None = None
    gte: Bound | None = None
    lt: Bound | None = None
    lte: Bound | None = None


@dataclass(frozen=True)
class Condition:
    """`key` equals `value`, or (a list) equals any of its values; with `empty`, the field is missing, null or
    an empty list (`value` is then unused); with `range`, the field lies within its bounds (`value` unused)."""

    key: str
    value: Match = ""
    empty: bool = False
    range: Range | None = None


@dataclass(frozen=True)
class FilterSpec:
    """Every `must` clause holds, no `must_not` condition does, and (when there are any) at least one `should`
    clause does. A clause is a Condition or a nested FilterSpec (the access filter's "no groups OR one of
    mine" is one)."""

    must: tuple[Condition | FilterSpec, ...] = ()
    must_not: tuple[Condition, ...] = ()
    should: tuple[Condition | FilterSpec, ...] = ()


def all_of(*specs: FilterSpec | None) -> FilterSpec | None:
    """The points every given spec selects (None selects every point)."""
    present = [s for s in specs if s is not None]
    if len(present) <= 1:
        return present[0] if present else None
    return FilterSpec(must=tuple(present))


# The integer payload fields (page, chunk_index) count from 0; the engines hold signed 64-bit integers and
# answer a larger one with an overflow (a 500 or a traceback), so no filter may carry one.
INTEGER_MIN, INTEGER_MAX = 0, 2**63 - 1


class FilterError(UsageError, StoreError, ValueError):
    """A filter field or value the store cannot take: bad usage (the CLI exits 2, the service answers 422).
    A ValueError too, so a pydantic validator may call the checks below."""


def _shown(value: object) -> str:
    """A value for a message: lone surrogates escaped, long strings cut."""
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode()
        return repr(text if len(text) <= 60 else text[:60] + "…")
    return repr(value)


def filter_kind(key: object, schema: MetaSchema = NO_FIELDS) -> str:
    """The payload kind (keyword, integer, float, datetime, bool) of a filterable field: a FILTER_FIELDS name,
    or `meta.KEY` (its declared kind, else keyword); any other field is a FilterError."""
    if isinstance(key, str) and key.startswith(META_PREFIX):
        try:
            return schema.kind(key[len(META_PREFIX):])
        except MetaFieldError as exc:
            raise FilterError(f"filter field {_shown(key)}: {exc}") from None
    if not isinstance(key, str) or key not in FILTER_FIELDS:
        raise FilterError(f"filter field {_shown(key)} is not filterable (allowed: {sorted(FILTER_FIELDS)} "
                          "and meta.KEY for a user metadata field)")
    return FILTER_FIELDS[key]


def check_filter_integer(key: str, value: object, low: int = INTEGER_MIN, high: int = INTEGER_MAX) -> int:
    """`value` as a filter integer for field `key`, or a FilterError naming the field and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FilterError(f"filter field {key!r} needs an integer, got {_shown(value)}")
    if not low <= value <= high:
        # str() of a huge integer is itself an error (Python's 4300-digit limit): describe it by size
        shown = str(value) if value.bit_length() <= 128 else f"an integer of {value.bit_length()} bits"
        raise FilterError(f"filter field {key!r}: {shown} is out of range ({low} to {high})")
    return value


def check_filter_value(key: str, value: object, *, ids: bool = False,
                       schema: MetaSchema = NO_FIELDS) -> FilterValue:
    """The one rule for one filter entry `{key: value, [values] or {op: bound}}` (build_filter, the CLI's
    --filter, the service's request body): a filterable field, values of its kind, integers in the engines'
    range, ISO dates, strings that are valid text, ranges only on integer, float and datetime fields. `ids`: a
    doc_id must spell a UUID (what a user names a document by; the store itself matches any keyword). Returns
    the value as the store matches it (doc ids lower-cased, dates normalised, a declared meta field's text
    parsed into its kind)."""
    kind = filter_kind(key, schema)
    if isinstance(value, dict):
        return _check_range(key, kind, value, schema)
    values = value if isinstance(value, list) else [value]
    checked = [_check_scalar(key, kind, v, ids, schema) for v in values]
    if key == P.DOC_ID:  # ids are stored as lower-case UUIDs; an upper-case spelling means the same one
        checked = [_canonical_id(v) for v in checked]
    return cast(FilterValue, checked if isinstance(value, list) else checked[0])


def check_filter_shape(key: str, value: object) -> FilterValue:
    """A `meta.KEY` entry checked where the declared kinds are not at hand (the service's request model): a
    valid key, and a range's bounds named gt, gte, lt or lte. Its values are checked by the store's
    build_filter, which knows the kinds."""
    filter_kind(key)
    if isinstance(value, dict):
        unknown = [op for op in value if op not in RANGE_OPS]
        if unknown or not value:
            raise FilterError(f"filter field {key!r}: a range takes the bounds {list(RANGE_OPS)}, "
                              f"got {_shown(unknown or list(value))}")
    return cast(FilterValue, value)


def _check_range(key: str, kind: str, value: dict, schema: MetaSchema) -> dict[str, Bound]:
    if kind not in RANGE_KINDS:
        raise FilterError(f"filter field {key!r} is a {kind}: a range (gt, gte, lt, lte) needs an integer, float "
                          f"or datetime field" + (" (declare it in meta_fields)" if key.startswith(META_PREFIX)
                                                  else ""))
    check_filter_shape(key, value)
    return {op: cast(Bound, _check_scalar(key, kind, bound, False, schema)) for op, bound in value.items()}


def _check_scalar(key: str, kind: str, v: object, ids: bool, schema: MetaSchema) -> object:
    if key.startswith(META_PREFIX):
        return _check_meta(key, kind, v, schema)
    if kind == "integer":
        return check_filter_integer(key, v)
    if kind == "datetime":
        return _check_datetime(key, v)
    if kind == "bool":
        try:
            return parse_bool(key, v)
        except MetaFieldError:
            raise FilterError(f"filter field {key!r} needs true or false, got {_shown(v)}") from None
    if not isinstance(v, str):
        raise FilterError(f"filter field {key!r} needs a string, got {_shown(v)}")
    if not is_text(v):  # the engines refuse lone surrogates (a 500 before)
        raise FilterError(f"filter field {key!r}: {_shown(v)} is not valid text (undecodable bytes)")
    if ids and key == P.DOC_ID and not is_uuid(v):
        raise FilterError(f"filter field {key!r}: {_shown(v)} is not a document id (a UUID)")
    return v


def _check_datetime(key: str, v: object) -> str:
    try:
        return parse_datetime(key, v)
    except MetaFieldError:
        raise FilterError(f"filter field {key!r} needs an ISO date (YYYY-MM-DD) or datetime "
                          f"(YYYY-MM-DDTHH:MM[:SS][+HH:MM]), got {_shown(v)}") from None


def _check_meta(key: str, kind: str, v: object, schema: MetaSchema) -> object:
    """A value for `meta.KEY`: a declared field's value parsed as the field's values are (so the CLI's text
    `3` matches a stored 3); an undeclared field matches a string, an integer or a bool as stored."""
    name = key[len(META_PREFIX):]
    if schema.is_declared(name):
        try:
            return schema.value(name, v)
        except MetaFieldError as exc:
            raise FilterError(f"filter field {key!r}: {exc}") from None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return check_filter_integer(key, v, META_INT_MIN, META_INT_MAX)
    if not isinstance(v, str):
        raise FilterError(f"filter field {key!r} (undeclared: a keyword) needs a string, an integer or a bool, "
                          f"got {_shown(v)}; declare it in meta_fields to filter by a float or a date")
    if not is_text(v):
        raise FilterError(f"filter field {key!r}: {_shown(v)} is not valid text (undecodable bytes)")
    return v


def build_filter(filters: dict[str, FilterValue] | None, schema: MetaSchema = NO_FIELDS) -> FilterSpec | None:
    """Turn `{field: value, [values] or {op: bound}}` into a FilterSpec; unknown fields, wrong types, integers
    outside the engines' range and ranges on keywords are a FilterError (check_filter_value), so no engine ever
    sees them. Equality on a float or datetime field is a closed range (the engines match neither by value;
    `2024-03-01` equals `2024-03-01T00:00:00Z`)."""
    if not filters:
        return None
    clauses: list[Condition | FilterSpec] = []
    for key, value in filters.items():
        kind = filter_kind(key, schema)
        clauses.append(_clause(key, kind, check_filter_value(key, value, schema=schema)))
    return FilterSpec(must=tuple(clauses))


def _clause(key: str, kind: str, value: FilterValue) -> Condition | FilterSpec:
    if isinstance(value, dict):
        return Condition(key, range=Range(kind, **value))
    if isinstance(value, list) and len(value) > 1 and any(isinstance(v, bool) for v in value):
        # "any of" takes keywords and integers only (a bool would match the integer 1): one match per value
        return FilterSpec(should=tuple(Condition(key, cast(Match, v)) for v in value))
    if kind not in ("float", "datetime") or value == []:  # [] matches nothing, as a match on no values does
        return Condition(key, cast(Match, value[0] if isinstance(value, list) and len(value) == 1
                                   and isinstance(value[0], bool) else value))
    points = value if isinstance(value, list) else [value]
    ranges = tuple(Condition(key, range=Range(kind, gte=v, lte=v)) for v in points)
    return ranges[0] if len(ranges) == 1 else FilterSpec(should=ranges)


def match_filter(key: str, value: FilterValue) -> FilterSpec:
    """The points whose `key` matches `value` (checked like a user's filter): what a delete selects."""
    spec = build_filter({key: value})
    if spec is None:  # never for one field; a delete without a filter would select every point
        raise StoreError(f"filter field {key!r}: no condition was built from {value!r}")
    return spec


def is_text(value: str) -> bool:
    """Whether a string is valid text (no lone surrogates: the engines refuse those)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(value: str) -> bool:
    """Whether `value` spells a document or chunk id: a UUID in its 36-character form, in either case (the one
    rule for filters, `delete` and the service's paths; braces, `urn:uuid:` and bare hex are not ids)."""
    return _UUID.fullmatch(value) is not None


def _canonical_id(value: object) -> object:
    """A UUID in its stored (lower-case) form; anything else as it is (it matches what it matches)."""
    return value.lower() if isinstance(value, str) and is_uuid(value) else value


def stale_filter(source: str, keep_doc_id: str) -> FilterSpec:
    """The source's points of any other version than `keep_doc_id`."""
    return FilterSpec(must=(Condition(P.SOURCE, source),), must_not=(Condition(P.DOC_ID, keep_doc_id),))


def reuse_filter(source: str, content_hashes: Sequence[str]) -> FilterSpec:
    """The source's points whose chunk text has one of these content hashes."""
    return FilterSpec(must=(Condition(P.SOURCE, source), Condition(P.CONTENT_HASH, list(content_hashes))))
