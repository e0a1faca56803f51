"""The main content of an HTML page: the article, not its navigation, header, sidebar and footer menus.

unstructured skips semantic `<nav>`/`<footer>` elements, but most sites lay their menus out with
divs, so a page's link lists were indexed as text (on stuttgart.de five of nine chunks were menus).
trafilatura finds the main content (text density, link density, known boilerplate ids and classes)
and returns it as clean HTML with its headings, paragraphs, lists and tables, which the normal HTML
partitioner then turns into sections, so heading paths and offsets work as for any page. It also
reads the page's title and date.

Where it finds nothing the full page is parsed instead: losing a page's content is worse than indexing
its menus. So is it where it removes next to nothing (an index page that *is* a link list), which keeps
the page's own structure. A short extraction (a one-sentence notice between sixty menu links) is kept:
parsing the full page there made every chunk a menu. It is first retried with `favor_recall`, and
where its blocks share a container in the page that holds less than half the page (`<div
id="content">`), that container is kept whole, so a content link list the extractor dropped for its
link density (an index page's short intro and its list) stays with its intro.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # lxml loads with the HTML parser
    from lxml import etree

# Fewer visible characters than this is a short extraction: retried with favor_recall and widened to its
# container where that is small (trafilatura itself already tries other extractors where it finds little).
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
    from lxml import etree

    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # "discarding data" notes are not failures
    found = _extract(html)
    if found is None:
        return None
    body = _body(found)
    main_chars = _visible_chars("".join(body.itertext()))
    page = _visible_page(html)  # parsed once: its size here, its containers for a short extraction
    page_chars = _visible_chars(page.text_content()) if page is not None else 0
    if 0 < main_chars < MIN_MAIN_CHARS:
        found, body = _more_recall(html, found, body)
        body = _widen(page, body, page_chars) if page is not None else body
        main_chars = _visible_chars("".join(body.itertext()))
    if main_chars == 0 or main_chars >= MAX_MAIN_SHARE * page_chars:
        return None
    meta = {name: str(value).strip() for name in _METADATA if (value := getattr(found, name, None))}
    _keep_title(body, meta.get("title", ""))
    return MainContent(etree.tostring(body.getparent(), encoding="unicode"), meta)


def _extract(html: str, favor_recall: bool = False):
    """trafilatura's extraction (body, comments and metadata), or None where it found nothing."""
    import trafilatura

    found = trafilatura.bare_extraction(html, include_tables=True, include_links=False, include_images=False,
                                        include_comments=True, with_metadata=True, deduplicate=False, fast=True,
                                        favor_recall=favor_recall, config=_config())
    return None if found is None or isinstance(found, dict) else found


def _more_recall(html: str, found, body):
    """The favor_recall extraction where it holds all the first one found and more; else the first."""
    recall = _extract(html, favor_recall=True)
    if recall is None:
        return found, body
    recall_body = _body(recall)
    first, more = _squash("".join(body.itertext())), _squash("".join(recall_body.itertext()))
    return (recall, recall_body) if len(more) > len(first) and first in more else (found, body)


def _body(found):
    """The extraction as an HTML <body> element, reader comments included (html output would drop them)."""
    from trafilatura.htmlprocessing import convert_to_html  # what extract(output_format="html") uses

    body = _body_of(convert_to_html(found.body))
    if found.commentsbody is not None:
        body.extend(list(_body_of(convert_to_html(found.commentsbody))))
    return body


def _body_of(root: etree._Element) -> etree._Element:
    """The <body> child of a tree that trafilatura or lxml built as <html><body>."""
    body = root.find("body")
    if body is None:  # both always build one; a tree without it is a bug to report, not a page to skip
        raise ValueError(f"HTML tree without <body> under <{root.tag}>")
    return body


def _widen(root, body, page_chars: int):
    """The page's element that holds all of a short extraction's blocks, as a new <body>, where it holds
    less than half the page's text (a content container, not the page); else the extraction itself."""
    import lxml.html

    wanted = {_squash("".join(child.itertext())) for child in body}
    wanted.discard("")
    matches: dict[str, object] = {}
    for el in root.iter():  # document order: a descendant with the same text replaces its ancestor
        if isinstance(el.tag, str) and (text := _squash(el.text_content())) in wanted:
            matches[text] = el
    if not matches:
        return body
    container = _common_ancestor(list(matches.values()))
    if container is None or container.tag in {"html", "body"}:
        return body
    if _visible_chars(container.text_content()) >= page_chars / 2:
        return body
    body = _body_of(lxml.html.fromstring("<html><body></body></html>"))
    body.append(container)
    return body


def _common_ancestor(elements: list):
    paths = [[el, *el.iterancestors()][::-1] for el in elements]  # root first
    common = None
    for level in zip(*paths, strict=False):  # paths differ in length; the common part is the point
        if any(el is not level[0] for el in level):
            break
        common = level[0]
    return common


def _squash(text: str) -> str:
    return " ".join(text.split())


def _keep_title(body, title: str) -> None:
    """trafilatura moves a headline outside its article container into the metadata only; the page's
    title is what a reader searches for, so it opens the text as a heading unless the text has it."""
    from lxml import etree

    words = _squash(_TITLE_SUFFIX.split(title)[0])
    if words and words not in _squash("".join(body.itertext())):
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


def _visible_page(html: str):
    """The whole page as an lxml tree without what is never shown (scripts, styles, the head); None
    where lxml cannot read it."""
    import lxml.html

    try:
        root = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return None
    hidden = root.xpath("//script|//style|//noscript|//template|//head")
    for el in hidden if isinstance(hidden, list) else []:  # a node-set query: always a list of elements
        if isinstance(el, lxml.html.HtmlElement):
            el.drop_tree()
    return root


def _visible_chars(text: str) -> int:
    return len("".join(text.split()))
