"""Bounding parse work by what a file yields, before a parser builds its element list.

A zip-based document (DOCX, PPTX, XLSX, ODT, EPUB) can be small on disk and far under the unpacked
size limit, yet hold hundreds of thousands of paragraphs: unstructured then needs minutes and
gigabytes to build one element per paragraph. So the archive's XML parts are streamed once (lxml
iterparse, memory freed as it goes) and their paragraphs and characters counted; the count stops,
with a LimitError naming the file and the limit, as soon as `max_elements` or `max_text_chars` is
passed. Counting is exact rather than estimated from the XML size: the ratio of markup to text varies
too much (the sample DOCX in shared/data has 730 bytes of XML per character of text, a paragraph bomb 2).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from lxml import etree

from ingest.limits import LimitError, Limits
from ingest.schema import ParseError

# Local names of the XML elements a partitioner turns into one element each: paragraphs and headings
# (w:p, a:p, text:p, text:h, XHTML p/h1-h6/li) and spreadsheet rows.
BLOCK_TAGS = frozenset({"p", "h", "h1", "h2", "h3", "h4", "h5", "h6", "li", "row"})
_PEEK = 64


def check_zip_budget(path: Path, source: str, limits: Limits) -> tuple[int, int]:
    """(elements, characters) of the archive's XML parts; LimitError past either limit.

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
    return counter.elements, counter.chars


def _looks_like_xml(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    with zf.open(info) as fh:
        head = fh.read(_PEEK)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


class _Counter:
    """Counts block elements and the characters inside them (text outside any block, such as document
    properties or style names, is not what a partitioner yields)."""

    def __init__(self, source: str, limits: Limits) -> None:
        self.source, self.limits = source, limits
        self.elements = self.chars = 0

    def feed(self, fh) -> None:
        events = etree.iterparse(fh, events=("start", "end"), resolve_entities=False, no_network=True,
                                 recover=True, remove_comments=True, remove_pis=True)
        open_blocks = 0
        try:
            for event, el in events:
                block = isinstance(el.tag, str) and etree.QName(el).localname in BLOCK_TAGS
                if event == "start":
                    open_blocks += block
                    continue
                if open_blocks:
                    self._add_chars(len((el.text or "").strip()))
                open_blocks -= block
                if open_blocks:
                    self._add_chars(len((el.tail or "").strip()))
                if block:
                    self._add_element()
                _free(el)
        except etree.XMLSyntaxError:
            return  # a broken part is the partitioner's to report; what was counted so far stands

    def _add_element(self) -> None:
        self.elements += 1
        if self.limits.max_elements and self.elements > self.limits.max_elements:
            limit = self.limits.max_elements
            raise LimitError(f"{self.source}: more than {limit} paragraphs, rows or other elements, over the limit "
                             f"of {limit} (max_elements); stopped before parsing")

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
