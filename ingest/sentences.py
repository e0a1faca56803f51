"""German sentence boundaries as character spans.

A period ends a sentence only when it is not part of an abbreviation (`z. B.`, `Nr.`, `Abs.`), an
ordinal or date (`3. Oktober`, `1. FC Köln`), or a legal reference (`§ 5 Abs. 2 S. 1`), and the next
word can begin a sentence. Spans are produced while scanning, so they are exact.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ABBREVIATIONS = _words(
    """
    abs abschn abt allg anh anl anm art aufl az bd bde bearb best betr bgbl bsp bspw bzgl bzw ca chr co
    dgl dh dr dt ebd eingetr entspr erg etc ev evtl e.v exkl f ff fa frl geb gebr gem ges gg ggf ggfs
    gmbh hd hg hr hrsg i.a i.d i.d.r i.e i.s i.s.d i.v.m inkl insb jh jr kap kfz lfd lit max min mio
    mind mrd nachf nr nrn o.a o.g o.ä obb pkt pl prof rd rdnr rn rs s sog st std str tel tsd u.a u.ä u.u
    usf usw v vgl vj vs z.b z.t zb zit zt ziff zzgl d.h z.z zz jan feb febr mär apr jun jul aug sep sept
    okt nov dez
    """
)
MONTHS = _words("januar februar märz april mai juni juli august september oktober november dezember")
# Candidate end: ., ! or ? (with closing quotes/brackets), then whitespace.
_END = re.compile(r"[.!?…]+[\"'»«“”‘’)\]]*(?=\s)")
_PARAGRAPH = re.compile(r"\n\s*\n")


def _word_before(text: str, pos: int) -> str:
    """The token that ends at `pos` (the period's index), dots inside it kept (`z.B`)."""
    start = pos
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "([„\"'":
        start -= 1
    return text[start:pos]


def _abbreviation_chain(text: str, pos: int) -> str:
    """`z. B` before a period: join single letters separated by `. ` into one key."""
    word = _word_before(text, pos)
    start = pos - len(word)
    while (len(word.split(".")[0]) <= 2 and start >= 3 and text[start - 1] == " "
           and text[start - 2] == "." and text[start - 3].isalpha()):
        prev = _word_before(text, start - 2)
        if len(prev) > 2:
            break
        word = prev + "." + word
        start = start - 2 - len(prev)
    return word.lower()


def _is_boundary(text: str, end: int, period_at: int) -> bool:
    if text[period_at] != ".":
        return True
    word = _abbreviation_chain(text, period_at)
    if word in ABBREVIATIONS or word.rstrip(".") in ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha():  # initials, `S.`, `f.`
        return False
    if re.fullmatch(r"\d{1,2}", word):  # ordinals and day numbers: `3. Oktober`, `2. Weltkrieg`
        return False
    if re.fullmatch(r"(\d{1,2}\.)+\d{0,4}", word):  # dates such as `20.4.` or 1.1.2020 mid-sentence
        nxt = text[end:].lstrip()[:1]
        return nxt.isupper() and not text[end:].lstrip().lower().startswith(tuple(MONTHS))
    following = text[end:].lstrip()
    return not following or not following[0].islower()


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of sentences in text[start:end], whitespace between sentences left out."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for para in _split_paragraphs(text, start, end):
        p_start, p_end = para
        cursor = p_start
        for match in _END.finditer(text, p_start, p_end):
            period_at = match.start()
            if _is_boundary(text, match.end(), period_at):
                spans.append((cursor, match.end()))
                cursor = match.end()
                while cursor < p_end and text[cursor].isspace():
                    cursor += 1
        if cursor < p_end:
            spans.append((cursor, p_end))
    return [s for s in spans if s[1] > s[0]]


def _split_paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Blank lines always separate sentences (list items, headings inside one element)."""
    out = []
    cursor = start
    for m in _PARAGRAPH.finditer(text, start, end):
        out.append((cursor, m.start()))
        cursor = m.end()
    out.append((cursor, end))
    stripped = []
    for s, e in out:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            stripped.append((s, e))
    return stripped
