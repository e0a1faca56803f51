"""Abbreviations and their long forms for the BM25 leg: a query with `DSGVO` also matches documents that
write `Datenschutz-Grundverordnung`, and the reverse.

Mechanism: query-time expansion (`AbbreviationExpander`, the `expander` of `ingest.sparse.SparseEncoder`).
Documents are indexed as they are written, so the list can change without a re-index and a document's
BM25 length and term frequencies stay honest. An expansion weighs below what the user typed: a query
token weighs 1.0; an abbreviation's long form adds its tokens with `weight` (0.5) shared among them; a long
form adds its abbreviation's token with `weight`. Phrases are matched on `GermanAnalyzer.word_keys` (one
stem per word, hyphen groups joined, stop words left out), so `Datenschutzgrundverordnung`,
`Datenschutz-Grundverordnung` and `der Europäischen Union` all match their entries. A hyphen group holding
an abbreviation (`Kfz-Steuer`) is its own word and is not expanded.

The exception: a typed long form of several words (`Vereinigte Staaten`) weighs as its abbreviation typed
would (`share_words`): the abbreviation's token 1.0, the long form's own words share `weight`. Otherwise its common
words (`staat`) match many passages at full weight and outrank the abbreviation the documents use.

Pairs come from the curated `resources/german_abbreviations.tsv` and from definitions a collection's documents
write out (`learn_definitions`: "Datenschutz-Grundverordnung (DSGVO)"). An ingest keeps what it learned in the
collection's metadata (`LEARNED_KEY`, at most `MAX_LEARNED` pairs, merged across runs: a deleted document's
definitions stay); `LearnedExpander` serves curated + learned at query time and re-reads them now and then.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ingest.sparse import GermanAnalyzer, SparseConfigError

log = logging.getLogger(__name__)

DEFAULT_WEIGHT = 0.5
LEARNED_KEY = "german_rag_abbreviations"  # collection metadata: [[abbreviation, long form], ...] learned at ingest
MAX_LEARNED = 1000  # pairs a collection keeps; the first learned stay, later ones are dropped once it is full
_SHORT = re.compile(r"[A-ZÄÖÜ][A-Za-zÄÖÜäöüß0-9]{1,9}")  # 2-10 letters or digits, a capital first
_LONG_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")  # letters, hyphen-joined
# "Long Form (ABK)": up to five words before a bracketed abbreviation of 2-8 letters with 2+ capitals
_DEFINITION = re.compile(r"((?:[\w][\w-]*\s+){0,4}[\w][\w-]*)\s+\((?=(?:[^)]*[A-ZÄÖÜ]){2})([A-ZÄÖÜ][\wäöüß]{1,7})\)")


def load_pairs(path: str | Path | None = None) -> list[tuple[str, str]]:
    """(abbreviation, long form) pairs of a TSV file (`ABK<TAB>long form`, `#` comments); default: the shipped list."""
    if path is None:
        text = resources.files("ingest").joinpath("resources", "german_abbreviations.tsv").read_text("utf-8")
        path = "german_abbreviations.tsv"
    else:
        text = Path(path).read_text(encoding="utf-8")
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        short, sep, long = line.partition("\t")
        if not sep or not short.strip() or not long.strip():
            raise SparseConfigError(f"{path}:{number}: expected 'ABBREVIATION<TAB>long form', got {line[:60]!r}")
        pairs.append((short.strip(), long.strip()))
    return pairs


def learn_definitions(texts: Iterable[str]) -> list[tuple[str, str]]:
    """(abbreviation, long form) pairs a text defines as "Long Form (ABK)". The long form is the shortest run of
    words before the bracket whose first letter is the abbreviation's and that holds its letters in order."""
    found: dict[tuple[str, str], None] = {}
    for text in texts:
        for match in _DEFINITION.finditer(text):
            words, short = match.group(1).split(), match.group(2)
            for start in range(len(words) - 1, -1, -1):
                long = " ".join(words[start:])
                if plausible(short, long):
                    found[(short, long)] = None
                    break
    return list(found)


def plausible(short: str, long: str) -> bool:
    """A definition worth keeping: an abbreviation of 2-10 letters or digits with 2+ capitals; a long form of 1-5
    words of letters (hyphens inside), at most 80 characters, starting with the abbreviation's first letter and
    holding its letters in order (digits aside). Checked when learning and again on what a collection stored."""
    if not (isinstance(short, str) and isinstance(long, str) and _SHORT.fullmatch(short)):
        return False
    words = long.split()
    if sum(c.isupper() for c in short) < 2 or not 1 <= len(words) <= 5 or len(long) > 80:
        return False
    return all(_LONG_WORD.fullmatch(w) for w in words) and _abbreviates("".join(filter(str.isalpha, short)), long)


