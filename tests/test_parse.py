import shutil

import pytest

from ingest.limits import Limits
from ingest.ocr import OcrOptions
from ingest.parse import parse_file
from ingest.schema import ParseError

DOCS = "documents"


@pytest.mark.parametrize(
    ("folder", "rel", "needle"),
    [
        ("fixtures", "pdf/bgbl1_2016_j0408_0010.pdf", "Mahnbescheid"),
        ("fixtures", "pdf/MustangGnuaccountingBeispielRE-20201121_508.pdf", "Stadthausen"),
        ("fixtures", "office/ONLYOFFICE-Beispieldokument.docx", "ONLYOFFICE"),
        ("fixtures", "office/ONLYOFFICE-Beispielpräsentation.pptx", "Handschuh"),
        ("fixtures", "office/ONLYOFFICE-Beispiel-Tabellenblatt.xlsx", "Deutschland"),
        ("fixtures", "html/verein-freie-lizenzen.html", "Namensnennung"),
        # a real page's content belongs to its publisher: it stays in ../shared/data
        pytest.param("shared_data", "html/brandenburg.de.homo-brandenburgensis.html", "Brandenburg",
                     marks=pytest.mark.shared_data),
    ],
)
def test_real_documents_parse_with_sections(request, folder, rel, needle):
    doc = parse_file(request.getfixturevalue(folder) / DOCS / rel)
    assert needle in doc.text
    assert doc.sections
    for s in doc.sections:
        assert doc.text[s.start : s.end].strip() == doc.text[s.start : s.end]
    assert doc.text == doc.text.strip()


@pytest.mark.shared_data  # 117 pages: too large for tests/fixtures
def test_pdf_pages_and_hyphenation(shared_data):
    doc = parse_file(shared_data / DOCS / "pdf" / "GeoTopo-komprimiert.pdf")
    assert doc.pages > 100
    assert {s.page for s in doc.sections} >= {1, 50, 100}
    assert "Übungsaufgaben" in doc.text and "Übungsauf- gaben" not in doc.text
    assert "\u00ad" not in doc.text and "\ufb01" not in doc.text


def test_markdown_heading_path_and_front_matter(fixtures):
    doc = parse_file(fixtures / "gesetze" / "b" / "burlg" / "index.md")
    assert not doc.text.startswith("---")
    paths = {s.heading_path for s in doc.sections}
    assert ("Mindesturlaubsgesetz für Arbeitnehmer (BUrlG)", "§ 3 Dauer des Urlaubs") in paths


def test_scanned_pdf_without_text_layer_is_reported(fixtures):
    """With OCR switched off (tests/test_ocr.py: with it on, the scan is read)."""
    with pytest.raises(ParseError, match=r"no text found.*OCR"):
        parse_file(fixtures / DOCS / "pdf" / "bgbl1_2020_j1890-1_0100.pdf", limits=Limits(ocr=OcrOptions(mode="off")))


def test_empty_binary_unknown_and_unreadable(tmp_path):
    empty = tmp_path / "leer.txt"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match=r"leer.txt: file is empty"):
        parse_file(empty)
    fake = tmp_path / "kaputt.pdf"
    fake.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ParseError, match=r"kaputt.pdf: not a PDF file"):
        parse_file(fake)
    truncated = tmp_path / "abgeschnitten.pdf"
    truncated.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog")
    with pytest.raises(ParseError, match=r"abgeschnitten.pdf: cannot parse as PDF"):
        parse_file(truncated)
    unknown = tmp_path / "daten.xyz"
    unknown.write_text("Hallo")
    with pytest.raises(ParseError, match=r"daten.xyz: unsupported file type '.xyz'"):
        parse_file(unknown)
    dangling = tmp_path / "weg.txt"
    dangling.symlink_to(tmp_path / "gibt-es-nicht.txt")
    with pytest.raises(ParseError, match=r"weg.txt: cannot read file"):
        parse_file(dangling)


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "latin-1", "utf-16"])
def test_text_encodings(tmp_path, encoding):
    text = "Die Straße führt über die Brücke nach Köln. Größe: 5 m²."
    path = tmp_path / f"text-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    doc = parse_file(path)
    assert doc.text == text


def test_binary_text_file_is_rejected(tmp_path):
    path = tmp_path / "binär.txt"
    path.write_bytes(b"\x00\x01\x02\xff" * 100)
    with pytest.raises(ParseError, match="binary data"):
        parse_file(path)


def test_html_and_markdown_from_copies(tmp_path, fixtures):
    src = fixtures / DOCS / "html" / "verein-freie-lizenzen.html"
    copy = tmp_path / "seite.htm"
    shutil.copy(src, copy)
    text = parse_file(copy).text
    assert "Lizenz" in text and "Startseite" not in text  # the article, not the menu
