"""The main content of an HTML page: the article, not its navigation, header, sidebar and footer menus.

unstructured skips semantic `<nav>`/`<footer>` elements, but most sites lay their menus out with
divs, so a page's link lists were indexed as text (on stuttgart.de five of nine chunks were menus).
trafilatura finds the main content (text density, link density, known boilerplate ids and classes)
and returns it as clean HTML with its headings, paragraphs, lists and tables, which the normal HTML
partitioner then turns into sections, so heading paths and offsets work as for any page. It also
reads the page's title and date.

Where it finds nothing, or too little of the page's text (a page it misjudges), the full page is
parsed instead: losing a page's content is worse than indexing its menus. So is it where it removes
next to nothing (an index page that *is* a link list), which keeps the page's own structure.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache

# Fewer visible characters than this, and less than half the page, is judged to have missed the content
# (trafilatura itself already falls back to other extractors where its first pass finds too little).
MIN_MAIN_CHARS = 200
# At or above this share it removed next to nothing; for a page it cannot judge trafilatura returns the
# whole text as one flat paragraph, so the full page, which keeps its headings and lists, is parsed.
MAX_MAIN_SHARE = 0.95
_TITLE_SUFFIX = re.compile(r"\s+[|–—-]\s+")  # "Headline | Site name"
_METADATA = ("title", "date", "author", "sitename")  # trafilatura's <meta> names kept as Document.metadata


@dataclass(frozen=True)
class MainContent:
    html: str
    metadata: dict[str, str] = field(default_factory=dict)


def extract_main(html: str) -> MainContent | None:
    """The page's main content (with its reader comments) as HTML and its metadata, or None where the
    full page should be parsed."""
    import trafilatura
    from lxml import etree
    from trafilatura.htmlprocessing import convert_to_html  # what extract(output_format="html") uses

    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # "discarding data" notes are not failures
    found = trafilatura.bare_extraction(html, include_tables=True, include_links=False, include_images=False,
                                        include_comments=True, with_metadata=True, deduplicate=False, fast=True,
                                        config=_config())
    if found is None or isinstance(found, dict):
        return None
    body = convert_to_html(found.body).find("body")
    if found.commentsbody is not None:  # reader comments are text too (html output would drop them)
        body.extend(list(convert_to_html(found.commentsbody).find("body")))
    main_chars = _visible_chars("".join(body.itertext()))
    page_chars = _page_chars(html)
    too_little = main_chars < MIN_MAIN_CHARS and main_chars < page_chars / 2
    if main_chars == 0 or too_little or main_chars >= MAX_MAIN_SHARE * page_chars:
        return None
    meta = {name: str(value).strip() for name in _METADATA if (value := getattr(found, name, None))}
    _keep_title(body, meta.get("title", ""))
    return MainContent(etree.tostring(body.getparent(), encoding="unicode"), meta)


def _keep_title(body, title: str) -> None:
    """trafilatura moves a headline outside its article container into the metadata only; the page's
    title is what a reader searches for, so it opens the text as a heading unless the text has it."""
    from lxml import etree

    words = _TITLE_SUFFIX.split(title)[0].strip()
    if words and " ".join(words.split()) not in " ".join("".join(body.itertext()).split()):
        heading = etree.Element("h1")
        heading.text = title
        body.insert(0, heading)


@lru_cache(maxsize=1)
def _config():
    """trafilatura's settings, except that a page it cannot judge yields nothing instead of its baseline
    (the whole page flattened into one paragraph): the full page is then parsed with its structure."""
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "0")
    return config


def _page_chars(html: str) -> int:
    """Visible characters of the whole page (scripts, styles and the head left out)."""
    import lxml.html

    try:
        root = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return 0
    for el in root.xpath("//script|//style|//noscript|//template|//head"):
        el.drop_tree()
    return _visible_chars(root.text_content())


def _visible_chars(text: str) -> int:
    return len("".join(text.split()))
