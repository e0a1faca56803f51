"""German legal references in text and headings, parsed to normal forms that match exactly.

Normal forms (the payload's `citations` and `law_section`, and what a query's citations are looked up by):

    § 622 Abs. 2 BGB              -> "BGB §622" (section) and "BGB §622 Abs.2" (finer key, stored, not queried)
    §§ 1, 2 KSchG / §§ 3 bis 5    -> one key per section ("KSCHG §1", "KSCHG §2"; a range of up to 30 expanded)
    Art. 3 Abs. 1 GG              -> "GG Art.3", "GG Art.3 Abs.1"
    § 3 Satz 1 Nr. 2 ArbZG        -> "ARBZG §3" (Satz, Nr., lit. are dropped: a chunk is a section or a part of one)
    § 3 des Bundesurlaubsgesetzes -> "BURLG §3" (law names fold to their abbreviation, ingest/law_names.py)
    BGBl. I S. 1890, BGBl I: 1963, 2 -> "BGBL I 1890" (and "BGBL I 1963 2" where the year is given)
    Verordnung (EU) 2016/679, Richtlinie 2000/78/EG -> "EU 2016/679", "EG 2000/78"
    1 BvR 2019/16                 -> "1 BVR 2019/16" (a court file number)

Law abbreviations are upper-cased and lose an edition year ("BDSG 2018" -> "BDSG"). Matching is at section
granularity: a query for § 622 Abs. 2 BGB finds the chunks of § 622 (a chunk rarely holds one Absatz alone, and
the heading names the section only). A reference without a law ("gilt § 12") takes `default_law`: the
document's own law at ingest, the law a query names elsewhere ("Was steht im BUrlG in § 3?") at query time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.law_names import LawNames, curated, folded_words, learn_definitions, looks_like_abbreviation, normalize_law

_NUM = r"\d{1,4}(?:\s?[a-z](?![a-zäöüß]))?"
_SEP = r"\s*(?:,|;|und|bis|u\.|-|–|sowie|oder)\s*"
_DETAIL = (r"(?:\s*(?:Abs\.|Absatz|S\.|Satz|Nr\.|Nummer|lit\.|Buchst\.|Buchstabe|UAbs\.|Unterabsatz|Halbsatz|Hs\.|"
           r"Alt\.|Alternative|Var\.)\s*(?:\d{1,3}[a-z]?|[a-z]\b))*")
_REF = re.compile(
    rf"(?P<sign>§§?|\bArt(?:ikel|t?\.|\b))\s*(?P<nums>{_NUM}(?:{_SEP}(?:§\s*)?{_NUM}(?![\d/.,]\d))*)(?![\d/.,]\d)"
    rf"(?P<detail>{_DETAIL})(?:\s*ff?\.)?")
_ABS = re.compile(r"(?:Abs\.|Absatz)\s*(\d{1,3}[a-z]?)")
_LAW_WORD = re.compile(r"\s*(?:(?:des|der|dem|den|im|in|vom|aus dem|nach dem)\s+)?"
                       r"(?P<tok>[A-ZÄÖÜ][A-Za-zÄÖÜäöüß]{1,11})(?:\s(?P<book>[IVX]{1,4}|\d{1,2})\b)?")
_OWN_LAW = re.compile(r"\s*(?:dieses|diesem|dieser)\s+(?:Gesetz|Verordnung|Gesetzbuch|Ordnung)")
_LAW_FIRST = re.compile(r"\b(?P<tok>[A-ZÄÖÜ][A-Za-zÄÖÜäöüß]{1,11})(?:\s(?:19|20)\d{2})?\s*"
                        r"(?=§|Art\.?\s*\d|Artikel\s*\d)")
_BGBL = re.compile(r"\bBGBl\.?\s*(?P<part>III|II|I)\b\.?\s*(?::\s*(?P<y1>\d{4})\s*,\s*|(?P<y2>\d{4})\s*,?\s*S\.\s*|"
                   r"S\.\s*|Seite\s*)(?P<page>\d{1,5})\b")
_EU_BRACKET = re.compile(r"\((?P<org>EU|EG|EWG|Euratom)\)\s*(?:Nr\.\s*)?(?P<a>\d{1,4})/(?P<b>\d{1,5})\b")
_EU_SUFFIX = re.compile(r"\b(?P<a>\d{2,4})/(?P<b>\d{1,5})/(?P<org>EU|EG|EWG)\b")
_FILE_NO = re.compile(r"\b(?P<senate>\d{1,2}|[IVX]{1,5}[a-z]?)\s+(?P<reg>[A-Z][A-Za-z]{0,3})\s+(?P<num>\d{1,5})/"
                      r"(?P<year>\d{2}(?:\d{2})?)\b")
_NOT_REGISTERS = frozenset({"EUR", "USD", "CHF", "DM", "S", "NR", "ABS", "KW"})
_HEADING = re.compile(rf"^(?:\(X+\)\s*)?(?P<sign>§§?|Art(?:ikel|\.|\b))\s*(?P<nums>{_NUM}(?:{_SEP}{_NUM})*)")
_MAX_RANGE = 30
_ARTICLES = frozenset({"des", "der", "dem", "den", "im", "in", "vom", "das"})


@dataclass(frozen=True)
class Citation:
    """One reference found in a text: its section key, its finer key (an Absatz) if any, and its span."""

    key: str
    start: int
    end: int
    fine: str | None = None


def _numbers(nums: str) -> list[str]:
    """Section numbers of "1, 2", "3 bis 6", "15a und 16" ("3 bis 6" expands; a longer range keeps its ends)."""
    parts = re.split(rf"({_SEP})", nums)
    out: list[str] = []
    for i in range(0, len(parts), 2):
        num = re.sub(r"[§\s]", "", parts[i])
        sep = parts[i - 1].strip() if i else ""
        if sep in ("bis", "-", "–") and out and out[-1].isdigit() and num.isdigit():
            low, high = int(out[-1]), int(num)
            if 0 < high - low <= _MAX_RANGE:
                out.extend(str(n) for n in range(low + 1, high))
        out.append(num)
    return [n for n in out if n]


def _sign(sign: str) -> str:
    return "§" if sign.startswith("§") else "Art."


def _law_after(text: str, end: int, laws: LawNames, default_law: str | None) -> tuple[str | None, int]:
    """The law a reference ending at `end` names (an abbreviation, a name, "dieses Gesetzes"), else the default."""
    own = _OWN_LAW.match(text, end)
    if own:
        return default_law, own.end()
    m = _LAW_WORD.match(text, end)
    if m:
        tok = m.group("tok")
        if laws.is_law(tok):
            law = normalize_law(tok) + (f" {m.group('book')}" if m.group("book") and tok.upper() == "SGB" else "")
            return law, m.end()
    words = folded_words(text[end : end + 200])
    at = 1 if words and words[0][0] in _ARTICLES else 0
    # the name must follow at once (after one article), not somewhere later in the sentence
    if len(words) > at and words[0][1] <= 2 and words[at][1] - (words[0][2] if at else 0) <= 2:
        hit = laws.match_name(words, at)
        if hit:
            return hit[0], end + words[hit[1] - 1][2]
    return default_law, end


def _law_before(text: str, start: int, laws: LawNames) -> str | None:
    """A law written first, as in "BGB § 622" or the normal form "BURLG §3"."""
    m = next((m for m in _LAW_FIRST.finditer(text, max(0, start - 20), start + 12) if m.end() == start), None)
    if m is None:
        return None
    tok = m.group("tok")
    return normalize_law(tok) if laws.is_law(tok) else None


def _section_refs(text: str, laws: LawNames, default_law: str | None) -> list[Citation]:
    out: list[Citation] = []
    for m in _REF.finditer(text):
        law = _law_before(text, m.start(), laws)
        end = m.end()
        if law is None:
            law, end = _law_after(text, m.end(), laws, default_law)
        if not law:
            continue
        sign = _sign(m.group("sign"))
        absatz = _ABS.search(m.group("detail") or "")
        for num in _numbers(m.group("nums")):
            key = f"{law} {sign}{num}"
            fine = f"{key} Abs.{absatz.group(1)}" if absatz else None
            out.append(Citation(key, m.start(), end, fine))
    return out


def _other_refs(text: str) -> list[Citation]:
    out: list[Citation] = []
    for m in _BGBL.finditer(text):
        year = m.group("y1") or m.group("y2")
        key = f"BGBL {m.group('part')} {m.group('page')}"
        out.append(Citation(key, m.start(), m.end(), f"BGBL {m.group('part')} {year} {m.group('page')}" if year
                            else None))
    for rx in (_EU_BRACKET, _EU_SUFFIX):
        for m in rx.finditer(text):
            out.append(Citation(f"{m.group('org').upper()} {m.group('a')}/{m.group('b')}", m.start(), m.end()))
    for m in _FILE_NO.finditer(text):
        reg = m.group("reg")
        # a register is one capital ("B", "U") or has two ("BvR", "AZR", "StR"): "Uhr", "Mai" are words
        if reg.upper() in _NOT_REGISTERS or (len(reg) > 1 and sum(ch.isupper() for ch in reg) < 2):
            continue
        out.append(Citation(f"{m.group('senate')} {reg.upper()} {m.group('num')}/{m.group('year')}",
                            m.start(), m.end()))
    return out


def find_citations(text: str, laws: LawNames | None = None, default_law: str | None = None) -> list[Citation]:
    """Every legal reference in `text`, in text order. `default_law` is the law of a reference that names none."""
    laws = laws or curated()
    found = _section_refs(text, laws, default_law and normalize_law(default_law)) + _other_refs(text)
    return sorted(found, key=lambda c: (c.start, c.key))


def citation_keys(citations: Sequence[Citation], fine: bool = True) -> list[str]:
    """The keys of `citations`, each once, in order (with the finer Absatz keys when `fine`)."""
    keys: list[str] = []
    for c in citations:
        keys.append(c.key)
        if fine and c.fine:
            keys.append(c.fine)
    return list(dict.fromkeys(keys))


def document_law(front_matter: dict | None, title: str | None, heading_path: Sequence[str] = ()) -> str | None:
    """A document's own law: front matter `jurabk`, else "(ABBR)" at the end of its title or first heading."""
    jurabk = (front_matter or {}).get("jurabk")
    if isinstance(jurabk, str) and jurabk.strip():
        return normalize_law(jurabk)
    for text in (title, heading_path[0] if heading_path else None):
        m = re.search(r"\(([^()]{2,16})\)\s*$", text or "")
        if m and looks_like_abbreviation(m.group(1).split()[0]):
            return normalize_law(m.group(1))
    return None


