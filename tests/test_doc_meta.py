"""#13.4: document metadata from real files of every format (ingest.doc_meta through parse_file): title,
author, pages, language, date and its phrase; broken properties never fail a file.

Expected values were read off the files themselves (their properties, first headings and date lines)."""

from __future__ import annotations

import pickle
import shutil
import zipfile
from email.header import Header
from email.mime.text import MIMEText
from pathlib import Path

import pytest

from ingest.doc_meta import FIELDS, clean_author, clean_title, detect_language, file_properties
from ingest.german_dates import find_document_date
from ingest.parse import parse_file

DOCS = Path("documents")
LETTER = ("# Kündigung des Mietvertrags\n\nSehr geehrter Herr Schmidt,\n\nhiermit kündige ich den Mietvertrag über "
          "die Wohnung in der Musterstraße 1 fristgerecht zum 30. April 2024.\n\nMit freundlichen Grüßen\n\n"
          "Berlin, den 3. Januar 2024\n")


def _plain(meta: dict) -> None:
    """Absent keys, never None values; plain data the parse worker can pickle."""
    assert all(value is not None for value in meta.values())
    assert pickle.loads(pickle.dumps(meta)) == meta
    for key in FIELDS:
        if key in meta:
            assert isinstance(meta[key], int if key == "pages" else str) and meta[key] != ""


def test_pdf_invoice(fixtures):
    """An English invoice (ZUGFeRD): no /Title, so its first heading; its date line opens the text."""
    meta = parse_file(fixtures / DOCS / "pdf" / "MustangGnuaccountingBeispielRE-20201121_508.pdf").metadata
    _plain(meta)
    assert meta["pages"] == 1 and meta["language"] == "en" and meta["file_type"] == "pdf"
    assert meta["date"] == "2020-11-21" and meta["date_phrase"] == "2020-11-21"
    assert meta["title"] == "Bei Spiel GmbH ● Ecke 12 ● 12345 Stadthausen ● Germany"
    assert "author" not in meta  # /Creator names the program, not an author


def test_pdf_form_with_empty_title(fixtures):
    meta = parse_file(fixtures / DOCS / "pdf" / "bgbl1_2016_j0408_0010.pdf").metadata
    _plain(meta)
    assert meta["pages"] == 12 and meta["language"] == "de"
    assert meta["title"] == "Antragsgegner/Antragsgegnerin; gesetzl. Vertr."  # /Title is "": the first heading
    assert "date" not in meta and "date_phrase" not in meta  # "Datum des Mahnbescheids" is a blank field


def test_pdf_properties_title_and_author(fixtures, tmp_path):
    import pypdf

    src = fixtures / DOCS / "pdf" / "MustangGnuaccountingBeispielRE-20201121_508.pdf"
    heading = "Bei Spiel GmbH ● Ecke 12 ● 12345 Stadthausen ● Germany"
    for title, expected in [("Rechnung  RE-20201121/508\n", "Rechnung RE-20201121/508"),
                            ("Microsoft Word - rechnung.doc", heading)]:
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(src))
        writer.add_metadata({"/Title": title, "/Author": "Ingmar N. Fo"})
        path = tmp_path / "rechnung.pdf"
        with path.open("wb") as fh:
            writer.write(fh)
        meta = parse_file(path).metadata
        assert (meta["title"], meta["author"], meta["pages"]) == (expected, "Ingmar N. Fo", 1)


def test_docx_pptx_xlsx_fixtures(fixtures):
    """Their core properties are empty: titles from the first heading, the slide count as pages."""
    office = fixtures / DOCS / "office"
    docx = parse_file(office / "ONLYOFFICE-Beispieldokument.docx").metadata
    pptx = parse_file(office / "ONLYOFFICE-Beispielpräsentation.pptx").metadata
    xlsx = parse_file(office / "ONLYOFFICE-Beispiel-Tabellenblatt.xlsx").metadata
    for meta in (docx, pptx, xlsx):
        _plain(meta)
        assert meta["language"] == "de" and "author" not in meta and "date" not in meta
    assert docx["title"] == "Willkommen bei ONLYOFFICE Online Editors" and "pages" not in docx
    assert pptx["title"] == "Wie kann man herausfordern?" and pptx["pages"] == 8
    assert "title" not in xlsx and "pages" not in xlsx  # a medal table: no heading


