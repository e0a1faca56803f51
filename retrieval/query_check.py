"""Validation of what a caller sends: one place, one error type, messages that name the field."""

from __future__ import annotations

import unicodedata

from retrieval.schema import EmptyQueryError, QueryError

MAX_TOP_K = 100
MAX_QUERY_CHARS = 16_000  # far above any model limit; guards memory, not tokens
MAX_EXPAND = 5  # neighbour chunks on each side of a passage


# Characters that show nothing although Unicode does not class them as space, control or format: Hangul
# fillers, Khmer inherent vowels, the braille blank (Default_Ignorable_Code_Point and look-alikes).
_BLANK_LOOKALIKES = frozenset("\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing: only whitespace, controls, format characters (U+200B, U+FEFF),
    lone combining marks and variation selectors (U+034F, U+FE0F) or blank look-alikes (U+3164).
    Such a query asks for nothing, though a retriever would still rank something."""
    return all(ch.isspace() or ch in _BLANK_LOOKALIKES or unicodedata.category(ch) in _INVISIBLE_CATEGORIES
               for ch in text)


def check_query(query: str) -> str:
    """Return the query stripped; a query that is not text, shows nothing or is too long is a QueryError."""
    if not isinstance(query, str):
        raise QueryError("query: must be a string")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:  # a command-line argument whose bytes are not UTF-8
        raise QueryError("query: not valid UTF-8 text (undecodable bytes)") from exc
    if is_blank(query):
        raise EmptyQueryError("query: must not be empty (it has only spaces, control, format or invisible "
                              "characters)")
    cleaned = "".join(ch for ch in query if unicodedata.category(ch) != "Cc" or ch in "\n\t").strip()
    if len(cleaned) > MAX_QUERY_CHARS:
        raise QueryError(f"query: {len(cleaned)} characters, more than the {MAX_QUERY_CHARS} allowed")
    return cleaned


def check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise QueryError(f"top_k: must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
    return top_k


def check_expand(expand: int) -> int:
    """Neighbour chunks on each side: 0 to MAX_EXPAND (the retriever; the CLI names its flag around it)."""
    if isinstance(expand, bool) or not isinstance(expand, int) or not 0 <= expand <= MAX_EXPAND:
        raise QueryError(f"expand: must be from 0 to {MAX_EXPAND} neighbour chunks, got {expand!r}")
    return expand


def check_mmr(mmr: float) -> float:
    """An MMR lambda: 0 to 1 (1 = relevance only)."""
    if isinstance(mmr, bool) or not isinstance(mmr, int | float) or not 0.0 <= mmr <= 1.0:
        raise QueryError(f"mmr: lambda must be from 0 to 1, got {mmr!r}")
    return mmr
