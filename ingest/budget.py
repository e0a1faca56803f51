"""Bounding parse work by what a file yields, before a parser builds its element list.

A zip-based document (DOCX, PPTX, XLSX, ODT, EPUB) can be small on disk and far under the unpacked
size limit, yet hold hundreds of thousands of paragraphs: unstructured then needs minutes and
gigabytes to build one element per paragraph. So the archive's XML parts are streamed once (lxml
iterparse, memory freed as it goes) and their paragraphs and characters counted; the count stops,
with a LimitError naming the file and the limit, as soon as `max_elements` or `max_text_chars` is
passed. Counting is exact rather than estimated from the XML size: the ratio of markup to text varies
too much (the sample DOCX in shared/data has 730 bytes of XML per character of text, a paragraph bomb 2).

Paragraphs are not the only work: inside one, the partitioner walks every run, text node, line break
and tab, and every table cell. Each costs a fraction of a paragraph, and children of one element cost
more the more siblings they have (python-docx collects a run's text with an XPath union whose merge
grows with the square of the run's children: 30,000 breaks in one run took 10 s, 60,000 took 47 s).
So these are counted too, weighted by measured cost, in the same unit as a paragraph (see
`INLINE_WEIGHT` and `SIBLING_WEIGHT`).
"""

from __future__ import annotations

import math
import re
import zipfile
from email.message import Message
from pathlib import Path

from lxml import etree

from ingest.limits import LimitError, Limits, html_units
from ingest.schema import ParseError

# Local names of the XML elements a partitioner turns into one element each: paragraphs and headings
# (w:p, a:p, text:p, text:h, XHTML p/h1-h6/li) and spreadsheet rows.
BLOCK_TAGS = frozenset({"p", "h", "h1", "h2", "h3", "h4", "h5", "h6", "li", "row"})
# Local names of what the partitioner walks inside a block: runs, text nodes, breaks, tabs, fields,
# spans (OOXML w:/a:, ODF text:, XHTML) and table cells (w:tc, a:tc, XLSX c and v, ODF table-cell).
INLINE_TAGS = frozenset({"r", "t", "br", "cr", "tab", "ptab", "sym", "noBreakHyphen", "softHyphen", "fld",
                         "fldSimple", "hyperlink", "span", "a", "s", "line-break", "soft-page-break", "tc", "c", "v",
                         "table-cell", "td", "th"})
CELL_TAGS = frozenset({"tc", "table-cell"})  # DOCX/PPTX/ODF cells hold the paragraphs, so sit outside them
# A run with its text node cost about 0.1 ms in unstructured 0.27 (300,000 runs: 30 s), a paragraph
# 0.4 ms: an inline element counts as an eighth of a paragraph. A 1,000-page book (30,000 paragraphs
# of a few runs) stays near 50,000 of the default 100,000.
INLINE_WEIGHT = 0.125
# The k-th child of one element inside a block adds k / 10,000 more, so k children add k^2 / 20,000:
# measured, 60,000 children of one run (30,000 breaks, a 2 KB file) cost 10 s, 120,000 cost 47 s, so
# the curve is steeper than k^2 / 160,000. The weight is eight times that, so such a file is refused
# at the default limit: no real text has thousands of breaks in one run, and a paragraph of 1,000
# runs pays only 50 extra.
SIBLING_WEIGHT = 1 / 10_000
_PEEK = 64


def check_zip_budget(path: Path, source: str, limits: Limits) -> tuple[int, int]:
    """(parse work in paragraph units, characters) of the archive's XML parts; LimitError past either limit.

    Every member that starts like XML is counted, whatever its name: the main part of an Office file
    is found through relationships, so a name pattern could be evaded.
    """
    counter = _Counter(source, limits)
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir() and _looks_like_xml(zf, info):
                    with zf.open(info) as fh:
                        counter.feed(fh)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ParseError(f"{source}: corrupt or truncated {path.suffix[1:].upper()} file: {exc}") from exc
    return math.ceil(counter.units), counter.chars