def test_docx_core_properties(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Protokoll der Mitgliederversammlung", level=1)
    document.add_paragraph("Datum: 12.03.2024")
    document.add_paragraph("Die Versammlung beschließt die Anschaffung eines neuen Rasenmähers für den Verein.")
    document.core_properties.title = "Protokoll  MV\t2024"
    document.core_properties.author = "Gerda Müller"
    path = tmp_path / "protokoll.docx"
    document.save(str(path))
    meta = parse_file(path).metadata
    _plain(meta)
    assert (meta["title"], meta["author"]) == ("Protokoll MV 2024", "Gerda Müller")
    assert (meta["date"], meta["date_phrase"], meta["language"]) == ("2024-03-12", "Datum: 12.03.2024", "de")

    document.core_properties.title = "Microsoft Word - protokoll.doc"  # a converter's name, not a title
    document.save(str(path))
    assert parse_file(path).metadata["title"] == "Protokoll der Mitgliederversammlung"


@pytest.mark.parametrize("fmt", ["odt", "epub"])
def test_odt_and_epub_properties(tmp_path, fmt):
    pypandoc = pytest.importorskip("pypandoc")
    path = tmp_path / f"mietvertrag.{fmt}"
    pypandoc.convert_text(LETTER, fmt, format="md", outputfile=str(path),
                          extra_args=["--metadata", "title=Mietvertrag Musterstraße 1", "--metadata",
                                      "author=Gerda Müller"])
    meta = parse_file(path).metadata
    _plain(meta)
    assert (meta["title"], meta["author"], meta["language"]) == ("Mietvertrag Musterstraße 1", "Gerda Müller", "de")
    assert (meta["date"], meta["date_phrase"]) == ("2024-01-03", "Berlin, den 3. Januar 2024")


def test_html_fixture_main_content_and_full_page(fixtures):
    path = fixtures / DOCS / "html" / "verein-freie-lizenzen.html"
    meta = parse_file(path).metadata  # trafilatura's title (the <h1>) and date
    _plain(meta)
    assert meta["title"] == "Freie Lizenzen im Verein: Fotos und Texte für alle"
    assert meta["date"] == "2024-03-14" and "date_phrase" not in meta and meta["language"] == "de"
    full = parse_file(path, main_content=False).metadata  # the page's <title>, the date from the text
    assert full["title"] == "Freie Lizenzen im Verein – Bürgerverein Musterstadt e. V."
    assert (full["date"], full["date_phrase"]) == ("2024-03-14", "Veröffentlicht am 14. März 2024")


def test_markdown_law_front_matter(fixtures):
    meta = parse_file(fixtures / "gesetze" / "k" / "kschg" / "index.md").metadata
    _plain(meta)
    assert meta["title"] == "Kündigungsschutzgesetz"  # front matter `Title`, not the heading "… (KSchG)"
    assert meta["front_matter"] == {"Title": "Kündigungsschutzgesetz", "jurabk": "KSchG", "layout": "default",
                                    "origslug": "kschg", "slug": "kschg"}
    assert (meta["date"], meta["date_phrase"]) == ("2021-06-14", "Zuletzt geändert durch : Art. 2 G v. 14.6.2021")
    assert meta["language"] == "de" and "Title" not in meta and "jurabk" not in meta


def test_markdown_front_matter_date_wins_over_the_text(tmp_path):
    path = tmp_path / "notiz.md"
    path.write_text("---\ndatum: 1. März 2024\nautor: Gerda Müller\n---\n" + LETTER, encoding="utf-8")
    meta = parse_file(path).metadata
    assert (meta["date"], meta["author"], meta["title"]) == ("2024-03-01", "Gerda Müller", "Kündigung des Mietvertrags")
    assert "date_phrase" not in meta and meta["front_matter"] == {"datum": "1. März 2024", "autor": "Gerda Müller"}


def test_plain_text_letter(tmp_path):
    path = tmp_path / "kuendigung.txt"
    path.write_text(LETTER.removeprefix("# "), encoding="cp1252")
    meta = parse_file(path).metadata
    _plain(meta)
    assert (meta["date"], meta["date_phrase"]) == ("2024-01-03", "Berlin, den 3. Januar 2024")
    assert meta["language"] == "de" and meta["title"] == "Kündigung des Mietvertrags" and "pages" not in meta


def test_email_subject_from_and_date(tmp_path):
    msg = MIMEText("Sehr geehrte Damen und Herren,\n\nhiermit kündige ich den Mietvertrag zum 30. April 2024.\n"
                   "Bitte bestätigen Sie den Eingang dieser Kündigung schriftlich.", "plain", "utf-8")
    msg["From"] = Header("Jürgen Müller", "utf-8").encode() + " <juergen.mueller@example.de>"
    msg["Subject"] = Header("Kündigung der Wohnung", "utf-8")
    msg["Date"] = "Mon, 03 Feb 2025 23:30:00 -0800"  # the sender's own date, not UTC's next day
    path = tmp_path / "mail.eml"
    path.write_bytes(msg.as_bytes())
    meta = parse_file(path).metadata
    _plain(meta)
    assert (meta["title"], meta["author"], meta["date"]) == ("Kündigung der Wohnung", "Jürgen Müller", "2025-02-03")
    assert meta["language"] == "de" and "date_phrase" not in meta


def _rewrite_zip(src: Path, dst: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename == name else zin.read(item.filename))
    return dst


@pytest.mark.parametrize("core", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "Titel"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b'<cp:coreProperties xmlns:cp="urn:cp" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    b"<dc:title>&b;&b;&b;&b;</dc:title></cp:coreProperties>",  # entities are never expanded
    b"<x>" + b"a" * (600 * 1024) + b"</x>",  # over the size cap
])
def test_hostile_core_properties_never_fail_the_file(fixtures, tmp_path, core):
    path = _rewrite_zip(fixtures / DOCS / "office" / "ONLYOFFICE-Beispieldokument.docx", tmp_path / "kaputt.docx",
                        "docProps/core.xml", core)
    assert "title" not in file_properties(path, ".docx")
    meta = parse_file(path).metadata
    _plain(meta)
    assert meta["title"] == "Willkommen bei ONLYOFFICE Online Editors"  # the first heading instead