def heading_sections(heading_path: Sequence[str], law: str | None) -> list[str]:
    """The section keys of the innermost § / Art. heading of a heading path ("§ 3 Dauer des Urlaubs" of the
    BUrlG -> ["BURLG §3"]; "§§ 3 bis 6 (weggefallen)" -> four keys); [] without a law or such a heading."""
    if not law:
        return []
    for heading in reversed(heading_path):
        m = _HEADING.match(heading.strip())
        if m:
            return [f"{normalize_law(law)} {_sign(m.group('sign'))}{n}" for n in _numbers(m.group("nums"))]
    return []


def law_names_for(title: str | None, law: str | None, text: str = "") -> LawNames:
    """The curated names plus a document's title as its law's name and the definitions in `text`."""
    names = _document_names(title, law)
    pairs = learn_definitions(text)
    return names.with_names(pairs) if pairs else names


@functools.lru_cache(maxsize=256)
def _document_names(title: str | None, law: str | None) -> LawNames:
    """The curated names plus a document's title (cached: every chunk of a document asks the same)."""
    if not (title and law):
        return curated()
    return curated().with_names([(re.sub(r"\s*\([^()]*\)\s*$", "", title), law)])


def query_citations(query: str, laws: LawNames | None = None) -> list[str]:
    """The section-level keys a query cites. A reference without a law takes the one law the query names
    ("Was steht im Bundesurlaubsgesetz in § 3?"); with none or several named, it is left out."""
    laws = laws or curated()
    named = laws.laws_named(query)
    default = named[0] if len(named) == 1 else None
    return citation_keys(find_citations(query, laws, default), fine=False)


def chunk_citations(text: str, heading_path: Sequence[str], title: str | None,
                    front_matter: dict | None) -> tuple[list[str], list[str]]:
    """(law_section, citations) of a chunk: the section keys its heading path names under its document's law,
    and every key it cites (those sections first, then its text's references, finer Absatz keys included)."""
    law = document_law(front_matter, title, heading_path)
    sections = heading_sections(heading_path, law)
    found = find_citations(text, law_names_for(title, law, text), law)
    return sections, list(dict.fromkeys([*sections, *citation_keys(found)]))
