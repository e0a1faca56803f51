"""Mechanical rewrites of evaluation queries into the spelling, gender and abbreviation variants users type
(issue #16 items 2 and 3). Deterministic: the same query always gets the same variant.

- gender: a person noun (capitalised, not the query's first word, ending in -er, -ent, -ant, -ist, -eur,
  -loge, or their plural/dative forms) becomes a gender form of its base; the form (`*innen`, `:innen`,
  `Innen`, `_innen`, `/-innen`, `/innen`) rotates with the noun's CRC32, so every form is used;
- old orthography: `dass` -> `daß`, `ss` -> `ß` after a vowel at a word's end or before a consonant
  or before a final -t/-te/-ten (`muss` -> `muß`,
  `lässt` -> `läßt`; not `Bundesstaat`), a triple consonant before a vowel loses one letter
  (`Schifffahrt` -> `Schiffahrt`), and f -> ph in the photo/graph/phone family (`Foto` -> `Photo`,
  `Geografie` -> `Geographie`, `Telefon` -> `Telephon`);
- abbreviations: a long form in the curated list becomes its abbreviation (`Vereinigten Staaten` ->
  `USA`), an abbreviation its (first) long form (`BIP` -> `Bruttoinlandsprodukt`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

GENDER_FORMS = ("*innen", ":innen", "Innen", "_innen", "/-innen", "/innen")
# plural or dative ending -> what to cut so the base remains (Lehrern -> Lehrer, Studenten -> Student)
_PERSON = re.compile(r"(?<=\s)([A-ZÄÖÜ][a-zäöüß]{2,}(?:er|ent|ant|ist|eur|log|or))(n|en|e|s)?(?![\w*:/])")
# frequent nouns with those endings that name no person (mechanical rule, so a short list suffices)
_NOT_PERSON = frozenset(str.split(
    "Wasser Zimmer Meter Kilometer Zentimeter Liter Oktober November Dezember September Fenster Theater "
    "Computer Monster Muster Messer Feuer Ufer Körper Zucker Pfeffer Silber Kupfer Alter Winter Sommer Kaiser "
    "Nummer Charakter Filter Kanister Parameter Semester Trimester Register Orchester Cluster Poster Center "
    "Partner Prozent Moment Element Kontinent Instrument Argument Patent Dokument Segment Parlament Fundament "
    "Talent Regiment Experiment Monument Ornament Zement Pigment Sakrament Testament Management Restaurant "
    "Diamant Elefant Proviant Trabant Zeiger Speicher Rechner Hersteller Container Thriller Körper Hamster "
    "Laser Finger Hunger Lager Muster Schwester Mutter Vater Bruder Tochter Amateur Motor Sektor Faktor "
    "Reaktor Traktor Äquator Korridor Vektor Tresor Humor Terror Labor Indikator Generator Monitor Katalog "
    "Dialog Prolog"
))

_OLD_SS = re.compile(r"(?<=[aeiouäöü])ss(?=\b|t\b|te\b|ten\b)")  # not across a compound seam
_TRIPLE = re.compile(r"([bcdfghklmnprt])\1\1(?=[aeiouäöü])")
_PH = [(re.compile(r"\b([Ff])oto"), lambda m: "Photo" if m.group(1) == "F" else "photo"),
       (re.compile(r"(?<=[a-zäöü])graf(?=[a-z]|\b)"), lambda m: "graph"),
       (re.compile(r"\bGraf(?=i[ks])"), lambda m: "Graph"),
       (re.compile(r"(Tele|Mikro|Saxo|Mega|Xylo|tele|mikro)fon"), lambda m: m.group(1) + "phon")]


def gender_variant(query: str) -> str:
    """Person nouns in a gender form of their base (`Die Lehrer der Schule` -> `Die Lehrer*innen der Schule`)."""
    def form(m: re.Match[str]) -> str:
        base = m.group(1)
        if base in _NOT_PERSON or (base.endswith("er") and m.group(2) not in (None, "n")):
            return m.group(0)
        return base + GENDER_FORMS[zlib.crc32(base.encode()) % len(GENDER_FORMS)]
    return _PERSON.sub(form, query)


def old_orthography(query: str) -> str:
    """`query` in pre-1996 spelling where one of the rules above applies."""
    text = re.sub(r"\b([Dd])ass\b", r"\1aß", query)
    text = _OLD_SS.sub("ß", text)
    text = _TRIPLE.sub(r"\1\1", text)
    for pattern, repl in _PH:
        text = pattern.sub(repl, text)
    return text


def _long_pattern(long: str) -> re.Pattern[str]:
    # each word may carry an inflection ending (Vereinigte -> Vereinigten, Union -> Union)
    words = [re.escape(w) + r"(?:e[nmrs]?|s|n)?" for w in long.split()]
    return re.compile(r"\b" + r"\s+".join(words) + r"\b", re.IGNORECASE)


def abbreviation_variant(query: str, pairs: Iterable[tuple[str, str]]) -> str:
    """Long forms -> abbreviation and abbreviations -> (first) long form, each pair at most once."""
    text, done = query, set()
    for short, long in pairs:
        if short in done:
            continue
        swapped = _long_pattern(long).sub(short, text)
        if swapped == text:
            swapped = re.sub(rf"(?<![\w-]){re.escape(short)}(?![\w-])", long, text)
        if swapped != text:
            done.add(short)
        text = swapped
    return text


def all_variants(query: str, pairs: Iterable[tuple[str, str]]) -> str:
    """Every rewrite above, abbreviations first (their long forms are in today's spelling)."""
    return old_orthography(gender_variant(abbreviation_variant(query, pairs)))
