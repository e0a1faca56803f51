"""German lexical analyzer and BM25 sparse vectors, shared by ingest (documents) and retrieval (queries).

Contract: the index side and the query side must analyze with the same options, stemmer release, stop
list and lexicon, or tokens stop matching without any error; `GermanAnalyzer.fingerprint()` names all
of them, so a store can record it next to the collection and compare.

On the text, after NFKC: gender forms to their base (`Lehrer*innen` -> `Lehrer`, ingest.variants). Per
word: casefold (which also turns ß into ss) -> umlaut fold (ä -> ae, ö -> oe, ü -> ue) -> old/new spelling
to one form (`Schiffahrt`/`Schifffahrt`, `Photographie`/`Fotografie`, ingest.variants) -> stop word
filter -> compound split (dictionary parts that rebuild the word) -> Snowball German stem.
Folding comes before stemming so that `Häuser` and `Haeuser` reach the stemmer as the same string;
Snowball >= 3 also reads `ae` as `ä`, so both still stem like `Haus`.

Vectors are BM25 split in two: the client writes saturated term frequencies, Qdrant's IDF modifier
multiplies in the inverse document frequency, which it keeps up to date as points come and go.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Protocol

# The pure-Python class on purpose: `snowballstemmer.stemmer()` silently switches to PyStemmer when
# that is installed, and a different Snowball release on one side changes stems without an error.
from snowballstemmer.german_stemmer import GermanStemmer

from ingest.errors import ConfigError
from ingest.schema import IngestError
from ingest.variants import fold_gender, fold_spelling, has_triple, triple_candidates

# Bump when a change here changes tokens: it is part of the fingerprint, hence of every doc id, so the next
# ingest or sync re-indexes each file. 2: gender and spelling variants (ingest.variants).
ANALYZER_VERSION = 2
LINKS = ("", "s", "es", "n", "en", "er", "e")  # German linking elements (Fugenelemente)
# Average analyzed chunk length in the BM25 weights: the one default (Settings.bm25_avgdl uses it too).
DEFAULT_AVGDL = 100.0
# BM25's saturation and length normalisation: k1 0.6, b 0.3 (Robertson's 1.2/0.75 before) were chosen with the
# hybrid defaults by cross-validation over xquad-de and germandpr-derived with two dense models (docs/eval/hybrid.md):
# chunks are short and of similar length, and a question's terms recur in the passage that answers it.
DEFAULT_K1 = 0.6
DEFAULT_B = 0.3
MAX_WORD = 80  # longer "words" are ids, hashes or junk: kept whole, never stemmed or split
SparseVector = tuple[list[int], list[float]]

_WORD = re.compile(r"[^\W_]+(?:[-\u2010\u2011][^\W_]+)*")  # letters/digits, hyphen-joined groups
_PIECE = re.compile(r"[^\W_]+")
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))  # queries skip normalize
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_RESOURCES = resources.files("ingest").joinpath("resources")
_local = threading.local()


class SparseConfigError(ConfigError, IngestError, ValueError):
    """An analyzer, splitter or encoder option, or a lexicon file, is invalid."""


def fold_word(word: str) -> str:
    """Casefold, spell umlauts and ß out (`Straße` -> `strasse`, `Häuser` -> `haeuser`), and write old and new
    orthography alike (`Schifffahrt` -> `schiffahrt`, `Photographie` -> `fotografie`)."""
    return fold_spelling(word.casefold().translate(_FOLD))


def surface_words(text: str) -> list[str]:
    """The folded words of `text` (hyphenated groups in pieces), as the lexicon and the analyzer see them."""
    return [fold_word(w) for w in _PIECE.findall(fold_gender(text.translate(_INVISIBLE)))]


@functools.cache
def load_stopwords() -> frozenset[str]:
    """The shipped German stop list (Snowball's, see the file header), in folded spelling."""
    text = _RESOURCES.joinpath("german_stopwords.txt").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return frozenset(fold_word(line) for line in lines if line and not line.startswith("#"))


@functools.lru_cache(maxsize=1 << 18)
def token_id(token: str) -> int:
    """A 31-bit id for `token`, the same in every process and on every machine (blake2b, not hash())."""
    digest = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


@functools.lru_cache(maxsize=1 << 17)  # compound parts recur across many words
def _stem(word: str) -> str:
    # A Snowball stemmer keeps state between calls: one per thread for the HTTP service's workers.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = GermanStemmer()
    return stemmer.stemWord(word)


class CompoundSplitter:
    """Dictionary compound splitter after Koehn & Knight (2003), on folded lower-case words.

    A split writes the word as `p1 l1 p2 l2 ... pk` where every part `p` is a lexicon word of at least
    `min_part` characters and every `l` is one of LINKS (possibly empty), so the parts and links
    rebuild the word exactly. That rule alone also accepts `bein|halten` for `beinhalten`, so, as in
    Koehn & Knight, a split is kept only when the geometric mean of its parts' counts exceeds the whole
    word's own count: a word the corpus uses often stays whole. Each part is split again the same way.
    """

    def __init__(self, counts: Mapping[str, int], *, exclude: Iterable[str] | None = None) -> None:
        """`counts`: folded word -> corpus count. `exclude`: never parts (default: the stop list)."""
        skip = load_stopwords() if exclude is None else frozenset(exclude)
        self._counts: dict[str, int] = {}
        self._elided: set[str] = set()  # words the lexicon spelt with a triple consonant (`schifffahrt`)
        for word, n in counts.items():  # a lexicon from before the spelling folds: merge its variants
            key = fold_spelling(word)
            if n > 0 and key not in skip:
                self._counts[key] = self._counts.get(key, 0) + int(n)
                if has_triple(word):
                    self._elided.add(key)
        self._digest: str | None = None

    @classmethod
    def from_corpus(cls, texts: Iterable[str], *, min_count: int = 2, min_length: int = 3) -> CompoundSplitter:
        """A lexicon of the alphabetic words of `texts` that are `min_length`+ long and seen `min_count`+ times."""
        if min_count < 1 or min_length < 1:
            raise SparseConfigError(f"min_count={min_count}, min_length={min_length}: both must be >= 1")
        counts = Counter(w for t in texts for w in surface_words(t) if len(w) >= min_length and w.isalpha())
        return cls({w: n for w, n in counts.items() if n >= min_count})

    @classmethod
    def from_file(cls, path: str | Path) -> CompoundSplitter:
        """Load a lexicon written by `save`: `word<TAB>count` lines, `#` comments."""
        counts: dict[str, int] = {}
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            word, _, count = line.partition("\t")
            if not count.strip().isdigit():
                raise SparseConfigError(f"{path}:{number}: expected 'word<TAB>count', got {line[:60]!r}")
            counts[word] = int(count)
        return cls(counts)

    def save(self, path: str | Path, header: Iterable[str] = ()) -> None:
        """Write the lexicon sorted by word, `header` lines first as `#` comments."""
        lines = [f"# {h}" for h in header] + [f"{w}\t{n}" for w, n in sorted(self._counts.items())]
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def counts(self) -> Mapping[str, int]:
        return self._counts

    def digest(self) -> str:
        """A hash of the lexicon's content, for `GermanAnalyzer.fingerprint`."""
        if self._digest is None:
            text = "\n".join(f"{w}\t{n}" for w, n in sorted(self._counts.items()))
            self._digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        return self._digest

    def split(self, word: str, min_part: int = 3) -> tuple[str, ...]:
        """The parts of the folded `word`, linking elements dropped, each split again until it stays
        whole; () when `word` itself stays whole. Joined with the links, the parts rebuild `word`."""
        if not 2 * min_part <= len(word) <= MAX_WORD:
            return ()
        best = self._segment(word, min_part)
        if best is None:
            return ()
        k, _, minus_log_sum, parts = best
        whole = self._counts.get(word, 0)
        if whole and -minus_log_sum / k <= math.log(whole):
            return ()  # the corpus uses the whole word more often than its parts: not a compound
        return tuple(leaf for part in parts for leaf in (self.split_variants(part, min_part) or (part,)))

    def split_variants(self, word: str, min_part: int = 3) -> tuple[str, ...]:
        """`split`, and for a word that stays whole, a split at a seam where the old orthography dropped a letter
        (`schiffahrt` -> schiff, fahrt): only for a word the lexicon spelt with three letters or does not know
        (`Passagen` is no `pass|sagen`), both sides at least 4 letters, the head a lexicon word, the tail one or
        splittable, and together more frequent than the whole word (the rule of `split`)."""
        parts = self.split(word, min_part)
        if parts or (word in self._counts and word not in self._elided):
            return parts
        for head, candidate in triple_candidates(word):
            tail = candidate[len(head):]
            if len(head) < 4 or len(tail) < 4 or head not in self._counts:
                continue
            tail_parts = self.split(tail, min_part) or ((tail,) if tail in self._counts else ())
            whole = self._counts.get(word, 0)
            if tail_parts and (not whole or math.sqrt(self._counts[head] * self._counts.get(tail, whole + 1)) > whole):
                return (*(self.split(head, min_part) or (head,)), *tail_parts)
        return ()

    def _segment(self, word: str, min_part: int) -> _Segmentation | None:
        """The split of `word` into 2+ lexicon parts with the fewest parts, then the fewest link
        letters, then the highest sum of log counts. (The geometric mean alone, as in Koehn & Knight,
        prefers many short frequent parts: `regierung|sei|richtung`, `schadens|er|satz`.)"""
        n = len(word)
        # best[i]: the best split of the suffix word[i:], one part allowed (all three criteria add up)
        best: list[_Segmentation | None] = [None] * (n + 1)
        for i in range(n - min_part, -1, -1):
            options: list[_Segmentation] = []
            for j in range(i + min_part, n + 1 if i else n):  # at 0 the word itself is no split
                count = self._counts.get(word[i:j])
                if count is not None:
                    options.extend(_continuations(word, j, (1, 0, -math.log(count), (word[i:j],)), best))
            best[i] = min(options, default=None)
        return best[0]


_Segmentation = tuple[int, int, float, tuple[str, ...]]  # parts, link letters, -sum(log count), parts


def _continuations(word: str, j: int, head: _Segmentation, best: list[_Segmentation | None]
                   ) -> list[_Segmentation]:
    if j == len(word):  # the last part takes no linking element
        return [head]
    tails = [(len(link), best[j + len(link)]) for link in LINKS if word.startswith(link, j)]
    return [(head[0] + t[0], head[1] + size + t[1], head[2] + t[2], head[3] + t[3])
            for size, t in tails if t is not None]


@functools.cache
def default_splitter() -> CompoundSplitter:
    """The shipped lexicon (`resources/german_lexicon.txt`; its header says how it was built)."""
    with resources.as_file(_RESOURCES.joinpath("german_lexicon.txt")) as path:
        return CompoundSplitter.from_file(path)


@dataclass(frozen=True)
class GermanAnalyzer:
    """Text -> German index terms; the same object (same options) must serve documents and queries.

    Tokens are runs of Unicode letters and digits; a hyphenated group (`E-Mail`) gives its pieces and
    the joined form (`email`). Single letters are dropped, numbers kept (`§ 5 Abs. 2` -> 5, abs, 2). A
    compound gives its own token first, then one per part (`Verfassungsgericht` -> verfassungsgericht,
    verfass, gericht): parts are always in folded spelling. Never raises on any `str`.
    """

    stem: bool = True
    split_compounds: bool = True
    stopwords: bool = True
    fold: bool = True
    min_part: int = 3
    splitter: CompoundSplitter | None = field(default=None, repr=False, compare=False)
    cache_size: int = field(default=1 << 17, repr=False, compare=False)
    _word: Callable[[str], tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.min_part < 2:
            raise SparseConfigError(f"min_part={self.min_part}: must be >= 2")
        # Per instance, not on the method: a cache there would mix the options of all instances.
        object.__setattr__(self, "_word", functools.lru_cache(maxsize=self.cache_size)(self._analyze_word))

    def analyze(self, text: str) -> list[str]:
        """The index terms of `text` in reading order, repeated as often as they occur."""
        # NFKC, not only NFC: full-width digits, superscripts and ligatures must match their plain forms.
        text = fold_gender(unicodedata.normalize("NFKC", text.translate(_INVISIBLE)))
        tokens: list[str] = []
        for match in _WORD.finditer(text):
            group = match.group()
            pieces = (group,) if group.isalnum() else _PIECE.findall(group)
            for piece in pieces:
                tokens.extend(self._word(piece))
            if len(pieces) > 1:
                tokens.extend(self._word("".join(pieces))[:1])  # the joined form, without its parts
        return tokens

    def word_keys(self, text: str) -> list[str]:
        """One token per word of `text` in reading order (a hyphenated group joined), stop words left out: what
        a phrase such as an abbreviation's long form is matched by, whatever its spelling or hyphenation."""
        text = fold_gender(unicodedata.normalize("NFKC", text.translate(_INVISIBLE)))
        keys = (self._word("".join(_PIECE.findall(m.group())))[:1] for m in _WORD.finditer(text))
        return [k[0] for k in keys if k]

    def word_groups(self, text: str) -> list[tuple[str, tuple[str, ...]]]:
        """Per word of `word_keys`, in reading order: (its key, every token `analyze` gives for it): which of a
        query's tokens a matched phrase covers."""
        text = fold_gender(unicodedata.normalize("NFKC", text.translate(_INVISIBLE)))
        groups: list[tuple[str, tuple[str, ...]]] = []
        for match in _WORD.finditer(text):
            pieces = _PIECE.findall(match.group())
            joined = self._word("".join(pieces))
            if not joined:
                continue
            if len(pieces) == 1:
                groups.append((joined[0], joined))
            else:  # as `analyze`: each piece's tokens, then the joined form
                groups.append((joined[0], (*(t for piece in pieces for t in self._word(piece)), joined[0])))
        return groups

    def fingerprint(self) -> str:
        """A short hash of everything that decides the tokens: options, stemmer release, lists."""
        lexicon = self._splitter().digest() if self.split_compounds else "-"
        state = (ANALYZER_VERSION, self.stem, self.split_compounds, self.stopwords, self.fold,
                 self.min_part, metadata.version("snowballstemmer"), sorted(load_stopwords()), lexicon)
        return hashlib.blake2b(repr(state).encode("utf-8"), digest_size=8).hexdigest()

    def _splitter(self) -> CompoundSplitter:
        return self.splitter if self.splitter is not None else default_splitter()

    def _analyze_word(self, word: str) -> tuple[str, ...]:
        """The word's own token first, then its compound parts' tokens; () for a stop word."""
        folded = fold_word(word)  # stop list and lexicon are in folded spelling, whatever `fold` says
        if (len(folded) < 2 and not folded.isdigit()) or (self.stopwords and folded in load_stopwords()):
            return ()
        own = folded if self.fold else unicodedata.normalize("NFC", word.casefold())
        if len(folded) > MAX_WORD or folded.isdigit():
            return (own,)
        parts = self._splitter().split_variants(folded, self.min_part) if self.split_compounds else ()
        return tuple(_stem(w) if self.stem else w for w in (own, *parts))


class QueryExpander(Protocol):
    """Query tokens and their weights: extra tokens, and new weights for tokens the query has (a typed phrase
    whose words share one concept's weight). A token it does not name keeps 1.0."""

    def expand(self, text: str) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class SparseEncoder:
    """BM25 sparse vectors for a Qdrant sparse vector configured with `modifier=IDF`.

    A document term weighs `tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`, with `dl` the
    document's token count under the same analyzer; a query term weighs 1.0, so Qdrant's score is the
    BM25 sum of idf * weight. Indices are sorted and unique; two tokens that share a 31-bit id add up.
    """

    analyzer: GermanAnalyzer = field(default_factory=GermanAnalyzer)
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    avgdl: float = DEFAULT_AVGDL
    # query-side only (abbreviations, ingest.abbreviations): documents are encoded without it, so it needs no
    # re-index and is not part of the fingerprint
    expander: QueryExpander | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        checks = {"k1": (self.k1, ">= 0", self.k1 >= 0), "b": (self.b, "in [0, 1]", 0 <= self.b <= 1),
                  "avgdl": (self.avgdl, "> 0", self.avgdl > 0)}
        for name, (value, allowed, ok) in checks.items():
            if not ok or not math.isfinite(value):
                raise SparseConfigError(f"{name}={value!r}: must be finite and {allowed}")

    def encode_document(self, text: str) -> SparseVector:
        """(indices, BM25 term-frequency weights) of one document or chunk."""
        return self.weigh_tokens(self.analyzer.analyze(text))

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        """`encode_document` for each text, in order."""
        return [self.encode_document(t) for t in texts]

    def encode_query(self, text: str) -> SparseVector:
        """(indices, weights) for the query's unique tokens, 1.0 each unless the expander weighs them; an
        expander's tokens take its weights; ([], []) when none are left."""
        weights = dict.fromkeys((token_id(t) for t in self.analyzer.analyze(text)), 1.0)
        for token, weight in (self.expander.expand(text).items() if self.expander else ()):
            weights[token_id(token)] = weight
        ids = sorted(weights)
        return ids, [weights[i] for i in ids]

    def weigh_tokens(self, tokens: list[str]) -> SparseVector:
        """BM25 term-frequency weights of an analyzed document."""
        counts = Counter(token_id(t) for t in tokens)
        norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.avgdl)
        ids = sorted(counts)
        return ids, [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in ids]
