"""The facts of a parsed file: title, author, pages, language and date, as `Document.metadata` keys.

Sources, first found wins:
- title: what the format's own header says (an e-mail's Subject, an HTML page's `<title>` as trafilatura
  reads it), Markdown front matter `title`, the file's properties (PDF `/Title`, DOCX/PPTX/XLSX
  `docProps/core.xml`, ODT `meta.xml`, EPUB's package `dc:title`), else the first heading element's text
  in the first `HEADING_REACH` characters that reads like a title (see `_first_heading`);
- author: likewise (From, the page's author, front matter `author`/`autor`, PDF `/Author`, `dc:creator`);
- pages: a PDF's page count, a PPTX's slide count; none for other formats;
- language: py3langid on the first `LANGUAGE_SAMPLE` characters of the text (ISO 639-1), none for text with
  fewer than `MIN_LANGUAGE_LETTERS` letters or a guess below `MIN_LANGUAGE_PROBABILITY`;
- date (ISO) and date_phrase: an e-mail's Date header, an HTML page's date, front matter `date`/`datum`,
  else the date found in the text (`ingest.german_dates`); date_phrase only for a date from the text.
A file's creation or modification date from its properties is not the document's date (a PDF converted
in 2020 of a law from 1951), so it is not used.

Titles pass `clean_title`: whitespace collapsed, at most `MAX_TITLE_CHARS`; a title that is a file name
(`783980.pdf`, `Microsoft Word - brief.doc`), a temporary name (`tmp-14096`), a placeholder (`Unbenannt`,
`Untitled`, `Dokument1`) or has fewer than two letters counts as none, so the next source is asked.
`Microsoft Word - ` and its siblings are removed where a real title follows.

Reading properties never fails a file: the zip checks (ingest/limits.py) ran before, each XML part is read
only up to `MAX_PROPERTY_BYTES` and without DTDs, entities or network, and a property that cannot be read
is simply absent. Everything returned is plain str/int data (the parse worker pickles it).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from ingest.german_dates import find_document_date, parse_german_date
from ingest.schema import Section

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 300
MAX_AUTHOR_CHARS = 200
MAX_PROPERTY_BYTES = 512 * 1024  # core.xml, meta.xml and an EPUB's package file are a few KB
# py3langid walks its model byte by byte in Python (about 0.5 µs a byte here): 2,000 characters cost 1 ms and
# decide a language as surely as 5,000 (2.7 ms, up to a fifth of parsing a short Markdown file)
LANGUAGE_SAMPLE = 2000
MIN_LANGUAGE_LETTERS = 50
MIN_LANGUAGE_PROBABILITY = 0.5
HEADING_REACH = 3000  # a heading further into the text is no title of the whole
FIELDS = ("title", "author", "pages", "language", "date", "date_phrase")

_DC = "http://purl.org/dc/elements/1.1/"
_APP_PREFIX = re.compile(r"^microsoft\s+(?:office\s+)?(?:word|powerpoint|excel)\s*-\s*", re.IGNORECASE)
_FILE_NAME = re.compile(r"^(?:[a-z]:)?[^\s]*\.(?:pdf|docx?|dotx?|xlsx?|pptx?|odt|ods|odp|rtf|txt|html?|tex|dvi|ps|"
                        r"eps|indd|qxd|tmp|png|jpe?g|tiff?)$|^[/\\]|\\", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"^(?:untitled|unbenannt|ohne\s+titel|kein\s+titel|titel|title|dokument|document|"
                          r"präsentation|presentation|folie|slide|tabelle|mappe|book|sheet|(?:tmp|temp)\b.*|~.*)"
                          r"[\s\d_-]*$", re.IGNORECASE)
_AUTHOR_LABEL = re.compile(r"^(?:autor(?:in)?|author|von|by)\b[\s:;,]*", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_HTML = {".html", ".htm", ".xhtml"}
_FRONT_MATTER_KEYS = {"title": ("title", "titel"), "author": ("author", "autor", "creator"),
                      "date": ("date", "datum")}


def describe(path: Path, text: str, sections: Iterable[Section], found: Mapping[str, Any],
             props: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The metadata fields (`FIELDS`) of a parsed file, absent where not found (never None values).

    `found` is what parsing already read: an e-mail's or HTML page's `title`/`author`/`date`, and
    `front_matter` (a Markdown file's scalar keys). `props` are the file's properties where the caller
    read them already (a PDF's, while checking it); else `file_properties` reads them."""
    ext = path.suffix.lower()
    front = found.get("front_matter") or {}
    props = file_properties(path, ext) if props is None else props
    out: dict[str, Any] = {}
    title = _first(clean_title, lambda: found.get("title"), lambda: _front(front, "title"),
                   lambda: props.get("title"), lambda: _html_title(path) if ext in _HTML else None,
                   lambda: _first_heading(text, sections))
    author = _first(clean_author, lambda: found.get("author"), lambda: _front(front, "author"),
                    lambda: props.get("author"))
    for key, value in (("title", title), ("author", author), ("pages", props.get("pages")),
                       ("language", detect_language(text))):
        if value is not None:
            out[key] = value
    out.update(_date(found.get("date") or _front(front, "date"), text))
    return out


