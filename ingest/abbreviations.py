"""Abbreviations and their long forms for the BM25 leg: a query with `DSGVO` also matches documents that
write `Datenschutz-Grundverordnung`, and the reverse.

Mechanism: query-time expansion (`AbbreviationExpander`, the `expander` of `ingest.sparse.SparseEncoder`).
Documents are indexed as they are written, so the list can change without a re-index and a document's
BM25 length and term frequencies stay honest. An expansion never outweighs what the user typed: a query
token weighs 1.0; an abbreviation's long form adds its tokens with `weight` (0.5) shared among them; a long
form adds its abbreviation's token with `weight`. Phrases are matched on `GermanAnalyzer.word_keys` (one
stem per word, hyphen groups joined, stop words left out), so `Datenschutzgrundverordnung`,
`Datenschutz-Grundverordnung` and `der Europäischen Union` all match their entries. A hyphen group holding
an abbreviation (`Kfz-Steuer`) is its own word and is not expanded.

Pairs come from the curated `resources/german_abbreviations.tsv` and, optionally, from definitions a corpus
writes out (`learn_definitions`: "Datenschutz-Grundverordnung (DSGVO)").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ingest.sparse import GermanAnalyzer, SparseConfigError

DEFAULT_WEIGHT = 0.5
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
                if _abbreviates(short, long):
                    found[(short, long)] = None
                    break
    return list(found)


def _abbreviates(short: str, long: str) -> bool:
    if short[0].casefold() != long[0].casefold() or len(long) <= len(short):
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
    _entries: tuple[_Entry, ...] = field(init=False, repr=False, compare=False)

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

    @classmethod
    def default(cls, analyzer: GermanAnalyzer, extra: Iterable[tuple[str, str]] = ()) -> AbbreviationExpander:
        """The shipped list, plus `extra` pairs (e.g. `learn_definitions` over a corpus)."""
        return cls(analyzer, tuple(dict.fromkeys([*load_pairs(), *extra])))

    def expand(self, text: str) -> Mapping[str, float]:
        """Extra tokens of `text` -> weight: long forms of its abbreviations, abbreviations of its long forms."""
        keys = tuple(self.analyzer.word_keys(text))
        extra: dict[str, float] = {}
        for entry in self._entries:
            for have, add in ((entry.short_keys, entry.long_tokens), (entry.long_keys, entry.short_tokens)):
                if add and _contains(keys, have):
                    share = self.weight / len(add)
                    for token in add:
                        extra[token] = max(extra.get(token, 0.0), share)
        return extra


def _contains(keys: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(keys[i:i + n] == phrase for i in range(len(keys) - n + 1))