def test_malformed_core_properties_are_absent(fixtures, tmp_path):
    """Not XML: no properties (python-docx itself then refuses the file while partitioning, as before)."""
    path = _rewrite_zip(fixtures / DOCS / "office" / "ONLYOFFICE-Beispieldokument.docx", tmp_path / "kaputt.docx",
                        "docProps/core.xml", b"<cp:coreProperties><dc:title>kaputt")
    assert file_properties(path, ".docx") == {}
    path = _rewrite_zip(fixtures / DOCS / "office" / "ONLYOFFICE-Beispielpräsentation.pptx", tmp_path / "kaputt.pptx",
                        "docProps/core.xml", b"<cp:coreProperties><dc:title>kaputt")
    assert file_properties(path, ".pptx") == {"pages": 8}


def test_unreadable_properties_are_absent(tmp_path):
    broken = tmp_path / "kaputt.pdf"
    broken.write_bytes(b"%PDF-1.4\n% nothing else")
    assert file_properties(broken, ".pdf") == {}
    shutil.copy(broken, tmp_path / "kaputt.docx")
    assert file_properties(tmp_path / "kaputt.docx", ".docx") == {}
    assert file_properties(tmp_path / "missing.odt", ".odt") == {}


@pytest.mark.parametrize(("raw", "title"), [
    ("  Jahresbericht\n 2023 ", "Jahresbericht 2023"),
    ("Microsoft Word - Jahresbericht 2023", "Jahresbericht 2023"),
    ("Microsoft Word - jahresbericht.doc", None),
    ("783980.pdf", None), ("tmp-14096", None), ("Unbenannt", None), ("Untitled 3", None), ("Dokument1", None),
    ("C:\\Users\\gm\\Desktop\\brief.docx", None), ("4711", None), ("", None), ("x" * 400, "x" * 300),
])
def test_clean_title(raw, title):
    assert clean_title(raw) == title