def clean_title(value: Any) -> str | None:
    """A title as stored, or None where it is empty, a file name, a temporary name or a placeholder."""
    text = _squash(value, MAX_TITLE_CHARS * 2)
    text = _APP_PREFIX.sub("", text)
    if len(_LETTER.findall(text)) < 2 or _FILE_NAME.search(text) or _PLACEHOLDER.match(text):
        return None
    return text[:MAX_TITLE_CHARS].rstrip()


def clean_author(value: Any) -> str | None:
    """An author as stored (a leading `Autor:`/`von` label removed), or None without two letters."""
    text = _AUTHOR_LABEL.sub("", _squash(value, MAX_AUTHOR_CHARS * 2))
    return text[:MAX_AUTHOR_CHARS].rstrip() if len(_LETTER.findall(text)) >= 2 else None


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None for too little text or an unsure guess."""
    sample = text[:LANGUAGE_SAMPLE]
    if len(_LETTER.findall(sample)) < MIN_LANGUAGE_LETTERS:
        return None
    try:
        language, probability = _language_identifier().classify(sample)
    except Exception as exc:  # a detector failure costs the field, never the file
        log.debug("language detection failed", extra={"error": repr(exc)})
        return None
    if probability < MIN_LANGUAGE_PROBABILITY or not re.fullmatch(r"[a-z]{2}", str(language)):
        return None
    return str(language)


def file_properties(path: Path, ext: str) -> dict[str, Any]:
    """`title`, `author` (raw) and `pages` from the file's own properties; {} where it has none or they
    cannot be read."""
    try:
        if ext == ".pdf":
            return _pdf_properties(path)
        if ext in {".docx", ".pptx", ".xlsx", ".odt", ".epub"}:
            with zipfile.ZipFile(path) as zf:
                return _zip_properties(zf, ext)
    except Exception as exc:  # pypdf, zipfile and lxml raise many kinds on a broken file: no properties
        log.debug("file properties not read", extra={"path": str(path), "error": repr(exc)})
    return {}


def warm_up() -> None:
    """Load the language model now (about 0.5 s), e.g. before a fork server forks its workers."""
    _language_identifier()


@lru_cache(maxsize=1)
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _pdf_properties(path: Path) -> dict[str, Any]:
    import pypdf

    reader = pypdf.PdfReader(str(path), strict=False)
    if reader.is_encrypted:
        reader.decrypt("")  # parse_file refused a PDF that needs a password before this
    return {**pdf_properties(reader), "pages": len(reader.pages)}


def pdf_properties(reader: Any) -> dict[str, Any]:
    """`title` and `author` from an open pypdf reader's info dictionary, where readable; never raises."""
    out: dict[str, Any] = {}
    info = _safe(lambda: reader.metadata) or {}
    for key, name in (("title", "/Title"), ("author", "/Author")):
        value = _safe(partial(info.get, name))  # a broken entry raises when it is read
        if value:
            out[key] = str(value)
    return out


