"""Per-file limits and the checks that run before a parser touches a file.

Unattended runs meet files nobody looked at: FIFOs that block a reader forever, zip archives that
expand to gigabytes, encrypted Office files that look like corrupt ones. Each gets a ParseError that
names the file and the reason *before* any parsing, so a file over a limit is reported, never
half-ingested.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from ingest.ocr import OcrOptions
from ingest.schema import EmptyDocumentError, ParseError

ZIP_FORMATS = {".docx", ".pptx", ".xlsx", ".odt", ".epub"}
HTML_FORMATS = {".html", ".htm", ".xhtml"}
MAX_HTML_DEPTH = 255  # libxml2's HTML parser drops what lies deeper, so unstructured would lose that text
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
              "track", "wbr", "p", "li", "td", "th", "tr", "option", "dt", "dd"}  # void or often left open
# HTML tags that become (or close) one partitioner element each: paragraphs, headings, list items, rows and
# the block-level containers (a flat page of 150,000 <div> sentences took 34 s and 930 MB when only the
# first kind was counted). Measured in parse_file (unstructured 0.27 and trafilatura), a <div> or
# <section> sentence costs what a <p> sentence costs (about 0.2 ms on 2 shared cores), so each counts 1.
_HTML_BLOCKS = frozenset({"p", "li", "tr", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "div", "section",
                          "article", "aside", "header", "footer", "nav", "main", "blockquote", "pre", "address",
                          "figure", "figcaption", "details", "summary", "form", "fieldset", "legend", "table",
                          "caption", "ul", "ol", "dl", "hr", "center", "dialog", "menu", "hgroup", "search"})
# Any other tag (a <br> line, a <td> cell, a <span>, an empty element) measured 0.25 to 0.45 of a
# paragraph: 20,000 <br> lines in one <p> took 1.3 s, 20,000 cells of one row 1.9 s, 20,000 spans 1.2 s,
# 20,000 <p> sentences 4.1 s. Real pages have a few hundred to a thousand tags in all.
_HTML_TAG_WEIGHT = 0.4
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: legacy Office, or encrypted OOXML


class LimitError(ParseError):
    """A file is over one of the per-file limits (bytes, pages, unpacked size, parse time)."""


@dataclass(frozen=True)
class Limits:
    """Per-file limits; 0 switches a limit off."""

    max_file_bytes: int = 512 * 1024 * 1024
    max_pages: int = 5000
    max_unzipped_bytes: int = 1024 * 1024 * 1024  # bounds decompression bombs in DOCX/XLSX/PPTX/ODT/EPUB
    max_text_chars: int = 50_000_000
    # Paragraphs, headings, list items and rows of a zip-based document or an HTML page, counted before
    # the partitioner builds one element per each (about 0.4 ms and several KB apiece in unstructured,
    # so 100,000 is about 40 s of parsing; a 1,000-page book has 10,000 to 30,000). In zip-based files
    # runs, text nodes, breaks, tabs and cells count too, weighted by cost (ingest.budget; such a book
    # is about 53,000 in all). PDFs are bounded by max_pages instead.
    max_elements: int = 100_000
    # Parse in a worker process that is killed past this; 0 = in process. A service that parses
    # untrusted uploads should pass a lower value (pipelines/build.py maps its setting here).
    parse_timeout_s: float = 600.0
    # OCR of scanned pages, image files and Office files made of images (ingest.ocr); it runs inside the
    # parse worker, so parse_timeout_s still bounds the whole file
    ocr: OcrOptions = field(default_factory=OcrOptions)

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_pages", "max_unzipped_bytes", "max_text_chars", "max_elements",
                     "parse_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"limit {name} must be >= 0, got {getattr(self, name)!r}")


def file_stamp(path: Path, source: str) -> tuple[int, int, int]:
    """(size, mtime_ns, inode) of a regular file; anything else is a ParseError naming it.

    A FIFO or socket would block a reader forever, so it is refused before it is opened.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ParseError(f"{source}: cannot read file: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise ParseError(f"{source}: cannot read file: it is {kind}, not a regular file")
    return st.st_size, st.st_mtime_ns, st.st_ino


def check_size(size: int, source: str, limits: Limits) -> None:
    if size == 0:
        raise EmptyDocumentError(f"{source}: file is empty (0 bytes)")
    if limits.max_file_bytes and size > limits.max_file_bytes:
        raise LimitError(f"{source}: {size} bytes, over the limit of {limits.max_file_bytes} (max_file_bytes)")


def check_zip(path: Path, source: str, limits: Limits) -> None:
    """Office/ODF/EPUB are zip archives: tell encrypted from corrupt, and refuse decompression bombs."""
    ext = path.suffix.lower()
    with path.open("rb") as fh:
        head = fh.read(8)
    if head == _OLE_MAGIC:
        data = path.read_bytes()[:4_000_000]
        if "EncryptionInfo".encode("utf-16-le") in data or "EncryptedPackage".encode("utf-16-le") in data:
            raise ParseError(f"{source}: {ext[1:].upper()} file is password-protected (encrypted)")
        raise ParseError(f"{source}: not a {ext[1:].upper()} file (an old binary Office file?); save it as "
                         f"{ext[1:].upper()}")
    try:
        with zipfile.ZipFile(path) as zf:
            unpacked = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(f"{source}: corrupt or truncated {ext[1:].upper()} file (not a valid zip archive: "
                         f"{exc})") from exc
    if limits.max_unzipped_bytes and unpacked > limits.max_unzipped_bytes:
        raise LimitError(f"{source}: unpacks to {unpacked} bytes, over the limit of {limits.max_unzipped_bytes} "
                         "(max_unzipped_bytes; a decompression bomb?)")


def check_pages(pages: int, source: str, limits: Limits) -> None:
    if limits.max_pages and pages > limits.max_pages:
        raise LimitError(f"{source}: {pages} pages, over the limit of {limits.max_pages} (max_pages)")


def check_text(chars: int, source: str, limits: Limits) -> None:
    if limits.max_text_chars and chars > limits.max_text_chars:
        raise LimitError(f"{source}: {chars} characters of text, over the limit of {limits.max_text_chars} "
                         "(max_text_chars)")


class _DepthProbe(HTMLParser):
    """Nesting depth and parse work (in paragraph units) of an HTML page in one pass; stops with a
    LimitError the moment the work passes `max_elements`, so a huge page is refused in about a second."""

    def __init__(self, source: str, max_elements: int, spent: float = 0.0) -> None:
        super().__init__(convert_charrefs=False)
        self.source, self.max_elements = source, max_elements
        self.depth = self.deepest = 0
        self.units = spent  # work already counted elsewhere in the same file (an e-mail's other parts)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.units += 1.0 if tag in _HTML_BLOCKS else _HTML_TAG_WEIGHT
        if self.max_elements and self.units > self.max_elements:
            limit = self.max_elements
            raise LimitError(f"{self.source}: more than {limit} paragraphs, list items, rows, headings, divs or other "
                             f"elements (line breaks, cells and inline tags weighted by their parse cost), over the "
                             f"limit of {limit} (max_elements); stopped before parsing")
        if tag not in _VOID_TAGS:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID_TAGS:
            self.depth = max(0, self.depth - 1)


def check_html_depth(text: str, source: str, limits: Limits | None = None) -> int:
    """Parse work of an HTML page in paragraph units (every tag counted, block-level ones in full, see
    `_HTML_BLOCKS`); LimitError past `max_elements` (counted before partitioning), and ParseError for HTML
    nested deeper than the parser keeps (its inner text would vanish without a word)."""
    probe = _probe(text, source, (limits or Limits()).max_elements)
    if probe.deepest > MAX_HTML_DEPTH:
        raise ParseError(f"{source}: HTML nested {probe.deepest} levels deep, more than the {MAX_HTML_DEPTH} the "
                         "parser keeps (its inner text would be lost)")
    return math.ceil(probe.units)


def html_units(text: str, source: str, max_elements: int, spent: float = 0.0) -> float:
    """`spent` plus the parse work of an HTML text (an e-mail's HTML part); LimitError past `max_elements`."""
    return _probe(text, source, max_elements, spent).units


def _probe(text: str, source: str, max_elements: int, spent: float = 0.0) -> _DepthProbe:
    probe = _DepthProbe(source, max_elements, spent)
    probe.feed(text)
    probe.close()
    return probe
