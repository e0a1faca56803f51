"""Law abbreviations and law names, both ways: `BUrlG` <-> `Bundesurlaubsgesetz` <-> `Mindesturlaubsgesetz für
Arbeitnehmer`, for the citation parser (ingest/citations.py).

Names are compared inflection-folded, word by word (lower case, a hyphenated compound joined, one German
ending cut: `des Bürgerlichen Gesetzbuchs` and `Bürgerliches Gesetzbuch` fold alike). The curated table lives
in ingest/resources/law_names.tsv; a collection adds what its documents say: a title "Name (ABBR)", front
matter `jurabk`, and definitions in the text such as "Bundesdatenschutzgesetz (BDSG)" (`learn_definitions`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_TABLE = Path(__file__).parent / "resources" / "law_names.tsv"
_ENDINGS = ("ern", "es", "en", "er", "em", "e", "s", "n")  # longest first: one is cut per word
_WORD = re.compile(r"[0-9A-Za-zÄÖÜäöüß]+(?:/[0-9]+)?")
_JOIN_HYPHEN = re.compile(r"(?<=[A-Za-zÄÖÜäöüß])-(?=[A-Za-zÄÖÜäöüß])")
_MAX_NAME_WORDS = 14
_ARTICLES = frozenset({"das", "die", "der", "des", "dem", "den", "ein", "eine", "eines", "im", "nach"})
# An abbreviation: 2-12 letters starting upper case, at least two capitals ("BGB", "KSchG", "BAföG", "ArbZG").
_ABBR = re.compile(r"^[A-ZÄÖÜ][A-Za-zÄÖÜäöüß]{1,11}$")
_NOT_LAWS = frozenset({"EUR", "USD", "CHF", "GBP", "DM", "PS", "KW", "OK", "ZB", "II", "III", "IV", "VI", "UND",
                       "ODER", "ABS", "NR", "AZ", "EU", "EG", "EWG", "BGBL", "DIN"})
# A definition in running text: a compound law name (up to 4 words before it) and its abbreviation in brackets.
_DEFINITION = re.compile(
    r"((?:[A-ZÄÖÜ][\wäöüß-]*\s+){0,4}[\wÄÖÜäöüß-]*(?:gesetz|gesetzbuch|ordnung|verordnung)(?:es|s)?)\s*"
    r"\(([A-ZÄÖÜ][A-Za-zÄÖÜäöüß]{1,11}(?:\s\d{4})?)\)")


def normalize_law(abbr: str) -> str:
    """The normal form of a law abbreviation: upper case, single spaces, a trailing edition year dropped
    ("BDSG 2018" -> "BDSG", "BUrlG" -> "BURLG", "SGB V" -> "SGB V")."""
    text = " ".join(abbr.split()).upper()
    return re.sub(r"\s+(?:19|20)\d{2}$", "", text)


def looks_like_abbreviation(token: str) -> bool:
    """A token that may name a law: 2-12 letters, upper case first, at least two capitals, not a currency,
    a Roman numeral or a citation word."""
    if not _ABBR.match(token) or sum(ch.isupper() for ch in token) < 2:
        return False
    return token.upper() not in _NOT_LAWS


def _strip_ending(word: str) -> str:
    """Lower case and one inflection ending cut ("Bundesurlaubsgesetzes" -> "bundesurlaubsgesetz"): enough to
    match a law's name in any case; not the analyzer's fold (ingest.sparse.fold_word), which keeps endings."""
    word = word.lower()
    if len(word) > 5 and word.isalpha():
        for ending in _ENDINGS:
            if word.endswith(ending):
                return word[: -len(ending)]
    return word


def folded_words(text: str) -> list[tuple[str, int, int]]:
    """(folded word, start, end) of each word of `text` (a hyphen inside a compound joins its parts)."""
    joined = _JOIN_HYPHEN.sub("\x00", text)  # keeps offsets: the placeholder stands where the hyphen was
    return [(_strip_ending(m.group().replace("\x00", "")), m.start(), m.end())
            for m in re.finditer(r"[0-9A-Za-zÄÖÜäöüß\x00]+(?:/[0-9]+)?", joined)]


def fold_name(name: str) -> tuple[str, ...]:
    return tuple(w for w, _, _ in folded_words(name))


@dataclass(frozen=True)
class LawNames:
    """Law names (folded word tuples) -> normalised abbreviation, and the known abbreviations."""

    names: dict[tuple[str, ...], str] = field(default_factory=dict)
    abbreviations: frozenset[str] = frozenset()

    def with_names(self, pairs: Iterable[tuple[str, str]]) -> LawNames:
        """A table with more (name, abbreviation) pairs; a compound head ("Mindesturlaubsgesetz" of
        "Mindesturlaubsgesetz für Arbeitnehmer") names the law too, unless another law has it already."""
        names, abbrs = dict(self.names), set(self.abbreviations)
        for name, abbr in pairs:
            law = normalize_law(abbr)
            folded = fold_name(name)
            if not folded or not law:
                continue
            abbrs.add(law)
            names.setdefault(folded, law)
            head = folded[0]
            if len(folded) > 1 and head.endswith(("gesetz", "gesetzbuch", "ordnung")) and len(head) > 8:
                names.setdefault((head,), law)
        return LawNames(names, frozenset(abbrs))

    def is_law(self, token: str) -> bool:
        return normalize_law(token) in self.abbreviations or looks_like_abbreviation(token)

    def match_name(self, words: list[tuple[str, int, int]], at: int) -> tuple[str, int] | None:
        """The law whose name starts at word `at` (the longest one), with the index of the word after it."""
        for size in range(min(_MAX_NAME_WORDS, len(words) - at), 0, -1):
            law = self.names.get(tuple(w for w, _, _ in words[at : at + size]))
            if law:
                return law, at + size
        return None

    def laws_named(self, text: str) -> list[str]:
        """Every law `text` names by a known name or a known abbreviation, in order, each once."""
        words = folded_words(text)
        found: list[str] = []
        i = 0
        while i < len(words):
            hit = self.match_name(words, i)
            if hit:
                found.append(hit[0])
                i = hit[1]
                continue
            token = text[words[i][1] : words[i][2]]
            if normalize_law(token) in self.abbreviations:
                found.append(normalize_law(token))
            i += 1
        return list(dict.fromkeys(found))


def learn_definitions(text: str) -> list[tuple[str, str]]:
    """(name, abbreviation) pairs a text defines: "Bundesdatenschutzgesetz (BDSG)", "Gesetz über die Haftung
    für fehlerhafte Produkte (ProdHaftG)" gives only its compound-final words ("Produkte" ends no law name)."""
    pairs: list[tuple[str, str]] = []
    for m in _DEFINITION.finditer(text):
        if not looks_like_abbreviation(m.group(2).split()[0]):
            continue
        words = m.group(1).split()
        while words and words[0].lower() in _ARTICLES:
            words = words[1:]
        if words:
            pairs.append((" ".join(words), m.group(2)))
    return pairs


@functools.cache
def curated() -> LawNames:
    """The curated table (ingest/resources/law_names.tsv)."""
    pairs: list[tuple[str, str]] = []
    for n, line in enumerate(_TABLE.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        abbr, sep, names = line.partition("\t")
        if not sep:
            raise ValueError(f"{_TABLE}:{n}: expected ABBREVIATION<TAB>name|name, got {line!r}")
        pairs.extend((name, abbr) for name in names.split("|"))
        pairs.append((abbr, abbr))
    return LawNames().with_names(pairs)
