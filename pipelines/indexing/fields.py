"""A document's fields in the payload: what users filter on, the same on every chunk of the document.

    from the parser (ingest/doc_meta.py): title, author, file_type, file_size, pages, language, date, date_phrase
    from the file system: modified (the file's mtime when these bytes were ingested, ISO 8601 UTC)
    from OCR (ingest/ocr.py): ocr (true where some text was read by OCR), ocr_pages ({page: confidence})
    user metadata, payload `meta`: front matter < the run's `--meta` / upload form fields < the file's sidecar

User metadata is part of a document's identity (its hash joins the file hash in the document id): a changed
sidecar or `--meta` re-ingests the file, and since its chunk texts are unchanged every vector is reused, so
the payload changes without a model call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ingest.errors import InputError
from ingest.meta_fields import NO_FIELDS, MetaFieldError, MetaScalar, MetaSchema
from ingest.schema import P

Scalar = MetaScalar
MAX_META_KEYS = 64
_COPIED = (P.TITLE, P.AUTHOR, P.PAGES, P.LANGUAGE, P.DATE, P.DATE_PHRASE)


class MetaValueError(InputError, ValueError):
    """User metadata of a file or a run that cannot be stored (ingest/meta_fields.py's rule: a key that is not a
    plain name, a list or object as a value, a value not of its declared kind, too many keys): the message names
    where it came from (a sidecar, --meta, the upload's meta field) and the key. An input error: that file fails."""


def user_meta(raw: Mapping[Any, Any], where: str, schema: MetaSchema = NO_FIELDS) -> dict[str, Scalar]:
    """User metadata as stored: every key checked and every value parsed by `schema` (declared kinds; a null
    leaves its key out)."""
    if len(raw) > MAX_META_KEYS:
        raise MetaValueError(f"{where}: {len(raw)} keys; at most {MAX_META_KEYS}")
    try:
        return schema.values(raw)
    except MetaFieldError as exc:
        raise MetaValueError(f"{where}: {exc}") from exc


def meta_hash(meta: Mapping[str, Scalar]) -> str:
    """A stable hash of user metadata ("" for none, so documents without any keep their ids)."""
    if not meta:
        return ""
    text = json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def document_fields(parsed: Mapping[str, Any], user: Mapping[str, Scalar], mtime_ns: int, digest: str,
                    schema: MetaSchema = NO_FIELDS) -> dict:
    """The payload fields of a document from its parser metadata, its user metadata and its file's mtime."""
    out: dict[str, Any] = {key: parsed[key] for key in _COPIED if parsed.get(key) not in (None, "")}
    if parsed.get("file_type"):
        out[P.FILE_TYPE] = parsed["file_type"]
    if isinstance(parsed.get("bytes"), int):
        out[P.FILE_SIZE] = parsed["bytes"]
    out[P.MODIFIED] = datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
    if parsed.get("ocr"):
        out[P.OCR] = True
        out[P.OCR_PAGES] = dict(parsed.get("ocr_pages") or {})
    front = parsed.get("front_matter") or {}
    meta = {**_front_matter(front, schema), **user}
    if meta:
        out[P.META] = meta
    if digest:
        out[P.META_HASH] = digest
    return out


def ocr_summary(parsed: Mapping[str, Any], min_confidence: float) -> tuple[int, list[int], dict[str, str]]:
    """(OCR'd pages, the pages below `min_confidence`, page problems) of a parsed document, for its report."""
    pages = {int(k): float(v) for k, v in (parsed.get("ocr_pages") or {}).items()}
    low = sorted(page for page, conf in pages.items() if conf < min_confidence)
    return len(pages), low, {str(k): str(v) for k, v in (parsed.get("ocr_problems") or {}).items()}


def _front_matter(front: Mapping[str, Any], schema: MetaSchema) -> dict[str, Scalar]:
    """Front matter scalars whose keys can be payload paths (others are left out: they stay in no field)."""
    out: dict[str, Scalar] = {}
    for key, value in list(front.items())[:MAX_META_KEYS]:
        try:
            out.update(user_meta({key: value}, "front matter", schema))
        except MetaValueError:
            continue  # a list, a nested map, a key with a space: front matter is the author's, not an error
    return out

