"""A document's fields in the payload: what users filter on, the same on every chunk of the document.

    from the parser (ingest/doc_meta.py): title, author, file_type, file_size, pages, language, date, date_phrase
    from the file system: modified (the file's mtime when these bytes were ingested, ISO 8601 UTC)
    user metadata, payload `meta`: front matter < the run's `--meta` / upload form fields < the file's sidecar

User metadata is part of a document's identity (its hash joins the file hash in the document id): a changed
sidecar or `--meta` re-ingests the file, and since its chunk texts are unchanged every vector is reused, so
the payload changes without a model call.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ingest.errors import InputError
from ingest.schema import P

Scalar = str | int | float | bool
MAX_META_KEYS = 64
MAX_META_CHARS = 2048  # per string value
# Letters (any script), digits, `_` and `-`: a key is a payload path `meta.KEY`, so no dots, no spaces
_KEY = re.compile(r"[^\W_][\w-]{0,63}")
_COPIED = (P.TITLE, P.AUTHOR, P.PAGES, P.LANGUAGE, P.DATE, P.DATE_PHRASE)


class MetaValueError(InputError, ValueError):
    """User metadata that cannot be stored (a key that is not a plain name, a list or object as a value, too
    many keys, too long a text): the message names where it came from and the key."""


def check_meta_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise MetaValueError(f"{where}: key {key!r} must be 1-64 letters, digits, '_' or '-', starting with a "
                             "letter or digit")
    return key


def user_meta(raw: Mapping[Any, Any], where: str) -> dict[str, Scalar]:
    """User metadata checked: plain keys, scalar values (strings, numbers, booleans; dates as ISO text)."""
    if len(raw) > MAX_META_KEYS:
        raise MetaValueError(f"{where}: {len(raw)} keys; at most {MAX_META_KEYS}")
    out: dict[str, Scalar] = {}
    for key, value in raw.items():
        check_meta_key(key, where)
        if hasattr(value, "isoformat") and not isinstance(value, str):  # a YAML date
            value = value.isoformat()
        if isinstance(value, float) and not math.isfinite(value):
            raise MetaValueError(f"{where}: {key}: {value} is not a finite number")
        if not isinstance(value, str | int | float | bool):
            raise MetaValueError(f"{where}: {key}: a value must be a string, number or boolean, not "
                                 f"{type(value).__name__}")
        if isinstance(value, str) and (len(value) > MAX_META_CHARS or not _is_text(value)):
            raise MetaValueError(f"{where}: {key}: text must be valid UTF-8 of at most {MAX_META_CHARS} characters")
        out[key] = value
    return out


def meta_hash(meta: Mapping[str, Scalar]) -> str:
    """A stable hash of user metadata ("" for none, so documents without any keep their ids)."""
    if not meta:
        return ""
    text = json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def document_fields(parsed: Mapping[str, Any], user: Mapping[str, Scalar], mtime_ns: int, digest: str) -> dict:
    """The payload fields of a document from its parser metadata, its user metadata and its file's mtime."""
    out: dict[str, Any] = {key: parsed[key] for key in _COPIED if parsed.get(key) not in (None, "")}
    if parsed.get("file_type"):
        out[P.FILE_TYPE] = parsed["file_type"]
    if isinstance(parsed.get("bytes"), int):
        out[P.FILE_SIZE] = parsed["bytes"]
    out[P.MODIFIED] = datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
    front = parsed.get("front_matter") or {}
    meta = {**_front_matter(front), **user}
    if meta:
        out[P.META] = meta
    if digest:
        out[P.META_HASH] = digest
    return out


def _front_matter(front: Mapping[str, Any]) -> dict[str, Scalar]:
    """Front matter scalars whose keys can be payload paths (others are left out: they stay in no field)."""
    out: dict[str, Scalar] = {}
    for key, value in list(front.items())[:MAX_META_KEYS]:
        try:
            out.update(user_meta({key: value}, "front matter"))
        except MetaValueError:
            continue  # a list, a nested map, a key with a space: front matter is the author's, not an error
    return out


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
