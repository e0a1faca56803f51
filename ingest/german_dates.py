"""The date of a German document, found in its text: `Stand: 1. März 2024`, `zuletzt geändert durch Art. 2 G
v. 22.12.2023`, `Datum: 01.01.24`, `Berlin, den 3. Januar 2024`.

A document holds many dates; its own is the one a label names, not any date. Regexes only *find* candidate
phrases; `dateparser` (German, day-month-year order, no relative dates) parses each one, and a result must
agree with the digits the regex saw (dateparser swaps day and month where the day cannot be one: 12.13.2024).
Candidates rank, best first:

0. a current-state label: `Stand`, `zuletzt geändert (durch …)`, `geändert durch … v.`, `aktualisiert`:
   for a law its latest amendment (gesetze-im-internet writes `Zuletzt geändert durch : Art. 2 G v. 14.6.2021`);
1. a date label: `Datum`, `Ausfertigungsdatum`, `Rechnungsdatum`, `erstellt am`, `Neugefasst durch Bek. v.`;
2. `vom` / `v.` in the first lines (the title: `Gesetz zur … vom 8. Januar 1963`), unless the line cites
   another act there (`Verordnung zur Änderung der Verordnung vom …`, `§ 5`, `Art. 3`, `BGBl.`);
3. a line near the start or the end that is nothing but a date, after a place or an edition
   (`Berlin, den 3. Januar 2024`, `0. Auflage, 31. Dezember 2016`, `2020-11-21`).

Within ranks 0 and 1 the latest date wins (a law's last amendment, a re-promulgation after its
Ausfertigung); within ranks 2 and 3 the first. A date in running text (`gilt seit dem 1. Januar 2024`,
`§ 5 des Gesetzes vom 12.03.2019`) is never the document's date: without a label there is none.

Formats: `1. März 2024`, `1. Mrz. 2024`, `12.03.2024`, `14.6.2021`, `2024-03-12`, and two month-precision
ones, `Jan. 2024` / `März 2024` and (labelled only) `03/2024`, which stand for the first day of the month.
Two-digit years only as `dd.mm.yy` (both zero-padded, so section numbers like `1.2.10` are no date); they
follow Python's `%y` pivot, which dateparser uses: 00-68 are 2000-2068, 69-99 are 1969-1999. Dates that do
not exist (31.02.2024) and years outside 1800-2100 are rejected. Only the first `HEAD_CHARS` and the last
`TAIL_CHARS` characters are read (a letter's date may follow its signature), so the cost is bounded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

HEAD_CHARS = 3000
TAIL_CHARS = 1000
MIN_YEAR, MAX_YEAR = 1800, 2100
_LABEL_REACH = 90  # characters before a date in which its label is looked for
_EDGE_LINES = 10  # lines at the start and the end where a bare date line counts (rank 3)
_TITLE_LINES = 5  # lines at the start where `vom` counts (rank 2)

_MONTHS = ("Januar|Jänner|Februar|Feber|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember|"
           r"(?:Jan|Jän|Feb|Mär|Mrz|Apr|Jun|Jul|Aug|Sept|Sep|Okt|Nov|Dez)\.")
_MONTH_NUMBER = {name: i for i, names in enumerate(
    [("jan", "jän"), ("feb",), ("mär", "mrz"), ("apr",), ("mai",), ("jun",), ("jul",), ("aug",), ("sep",),
     ("okt",), ("nov",), ("dez",)], start=1) for name in names}
_DATE = re.compile(  # the lookahead fails most positions at once: a date starts with a digit or a month
    r"(?<!\w)(?=[\dJFMASONDjfmasond])"
    rf"(?:(?<![\w.])(?P<td>\d{{1,2}})\.\s?(?P<tm>{_MONTHS})\s?(?P<ty>\d{{4}})(?!\d)"  # 1. März 2024
    rf"|(?<![\w.])(?P<mm>{_MONTHS})\s(?P<my>\d{{4}})(?!\d)"  # März 2024, Jan. 2024
    r"|(?<![\w.,/])(?P<nd>\d{1,2})\.\s?(?P<nm>\d{1,2})\.\s?(?P<ny>\d{4}|\d{2})(?![\d.]\d|\d)"  # 12.03.2024
    r"|(?<![\w.,/-])(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})(?![\d-])"  # 2024-03-12
    r"|(?<![\w.,/])(?P<sm>\d{1,2})/(?P<sy>\d{4})(?![\d/]))",  # 03/2024 (labelled only)
    re.IGNORECASE)

_AMEND, _STAND, _DATED, _REISSUE, _VOM = "amend", "stand", "dated", "reissue", "vom"
_RANK = {_AMEND: 0, _STAND: 0, _DATED: 1, _REISSUE: 1, _VOM: 2}
_LABEL = re.compile(
    r"(?P<amend>zuletzt\s+geändert(?:\s+durch)?|(?<!\w)geändert\s+durch|letzte\s+Änderung)"
    r"|(?P<stand>(?<!\w)Stand(?!\w)|(?:zuletzt\s+)?aktualisiert(?:\s+am)?|letzte\s+Aktualisierung|Änderungsdatum)"
    r"|(?P<dated>(?<!\w)(?:Rechnungs|Beleg|Ausfertigungs|Ausstellungs|Dokument|Erstellungs|Veröffentlichungs"
    r"|Brief)?datum(?!\w)|(?:erstellt|veröffentlicht|ausgefertigt|ausgestellt)\s+am)"
    r"|(?P<reissue>neu\s*gefasst\s+durch|Neufassung)"
    r"|(?P<vom>(?<!\w)(?:vom|v\.)(?!\w))",
    re.IGNORECASE)
# What may stand between a strict label and its date ("Stand: ", "Datum vom ", "erstellt am ")
_STRICT_GAP = re.compile(r"[\s:.,;–-]*(?:(?:vom|v\.|am|den|per)\s*)?", re.IGNORECASE)
# A permissive label reaches over an act's short name to its date ("zuletzt geändert durch Art. 2 G v. ")
_PERMISSIVE_GAP = re.compile(r"(?:[^\n]|\n(?!\s*\n)){0,70}?(?:vom|v\.|am|:)\s*", re.IGNORECASE)  # no blank line
# A line up to a `vom` that cites another act: then the date is that act's, not this document's
_CITATION = re.compile(
    r"§|\bArt(?:ikel|\.)\s*\d|\bBGBl|\bAbs\.|\bNr\.|\bG\s+v\.|\b(?:des|der|dem|den)\s+(?:\w+\s+){0,2}?\w*"
    r"(?:gesetz|verordnung|richtlinie|beschluss|bekanntmachung|vertrag|satzung|erlass|urteil)",
    re.IGNORECASE)
_LINE_LEAD = re.compile(r"[\s*•·–(-]*(?:Stand\s*:?\s*)?", re.IGNORECASE)  # what may open a label's line
# A place or an edition (up to four words, `Frankfurt am Main`, `0. Auflage`), a comma, `den` or `am`
_DATE_LINE_PREFIX = re.compile(r"\s*(?:[^\W_][^\s,:;§]*(?:[ \t]+[^\s,:;§]+){0,3},\s*)?(?:(?:den|am)\s+)?")
_SETTINGS: dict[str, Any] = {"DATE_ORDER": "DMY", "PREFER_DAY_OF_MONTH": "first", "PARSERS": ["absolute-time"],
                             "RETURN_AS_TIMEZONE_AWARE": False}


@dataclass(frozen=True)
class DocumentDate:
    """The document's date: `iso` (YYYY-MM-DD; the first of the month for a month-precision phrase) and the
    `phrase` it came from exactly as in the text, which is `text[start:end]`."""

    iso: str
    phrase: str
    start: int
    end: int


@dataclass(frozen=True)
class _Candidate:
    match: re.Match[str]
    rank: int
    phrase_start: int  # where its label (or its date line) begins


def find_document_date(text: str) -> DocumentDate | None:
    """The document's own date found in the start or the end of `text` (see the module's docstring for what
    counts), or None where no labelled date or date line qualifies. Never raises for any text."""
    candidates = _candidates(text)
    for rank in sorted({c.rank for c in candidates}):
        found = [(iso, c) for c in candidates if c.rank == rank and (iso := _parse_match(c.match))]
        if found:
            iso, best = max(found, key=lambda f: f[0]) if rank <= 1 else found[0]
            start, end = best.phrase_start, best.match.end()
            return DocumentDate(iso, text[start:end], start, end)
    return None


def parse_german_date(phrase: str) -> str | None:
    """A date phrase such as a front matter value (`1. März 2024`, `12.03.2024`, `2024-03-12`) as an ISO
    date, parsed like a candidate in the text; None where it holds no single valid date."""
    match = _DATE.fullmatch(phrase.strip()[:64])
    return _parse_match(match) if match else None


def _spans(text: str) -> list[tuple[int, int]]:
    """Where dates may start: the first HEAD_CHARS and the last TAIL_CHARS characters."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return [(0, len(text))]
    return [(0, HEAD_CHARS), (len(text) - TAIL_CHARS, len(text))]


