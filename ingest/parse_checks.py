"""The checks a file passes before any partitioner sees it: a PDF opened (garbage, truncation, passwords, its
page count and properties), Office/ODF/EPUB archives against zip bombs and the parse budget, an HTML page's
nesting; e-mail attachments get the same checks under their own names (ingest/parse.py calls these)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.budget import check_zip_budget
from ingest.doc_meta import pdf_properties
from ingest.email_parse import prepare_email
from ingest.limits import HTML_FORMATS, ZIP_FORMATS, Limits, check_html_depth, check_pages, check_size, check_zip
from ingest.schema import ParseError
from ingest.textfile import decode_text


def check_pdf(path: Path, source: str) -> dict[str, Any]:
    """Open the PDF before partitioning: garbage, truncation and passwords get their own message. Returns
    its properties (`pages`, and `title`/`author` where readable: ingest.doc_meta), read while it is open."""
    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if path.open("rb").read(1024).find(b"%PDF-") == -1:
        raise ParseError(f"{source}: not a PDF file (no %PDF- header)")
    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted and reader.decrypt("") == 0:
            raise ParseError(f"{source}: PDF is password-protected")
        pages = len(reader.pages)
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"{source}: cannot parse as PDF: {type(exc).__name__}: {exc}") from exc
    return {**pdf_properties(reader), "pages": pages}


def check_before_parsing(path: Path, source: str, limits: Limits, html: str | None = None) -> dict[str, Any] | None:
    """The checks a PDF, Office/ODF/EPUB archive or HTML page passes before any partitioner sees it
    (pages, zip bombs, the parse budget, nesting); files and e-mail attachments alike. A PDF's properties
    come back (it was open for its page count anyway); None for other formats."""
    ext = path.suffix.lower()
    if ext == ".pdf":
        props = check_pdf(path, source)
        check_pages(props["pages"], source, limits)
        return props
    if ext in ZIP_FORMATS:
        check_zip(path, source, limits)
        check_zip_budget(path, source, limits)
    elif ext in HTML_FORMATS:
        check_html_depth(html if html is not None else decode_text(path, source)[0], source, limits)
    return None


def check_attachment(source: str, limits: Limits) -> Callable[[Path, str], bytes | None]:
    """The file checks for an e-mail's attachment, named `<mail> (attachment <name>)` in errors. An
    attached mail is prepared like the mail itself (its parts and attachments checked, recursively),
    and a PDF must have a text layer (without one unstructured would silently drop it)."""
    def check(path: Path, name: str) -> bytes | None:
        label = f"{source} (attachment {name})"
        check_size(path.stat().st_size, label, limits)
        check_before_parsing(path, label, limits)
        ext = path.suffix.lower()
        if ext == ".pdf" and not has_text_layer(path):
            raise ParseError(f"{label}: no text found (a PDF without a text layer, e.g. a scan, needs OCR)")
        if ext == ".eml":
            return prepare_email(path.read_bytes(), label, limits, check_attachment(label, limits))[0]
        return None
    return check


def has_text_layer(path: Path) -> bool:
    """Whether any page of a PDF holds extractable text (pypdf; the page count was checked already)."""
    import pypdf

    try:
        return any((page.extract_text() or "").strip() for page in pypdf.PdfReader(str(path)).pages)
    except Exception:  # unreadable: the partitioner reports it
        return True
