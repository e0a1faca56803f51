"""Structure-aware chunking counted in the embedding model's own tokens.

Sentences are the unit; a heading (or a `§`/`Art.` heading) starts a new chunk; sentences are packed
until the next one would pass the token budget; the last sentences of a full chunk are repeated at
the start of the next as overlap. A sentence longer than the budget is split with
langchain-text-splitters (clauses, then words), and as a last resort at token boundaries. Spans are
carried through every step, so `doc.text[start:end] == chunk.text` holds by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.errors import ConfigError
from ingest.schema import Chunk, Document, IngestError, Section, Tokenizer, make_chunk_id, sha256_text
from ingest.sentences import sentence_spans

_LEGAL_HEADING = re.compile(r"^(§{1,2}\s*\d|Art(\.|ikel)\s*\d|Abschnitt\s+\d|Kapitel\s+\d|Teil\s+\d)")


class ChunkOptionsError(ConfigError, IngestError, ValueError):
    """A chunk size or overlap the chunker cannot work with (a ValueError too, for the settings' validator)."""


def check_overlap(max_tokens: int, overlap_tokens: int,
                  names: tuple[str, str] = ("chunk max_tokens", "chunk overlap_tokens")) -> None:
    """The one overlap rule (ChunkOptions, the settings): 0 <= overlap < max_tokens // 2, so every chunk
    moves on by more than it repeats. `names` are the two values as the caller's user knows them."""
    if not 0 <= overlap_tokens < max_tokens // 2:
        size, overlap = names
        raise ChunkOptionsError(f"{overlap}={overlap_tokens} must be >= 0 and below half of {size}={max_tokens}")


@dataclass(frozen=True)
class ChunkOptions:
    """Chunk size and overlap in model tokens (special tokens and prompt included in the size)."""

    max_tokens: int = 256
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ChunkOptionsError(f"chunk max_tokens={self.max_tokens} is too small (minimum 16)")
        check_overlap(self.max_tokens, self.overlap_tokens)


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    section: int
    heading: bool  # the unit is (part of) a heading
    breaks: bool  # a new chunk must start at this unit


class TokenChunker:
    """Split a Document into Chunks no longer than the model's limit or the configured size."""

    def __init__(self, tokenizer: Tokenizer, options: ChunkOptions | None = None) -> None:
        self.tokenizer = tokenizer
        self.options = options or ChunkOptions()

    def fingerprint(self) -> str:
        """Size and overlap: with the model, what decides where chunks end."""
        return f"{self.options.max_tokens}|{self.options.overlap_tokens}"

    @property
    def budget(self) -> int:
        """Tokens a chunk may hold, special tokens included."""
        return min(self.options.max_tokens, self.tokenizer.max_tokens)

    def chunk(self, doc: Document, doc_id: str) -> list[Chunk]:
        return self.chunk_ids(doc, doc_id)[0]

    def chunk_ids(self, doc: Document, doc_id: str) -> tuple[list[Chunk], list[list[int]] | None]:
        """The chunks and, where the tokenizer gives them (`document_ids`), each chunk's token ids as the
        embedder feeds them (prompt and special tokens included): the chunker counts every chunk with the
        model's tokenizer anyway, so the caller hands these to `embed_documents` instead of tokenizing again."""
        overhead = self.tokenizer.count_tokens("")
        limit = self.budget - overhead  # content tokens per chunk
        if limit < 8:
            raise ChunkOptionsError(f"chunk budget {self.budget} leaves no room beside {overhead} special tokens")
        units = self._units(doc, limit)
        spans = self._pack(units, limit, doc.text)
        chunks = [self._make_chunk(doc, doc_id, i, s, e, units, _size(m)) for i, (s, e, units, m) in enumerate(spans)]
        rows = [m for *_, m in spans]
        return chunks, rows if all(isinstance(r, list) for r in rows) else None

    # -- units -----------------------------------------------------------------------------------
    def _count(self, texts: list[str]) -> list[int]:
        overhead = self.tokenizer.count_tokens("")
        return [c - overhead for c in self.tokenizer.count_tokens_many(texts)]

    def _measure(self, texts: list[str]) -> list[list[int]] | list[int]:
        """Per text its token ids as a document (`document_ids`, where the tokenizer has it) or else its
        `count_tokens`: one tokenizer call for all."""
        if not texts:
            return []
        ids = getattr(self.tokenizer, "document_ids", None)
        return ids(texts) if callable(ids) else self.tokenizer.count_tokens_many(texts)

    def _units(self, doc: Document, limit: int) -> list[_Unit]:
        raw: list[tuple[int, int, int, bool, bool]] = []
        for idx, sec in enumerate(doc.sections):
            heading = sec.category == "Title"
            breaks = heading and (doc.metadata.get("file_type") != "pdf" or bool(_LEGAL_HEADING.match(
                doc.text[sec.start : sec.end])))
            breaks = breaks or bool(_LEGAL_HEADING.match(doc.text[sec.start : sec.end]))
            for j, (s, e) in enumerate(sentence_spans(doc.text, sec.start, sec.end)):
                raw.append((s, e, idx, heading, breaks and j == 0))
        counts = self._count([doc.text[s:e] for s, e, *_ in raw])
        units: list[_Unit] = []
        for (s, e, idx, heading, breaks), n in zip(raw, counts, strict=True):
            if n <= limit:
                units.append(_Unit(s, e, n, idx, heading, breaks))
                continue
            for k, (ps, pe) in enumerate(self._split_long(doc.text, s, e, limit)):
                units.append(_Unit(ps, pe, self._count([doc.text[ps:pe]])[0], idx, heading, breaks and k == 0))
        return units

    def _split_long(self, text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
        """Pieces of an over-long sentence: clauses and words first, token boundaries last."""
        # imported here: langchain costs 0.2-0.5 s to import, and only an over-long sentence needs it
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=limit,
            chunk_overlap=0,
            length_function=lambda t: self._count([t])[0],
            separators=["\n", "; ", ", ", " ", ""],
            keep_separator="end",
            strip_whitespace=False,
        )
        pieces, cursor = [], start
        for part in splitter.split_text(text[start:end]):
            # The parts come in order, but around whitespace runs the splitter drops or repeats
            # whitespace, so each part's non-blank core is located from a running cursor (never
            # from the sentence start: a repeated phrase must not jump back).
            core = part.strip()
            if not core:
                continue
            at = text.find(core, cursor, end)
            if at < 0:  # the splitter re-joined pieces differently: cut the rest at token boundaries
                break
            pieces.append((at, at + len(core)))
            cursor = at + len(core)
        if cursor < end and text[cursor:end].strip():
            pieces.append((cursor, end))  # checked below; over the limit it is cut at tokens
        out: list[tuple[int, int]] = []
        for s, e in pieces:
            s, e = _trim(text, s, e)
            if e <= s:
                continue
            if self._count([text[s:e]])[0] <= limit:
                out.append((s, e))
            else:
                out.extend(self._split_tokens(text, s, e, limit))
        return out

    def _split_tokens(self, text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
        offsets = [(start + a, start + b) for a, b in self.tokenizer.token_offsets(text[start:end])]
        out, step = [], max(1, limit - 2)
        for i in range(0, len(offsets), step):
            group = offsets[i : i + step]
            s = group[0][0] if i else start
            e = offsets[i + step][0] if i + step < len(offsets) else end
            s, e = _trim(text, s, e)
            if e > s:
                out.append((s, e))
        return out

    # -- packing ---------------------------------------------------------------------------------
    def _pack(self, units: list[_Unit], limit: int, text: str) -> list:
        """(start, end, units, ids or count) per chunk."""
        out: list[tuple[int, int, list[_Unit]]] = []
        current: list[_Unit] = []
        tokens = 0
        for unit in units:
            only_headings = all(u.heading for u in current)
            if current and unit.breaks and not only_headings:
                out.append(self._flush(current))
                current, tokens = [], 0
            elif current and tokens + unit.tokens > limit:
                out.append(self._flush(current))
                current = self._overlap(current, limit - unit.tokens)
                tokens = sum(u.tokens for u in current)
            current.append(unit)
            tokens += unit.tokens
        if current:
            out.append(self._flush(current))
        return self._verified(out, limit, text)

    def _overlap(self, previous: list[_Unit], room: int) -> list[_Unit]:
        kept: list[_Unit] = []
        total = 0
        for unit in reversed(previous[1:]):  # never repeat the whole previous chunk
            if total + unit.tokens > min(self.options.overlap_tokens, room):
                break
            kept.insert(0, unit)
            total += unit.tokens
        return kept

    @staticmethod
    def _flush(units: list[_Unit]) -> tuple[int, int, list[_Unit]]:
        return units[0].start, units[-1].end, list(units)

    def _verified(self, spans: list, limit: int, text: str) -> list:
        """Count each chunk exactly (summed sentence counts can differ where sentences join), all in one
        tokenizer call; each span gets its ids (or count) as a document, special tokens included."""
        overhead = self.tokenizer.count_tokens("")
        measured: list = self._measure([text[s:e] for s, e, _ in spans])
        fixed = []
        for (s, e, units), m in zip(spans, measured, strict=True):
            if len(units) == 1 or _size(m) - overhead <= limit:
                fixed.append((s, e, units, m))
            else:
                fixed.extend(self._resplit(s, e, units, limit, text))
        return fixed

    def _resplit(self, start: int, end: int, units: list, limit: int, text: str) -> list:
        """A chunk over the limit: move its last sentence on to its own chunk until each fits (rare)."""
        overhead = self.tokenizer.count_tokens("")
        fixed, queue = [], [(start, end, units)]
        while queue:
            s, e, units = queue.pop(0)
            m = self._measure([text[s:e]])[0]
            if len(units) == 1 or _size(m) - overhead <= limit:
                fixed.append((s, e, units, m))
                continue
            head, tail = units[:-1], units[-1:]
            queue[:0] = [(head[0].start, head[-1].end, head), (tail[0].start, tail[0].end, tail)]
        return fixed

    def _make_chunk(self, doc: Document, doc_id: str, index: int, start: int, end: int, units, tokens: int) -> Chunk:
        text = doc.text[start:end]
        section = _first_content_section(doc.sections, units)
        return Chunk(
            chunk_id=make_chunk_id(doc_id, start, end),
            doc_id=doc_id,
            source=doc.source,
            text=text,
            start=start,
            end=end,
            index=index,
            page=section.page,
            heading_path=section.heading_path,
            content_hash=sha256_text(text),
            token_count=tokens,  # = count_tokens(text), measured in _verified
        )


def _size(measured: list[int] | int) -> int:
    return len(measured) if isinstance(measured, list) else measured


def _first_content_section(sections: tuple[Section, ...], units: list[_Unit]) -> Section:
    for unit in units:
        if not unit.heading:
            return sections[unit.section]
    return sections[units[0].section]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