def _candidates(text: str) -> list[_Candidate]:
    """Every date starting in a span, with the rank of its label or date line. The regex runs on the whole
    text from the span's start (its lookbehinds see what precedes) to a little past its end (a date on the
    boundary is read whole, not cut to `12.03.20`)."""
    out = []
    title_end = _line_starts_end(text, _TITLE_LINES)
    head_end, tail_start = _line_starts_end(text, _EDGE_LINES), _line_ends_start(text, _EDGE_LINES)
    for span_start, span_end in _spans(text):
        for match in _DATE.finditer(text, span_start, min(len(text), span_end + 32)):
            if match.start() >= span_end:
                break
            labelled = _label(text, match, title_end)
            if labelled is not None:
                out.append(_Candidate(match, _RANK[labelled[0]], labelled[1]))
            elif match.group("sm") is None and (match.start() < head_end or match.start() >= tail_start):
                line_start = _date_line_start(text, match)
                if line_start is not None:
                    out.append(_Candidate(match, 3, line_start))
    return out


def _label(window: str, match: re.Match[str], title_end: int) -> tuple[str, int] | None:
    """(kind, start) of the best label this date belongs to, or None. A label's gap to the date must fit its
    kind; a `vom` counts only in the title lines and where the line up to it cites no other act."""
    start = match.start()
    best: tuple[str, int] | None = None
    for label in _LABEL.finditer(window, max(0, start - _LABEL_REACH), start):
        kind = label.lastgroup or ""
        if _fits(window, label, kind, start, title_end) and (best is None or _RANK[kind] <= _RANK[best[0]]):
            best = (kind, label.start())
    return best


