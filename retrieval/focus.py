"""The `focus` packing strategy: each merged block reduced to one window of whole sentences around its most
relevant sentence, so a tight budget keeps the sentences that answer the question rather than a block's prefix.

Why: a merged block kept as a prefix in document order loses its best chunk whenever that chunk is the block's
second half, and whole blocks spend the budget on sentences far from the question (docs/eval/context.md).

A sentence's relevance is its lexical overlap with the query under the project's German analyzer
(`LexicalScorer`: BM25 term weights of the sentence times an idf over all candidate sentences of this query),
plus a bonus inside the span of the block's best-scored passage, so the retriever's judgement breaks ties.
Packing, when the blocks do not all fit whole:

1. seed: the first `SEEDS` blocks in rank order get their best body sentence (a heading is never a seed)
   while the budget allows;
2. grow: windows take neighbouring sentences one at a time until nothing more fits, by `GROW` policy: `rank`
   grows the best-ranked block until it is whole (towards its more relevant neighbour), then seeds and grows
   the next; `relevance` always takes the most relevant sentence next to any window (or an unplaced block's
   seed). Measured on xquad-de (docs/eval/context.md): `rank` with one seed wins; seeding every block first
   covers more sources but starves the best ones, and `relevance` growth scatters the budget the same way.

Windows are contiguous, in document order, and start and end at sentence bounds (or the block's own ends),
so their citations are exact spans. With a budget that holds every block whole, the result equals `merge`.
The module knows nothing of stores or retrievers: the caller gives the scorer and a `fits` test.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ingest.sentences import sentence_spans
from ingest.sparse import SparseEncoder
from retrieval.schema import Passage


class Block(Protocol):
    """What focus reads of a merged block (retrieval/context.py's Block; not imported: no cycle)."""

    @property
    def passages(self) -> tuple[Passage, ...]: ...
    @property
    def start(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def best(self) -> Passage: ...

Scorer = Callable[[str, Sequence[str]], list[float]]  # (query, sentences) -> relevance of each sentence
Selection = tuple[int, int, int]  # (block index, start, end) with start/end offsets into the block's text
GROW = "rank"  # growth policy: "rank" or "relevance" (docs/eval/context.md compares them)
# Phase 1 seeds the first SEEDS blocks. Seeding all 20 candidates left no room to grow the best ones (xquad-de
# hybrid @512: 0.7630); 2 is the one count never below topk on both sets measured (docs/eval/context.md).
SEEDS = 2
BEST_BONUS = 0.5  # relevance added inside the best passage's span, as a share of the query's best sentence


class LexicalScorer:
    """Relevance of sentences to a query: sum over the query's terms in a sentence of the sentence's BM25 term
    weight times a smoothed idf over the sentences scored together (terms every candidate shares weigh less)."""

    def __init__(self, encoder: SparseEncoder | None = None, cache: int = 1 << 15) -> None:
        self.encoder = encoder or SparseEncoder()
        self._cache: dict[str, dict[int, float]] = {}
        self._limit = cache

    def __call__(self, query: str, sentences: Sequence[str]) -> list[float]:
        terms = set(self.encoder.encode_query(query)[0])
        vectors = [self._vector(s) for s in sentences]
        df = Counter(t for v in vectors for t in v if t in terms)
        n = len(vectors)
        idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        return [sum(w * idf[t] for t, w in v.items() if t in idf) for v in vectors]

    def _vector(self, sentence: str) -> dict[int, float]:
        vector = self._cache.get(sentence)
        if vector is None:
            if len(self._cache) >= self._limit:  # the same candidates recur across budgets: a bounded memo
                self._cache.clear()
            vector = self._cache[sentence] = dict(zip(*self.encoder.encode_document(sentence), strict=True))
        return vector


@dataclass
class _Window:
    index: int  # the block's rank
    units: list[tuple[int, int]]  # sentence spans in the block's text
    relevance: list[float]
    seed: int  # the best body sentence
    length: int  # the block's text length
    lo: int = -1  # first and last sentence of the window; -1: not placed
    hi: int = -1

    def selection(self, lo: int | None = None, hi: int | None = None) -> Selection:
        lo, hi = self.lo if lo is None else lo, self.hi if hi is None else hi
        if lo == 0 and hi == len(self.units) - 1:
            return self.index, 0, self.length  # whole: exactly merge's text
        return self.index, self.units[lo][0], self.units[hi][1]

    def neighbours(self) -> list[int]:
        return [u for u in (self.lo - 1, self.hi + 1) if 0 <= u < len(self.units)]


def focus_windows(query: str, blocks: Sequence[Block], scorer: Scorer,
                  fits: Callable[[list[Selection]], bool], grow: str | None = None) -> list[Selection]:
    """The selections to pack, in rank order: every block whole when that fits, else seeded and grown windows."""
    whole = [(i, 0, len(b.text)) for i, b in enumerate(blocks)]
    if not blocks or fits(whole):
        return whole
    windows = _windows(query, blocks, scorer)
    placed: list[_Window] = []
    for w in windows[:SEEDS]:  # phase 1: one sentence per block, in rank order, while the budget allows
        _place(placed, w, fits)
    if (grow or GROW) == "relevance":
        _grow_by_relevance(placed, windows, fits)
    else:
        _grow_by_rank(placed, windows, fits)
    return _selections(placed)


def _place(placed: list[_Window], w: _Window, fits: Callable[[list[Selection]], bool]) -> bool:
    if not fits(_selections(placed, w, w.seed, w.seed)):
        return False
    w.lo = w.hi = w.seed
    placed.append(w)
    return True


def _selections(placed: list[_Window], trial: _Window | None = None, lo: int = -1, hi: int = -1) -> list[Selection]:
    """The placed windows' selections in rank order, `trial` taken at (lo, hi)."""
    chosen = sorted({id(w): w for w in [*placed, *([trial] if trial else [])]}.values(), key=lambda w: w.index)
    return [w.selection(lo, hi) if w is trial else w.selection() for w in chosen]


def _try(placed: list[_Window], w: _Window, unit: int, fits: Callable[[list[Selection]], bool]) -> bool:
    lo, hi = min(w.lo, unit), max(w.hi, unit)
    if not fits(_selections(placed, w, lo, hi)):
        return False
    w.lo, w.hi = lo, hi
    return True


def _grow_by_rank(placed: list[_Window], windows: list[_Window], fits: Callable[[list[Selection]], bool]) -> None:
    """The best-ranked window grows until it is whole or nothing fits, then the next (placed at its seed first
    when phase 1 left it out); each step takes the more relevant neighbour sentence, else the other one."""
    for w in windows:
        if w.lo < 0 and not _place(placed, w, fits):
            continue
        while True:
            options = sorted(w.neighbours(), key=lambda u: (-w.relevance[u], -u))
            if not any(_try(placed, w, u, fits) for u in options):
                break


def _grow_by_relevance(placed: list[_Window], windows: list[_Window],
                       fits: Callable[[list[Selection]], bool]) -> None:
    """The most relevant sentence next to a window, or seed of an unplaced block, first (ties: the better-ranked
    block); one that does not fit is dropped for good (the windows only grow, so it never fits later)."""
    blocked: set[tuple[int, int]] = set()
    while True:
        options = [(-w.relevance[u], w.index, u, w) for w in windows
                   for u in (w.neighbours() if w.lo >= 0 else [w.seed]) if (w.index, u) not in blocked]
        if not options:
            return
        _, index, unit, w = min(options, key=lambda o: o[:3])
        if not (_try(placed, w, unit, fits) if w.lo >= 0 else _place(placed, w, fits)):
            blocked.add((index, unit))


def _windows(query: str, blocks: Sequence[Block], scorer: Scorer) -> list[_Window]:
    """One window per block that holds body text (headings-only blocks are no source), unplaced."""
    units = [sentence_spans(b.text) or [(0, len(b.text))] for b in blocks]
    scores = scorer(query, [b.text[s:e] for b, spans in zip(blocks, units, strict=True) for s, e in spans])
    top = max(scores, default=0.0) or 1.0
    out, at = [], 0
    for i, (block, spans) in enumerate(zip(blocks, units, strict=True)):
        relevance = scores[at:at + len(spans)]
        at += len(spans)
        best = block.best
        lo, hi = best.start - block.start, best.end - block.start
        relevance = [r + (BEST_BONUS * top if s < hi and e > lo else 0.0) for r, (s, e) in zip(relevance, spans,
                                                                                               strict=True)]
        body = _body_units(block, spans)
        if body:
            seed = max(body, key=lambda u: (relevance[u], -u))
            out.append(_Window(i, spans, relevance, seed, len(block.text)))
    return out


def heading_test(block: Block) -> Callable[[str], bool]:
    """Whether a (stripped) sentence of `block` is a heading: a `#` line or one of its passages' heading path.
    The one rule for what is not body text, for focus windows and for prefix cuts (context.py) alike."""
    headings = {h.strip().lstrip("#").strip() for p in block.passages for h in p.heading_path}
    return lambda sentence: sentence.startswith("#") or sentence.lstrip("#").strip() in headings


def _body_units(block: Block, spans: list[tuple[int, int]]) -> list[int]:
    """Sentences that are not headings."""
    is_heading = heading_test(block)
    out = []
    for u, (s, e) in enumerate(spans):
        sentence = block.text[s:e].strip()
        if sentence and not is_heading(sentence):
            out.append(u)
    return out
