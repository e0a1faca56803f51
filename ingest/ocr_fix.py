"""The section sign after OCR: Tesseract's German model reads `§` as `8`, `$` or `&` and `§§` as `88` (on the
benchmark's law pages every one of 34 signs; the other umlauts and ß came through). A wrong `§` breaks exactly
what German legal text is searched by, so it is put back where the context says it is one:

    a sign-like token (`8`, `$`, `&`, `88`, `$$`) + a section number (`3`, `10i`, `622`) and then a reference
    (`Abs.`, `Satz`, `Nr.`, `ff.`, a law's abbreviation like `BGB`, `KSchG`, `BUrlG`, or `bis`/`und` + number),
    or after a word that introduces one (`nach`, `gemäß`, `des`, `vgl.`, ...), or a heading: the token at the
    start of a line, followed by a capitalised word (`8 3 Dauer des Urlaubs`).

Anything else is left as it is (`im Jahr 2018 waren es 8 3 Fälle` keeps its numbers). The rules are
deliberately narrow: a false `§` would be a new error, so a sign they miss stays wrong.
"""

from __future__ import annotations

import re

_SIGN = r"(?P<sign>88|\$\$|&&|[8$&])"
_NUMBER = r"(?P<num>\d{1,4}[a-z]?)\b"
# what follows a section number in a reference: Abs./Satz/Nr./ff., a law's abbreviation (two capitals at least,
# ending in G, B, V or O as Gesetz, Buch, Verordnung, Ordnung do: BGB, KSchG, BUrlG, ZPO, DSGVO; not GmbH), the
# EU's CRR, or a list/range of further numbers
_LAW = r"(?=[A-Za-zÄÖÜäöü]*[A-ZÄÖÜ][A-Za-zÄÖÜäöü]*[A-ZÄÖÜ])[A-ZÄÖÜ][A-Za-zÄÖÜäöü]*[GBVO]\b|CRR\b"
_AFTER = (rf"(?=,?\s+(?:Abs\.|Absatz|Satz|S\.\s?\d|Nr\.|Nummer|ff?\.|Alt\.|{_LAW}|(?:bis|und|oder)\s+\d)|,\s*\d)")
_BEFORE = (r"(?<![\w.,])(?:(?<=nach )|(?<=gemäß )|(?<=Gemäß )|(?<=gem\. )|(?<=des )|(?<=vgl\. )|(?<=Vgl\. )"
           r"|(?<=siehe )|(?<=i\. V\. m\. )|(?<=iVm )|(?<=im Sinne des )|(?<=und )|(?<=sowie )|(?<=oder )"
           r"|(?<=bis )|(?<=aus )|(?<=zu )|(?<=in )|(?<=im )|(?<=den )|(?<=dem ))")
_REFERENCE = re.compile(rf"(?<![\w§]){_SIGN}\s?{_NUMBER}{_AFTER}")
_INTRODUCED = re.compile(rf"{_BEFORE}{_SIGN}\s?{_NUMBER}")
_HEADING = re.compile(rf"(?m)^{_SIGN}\s?{_NUMBER}(?=\s+[A-ZÄÖÜ][a-zäöüß])")


def _signs(match: re.Match[str]) -> str:
    double = len(match.group("sign")) == 2
    return ("§§ " if double else "§ ") + match.group("num")


def fix_section_signs(text: str) -> str:
    """`text` with OCR's misread section signs put back where a legal reference surrounds them."""
    if not any(c in text for c in "8$&"):
        return text
    for pattern in (_REFERENCE, _INTRODUCED, _HEADING):
        text = pattern.sub(_signs, text)
    return text
