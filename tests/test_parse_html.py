"""HTML: the main content is indexed, not navigation, header and footer menus; the full page is the fallback."""

from __future__ import annotations

from pathlib import Path

from ingest.parse import parse_file

MENU = ["Startseite", "Bürgerservice", "Stadtverwaltung", "Kultur &amp; Freizeit", "Wirtschaft", "Verkehr",
        "Bildung", "Umwelt", "Gesundheit", "Stellenangebote"]
FOOTER = ["Impressum", "Datenschutz", "Barrierefreiheit", "Kontakt", "Sitemap", "Leichte Sprache"]
ARTICLE = [
    "Das Bohnenviertel entstand im 15. Jahrhundert als erstes Wohnquartier außerhalb der Stadtmauer.",
    "Hier siedelten sich vor allem Handwerker, Weinbauern und Kleinhändler an, die in ihren Gärten Bohnen "
    "pflanzten und sie zum Trocknen an die Häuser hängten.",
    "Der Schellenturm von 1564 ist alles, was von der historischen Stadtmauer übrig blieb; seinen Namen "
    "verdankt er den Fesseln, mit denen Sträflinge im Innern festgekettet waren.",
    "Heute laden kleine Antiquitätenläden, Weinstuben und Cafés in den renovierten Gassen zum Verweilen ein.",
]


def _links(items: list[str]) -> str:
    return "<ul>" + "".join(f'<li><a href="/{i}">{i}</a></li>' for i in items) + "</ul>"


def _footer_column(title: str, items: list[str]) -> str:
    return f'<div class="footer-links footer-cols"><h4>{title}</h4>{_links(items)}</div>'


def _page(article: str) -> str:
    """Laid out with divs as many municipal sites are (semantic <nav>/<footer> are already skipped)."""
    return f"""<!DOCTYPE html>
<html lang="de"><head><meta charset="utf-8"><title>Bohnenviertel | Stadt Stuttgart</title>
<meta name="date" content="2019-05-08"></head>
<body>
<ul id="skiplinks"><li><a href="#nav">Navigation</a></li><li><a href="#content">Inhalt</a></li></ul>
<div id="header"><ul id="header-nav"><li><a href="/presse">Presse</a></li><li><a href="/rss">RSS</a></li></ul>
<ul id="fontsize-selection"><li>Schriftgröße normal</li><li>Schriftgröße groß</li></ul></div>
<div id="quick-navigation">{_links(MENU)}</div>
<div id="breadcrumb">Sie befinden sich hier: <a href="/">Startseite</a> &gt; <a href="/t">Tourismus</a></div>
<div id="content-wrapper">
<div class="sidebar"><h3>Mehr zum Thema</h3>{_links(["Sehenswürdigkeiten", "Stadtgeschichte", "Stadtführungen"])}</div>
<div id="content">{article}</div></div>
<div id="footer">{_footer_column("Nützliche Links", FOOTER)}{_footer_column("Leben in Stuttgart", MENU[2:8])}
<p>© Landeshauptstadt Stuttgart, Abteilung Kommunikation</p></div>
</body></html>"""


def _article() -> str:
    return (f"<h1>Bohnenviertel</h1><p>{ARTICLE[0]} {ARTICLE[1]}</p>"
            f"<h2>Schellenturm</h2><p>{ARTICLE[2]}</p><h2>Heute</h2><p>{ARTICLE[3]}</p>")


def _write(tmp_path: Path, html: str) -> Path:
    path = tmp_path / "seite.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_menus_are_not_indexed_main_content_is(tmp_path):
    """#10.13: nav, header, aside and footer link lists stay out; every article sentence is in."""
    doc = parse_file(_write(tmp_path, _page(_article())))
    for sentence in ARTICLE:
        assert sentence in doc.text
    for item in ["Stellenangebote", "Barrierefreiheit", "Sitemap", "Leichte Sprache", "Stadtführungen",
                 "Schriftgröße", "Nützliche Links"]:
        assert item not in doc.text
    assert doc.metadata["html_content"] == "main"


def test_main_content_keeps_headings_offsets_and_metadata(tmp_path):
    """#10.13: the article's headings become heading paths; spans hold; title and date go to metadata."""
    doc = parse_file(_write(tmp_path, _page(_article())))
    paths = {s.heading_path for s in doc.sections}
    assert ("Bohnenviertel", "Schellenturm") in paths and ("Bohnenviertel", "Heute") in paths
    for s in doc.sections:
        assert doc.text[s.start : s.end].strip() == doc.text[s.start : s.end] != ""
    assert doc.metadata["title"].startswith("Bohnenviertel")
    assert doc.metadata["date"] == "2019-05-08"


