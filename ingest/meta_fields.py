"""User metadata fields (front matter, sidecars, `--meta KEY=VALUE`, upload form fields) and their declared types.

A user field `projekt` is stored under the payload object `meta` (payload path `meta.projekt`). Settings may
declare a field's kind (`[meta_fields] projekt = "keyword"`, `datum = "datetime"`): its values are then parsed
and stored as that kind, the store keeps a payload index on `meta.KEY` with it, and filters on it may use
ranges (integer, float, datetime). An undeclared field keeps what it was given: a string stays a string, a
JSON number or bool stays as it is, and a filter treats it as a keyword.

Nothing here imports the store: `ingest/store/filters.py` asks a MetaSchema what kind a `meta.KEY` filter has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ingest.errors import UsageError

META_KINDS = ("keyword", "integer", "float", "datetime", "bool")
MetaScalar = str | int | float | bool

# Letters (any script: `größe`), digits, '_' and '-': what Qdrant's JSON paths take unquoted. No dots, so
# `meta.KEY` is always one nested key and never a path into something deeper.
_KEY = re.compile(r"[\w-]+")
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 1000  # a value is copied onto every chunk of its document: a label, not a text
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what the engines store as an integer
_TRUE, _FALSE = {"true", "ja", "1"}, {"false", "nein", "0"}
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")  # German "3,5"


class MetaFieldError(UsageError, ValueError):
    """A user metadata key or value that cannot be stored (a bad key, a value not of the declared kind, a list).
    A ValueError too, so settings and request validators may call the checks."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def check_key(key: object) -> str:
    """The one rule for a user metadata key (settings, sidecars, --meta, form fields, `meta.KEY` filters):
    1-64 letters, digits, '_' or '-'."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS or not _KEY.fullmatch(key):
        raise MetaFieldError(f"meta field {_shown(key)}: a key has 1-{MAX_KEY_CHARS} letters, digits, '_' or '-' "
                             "(no dots or spaces)")
    return key


def check_kind(key: str, kind: object) -> str:
    if kind not in META_KINDS:
        raise MetaFieldError(f"meta field {key!r}: kind {_shown(kind)} is not one of {list(META_KINDS)}")
    return str(kind)


@dataclass(frozen=True)
class MetaSchema:
    """The declared user fields, key -> kind (sorted by key). Undeclared keys are keywords to a filter."""

    declared: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        pairs = tuple(sorted((check_key(k), check_kind(k, v)) for k, v in self.declared))
        object.__setattr__(self, "declared", pairs)

    @classmethod
    def of(cls, mapping: Mapping[str, str] | None) -> MetaSchema:
        """A schema from `{key: kind}` (settings' `meta_fields`); a bad key or kind is a MetaFieldError naming it."""
        return cls(tuple((mapping or {}).items()))

    def as_dict(self) -> dict[str, str]:
        return dict(self.declared)

    @staticmethod
    def check_key(key: object) -> str:
        return check_key(key)

    def kind(self, key: str) -> str:
        """The kind a filter on `meta.KEY` has: the declared one, else keyword."""
        return self.as_dict().get(check_key(key), "keyword")

    def is_declared(self, key: str) -> bool:
        return key in self.as_dict()

    def value(self, key: str, raw: object) -> MetaScalar:
        """`raw` (a JSON scalar from a sidecar or front matter, a string from --meta or a form field) as the
        scalar stored under `meta.KEY`: parsed into the declared kind, or kept as it is where undeclared."""
        check_key(key)
        if raw is None or isinstance(raw, (list, tuple, dict, set)):
            what = "no value (null)" if raw is None else f"a {type(raw).__name__}"
            raise MetaFieldError(f"meta field {key!r}: {what} is not a value; give one string, number, bool or date")
        declared = self.as_dict().get(key)
        if declared is None:
            return _undeclared(key, raw)
        return _PARSERS[declared](key, raw)

    def values(self, mapping: Mapping[str, object]) -> dict[str, MetaScalar]:
        """Every field of `mapping` as `value` stores it; a null leaves the field out (JSON's "not set")."""
        return {key: self.value(key, raw) for key, raw in mapping.items() if raw is not None}


NO_FIELDS = MetaSchema()


def _text(key: str, raw: str) -> str:
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise MetaFieldError(f"meta field {key!r}: {_shown(raw)} is not valid text (undecodable bytes)") from None
    if len(raw) > MAX_VALUE_CHARS:
        raise MetaFieldError(f"meta field {key!r}: {len(raw)} characters, at most {MAX_VALUE_CHARS}")
    return raw


def _undeclared(key: str, raw: object) -> MetaScalar:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return _integer(key, raw)
    if isinstance(raw, float):
        return _float(key, raw)
    if isinstance(raw, (date, datetime)):  # a YAML sidecar's dates: kept as their ISO text
        return _datetime(key, raw)
    if isinstance(raw, str):
        return _text(key, raw)
    raise MetaFieldError(f"meta field {key!r}: {_shown(raw)} is not a string, number, bool or date")


def _keyword(key: str, raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):  # a sidecar's `"projekt": 42` matches the filter `meta.projekt=42`
        return str(raw)
    if isinstance(raw, (date, datetime)):
        return raw.isoformat()
    if isinstance(raw, str):
        return _text(key, raw)
    raise MetaFieldError(f"meta field {key!r} (keyword): {_shown(raw)} is not a string")


def _integer(key: str, raw: object) -> int:
    value: int | None = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif ((isinstance(raw, float) and raw.is_integer())
          or (isinstance(raw, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,20}\s*", raw))):  # ASCII digits: no '²'
        value = int(raw)
    if value is None:
        raise MetaFieldError(f"meta field {key!r} (integer): {_shown(raw)} is not an integer")
    if not INT_MIN <= value <= INT_MAX:
        raise MetaFieldError(f"meta field {key!r} (integer): {value} is out of range ({INT_MIN} to {INT_MAX})")
    return value


def _float(key: str, raw: object) -> float:
    value: float | None = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str) and len(raw) <= 64:
        text = raw.strip()
        text = text.replace(",", ".") if _DECIMAL_COMMA.fullmatch(text) else text
        try:
            value = float(text) if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text) else None
        except ValueError:
            value = None
    if value is None or not math.isfinite(value):
        raise MetaFieldError(f"meta field {key!r} (float): {_shown(raw)} is not a finite number")
    return value


def _datetime(key: str, raw: object) -> str:
    """An ISO date stays `YYYY-MM-DD` (both engines' datetime ranges read it as midnight UTC); a datetime becomes
    UTC ISO 8601 with `Z` (a time without an offset is taken as UTC, as the engines take it)."""
    if isinstance(raw, datetime):
        return _utc(key, raw)
    if isinstance(raw, date):
        return raw.isoformat()
    text = raw.strip() if isinstance(raw, str) else ""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.,+\-Zz ]*)?", text):
        raise MetaFieldError(f"meta field {key!r} (datetime): {_shown(raw)} is not an ISO date "
                             "(YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM])")
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        return _utc(key, datetime.fromisoformat(text.replace("z", "Z")))
    except ValueError:
        raise MetaFieldError(f"meta field {key!r} (datetime): {_shown(raw)} is not a valid date") from None


def _utc(key: str, moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:  # year 1 with a positive offset
        raise MetaFieldError(f"meta field {key!r} (datetime): {moment.isoformat()} is out of range") from None


def _bool(key: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    raise MetaFieldError(f"meta field {key!r} (bool): {_shown(raw)} is not one of true/false, ja/nein, 1/0")


_PARSERS: dict[str, Callable[[str, object], MetaScalar]] = {
    "keyword": _keyword, "integer": _integer, "float": _float, "datetime": _datetime, "bool": _bool}


def parse_bool(key: str, raw: object) -> bool:
    """true/false, ja/nein, 1/0 (any case) or a bool: the rule of a declared bool field; filters use it for the
    bool document fields (`ocr`) too."""
    return _bool(key, raw)


def parse_datetime(key: str, raw: object) -> str:
    """An ISO date or datetime as stored and compared (the rule of a declared datetime field; filters use it for
    the datetime document fields too)."""
    return _datetime(key, raw)
