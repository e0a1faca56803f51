"""Context expansion: a passage with N chunks before and after it, merged by span.

Chunks of a document cover all of its non-whitespace text in order (they may overlap), so two
neighbouring chunks either overlap or are separated by whitespace only; the merged text keeps every
character of the chunks, with the gap between non-overlapping chunks shown as a blank line (a gap of two or
more characters) or a space (one). The gap keeps its length, so the merged text maps 1:1 onto its span:
`text[i]` is the document's character `start + i` wherever that is not whitespace (context packing cuts a
merged block and cites `start + len(kept)` as its exact end).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from ingest.schema import P
from retrieval.schema import Passage


class ChunkSource(Protocol):
    def fetch_chunks(self, doc_id: str, indices: Sequence[int]) -> list[dict]: ...


def merge_spans(pieces: Sequence[tuple[int, int, str]]) -> tuple[int, int, str]:
    """Merge (start, end, text) pieces of one document into one span and its text."""
    ordered = sorted(pieces)
    start, end, text = ordered[0]
    for s, e, t in ordered[1:]:
        if e <= end:
            continue  # contained in what we have
        if s < end:
            text += t[end - s :]
        else:
            text += "\n" * (s - end) if s - end >= 2 else " " * (s - end)  # same length: offsets stay exact
            text += t
        end = e
    return start, end, text


class NeighbourExpander:
    """Adds `window` chunks on each side and merges passages of one document that touch."""

    def __init__(self, chunks: ChunkSource) -> None:
        self.chunks = chunks

    def expand(self, passages: Sequence[Passage], window: int = 1) -> list[Passage]:
        if window <= 0:
            return list(passages)
        return _merge_touching([self._grow(p, window) for p in passages])

    def _grow(self, passage: Passage, window: int) -> Passage:
        wanted = range(max(0, passage.chunk_index - window), passage.chunk_index + window + 1)
        payloads = self.chunks.fetch_chunks(passage.doc_id, list(wanted))
        pieces = [(int(p[P.START]), int(p[P.END]), p[P.TEXT]) for p in payloads]
        pieces.append((passage.start, passage.end, passage.text))
        start, end, text = merge_spans(pieces)
        held = {p[P.CHUNK_ID]: (p[P.CHUNK_ID], int(p[P.START]), int(p[P.END])) for p in payloads}
        held.update({c: (c, s, e) for c, s, e in passage.chunk_spans()})
        return replace(passage, start=start, end=end, text=text, pieces=_ordered(held.values()))


def _merge_touching(passages: list[Passage]) -> list[Passage]:
    """Passages of the same document whose spans overlap become one, at the better one's rank."""
    out: list[Passage] = []
    for p in passages:
        for i, q in enumerate(out):
            if q.doc_id == p.doc_id and p.start <= q.end and q.start <= p.end:
                start, end, text = merge_spans([(q.start, q.end, q.text), (p.start, p.end, p.text)])
                out[i] = replace(q, start=start, end=end, text=text,
                                 pieces=_ordered({*q.chunk_spans(), *p.chunk_spans()}))
                break
        else:
            out.append(p)
    return out


def _ordered(spans: Iterable[tuple[str, int, int]]) -> tuple[tuple[str, int, int], ...]:
    """(chunk_id, start, end) pieces once each, in document order."""
    return tuple(sorted(set(spans), key=lambda piece: (piece[1], piece[2], piece[0])))
