"""Which characters of a passage match a query, by the German BM25 analyzer that ranked it (ingest/sparse.py).

A word of the passage matches when one of its index terms is one of the query's: its own term (a stem:
`Kündigungsfristen` matches the query `Kündigungsfrist`) marks the whole word; only a compound part's term
(`Gericht` in `Bundesverfassungsgericht`) marks that part of the word. The spans are character offsets into
the passage text as given, so the page can mark them with DOM nodes and never parse text as HTML.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from ingest.sparse import GermanAnalyzer, SparseEncoder, fold_word

_WORD = re.compile(r"[^\W_]+(?:[-\u2010\u2011][^\W_]+)*")  # the analyzer's words (ingest/sparse.py _WORD)
_PIECE = re.compile(r"[^\W_]+")
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
Span = tuple[int, int]


def query_terms(encoder: SparseEncoder, query: str) -> frozenset[str]:
    """The query's index terms as the BM25 leg searches them: the analyzer's, plus abbreviation expansions."""
    terms = set(encoder.analyzer.analyze(query))
    if encoder.expander is not None:
        terms.update(encoder.expander.expand(query))
    return frozenset(terms)


def match_spans(analyzer: GermanAnalyzer, terms: frozenset[str], text: str) -> list[Span]:
    """Sorted, non-overlapping (start, end) character spans of `text` whose index terms are among `terms`."""
    spans: list[Span] = []
    if not terms:
        return spans
    for group in _WORD.finditer(text):
        pieces = list(_PIECE.finditer(group.group()))
        if len(pieces) > 1 and _own_term(analyzer, "".join(p.group() for p in pieces)) in terms:
            spans.append(group.span())  # `E-Mail` for the query `Email`
            continue
        for piece in pieces:
            start = group.start() + piece.start()
            spans.extend((start + s, start + e) for s, e in _word_spans(analyzer, terms, piece.group()))
    return _merged(spans)


def _own_term(analyzer: GermanAnalyzer, word: str) -> str | None:
    tokens = analyzer.analyze(word)
    return tokens[0] if tokens else None


def _word_spans(analyzer: GermanAnalyzer, terms: frozenset[str], word: str) -> list[Span]:
    """Spans inside one word: the whole word for its own term, else the parts whose terms match."""
    tokens = analyzer.analyze(word)
    if not tokens:
        return []
    if tokens[0] in terms:
        return [(0, len(word))]
    if not any(t in terms for t in tokens[1:]):
        return []
    return _part_spans(analyzer, terms, word)


def _part_spans(analyzer: GermanAnalyzer, terms: frozenset[str], word: str) -> list[Span]:
    """Where the matching compound parts lie in `word`: found in its folded spelling, mapped back char by char.
    A part that cannot be placed (a spelling fold changed the letters) marks the whole word."""
    folded, origin = _fold_map(word)
    splitter = analyzer.splitter if analyzer.splitter is not None else _default_splitter()
    spans, cursor = [], 0
    for part in splitter.split_variants(fold_word(word), analyzer.min_part):
        at = folded.find(part, cursor)
        if at < 0:
            at = folded.find(part)
        term = analyzer.analyze(part)
        if not term or term[0] not in terms:
            continue
        if at < 0:
            return [(0, len(word))]
        spans.append((origin[at], origin[at + len(part) - 1] + 1))
        cursor = at + len(part)
    return spans or [(0, len(word))]


def _fold_map(word: str) -> tuple[str, list[int]]:
    """`word` folded one character at a time (casefold, umlauts spelled out), and for each folded character
    the index of the character it came from."""
    folded: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(word):
        out = unicodedata.normalize("NFKC", ch).casefold().translate(_FOLD)
        folded.append(out)
        origin.extend([i] * len(out))
    return "".join(folded), origin


def _default_splitter():
    from ingest.sparse import default_splitter

    return default_splitter()


def _merged(spans: Iterable[Span]) -> list[Span]:
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def highlight(encoder: SparseEncoder, query: str, texts: Sequence[str]) -> tuple[list[str], list[list[Span]]]:
    """(the query's terms, sorted; per text its matching spans)."""
    terms = query_terms(encoder, query)
    return sorted(terms), [match_spans(encoder.analyzer, terms, t) for t in texts]