def _looks_like_xml(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    with zf.open(info) as fh:
        head = fh.read(_PEEK)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


class _Counter:
    """Counts parse work (blocks, and the inline elements and cells inside them) and the characters inside
    blocks (text outside any block, such as document properties or style names, is not what a
    partitioner yields)."""

    def __init__(self, source: str, limits: Limits) -> None:
        self.source, self.limits = source, limits
        self.units = 0.0
        self.chars = 0

    def feed(self, fh) -> None:
        events = etree.iterparse(fh, events=("start", "end"), resolve_entities=False, no_network=True,
                                 recover=True, remove_comments=True, remove_pis=True)
        open_blocks = open_props = 0
        children: list[int] = []  # children seen so far of each open element (freed siblings included)
        try:
            for event, el in events:
                name = el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""  # the local name
                block, props = name in BLOCK_TAGS, name.endswith("Pr")  # w:rPr, a:pPr: formatting, not text
                if event == "start":
                    self._start(name, open_blocks, open_props, children)
                    children.append(0)
                    open_blocks += block
                    open_props += props
                    continue
                children.pop()
                if open_blocks:
                    self._add_chars(len((el.text or "").strip()))
                open_blocks -= block
                open_props -= props
                if open_blocks:
                    self._add_chars(len((el.tail or "").strip()))
                if block:
                    self._add(1.0)
                _free(el)
        except etree.XMLSyntaxError:
            return  # a broken part is the partitioner's to report; what was counted so far stands

    def _start(self, name: str, open_blocks: int, open_props: int, children: list[int]) -> None:
        if not children:
            return
        children[-1] += 1
        if open_props or not (open_blocks or name in CELL_TAGS):
            return
        if name in INLINE_TAGS:
            self._add(INLINE_WEIGHT)
        self._add((children[-1] - 1) * SIBLING_WEIGHT)

    def _add(self, units: float) -> None:
        self.units += units
        if self.limits.max_elements and self.units > self.limits.max_elements:
            limit = self.limits.max_elements
            raise LimitError(f"{self.source}: more than {limit} paragraphs, rows or other elements (runs, line "
                             f"breaks, tabs and cells weighted by their parse cost), over the limit of {limit} "
                             "(max_elements); stopped before parsing")

    def _add_chars(self, chars: int) -> None:
        self.chars += chars
        if self.limits.max_text_chars and self.chars > self.limits.max_text_chars:
            limit = self.limits.max_text_chars
            raise LimitError(f"{self.source}: more than {limit} characters of text, over the limit of {limit} "
                             "(max_text_chars); stopped before parsing")


def _free(el) -> None:
    """Drop a finished element's content and its finished siblings: memory stays flat on any size."""
    el.clear(keep_tail=False)
    parent = el.getparent()
    while parent is not None and el.getprevious() is not None:
        del parent[0]


# E-mail (EML). Every MIME part costs the stdlib's parse and, as an attachment, a trip through
# unstructured's file-type detection and partitioner: measured 2.1 to 2.3 ms a part (500 to 2,000 tiny
# text/plain parts), against 0.16 to 0.18 ms for a paragraph of a mail body, so a part counts 12
# paragraph units. A line of a text part becomes an element (0.13 ms measured, 0.75 units); the text
# itself costs about 1 us a character in the partitioner (a 450 KB one-line body: 0.58 s), 1/200 unit.
PART_WEIGHT = 12.0
LINE_WEIGHT = 0.75
CHAR_WEIGHT = 1 / 200
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]+)"|([^\s;"]+))', re.IGNORECASE)
_DASH_LINE = re.compile(rb"^--([^\r\n]*)$", re.MULTILINE)


def count_mime_parts(data: bytes) -> int:
    """Parts of a raw message, counted from its boundary lines without parsing it (the stdlib parser alone
    needs 0.6 ms a part). A boundary declared in RFC 2231 form (boundary*=...) is not read here: then every
    line starting with "--" counts, an overcount only for such rare mails."""
    boundaries = {m.group(1) or m.group(2) for m in _BOUNDARY.finditer(data)}
    any_dash = re.search(rb"boundary\*", data, re.IGNORECASE) is not None
    parts = 1
    for match in _DASH_LINE.finditer(data):
        token = match.group(1).rstrip()
        parts += any_dash or token in boundaries
    return parts


class EmailBudget:
    """Parse work of an e-mail in paragraph units: its parts first (before the message is parsed), then the
    text each text part holds; LimitError naming `max_elements` as soon as it passes the limit."""

    def __init__(self, source: str, limits: Limits) -> None:
        self.source, self.limit = source, limits.max_elements
        self.units = 0.0

    def add_parts(self, parts: int) -> None:
        self._add(parts * PART_WEIGHT)

    def add_text(self, part: Message) -> None:
        """The text of one leaf text/* part: its lines and characters, and for HTML its tags."""
        payload = part.get_payload(decode=True)
        if part.get_content_maintype() != "text" or not isinstance(payload, bytes):
            return
        self._add(text_units(payload.splitlines(), len(payload)))
        if part.get_content_subtype() == "html":
            self.units = html_units(payload.decode("utf-8", "replace"), self.source, self.limit, self.units)

    def _add(self, units: float) -> None:
        self.units += units
        if self.limit and self.units > self.limit:
            raise LimitError(f"{self.source}: more than {self.limit} units of parse work (MIME parts, and the "
                             f"lines, characters and tags of their text, weighted by their parse cost), over the "
                             f"limit of {self.limit} (max_elements); stopped before parsing")


def check_text_budget(text: str, source: str, limits: Limits) -> float:
    """Parse work of a plain-text or Markdown file: each non-blank line becomes (or splits) an element,
    about 0.15 ms of the partitioner's work (a million one-word lines took minutes); LimitError naming
    `max_elements` past the limit, before partitioning."""
    units = text_units(text.splitlines(), len(text))
    if limits.max_elements and units > limits.max_elements:
        lines = sum(1 for line in text.splitlines() if line.strip())  # for the message only
        raise LimitError(f"{source}: {lines} lines of text, {math.ceil(units)} units of parse work, over the limit "
                         f"of {limits.max_elements} (max_elements); stopped before parsing")
    return units


def text_units(lines: list[str] | list[bytes], chars: int) -> float:
    """Parse work of plain text: its non-blank lines (each becomes or splits an element) and characters."""
    return sum(LINE_WEIGHT for line in lines if line.strip()) + chars * CHAR_WEIGHT
