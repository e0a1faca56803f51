"""Files -> Documents through unstructured, offline.

Each file becomes one Document whose text is its elements' normalised texts joined by blank lines;
every element keeps its span, page, category and heading path as a Section. Offsets are made here,
after normalisation, so nothing downstream has to search for them.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ingest.budget import check_text_budget
from ingest.doc_meta import FIELDS, describe
from ingest.email_parse import prepare_email
from ingest.frontmatter import split_front_matter
from ingest.html_main import extract_main
from ingest.limits import (
    HTML_FORMATS,
    Limits,
    check_size,
    check_text,
    file_stamp,
)
from ingest.normalize import is_page_number, is_running_line, normalize_text, running_lines
from ingest.ocr import OcrPage
from ingest.parse_checks import check_attachment, check_before_parsing
from ingest.parse_ocr import (
    IMAGE_EXTENSIONS,
    OCR_ZIP_FORMATS,
    OcrRun,
    pdf_pages_to_read,
    read_image_file,
    read_pdf,
    read_zip_images,
    zip_images,
)
from ingest.schema import Document, EmptyDocumentError, ParseError, Section, sha256_text
from ingest.textfile import decode_text

os.environ.setdefault("DO_NOT_TRACK", "1")  # unstructured sends telemetry and runs nvidia-smi on import
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")

log = logging.getLogger(__name__)
# pdfminer logs every colour it cannot parse as a warning: noise for a user, not a parse failure.
logging.getLogger("pdfminer").setLevel(logging.ERROR)

TEXT_EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".csv", ".tsv"}
BINARY_EXTENSIONS = {
    ".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".xhtml", ".eml", ".odt", ".rtf", ".epub", ".msg",
}
SUPPORTED_EXTENSIONS = TEXT_EXTENSIONS | BINARY_EXTENSIONS | IMAGE_EXTENSIONS  # images: read by OCR
_HEADING = {"Title"}
Row = tuple[str, str, int | None, int]  # (text, category, page, heading depth)
_DROP = {"Header", "Footer", "PageBreak", "PageNumber", "Image", "Formula"}
_OCR_TEXT = Path("ocr.txt")  # OCR'd text is split into elements as a text file's is


def _import_spacy(hide_torch: bool = False):
    """spaCy, in the parse worker without torch: its thinc layer imports torch when installed (1.6 s of a
    worker's start) though a blank pipeline never runs a neural layer, so there torch is hidden while
    spaCy imports. Parsing in process never hides it: another thread may be importing torch to load the
    model at that moment, and would find it missing."""
    if not hide_torch or "spacy" in sys.modules or "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import spacy
    finally:
        del sys.modules["torch"]
    return spacy


@lru_cache(maxsize=1)
def _prepare_text(hide_torch: bool = False) -> None:
    """Hand unstructured a blank German spaCy pipeline instead of its English model (a run-time download).

    unstructured asks spaCy for sentences and words only (its POS checks are for English). A blank German
    pipeline with the rule-based sentencizer tokenizes German correctly and is about 10x faster than the
    English statistical model's parser it would load otherwise.
    """
    spacy = _import_spacy(hide_torch)
    from unstructured.nlp import tokenize

    def load():
        nlp = spacy.blank("de")
        nlp.add_pipe("sentencizer")
        return nlp

    tokenize._get_nlp = lru_cache(maxsize=1)(load)


@lru_cache(maxsize=1)
def _prepare_pdf() -> None:
    """Its "too complex" PDF check counts graphics operators per page and, above 10,000 at a ratio of 20
    to text, silently switches to `hi_res` without text (0 elements offline). Lecture notes full of
    formulas trip it, so the operator count limit is raised; the check's limits on raw stream sizes
    (its defence against crafted content streams) stay as they are. Imported on the first PDF (2 s)."""
    from unstructured.partition import pdf as unstructured_pdf

    if not isinstance(unstructured_pdf.is_pdf_too_complex, _LenientPdfCheck):  # patched once per process
        unstructured_pdf.is_pdf_too_complex = _LenientPdfCheck(unstructured_pdf.is_pdf_too_complex)


class _LenientPdfCheck:
    """unstructured's complexity check with a higher operator limit (a class: patched is told by type)."""

    def __init__(self, original: Callable[..., bool]) -> None:
        self.original = original

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        kwargs.setdefault("max_graphics_ops", 500_000)
        return self.original(*args, **kwargs)


def prepare_parsers(hide_torch: bool = False) -> None:
    """Import and set up unstructured now (a forked parse worker then inherits it ready to use).

    The spaCy pipeline and the text partitioners are loaded here, so a worker's first file does not
    pay for them against its time limit; the PDF and Office partitioners stay lazy (seconds to import).
    `hide_torch` only in the worker's own process (see `_import_spacy`).
    """
    _prepare_text(hide_torch)
    import trafilatura  # noqa: F401  # HTML main content (ingest.html_main)
    import unstructured.partition.auto
    import unstructured.partition.html
    import unstructured.partition.md
    import unstructured.partition.text  # noqa: F401
    from unstructured.nlp import tokenize

    tokenize._get_nlp()
    from ingest import doc_meta, german_dates

    doc_meta.warm_up()  # the language model and dateparser's German data, loaded once for every worker
    german_dates.warm_up()


def _partition(path: Path, text: str | None) -> list:
    _prepare_text()
    ext = path.suffix.lower()
    if ext == ".pdf":
        _prepare_pdf()
    if text is not None:
        if ext in {".md", ".markdown"}:
            from unstructured.partition.md import partition_md

            return partition_md(text=text, languages=["deu"])
        from unstructured.partition.text import partition_text

        return partition_text(text=text, languages=["deu"])
    from unstructured.partition.auto import partition

    if ext == ".pdf":
        return partition(filename=str(path), languages=["deu"], strategy="fast")
    return partition(filename=str(path), languages=["deu"])


def _partition_email(path: Path, source: str, limits: Limits) -> tuple[list, list[Row], dict]:
    """Elements of an EML with its text parts' charsets fixed, plus Subject/From rows and metadata."""
    data, headers, meta = prepare_email(path.read_bytes(), source, limits,  # its budget first: before imports
                                        check_attachment(source, limits))
    from unstructured.partition.email import partition_email

    _prepare_text()
    # strategy "fast" reaches the attachments' partitioners: a PDF without text would otherwise go to
    # hi_res, which wants a layout model from the Hub (offline: an error, online: a download)
    elements = partition_email(file=io.BytesIO(data), metadata_filename=str(path), languages=["deu"],
                               strategy="fast")
    return elements, [(normalize_text(text), category, None, 0) for text, category in headers], meta


def _partition_html(path: Path, html: str | None) -> tuple[list, dict]:
    """Elements of the page's main content (see ingest.html_main), or of the full page."""
    main = extract_main(html) if html is not None else None
    if main is None:
        return _partition(path, None), {"html_content": "full"}
    from unstructured.partition.html import partition_html

    _prepare_text()
    return partition_html(text=main.html, languages=["deu"]), {**main.metadata, "html_content": "main"}


def _element_rows(elements: Iterable, is_pdf: bool) -> list[Row]:
    """(text, category, page, depth) per element, cleaned, with running headers/footers removed."""
    rows = []
    for el in elements:
        category = getattr(el, "category", type(el).__name__)
        if category in _DROP:
            continue
        text = normalize_text(str(el.text or ""), join_lines=is_pdf)
        if not text:
            continue
        meta = el.metadata
        rows.append((text, category, meta.page_number, int(getattr(meta, "category_depth", None) or 0)))
    if is_pdf:
        pages: dict[int, list[str]] = {}
        for text, _, page, _ in rows:
            pages.setdefault(page or 0, []).append(text)
        shapes = running_lines(list(pages.values()))
        rows = [r for r in rows if not is_running_line(r[0], shapes) and not is_page_number(r[0])]
    return rows


def _assemble(source: str, rows: list[Row], metadata: dict) -> Document:
    parts: list[str] = []
    sections: list[Section] = []
    headings: list[tuple[int, str]] = []  # (depth, title) stack
    offset = 0
    for text, category, page, depth in rows:
        if category in _HEADING:
            headings = [h for h in headings if h[0] < depth]
            headings.append((depth, " ".join(text.split())[:200]))
        if parts:
            offset += 2  # the "\n\n" separator
        sections.append(Section(offset, offset + len(text), category, page, tuple(h[1] for h in headings)))
        parts.append(text)
        offset += len(text)
    body = "\n\n".join(parts)
    return Document(source=source, text=body, sections=tuple(sections), content_hash=sha256_text(body),
                    metadata=metadata)


def _ocr_rows(pages: Iterable[OcrPage], numbered: bool) -> list[Row]:
    """Rows of OCR'd pages, split and classified (Title, NarrativeText, ListItem) as a text file's are;
    `numbered`: the page numbers are real pages (PDF, TIFF), not the n-th image of an Office file."""
    rows: list[Row] = []
    for page in pages:
        if page.text:
            elements = _partition(_OCR_TEXT, page.text)
            rows += [(text, category, page.page if numbered else None, depth)
                     for text, category, _, depth in _element_rows(elements, is_pdf=True)]
    return rows


def _pdf_rows(path: Path, source: str, elements: list, pages: int, limits: Limits) -> tuple[list[Row], OcrRun | None]:
    """A PDF's rows: from its text layer, with the pages that have none (a scan) read by OCR instead, in
    page order (`ingest.parse_ocr.pdf_pages_to_read` picks them)."""
    to_read = pdf_pages_to_read(path, elements, pages, limits.ocr)
    if not to_read:
        return _element_rows(elements, is_pdf=True), None
    ocr_pages = set(to_read)
    kept = [el for el in elements if (el.metadata.page_number or 1) not in ocr_pages]
    run = read_pdf(path, source, to_read, limits.ocr)
    rows = _element_rows(kept, is_pdf=True) + _ocr_rows(run.pages, numbered=True)
    return sorted(rows, key=lambda row: row[2] or 0), run  # stable: each page keeps its own order


def _rows_without_text(path: Path, source: str, limits: Limits) -> tuple[list[Row], OcrRun]:
    """A file with no text of its own (a scanned PDF, an image, an Office file made of images): its images
    read by OCR, or the error that says why there is no text."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        run = read_image_file(path, source, limits.ocr)
        numbered = True
    else:
        images = len(zip_images(path))
        if not images:
            raise EmptyDocumentError(f"{source}: no text found")
        if limits.ocr.mode == "off":
            raise EmptyDocumentError(f"{source}: no text found (OCR would read its {images} images; it is switched "
                                     "off: ocr mode off)")
        run = read_zip_images(path, source, limits.ocr)
        numbered = False
    rows = _ocr_rows(run.pages, numbered)
    if not rows:
        raise run.nothing_found(source, "pages" if numbered else "images")
    return rows, run


def parse_file(path: Path, source: str | None = None, limits: Limits | None = None, *,
               main_content: bool = True) -> Document:
    """Parse one file into a Document. Raises ParseError (LimitError for a limit) with the file and reason.

    HTML: only the page's main content is kept (`ingest.html_main`), the full page where that finds too
    little; `main_content=False` parses the full page. `metadata["html_content"]` says which.
    `metadata` holds `file_type`, `bytes`, `encoding` (text files) and, where found, the document's
    `title`, `author`, `pages`, `language`, `date` and `date_phrase` (`ingest.doc_meta`); a Markdown file's
    front matter scalars are under `front_matter`.
    """
    source = source or str(path)
    limits = limits or Limits()
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise ParseError(f"{source}: unsupported file type {ext or '(none)'!r}")
    size = file_stamp(path, source)[0]
    check_size(size, source, limits)
    text, encoding = None, None
    extra: dict = {}
    if ext in HTML_FORMATS:
        text = decode_text(path, source)[0]
    props = check_before_parsing(path, source, limits, text)
    if ext in TEXT_EXTENSIONS:
        text, encoding = decode_text(path, source)
        if ext in {".md", ".markdown"}:
            text, front = split_front_matter(text)
            extra = {"front_matter": front} if front else {}
        check_text(len(text), source, limits)
        check_text_budget(text, source, limits)
    lead: list[Row] = []
    elements: list = []
    try:
        if ext == ".eml":
            elements, lead, extra = _partition_email(path, source, limits)
        elif ext in HTML_FORMATS:
            elements, extra = _partition_html(path, text if main_content else None)
        elif ext not in IMAGE_EXTENSIONS and not (ext == ".pdf" and limits.ocr.mode == "force"):
            elements = _partition(path, text)
    except ParseError:
        raise
    except PermissionError as exc:
        raise ParseError(f"{source}: cannot read file: permission denied") from exc
    except RecursionError as exc:
        raise ParseError(f"{source}: cannot parse as {ext[1:].upper()}: structure nested too deeply") from exc
    except Exception as exc:  # unstructured raises many kinds for a broken file
        raise ParseError(f"{source}: cannot parse as {ext[1:].upper()}: {type(exc).__name__}: {exc}") from exc
    run: OcrRun | None = None
    if ext == ".pdf" and props is not None:
        rows, run = _pdf_rows(path, source, elements, props["pages"], limits)
    else:
        rows = lead + _element_rows(elements, is_pdf=False)
    if not rows:
        if ext == ".pdf":  # a scan is not empty: its text is there, unread
            if run is not None:
                raise run.nothing_found(source, "pages")
            if limits.ocr.mode == "off":
                raise ParseError(f"{source}: no text found (a PDF without a text layer, e.g. a scan, needs OCR, "
                                 "which is switched off: ocr mode off)")
            raise ParseError(f"{source}: no text found")
        if ext not in IMAGE_EXTENSIONS | OCR_ZIP_FORMATS:
            raise EmptyDocumentError(f"{source}: no text found")
        rows, run = _rows_without_text(path, source, limits)
        if ext in IMAGE_EXTENSIONS:
            props = {"pages": len(run.pages) + len(run.problems)}  # every frame is read or reported
    meta: dict = {key: value for key, value in extra.items() if key not in FIELDS}  # FIELDS come from describe
    meta.update(file_type=ext[1:], bytes=size, **(run.metadata() if run is not None else {}))
    if encoding:
        meta["encoding"] = encoding
    doc = _assemble(source, rows, meta)
    check_text(len(doc.text), source, limits)
    return replace(doc, metadata={**meta, **describe(path, doc.text, doc.sections, extra, props)})