def _fits(window: str, label: re.Match[str], kind: str, start: int, title_end: int) -> bool:
    gap = window[label.end() : start]
    if _STRICT_GAP.fullmatch(gap):
        if kind != _VOM:
            return True
        line_start = window.rfind("\n", 0, label.start()) + 1
        return start < title_end and not _CITATION.search(window, line_start, label.start())
    # `zuletzt geändert durch Art. 2 G v.`, `Neugefasst durch Bek. v.`: as a line's label only, where a law's
    # header has it; in running text such a phrase tells what another act did
    line_start = window.rfind("\n", 0, label.start()) + 1
    return (kind in (_AMEND, _REISSUE) and bool(_LINE_LEAD.fullmatch(window, line_start, label.start()))
            and bool(_PERMISSIVE_GAP.fullmatch(gap)) and _DATE.search(gap) is None)


def _date_line_start(window: str, match: re.Match[str]) -> int | None:
    """Where the date's line begins if that line is only the date, after a place or an edition and `den`."""
    line_start = window.rfind("\n", 0, match.start()) + 1
    line_end = window.find("\n", match.end())
    line_end = len(window) if line_end == -1 else line_end
    if window[match.end() : line_end].strip(" \t\r.") or not _DATE_LINE_PREFIX.fullmatch(window, line_start,
                                                                                         match.start()):
        return None
    return line_start + len(window[line_start : match.start()]) - len(window[line_start : match.start()].lstrip())


def _line_starts_end(window: str, lines: int) -> int:
    """The end of the first `lines` non-empty lines (0 for none)."""
    end, seen = 0, 0
    while seen < lines and end < len(window):
        nxt = window.find("\n", end)
        nxt = len(window) if nxt == -1 else nxt
        seen += bool(window[end:nxt].strip())
        end = nxt + 1
    return min(end, len(window)) if lines else 0


def _line_ends_start(window: str, lines: int) -> int:
    """The start of the last `lines` non-empty lines (len(window) for none)."""
    start, seen = len(window), 0
    while seen < lines and start > 0:
        prev = window.rfind("\n", 0, start - 1) + 1
        seen += bool(window[prev:start].strip())
        start = prev
    return start


def _parse_match(match: re.Match[str]) -> str | None:
    """The ISO date of a candidate, parsed by dateparser and checked against the regex's own digits."""
    groups = match.groupdict()
    if groups["nd"] is not None and len(groups["ny"]) == 2 and (len(groups["nd"]) != 2 or len(groups["nm"]) != 2):
        return None  # dd.mm.yy only: `1.2.10` is a section number
    day = groups["td"] or groups["nd"] or groups["id"]
    month = groups["nm"] or groups["im"] or groups["sm"]
    month_name = groups["tm"] or groups["mm"]
    year = groups["ty"] or groups["my"] or groups["ny"] or groups["iy"] or groups["sy"]
    try:
        parsed = _parser(day is not None).get_date_data(match.group(0)).date_obj
    except Exception:  # dateparser on a phrase it cannot handle: no date, never a failed file
        return None
    if parsed is None or not MIN_YEAR <= parsed.year <= MAX_YEAR:
        return None
    expected_month = int(month) if month else _MONTH_NUMBER.get(month_name.lower()[:3], 0) if month_name else 0
    if (day is not None and parsed.day != int(day)) or parsed.month != expected_month:
        return None
    if parsed.year % 100 != int(year) % 100 or (len(year) == 4 and parsed.year != int(year)):
        return None
    return dt.date(parsed.year, parsed.month, parsed.day if day is not None else 1).isoformat()


@lru_cache(maxsize=2)
def _parser(with_day: bool):
    """dateparser for German day-month-year phrases; every part the phrase must have is required, so a
    missing one is never filled in from today."""
    from dateparser.date import DateDataParser  # type: ignore[import-untyped]

    parts = ["day", "month", "year"] if with_day else ["month", "year"]
    return DateDataParser(languages=["de"], settings={**_SETTINGS, "REQUIRE_PARTS": parts})


def warm_up() -> None:
    """Load dateparser's German data now (about 0.1 s on its first phrase), e.g. before forking workers."""
    _parser(True).get_date_data("1. März 2024")
    _parser(False).get_date_data("März 2024")
