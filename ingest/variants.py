"""Spelling and gender variants folded to one form, for the German analyzer (ingest.sparse), which applies
them to documents and queries alike.

Gender forms (`fold_gender`, on the text, before it is cut into words, because `*`, `:`, `_` and `/`
separate words): `Lehrer*innen`, `Lehrer:innen`, `Lehrer_innen`, `Lehrer/-innen`, `Lehrer/innen`,
`Lehrer(innen)`, their singulars with `in`, and the Binnen-I plural `LehrerInnen` all become the base
`Lehrer`. The base, not `Lehrerinnen`: a gender form names everybody, and German documents mostly write
the generic masculine (`Lehrer`, `Studenten`), so the base is what matches them; docs/eval/variants.md
measures it. Left alone: `Innen` as a word (`Innen- und Außenbereich`), `Studierende`, a plain feminine
`Lehrerinnen`, and the Binnen-I singular (`LinkedIn`, `BürgerIn` look alike).

Spelling (`fold_spelling`, on one casefolded, umlaut-folded word; ß is already ss, so `daß` = `dass`):
- a consonant written three times before a vowel is written twice (`schifffahrt` and `schiffahrt` ->
  `schiffahrt`), the old rule's form, since only that one is unambiguous; a split of such a word puts the
  letter back at the seam (`CompoundSplitter.split_variants`);
- ph -> f only in the families the 1996 reform respelled (`phot`, `phon`, `graph`): `photographie` and
  `fotografie` -> `fotografie`, `telephon` -> `telefon`, `graphik` -> `grafik`. The noun `Graph` at the
  start of a word stays (`graphen`), and `Phase`, `Philosophie`, `Physik`, `Strophe` never match.
"""

from __future__ import annotations

import re

# a word of 2+ letters, then a gender mark and in/innen, not followed by another letter
_GENDER_MARKED = re.compile(r"(?<=[^\W\d_]{2})(?:[*:_\u00b7]|/-?)(?:[iI]n|[iI]nnen)(?![^\W_])")
_GENDER_BRACKET = re.compile(r"(?<=[^\W\d_]{2})\((?:in|innen)\)(?![^\W_])")
# Binnen-I: a lower-case letter, then `Innen` ending the word (`LehrerInnen`; the word itself needs an upper-case
# start, so `Innen` alone and lower-case `innen` endings (`Lehrerinnen`) never match)
_GENDER_BINNEN = re.compile(r"\b([A-ZÄÖÜ][^\W\d_]*?[a-zäöüß])Innen\b")
_VOWELS = frozenset("aeiouy")
# a consonant German doubles, written three times before a vowel (the old rule dropped one only there: `Schiffahrt`
# but `Sauerstoffflasche`, and `Großstadt` -> `grossstadt` keeps its seam); roman numerals (`iii`) are vowels
_TRIPLE = re.compile(r"([bdfgklmnprst])\1\1+(?=[aeiouy])")


def fold_gender(text: str) -> str:
    """`text` with every gender form of a word replaced by its base (`Lehrer*innen` -> `Lehrer`)."""
    text = _GENDER_MARKED.sub("", text)
    text = _GENDER_BRACKET.sub("", text)
    return _GENDER_BINNEN.sub(r"\1", text)


def has_triple(word: str) -> bool:
    """Whether `fold_spelling` drops a letter of a triple consonant in the folded `word`."""
    return _TRIPLE.search(word) is not None


def fold_spelling(word: str) -> str:
    """Old and new orthography of a folded word to one form (see the module docstring for the rules)."""
    word = _TRIPLE.sub(r"\1\1", word)
    if "ph" in word:
        word = _fold_ph(word)
    return word


def _fold_ph(word: str) -> str:
    word = re.sub(r"ph(?=o[tn])", "f", word)  # photo, phon: foto, telefon, mikrofon, saxofon
    word = re.sub(r"(?<=[^\W\d_])graph", "graf", word)  # fotograph, geographie, biographie, paragraph
    return re.sub(r"^graph(?=i)", "graf", word)  # graphik, graphisch; the noun graph stays


def triple_candidates(word: str) -> list[tuple[str, str]]:
    """(head, word) pairs for each doubled consonant before a vowel, the word with that letter written three
    times and the head ending in the first two: where the old orthography dropped a letter at a compound seam
    (`schiffahrt` -> (`schiff`, `schifffahrt`)), a split needs it back."""
    out = []
    for i in range(len(word) - 2):
        c = word[i]
        if c == word[i + 1] and c.isalpha() and c not in _VOWELS and word[i + 2] in _VOWELS:
            out.append((word[: i + 2], word[: i + 1] + word[i:]))
    return out
