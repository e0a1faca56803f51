"""The one neutral filter spec that every read and delete is built from, validated once.

`check_filter_value` is the one rule for a user's `{field: value or [values]}` (fields, types, integer
range, text), called by `build_filter` and by the CLI and the service before a request starts; each
engine translates the spec into its own filter (qdrant.py: qdrant-client models; edge_convert.py:
qdrant-edge). Nothing here imports an engine's client library, so a command that only reads the edge
engine (an unchanged re-ingest, verify, a BM25 query) never pays for importing qdrant-client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ingest.errors import UsageError
from ingest.schema import FILTER_FIELDS, P, StoreError

FilterValue = str | int | bool | list[str] | list[int]


@dataclass(frozen=True)
class Condition:
    """`key` equals `value`, or (a list) equals any of its values; with `empty`, the field is missing, null or
    an empty list (`value` is then unused)."""

    key: str
    value: FilterValue = ""
    empty: bool = False


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


def filter_kind(key: object) -> str:
    """The payload type ("keyword" or "integer") of a filterable field; any other field is a FilterError."""
    if not isinstance(key, str) or key not in FILTER_FIELDS:
        raise FilterError(f"filter field {_shown(key)} is not filterable (allowed: {sorted(FILTER_FIELDS)})")
    return FILTER_FIELDS[key]


def check_filter_integer(key: str, value: object) -> int:
    """`value` as a filter integer for field `key`, or a FilterError naming the field and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FilterError(f"filter field {key!r} needs an integer, got {_shown(value)}")
    if not INTEGER_MIN <= value <= INTEGER_MAX:
        # str() of a huge integer is itself an error (Python's 4300-digit limit): describe it by size
        shown = str(value) if value.bit_length() <= 128 else f"an integer of {value.bit_length()} bits"
        raise FilterError(f"filter field {key!r}: {shown} is out of range ({INTEGER_MIN} to {INTEGER_MAX})")
    return value


def check_filter_value(key: str, value: object, *, ids: bool = False) -> FilterValue:
    """The one rule for one filter entry `{key: value or [values]}` (build_filter, the CLI's --filter, the
    service's request body): a filterable field, values of its type, integers in the engines' range,
    strings that are valid text. `ids`: a doc_id must spell a UUID (what a user names a document by; the
    store itself matches any keyword). Returns the value as the store matches it (doc ids lower-cased)."""
    kind = filter_kind(key)
    values = value if isinstance(value, list) else [value]
    for v in values:
        if kind == "integer":
            check_filter_integer(key, v)
        elif not isinstance(v, str):
            raise FilterError(f"filter field {key!r} needs a string, got {_shown(v)}")
        elif not is_text(v):  # the engines refuse lone surrogates (a 500 before)
            raise FilterError(f"filter field {key!r}: {_shown(v)} is not valid text (undecodable bytes)")
        elif ids and key == P.DOC_ID and not is_uuid(v):
            raise FilterError(f"filter field {key!r}: {_shown(v)} is not a document id (a UUID)")
    if key == P.DOC_ID:  # ids are stored as lower-case UUIDs; an upper-case spelling means the same one
        return cast(FilterValue, [_canonical_id(v) for v in values] if isinstance(value, list)
                    else _canonical_id(value))
    return cast(FilterValue, list(values) if isinstance(value, list) else value)


def build_filter(filters: dict[str, FilterValue] | None) -> FilterSpec | None:
    """Turn `{field: value or [values]}` into a FilterSpec; unknown fields, wrong types and integers
    outside INTEGER_MIN..INTEGER_MAX are a FilterError (check_filter_value), so no engine ever sees them."""
    if not filters:
        return None
    return FilterSpec(must=tuple(Condition(key, check_filter_value(key, value)) for key, value in filters.items()))


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
