"""Validation of what a caller sends: one place, one error type, messages that name the field."""

from __future__ import annotations

import unicodedata

from retrieval.schema import RetrievalError

MAX_TOP_K = 100
MAX_QUERY_CHARS = 16_000  # far above any model limit; guards memory, not tokens


def check_query(query: str) -> str:
    """Return the query stripped; empty or control-character-only queries are an error."""
    if not isinstance(query, str):
        raise RetrievalError("query: must be a string")
    cleaned = "".join(ch for ch in query if unicodedata.category(ch) != "Cc" or ch in "\n\t").strip()
    if not cleaned:
        raise RetrievalError("query: must not be empty")
    if len(cleaned) > MAX_QUERY_CHARS:
        raise RetrievalError(f"query: {len(cleaned)} characters, more than the {MAX_QUERY_CHARS} allowed")
    return cleaned


def check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise RetrievalError(f"top_k: must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
    return top_k