def test_page_without_main_content_falls_back_to_full_text(tmp_path):
    """#10.13: where the extractor finds nothing, too little or next to everything (an index page that is
    a link list), the full page is parsed: nothing lost, headings kept."""
    offices = ["Bauamt", "Bürgerbüro", "Standesamt", "Ordnungsamt", "Jugendamt", "Sozialamt", "Gesundheitsamt"]
    doc = parse_file(_write(tmp_path, _page("<h1>Ämter von A bis Z</h1>" + _links(offices))))
    for word in ["Ämter von A bis Z", *offices]:
        assert word in doc.text
    assert ("Ämter von A bis Z",) in {s.heading_path for s in doc.sections}
    assert doc.metadata["html_content"] == "full"
    empty = parse_file(_write(tmp_path, "<html><body><p>Geöffnet montags bis freitags.</p></body></html>"))
    assert empty.text == "Geöffnet montags bis freitags."


def test_full_page_on_request(tmp_path):
    """#10.13: main_content=False parses the whole page (the behaviour before, for comparison)."""
    doc = parse_file(_write(tmp_path, _page(_article())), main_content=False)
    assert "Stellenangebote" in doc.text and ARTICLE[0] in doc.text
    assert doc.metadata["html_content"] == "full"


def test_headline_outside_the_article_is_kept(tmp_path):
    """#10.13: a headline the extractor moves to the metadata still opens the text as a heading."""
    article = f'<div class="entry-header"><h1>Kaution in der Mietwohnung</h1></div><div class="entry">' \
              f"<p>{ARTICLE[0]} {ARTICLE[1]}</p><p>{ARTICLE[2]}</p><p>{ARTICLE[3]}</p></div>"
    page = _page(article).replace("<title>Bohnenviertel | Stadt Stuttgart</title>",
                                  "<title>Kaution in der Mietwohnung | Stadt Stuttgart</title>")
    doc = parse_file(_write(tmp_path, page))
    assert doc.metadata["html_content"] == "main"
    assert doc.text.startswith("Kaution in der Mietwohnung")
    assert ARTICLE[3] in doc.text and "Stellenangebote" not in doc.text


MENU_ITEMS = [f"{word} {n}" for n in range(1, 7) for word in
              ("Abfall", "Bauen", "Familie", "Kultur", "Ordnung", "Soziales", "Sport", "Verkehr", "Wahlen", "Wohnen")]


def _menu_links(items: list[str]) -> str:
    return "<ul>" + "".join(f'<li><a href="/{n}">{item}</a></li>' for n, item in enumerate(items)) + "</ul>"


def test_short_main_content_is_kept_without_the_menus(tmp_path):
    """#10.13 (C3): a one-sentence article between 60 menu links in divs was parsed as the full page (every
    chunk a menu) because the extraction was under 200 characters; a short extraction is now kept."""
    sentence = "Der Sperrmüll wird zweimal im Jahr kostenlos vor dem Haus abgeholt."
    page = ("<html lang='de'><head><meta charset='utf-8'><title>Sperrmüll</title></head><body>"
            f"<div class='menu'>{_menu_links(MENU_ITEMS[:40])}</div>"
            f"<div class='content'><h1>Sperrmüll</h1><p>{sentence}</p></div>"
            f"<div class='footer'>{_menu_links(MENU_ITEMS[40:])}</div></body></html>")
    doc = parse_file(_write(tmp_path, page))
    assert doc.metadata["html_content"] == "main"
    assert sentence in doc.text and "Sperrmüll" in doc.text
    assert not [item for item in MENU_ITEMS if item in doc.text]


def test_short_paragraph_next_to_a_menu_cell_is_kept_alone(tmp_path):
    """#10.13 (C3): a table layout, a menu cell beside a 150-character paragraph: the paragraph only."""
    text = ("Die Stadtbücherei ist dienstags und donnerstags von 10 bis 18 Uhr geöffnet; in den Sommerferien "
            "bleibt sie drei Wochen lang geschlossen.")
    page = ("<html><head><meta charset='utf-8'><title>Bücherei</title></head><body><table><tr>"
            f"<td class='nav'>{_menu_links(MENU_ITEMS[:30])}</td><td><p>{text}</p></td></tr></table></body></html>")
    doc = parse_file(_write(tmp_path, page))
    assert doc.metadata["html_content"] == "main"
    assert text in doc.text
    assert not [item for item in MENU_ITEMS if item in doc.text]


def test_short_intro_keeps_the_link_list_of_its_own_content(tmp_path):
    """#10.13 (C3): an index page whose content is a short intro and a list of links: the list is the page's
    content, so the container the extraction came from is kept with it (the menus still are not)."""
    offices = ["Bauamt", "Bürgerbüro", "Standesamt", "Ordnungsamt", "Jugendamt", "Sozialamt", "Gesundheitsamt"]
    intro = "<h1>Ämter von A bis Z</h1><p>Alle Ämter der Stadtverwaltung mit ihren Öffnungszeiten im Überblick.</p>"
    doc = parse_file(_write(tmp_path, _page(intro + _links(offices))))
    for word in ["Ämter von A bis Z", "Alle Ämter der Stadtverwaltung", *offices]:
        assert word in doc.text
    assert "Stellenangebote" not in doc.text and "Barrierefreiheit" not in doc.text
