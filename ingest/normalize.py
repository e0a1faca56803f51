"""German-safe text clean-up, applied to each parsed element before any offset exists.

Umlauts and ß are kept as they are (folding belongs to the lexical analyzer only). Real hyphens
(`E-Mail`, `Baden-Württemberg`, `Ein- und Ausgang`) survive; only a hyphen that a line break made
(`Bundes-\\nregierung`) is removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

_LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}
_INVISIBLE = {"\u00ad": "", "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "", "\u2060": ""}
_SPACES = {"\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ", "\t": " "}
_TRANSLATE = str.maketrans({**_LIGATURES, **_INVISIBLE, **_SPACES})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A word part, a hyphen, a line break, then a lower-case continuation: a break inside one word.
# pdfminer (through unstructured) often hands the break over as a space already: `Übungsauf- gaben`.
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_]{2})-(?:[ ]*\r?\n[ ]*|[ ]+)(?=[a-zäöüß])")
_HYPHEN_UPPER = re.compile(r"(?<=[^\W\d_])-[ ]*\r?\n[ ]*(?=[A-ZÄÖÜ])")
# ...unless the continuation is a conjunction: `Ein-\nund Ausgang` keeps its hyphen.
_CONJUNCTIONS = ("und ", "oder ", "bzw. ", "sowie ", "bis ", "und/", "als ", "wie ", "noch ", "u. ")
_LINE_BREAK = re.compile(r"[ ]*\r?\n[ ]*")
_MULTI_SPACE = re.compile(r"[ ]{2,}")


def _join_hyphenated(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        rest = text[match.end() : match.end() + 6]
        return "- " if rest.startswith(_CONJUNCTIONS) else ""

    text = _HYPHEN_BREAK.sub(repl, text)
    return _HYPHEN_UPPER.sub("-", text)  # `Baden-\nWürttemberg`: a real hyphen at a line end


def normalize_text(text: str, *, join_lines: bool = False) -> str:
    """NFC, ligatures, soft hyphens and control characters; optionally re-flow PDF lines.

    `join_lines` is for PDF text, where a line break is layout, not structure: hyphenated breaks are
    joined and the remaining single breaks become spaces. Paragraph breaks (blank lines) stay.
    """
    text = unicodedata.normalize("NFC", text).translate(_TRANSLATE)
    text = _CONTROL.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    if join_lines:
        text = _join_hyphenated(text)
        paragraphs = re.split(r"\n[ ]*\n", text)
        text = "\n\n".join(_LINE_BREAK.sub(" ", p) for p in paragraphs)
    text = _MULTI_SPACE.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def _shape(text: str) -> str:
    """Text with digits masked, so `Seite 3` and `Seite 4` count as one running footer."""
    return re.sub(r"\d+", "#", text.strip().lower())


def running_lines(pages: Sequence[Sequence[str]], min_share: float = 0.5, edge: int = 2) -> set[str]:
    """Shapes of lines that repeat at the top or bottom of many pages: running headers and footers.

    `pages` holds each page's element texts in reading order. Only the first and last `edge`
    elements of a page are candidates, and a shape must appear on at least `min_share` of the
    pages (and on at least 3) to count.
    """
    if len(pages) < 3:
        return set()
    counts: Counter[str] = Counter()
    for elements in pages:
        edges = {_shape(t) for t in [*elements[:edge], *elements[-edge:]] if t.strip()}
        counts.update(edges)
    needed = max(3, int(len(pages) * min_share + 0.999))
    return {shape for shape, n in counts.items() if n >= needed}


def is_running_line(text: str, shapes: set[str]) -> bool:
    return _shape(text) in shapes


def is_page_number(text: str) -> bool:
    """A bare page number or `Seite N (von M)` / `- N -`: layout, not content."""
    return bool(re.fullmatch(r"(seite\s*)?[-–]?\s*\d{1,4}\s*[-–]?(\s*(von|/)\s*\d{1,4})?", text.strip().lower()))