def _zip_properties(zf: zipfile.ZipFile, ext: str) -> dict[str, Any]:
    names = set(zf.namelist())
    if ext == ".odt":
        out = _dc_fields(_read_xml(zf, "meta.xml", names), creator_fallback="initial-creator")
    elif ext == ".epub":
        out = _dc_fields(_read_xml(zf, _epub_package(zf, names), names))
    else:
        out = _dc_fields(_read_xml(zf, "docProps/core.xml", names))
    if ext == ".pptx":
        slides = sum(1 for name in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", name))
        if slides:
            out["pages"] = slides
    return out


def _read_xml(zf: zipfile.ZipFile, name: str | None, names: set[str]):
    """A zip member parsed as XML (no DTD, entities or network), or None where it is absent, too big or
    not XML."""
    if name is None or name not in names or zf.getinfo(name).file_size > MAX_PROPERTY_BYTES:
        return None
    with zf.open(name) as fh:
        data = fh.read(MAX_PROPERTY_BYTES + 1)  # the header's size may lie
    if len(data) > MAX_PROPERTY_BYTES:
        return None
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(data, parser=parser)
    except (etree.XMLSyntaxError, ValueError):  # one broken part costs its properties, not the others
        return None


def _epub_package(zf: zipfile.ZipFile, names: set[str]) -> str | None:
    """The path of an EPUB's package document (OPF), from META-INF/container.xml."""
    root = _read_xml(zf, "META-INF/container.xml", names)
    if root is None:
        return None
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "rootfile" and el.get("full-path"):
            return el.get("full-path")
    return None


def _dc_fields(root, creator_fallback: str | None = None) -> dict[str, Any]:
    """The first non-empty dc:title and dc:creator (or an ODT's meta:initial-creator) of an XML tree."""
    out: dict[str, Any] = {}
    if root is None:
        return out
    fallback = None
    for el in root.iter():
        if not isinstance(el.tag, str) or not (el.text or "").strip():
            continue
        namespace, _, local = el.tag[1:].partition("}")
        if namespace == _DC and local in ("title", "creator"):
            out.setdefault("title" if local == "title" else "author", el.text)
        elif local == creator_fallback:
            fallback = fallback or el.text
    if "author" not in out and fallback:
        out["author"] = fallback
    return out


def _html_title(path: Path) -> str | None:
    """An HTML page's `<title>` where trafilatura gave none (the page was parsed whole); the first 64 KB."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024).decode("utf-8", errors="replace")
    except OSError:
        return None
    match = _HTML_TITLE.search(head)
    if match is None:
        return None
    import html

    return html.unescape(re.sub(r"<[^>]*>", " ", match.group(1)))


def _first_heading(text: str, sections: Iterable[Section]) -> str | None:
    """The first heading element's text near the start that reads like a title: two words or more, or one
    long word (a form's one-word labels, `PLZ`, `Nein!`, come out of the partitioner as headings too)."""
    for section in sections:
        if section.start >= HEADING_REACH:
            return None
        title = clean_title(text[section.start : section.end]) if section.category == "Title" else None
        if title and (" " in title or len(_LETTER.findall(title)) >= 8):
            return title
    return None


def _date(value: Any, text: str) -> dict[str, str]:
    """{"date": ISO} from a header or front matter value where it parses; else the date found in the text,
    with its phrase; {} where there is none."""
    if value is not None and (iso := _iso_date(value)):
        return {"date": iso}
    found = find_document_date(text)
    return {"date": found.iso, "date_phrase": found.phrase} if found else {}


def _iso_date(value: Any) -> str | None:
    """An ISO date (or date-time: an e-mail's Date header, YAML's dates) as its date; else a German date
    phrase (front matter `datum: 1. März 2024`) parsed like one in the text; None where neither."""
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    text = str(value).strip()[:64]
    if re.match(r"\d{4}-\d{2}-\d{2}(?:$|[T ])", text):
        try:
            return dt.date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            return None
    return parse_german_date(text)


def _front(front: Mapping[str, Any], field: str) -> Any:
    """A front matter value by any spelling of its key (`Title`, `titel`, `Autor`)."""
    keys = _FRONT_MATTER_KEYS[field]
    return next((value for key, value in front.items() if str(key).strip().lower() in keys), None)


def _first(clean: Callable[[Any], str | None], *sources: Callable[[], Any]) -> str | None:
    """The first source's value that survives `clean`; later sources are not asked."""
    for source in sources:
        value = source()
        if value is not None and (cleaned := clean(value)) is not None:
            return cleaned
    return None


def _squash(value: Any, limit: int) -> str:
    return " ".join(str(value)[: limit * 4].split())[:limit]


def _safe(get: Callable[[], Any]) -> Any:
    try:
        return get()
    except Exception:
        return None