def test_clean_author_and_language():
    assert clean_author("Autor: Gerda  Müller") == "Gerda Müller" and clean_author(" - ") is None
    assert detect_language("Die Kündigung des Mietvertrags muss schriftlich erfolgen und ist zu begründen.") == "de"
    assert detect_language("The notice of termination must be given in writing and must state its reasons.") == "en"
    assert detect_language("Kündigung 2024") is None  # under 50 letters
    assert detect_language("12 34 56 " * 100) is None


@pytest.mark.shared_data
def test_shared_pdfs_properties(shared_data):
    pdf = shared_data / DOCS / "pdf"
    assert file_properties(pdf / "GeoTopo-komprimiert.pdf", ".pdf") == {
        "title": "Geometrie und Topologie", "author": "Martin Thoma", "pages": 117}
    assert file_properties(pdf / "bgbl1_2014_j0034-1_0040.pdf", ".pdf") == {"title": "783980.pdf", "pages": 1}
    meta = parse_file(pdf / "bgbl1_2014_j0034-1_0040.pdf").metadata
    assert meta["title"] != "783980.pdf" and meta["pages"] == 1 and meta["language"] == "de"


@pytest.mark.shared_data
@pytest.mark.slow  # 117 pages: about 13 s of parsing on 2 cores
def test_shared_lecture_notes(shared_data):
    meta = parse_file(shared_data / DOCS / "pdf" / "GeoTopo-komprimiert.pdf").metadata
    assert (meta["title"], meta["author"], meta["pages"]) == ("Geometrie und Topologie", "Martin Thoma", 117)
    assert (meta["date"], meta["date_phrase"]) == ("2016-12-31", "0. Auflage, 31. Dezember 2016")


@pytest.mark.shared_data
def test_shared_html_pages(shared_data):
    html = shared_data / DOCS / "html"
    expected = {  # trafilatura's title, author and date (htmldate) as read from each page
        "stuttgart.de.html": ("Bohnenviertel", None, "2019-05-08"),
        "de.creativecommons.org.endlich.html": ("Endlich wird es spannend: Die NC-Einschränkug nach deutschem Recht",
                                                "john", "2014-03-20"),
        "ndr.de.podcastcoronavirus140.html": ("(16) Coronavirus-Update: Brauchen Abkürzungen bei der "
                                              "Impfstoffzulassung", "In Korinna Hennig", "2020-03-18"),
    }
    for name, (title, author, date) in expected.items():
        meta = parse_file(html / name).metadata
        _plain(meta)
        assert (meta["title"], meta.get("author"), meta["date"], meta["language"]) == (title, author, date, "de"), name


@pytest.mark.shared_data
def test_shared_laws_dated_by_their_last_amendment(shared_data):
    """Each law's `Zuletzt geändert durch` (or `Geändert durch`) line, read in its Markdown."""
    expected = {"agg": "2013-04-03", "bdsg_2018": "2019-11-20", "beeg": "2021-02-15", "bgb": "2021-05-07",
                "muschg_2018": "2019-12-12", "stgb": "2021-03-30", "stvo_2013": "2021-07-12", "tmg": "2021-08-12",
                "urhg": "2020-11-26", "vwvfg": "2021-05-04"}
    for slug, iso in expected.items():
        text = next((shared_data / "gesetze").glob(f"*/{slug}/index.md")).read_text(encoding="utf-8")
        found = find_document_date(text)
        assert found is not None and found.iso == iso and "eändert durch" in found.phrase, slug