def merge_learned(stored: object, new: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`stored` (a collection's LEARNED_KEY value, whatever it holds) then `new`, implausible and repeated pairs
    left out, at most MAX_LEARNED."""
    old = [tuple(p) for p in stored if isinstance(p, list | tuple) and len(p) == 2] if isinstance(stored, list) else []
    merged = dict.fromkeys(p for p in [*old, *new] if plausible(*p))
    return list(merged)[:MAX_LEARNED]


def _abbreviates(short: str, long: str) -> bool:
    if not short or short[0].casefold() != long[0].casefold() or len(long) <= len(short):
        return False
    rest = iter(long.casefold())
    return all(letter in rest for letter in short.casefold())  # letters in order (consumes the iterator)


@dataclass(frozen=True)
class _Entry:
    short_keys: tuple[str, ...]
    long_keys: tuple[str, ...]
    short_tokens: tuple[str, ...]
    long_tokens: tuple[str, ...]


@dataclass(frozen=True)
class AbbreviationExpander:
    """Query-time expansion of abbreviations to long forms and back (see the module docstring)."""

    analyzer: GermanAnalyzer
    pairs: tuple[tuple[str, str], ...]
    weight: float = DEFAULT_WEIGHT
    # a typed long form of at least this many words weighs as its abbreviation would (None: never)
    share_words: int | None = 2
    _entries: tuple[_Entry, ...] = field(init=False, repr=False, compare=False)
    # first word key of an entry's abbreviation or long form -> the entries': a query looks at the few entries
    # its words can start, not at all of them (a collection may have learned 1,000 pairs)
    _by_first: dict[str, tuple[_Entry, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.weight < 1:
            raise SparseConfigError(f"weight={self.weight!r}: must be in (0, 1), below a typed token's 1.0")
        entries = []
        for short, long in self.pairs:
            keys = (tuple(self.analyzer.word_keys(short)), tuple(self.analyzer.word_keys(long)))
            if keys[0] and keys[1] and keys[0] != keys[1]:
                tokens = (tuple(dict.fromkeys(self.analyzer.analyze(short))),
                          tuple(dict.fromkeys(self.analyzer.analyze(long))))
                entries.append(_Entry(*keys, *tokens))
        object.__setattr__(self, "_entries", tuple(entries))
        by_first: dict[str, dict[_Entry, None]] = {}
        for entry in entries:
            for phrase in (entry.short_keys, entry.long_keys):
                by_first.setdefault(phrase[0], {})[entry] = None
        object.__setattr__(self, "_by_first", {k: tuple(v) for k, v in by_first.items()})

    @classmethod
    def default(cls, analyzer: GermanAnalyzer, extra: Iterable[tuple[str, str]] = ()) -> AbbreviationExpander:
        """The shipped list, plus `extra` pairs (e.g. `learn_definitions` over a corpus)."""
        return cls(analyzer, tuple(dict.fromkeys([*load_pairs(), *extra])))

    def expand(self, text: str) -> Mapping[str, float]:
        """Token -> weight for `text`: long forms of its abbreviations and abbreviations of its long forms; with
        `share_words`, also the lowered weights of a typed multi-word long form's own words (module docstring)."""
        groups = self.analyzer.word_groups(text)
        keys = tuple(key for key, _ in groups)
        extra: dict[str, float] = {}
        shared: dict[int, float] = {}  # word position of a typed long form -> the weight its tokens share
        candidates = dict.fromkeys(e for key in dict.fromkeys(keys) for e in self._by_first.get(key, ()))
        for entry in candidates:
            if entry.long_tokens and _find(keys, entry.short_keys):
                _raise(extra, entry.long_tokens, self.weight / len(entry.long_tokens))
            starts = _find(keys, entry.long_keys) if entry.short_tokens else []
            if starts and self.share_words is not None and len(entry.long_keys) >= self.share_words:
                # the concept weighs as if its abbreviation had been typed: common words of a long form
                # (`Vereinigte Staaten`) no longer outweigh the abbreviation the documents use
                _raise(extra, entry.short_tokens, 1.0)
                share = self.weight / len(entry.long_tokens)
                for start in starts:
                    for i in range(start, start + len(entry.long_keys)):
                        shared[i] = max(shared.get(i, 0.0), share)
            elif starts:
                _raise(extra, entry.short_tokens, self.weight / len(entry.short_tokens))
        typed = {t for i, (_, tokens) in enumerate(groups) if i not in shared for t in tokens}
        for i, share in shared.items():
            for token in groups[i][1]:
                if token not in typed:
                    _raise(extra, (token,), share)
        return {t: w for t, w in extra.items() if t not in typed}


def _raise(weights: dict[str, float], tokens: Iterable[str], weight: float) -> None:
    for token in tokens:
        weights[token] = max(weights.get(token, 0.0), weight)


def _find(keys: tuple[str, ...], phrase: tuple[str, ...]) -> list[int]:
    """Start positions of `phrase` in `keys`."""
    n = len(phrase)
    return [i for i in range(len(keys) - n + 1) if keys[i:i + n] == phrase]


class LearnedExpander:
    """The curated list plus the pairs `load` returns (a collection's learned definitions), re-read at most every
    `refresh_s` seconds, so a service sees what later ingests learned; a failing `load` keeps the last list."""

    def __init__(self, analyzer: GermanAnalyzer, load: Callable[[], Sequence[tuple[str, str]]],
                 weight: float = DEFAULT_WEIGHT, refresh_s: float = 30.0) -> None:
        self.analyzer, self.weight, self.refresh_s, self._load = analyzer, weight, refresh_s, load
        self._curated = tuple(load_pairs())
        self._learned: tuple[tuple[str, str], ...] = ()
        self._expander = AbbreviationExpander(analyzer, self._curated, weight)
        self._read_at: float | None = None
        self._lock = threading.Lock()

    @property
    def learned(self) -> tuple[tuple[str, str], ...]:
        return self._learned

    def expand(self, text: str) -> Mapping[str, float]:
        self._refresh()
        return self._expander.expand(text)

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._read_at is not None and now - self._read_at < self.refresh_s:
            return
        with self._lock:
            if self._read_at is not None and now - self._read_at < self.refresh_s:
                return  # another thread read them meanwhile
            self._read_at = now
            try:
                learned = tuple(merge_learned(list(self._load()), ()))
            except Exception as exc:  # a store that does not answer now: keep the list we have
                log.warning("learned abbreviations not read; keeping the last list", extra={"error": str(exc)})
                return
            if learned != self._learned:
                pairs = tuple(dict.fromkeys([*self._curated, *learned]))
                self._expander = AbbreviationExpander(self.analyzer, pairs, self.weight)
                self._learned = learned
