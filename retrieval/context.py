"""Context for a generator: retrieved passages merged by span, numbered as sources, packed into a token budget.

A generator receives one text: blocks `[1] header` + passage text, in the rank of their best passage. Chunks
of one document that overlap or touch become one block (its text in document order, exact offsets kept), so
a model never reads the same sentence twice. Tokens are counted with the generator's tokenizer when one is
given (retrieval/tokens.py), else with a conservative estimate; the packed text (with the QA prompt around
it, when asked for) never exceeds the budget by that count. A block that does not fit whole is cut at a
sentence end (ingest/sentences.py), never inside a word, and only where some body text is kept (a heading
alone is no source); its citation then ends exactly where the kept text ends.

Strategies (setting `context_strategy`, or per call): `topk` one block per chunk as retrieved; `merge` chunks
of one document merged by span; `expand` the retriever's neighbour expansion (one chunk each side), then
merged; `mmr` the retriever's MMR re-ordering of the candidates, then merged; `focus` merged, then each block reduced
to one window of whole sentences around its most relevant sentence (retrieval/focus.py). docs/eval/context.md
compares them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ingest.sentences import sentence_spans
from ingest.sparse import SparseEncoder
from retrieval.expand import merge_spans
from retrieval.focus import LexicalScorer, Scorer, Selection, focus_windows, heading_test
from retrieval.prompt import PromptTemplate
from retrieval.relevance import keep_relevant
from retrieval.schema import Passage, QueryError, Retriever
from retrieval.tokens import TokenCounter

STRATEGIES = ("topk", "merge", "expand", "mmr", "focus")
DEFAULT_STRATEGY = "focus"  # best across sets and modes by docs/eval/context.md
EXPAND_WINDOW = 1  # neighbour chunks on each side for `expand` (setting `expand` when it is above 0)
MMR_LAMBDA = 0.7  # MMR's relevance weight for `mmr` (setting `mmr` when set)


class BudgetError(QueryError):
    """The token budget cannot hold even one source header: a request to fix (CLI exit 2, HTTP 4xx)."""


@dataclass(frozen=True)
class Citation:
    """One numbered source of a packed context: where its text comes from, exactly."""

    number: int
    source: str
    doc_id: str
    title: str | None
    page: int | None
    heading_path: tuple[str, ...]
    start: int  # character span in the document's text (after normalisation, as stored)
    end: int
    chunk_ids: tuple[str, ...]
    score: float  # the best retrieval score among its chunks
    cut: bool = False  # the block was cut at a sentence end to fit the budget
    document: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """The header line a generator reads before the block: number, source, title, § path, page."""
        parts = [f"[{self.number}] {self.source}"]
        if self.title:
            parts.append(self.title)
        if self.heading_path:
            parts.append(" > ".join(self.heading_path))
        if self.page is not None:
            parts.append(f"S. {self.page}")
        return " · ".join(parts)

    def to_dict(self) -> dict:
        return {"number": self.number, "source": self.source, "doc_id": self.doc_id, "title": self.title,
                "page": self.page, "heading_path": list(self.heading_path), "start": self.start, "end": self.end,
                "chunk_ids": list(self.chunk_ids), "score": self.score, "cut": self.cut,
                "document": dict(self.document)}


@dataclass(frozen=True)
class PackedContext:
    """The context text, its citations, and the tokens it takes (counted on the final text)."""

    query: str
    text: str
    citations: tuple[Citation, ...]
    tokens: int
    budget: int
    tokenizer: str
    strategy: str
    prompt: str | None = None  # the filled QA template, when one was asked for (its tokens are in `tokens`)
    context_tokens: int = 0  # the tokens of `text` alone (== `tokens` without a prompt)
    abstained: bool = False  # min_relevance refused every passage: the collection holds no answer it trusts

    def to_dict(self) -> dict:
        return {"query": self.query, "text": self.text, "citations": [c.to_dict() for c in self.citations],
                "tokens": self.tokens, "budget": self.budget, "tokenizer": self.tokenizer,
                "strategy": self.strategy, "prompt": self.prompt, "context_tokens": self.context_tokens,
                "abstained": self.abstained}


@dataclass(frozen=True)
class Block:
    """Passages of one document merged into one span (before numbering)."""

    passages: tuple[Passage, ...]
    start: int
    end: int
    text: str

    @property
    def best(self) -> Passage:
        return max(self.passages, key=lambda p: p.score)


def blocks_of(passages: Sequence[Passage], merge: bool = True) -> list[Block]:
    """Blocks in the order of their best passage. With `merge`, passages of one document whose spans overlap
    or whose chunks are neighbours become one block (merged in document order)."""
    blocks: list[Block] = []
    for p in passages:  # passages arrive best first; a block keeps the rank of its first passage
        for i, b in enumerate(blocks):
            if merge and _touches(b, p):
                start, end, text = merge_spans([(b.start, b.end, b.text), (p.start, p.end, p.text)])
                blocks[i] = Block((*b.passages, p), start, end, text)
                break
        else:
            blocks.append(Block((p,), p.start, p.end, p.text))
    return _merge_bridged(blocks) if merge else blocks


def _touches(block: Block, p: Passage) -> bool:
    if block.passages[0].doc_id != p.doc_id:
        return False
    if p.start <= block.end and block.start <= p.end:
        return True
    indices = {q.chunk_index for q in block.passages}
    return p.chunk_index - 1 in indices or p.chunk_index + 1 in indices


def _merge_bridged(blocks: list[Block]) -> list[Block]:
    """A passage that joins two earlier blocks of one document makes them one block (at the better rank)."""
    out: list[Block] = []
    for b in blocks:
        for i, o in enumerate(out):
            if any(_touches(o, p) for p in b.passages):
                start, end, text = merge_spans([(o.start, o.end, o.text), (b.start, b.end, b.text)])
                out[i] = Block(o.passages + b.passages, start, end, text)
                break
        else:
            out.append(b)
    return out


class ContextPacker:
    """Packs passages into a budget counted by `counter`; with a `template`, the filled prompt must fit."""

    def __init__(self, counter: TokenCounter, strategy: str = DEFAULT_STRATEGY, scorer: Scorer | None = None) -> None:
        """`scorer` rates sentences for `focus` (default: the German analyzer's lexical overlap; give the
        retriever's own encoder's, `LexicalScorer(retriever.encoder)`, so both analyze alike)."""
        if strategy not in STRATEGIES:
            raise QueryError(f"strategy: {strategy!r} is not one of {list(STRATEGIES)}")
        self.counter, self.strategy, self.scorer = counter, strategy, scorer

    def pack(self, query: str, passages: Sequence[Passage], budget: int,
             template: PromptTemplate | None = None) -> PackedContext:
        """The best blocks that fit `budget` tokens, in rank order; a block that does not fit whole is cut at
        a sentence end or left out (a later, shorter one may still fit)."""
        blocks = blocks_of(passages, merge=self.strategy != "topk")
        render = (lambda text: template.fill(text, query)) if template else (lambda text: text)
        self._check_budget(blocks, budget, render)
        if self.strategy == "focus":
            return self._pack_focus(query, blocks, budget, render, template is not None)
        parts: list[str] = []
        citations: list[Citation] = []
        for block in blocks:
            citation = _citation(len(citations) + 1, block)
            piece = self._fit(citation, block, parts, budget, render)
            if piece is None:
                continue
            text, cut = piece
            parts.append(f"{citation.label()}\n{text}")
            citations.append(_with_span(citation, block, text, cut))
        return self._result(query, parts, citations, budget, render, template is not None)

    def _result(self, query: str, parts: list[str], citations: list[Citation], budget: int,
                render: Callable[[str], str], templated: bool) -> PackedContext:
        joined = "\n\n".join(parts)
        context_tokens = self.counter.count(joined) if joined else 0
        prompt = render(joined) if templated else None
        tokens = self.counter.count(prompt) if prompt is not None else context_tokens
        return PackedContext(query, joined, tuple(citations), tokens, budget, self.counter.name, self.strategy,
                             prompt, context_tokens)

    def _pack_focus(self, query: str, blocks: list[Block], budget: int, render: Callable[[str], str],
                    templated: bool) -> PackedContext:
        """`focus`: the windows retrieval/focus.py chooses, each tried as the whole rendered text."""
        def rendered(selections: list[Selection]) -> tuple[list[str], list[Citation]]:
            pieces = [_window(n, blocks[i], start, end) for n, (i, start, end) in enumerate(selections, 1)]
            return [f"{c.label()}\n{text}" for text, c in pieces], [c for _, c in pieces]

        def fits(selections: list[Selection]) -> bool:
            return self.counter.count(render("\n\n".join(rendered(selections)[0]))) <= budget

        self.scorer = self.scorer or LexicalScorer()
        parts, citations = rendered(focus_windows(query, blocks, self.scorer, fits))
        return self._result(query, parts, citations, budget, render, templated)

    def _check_budget(self, blocks: list[Block], budget: int, render: Callable[[str], str]) -> None:
        if budget < 1:
            raise BudgetError(f"budget: {budget} tokens; give at least 1")
        if not blocks:
            return
        smallest = min(self.counter.count(render(_citation(1, b).label())) for b in blocks)
        if budget <= smallest:
            what = "the prompt with the shortest source header" if render("") else "the shortest source header"
            raise BudgetError(f"budget: {budget} tokens cannot hold a source header and its text ({what} alone "
                              f"takes {smallest})")

    def _fit(self, citation: Citation, block: Block, parts: list[str], budget: int,
             render: Callable[[str], str]) -> tuple[str, bool] | None:
        """The block's text if it fits whole, else its longest prefix of whole sentences that fits and holds
        body text (not only headings); None when no such prefix fits."""
        def fits(candidate: str) -> bool:
            joined = "\n\n".join([*parts, f"{citation.label()}\n{candidate}"])
            return self.counter.count(render(joined)) <= budget

        text = block.text
        if fits(text):
            return text, False
        ends = _cut_points(block)
        lo, hi, best = 0, len(ends) - 1, -1
        while lo <= hi:  # the longest fitting prefix: fits() is monotone in the number of sentences
            mid = (lo + hi) // 2
            if fits(text[: ends[mid]]):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return (text[: ends[best]], True) if best >= 0 else None


def _cut_points(block: Block) -> list[int]:
    """Offsets in the block's text where a cut may end: after a sentence (or a paragraph), once at least one
    sentence of body text comes before it; never the whole text (that is no cut)."""
    is_heading = heading_test(block)
    points, body = [], False
    for start, end in sentence_spans(block.text):
        body = body or not is_heading(block.text[start:end].strip())
        if body and end < len(block.text.rstrip()):
            points.append(end)
    return points


def _citation(number: int, block: Block) -> Citation:
    best = block.best
    first = min(block.passages, key=lambda p: p.start)
    title = best.document.get("title")
    return Citation(number, best.source, best.doc_id, str(title) if title else None, first.page,
                    first.heading_path, block.start, block.end, _chunk_ids(block.passages, block.start, block.end),
                    best.score, document=dict(best.document))


def _chunk_ids(passages: Sequence[Passage], lo: int, hi: int) -> tuple[str, ...]:
    """Every stored chunk whose text lies (in part) inside [lo, hi), in document order: a citation names the
    chunks a generator reads, the neighbours an expansion merged in included."""
    spans = {cid: (s, e) for p in passages for cid, s, e in p.chunk_spans()}
    inside = [(s, e, cid) for cid, (s, e) in spans.items() if s < hi and e > lo]
    return tuple(cid for _, _, cid in sorted(inside))


def _window(number: int, block: Block, start: int, end: int) -> tuple[str, Citation]:
    """The block's text[start:end] and its citation: the kept passages and the exact span (merged text maps
    1:1 onto its span); a window short of the whole block is marked cut."""
    text = block.text[start:end]
    if (start, end) == (0, len(block.text)):
        return text, _citation(number, block)
    lo, hi = block.start + start, block.start + end
    kept = tuple(p for p in block.passages if p.start < hi and p.end > lo) or block.passages
    return text, replace(_citation(number, Block(kept, lo, hi, text)), cut=True)


def _with_span(citation: Citation, block: Block, text: str, cut: bool) -> Citation:
    if not cut:
        return citation
    end = block.start + len(text)  # merged text maps 1:1 onto its span (merge_spans keeps gap lengths)
    return replace(citation, end=end, chunk_ids=_chunk_ids(block.passages, block.start, end), cut=True)


def stage_options(strategy: str, expand: int | None = None, mmr: float | None = None) -> dict:
    """The retriever's stage arguments a strategy needs: neighbour expansion for `expand`, MMR for `mmr`,
    neither for the others (so `topk` is the chunks exactly as ranked). `expand`/`mmr` override the window
    and lambda."""
    if strategy not in STRATEGIES:
        raise QueryError(f"strategy: {strategy!r} is not one of {list(STRATEGIES)}")
    return {"expand": (expand or EXPAND_WINDOW) if strategy == "expand" else 0,
            "mmr": (MMR_LAMBDA if mmr is None else mmr) if strategy == "mmr" else None}


def retrieve_context(retriever: Retriever, packer: ContextPacker, query: str, budget: int, candidates: int = 20,
                     filters: dict | None = None, mode: str | None = None, truncate: bool = False,
                     template: PromptTemplate | None = None, expand: int | None = None,
                     mmr: float | None = None, min_relevance: float | None = None) -> PackedContext:
    """Retrieve `candidates` passages for `query` (with the stages `packer.strategy` needs) and pack the best of
    them into `budget` tokens, inside `template` when one is given. With `min_relevance`, passages below it are
    dropped first; when none is left the context is empty and says it `abstained`."""
    stages = stage_options(packer.strategy, expand, mmr)
    encoder = getattr(retriever, "encoder", None)
    if packer.strategy == "focus" and packer.scorer is None and isinstance(encoder, SparseEncoder):
        # analyze as the index does; set on the caller's packer so its memo serves the next calls (eval budgets)
        packer.scorer = LexicalScorer(encoder)
    passages = retriever.retrieve(query, candidates, filters, truncate, mode=mode, expand=stages["expand"],
                                  mmr=stages["mmr"])
    kept = keep_relevant(passages, min_relevance)
    packed = packer.pack(query, kept, budget, template)
    return replace(packed, abstained=True) if min_relevance is not None and not kept else packed
