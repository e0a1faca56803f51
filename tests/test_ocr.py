"""OCR (#14): real Tesseract on small German pages rendered here with Pillow, so the clone needs no data.

Skipped where tesseract or its German data is not installed (`make venv` installs them as root).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ingest.limits import LimitError, Limits
from ingest.ocr import OcrOptions, OcrUnavailableError, check_engine, ocr_image
from ingest.parse import parse_file
from ingest.schema import EmptyDocumentError, ParseError
from tests.standin import badfiles as bf


def _tesseract_ready() -> bool:
    try:
        check_engine(OcrOptions())
        return shutil.which("pdftoppm") is not None
    except OcrUnavailableError:
        return False


pytestmark = pytest.mark.skipif(not _tesseract_ready(), reason="tesseract-ocr, -deu or poppler-utils not installed")

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LETTER = [
    "Die Prüfung der Größe ergab keinen Ärger mit der",
    "Bundes-",
    "regierung. Die Straße wird im Frühjahr erneuert.",
    "",
    "Der Mieter zahlt die Kaution in drei gleichen",
    "monatlichen Teilzahlungen. Übermäßige Forderungen",
    "sind unzulässig und können gekündigt werden.",
]
OFF = Limits(ocr=OcrOptions(mode="off"))


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(str(DEJAVU), size) if DEJAVU.exists() else ImageFont.load_default(size=size)


def page(lines: list[str], size: tuple[int, int] = (1240, 560), dpi: int = 150) -> Image.Image:
    """A white page with the lines in 11-point type at `dpi` (a blank line: a paragraph break)."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    step = round(dpi * 11 / 72 * 1.5)
    for i, line in enumerate(lines):
        draw.text((round(dpi * 0.6), round(dpi * 0.5) + i * step), line, font=font(round(dpi * 11 / 72)), fill=0)
    image.info["dpi"] = (dpi, dpi)
    return image


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, dpi=(150, 150), **kwargs)
    return path


# -- the engine ------------------------------------------------------------------------------------------
def test_clean_page_keeps_umlauts_paragraphs_and_joins_hyphenation():
    result = ocr_image(page(LETTER), OcrOptions())
    for word in ("Prüfung", "Größe", "Ärger", "Straße", "Frühjahr", "Übermäßige", "unzulässig", "gekündigt"):
        assert word in result.text, result.text
    assert "Bundesregierung" in result.text and "Bundes-" not in result.text
    assert result.text.count("\n\n") == 1  # two paragraphs, lines re-flowed within each
    assert result.confidence > 80 and result.rotation == 0 and result.page == 1


@pytest.mark.parametrize("turned", [90, 180])
def test_rotated_page_is_turned_upright(turned):
    image = page(LETTER * 2, size=(1240, 1100)).rotate(turned, expand=True, fillcolor=255)
    result = ocr_image(image, OcrOptions(), page=3)
    assert result.rotation == turned and result.page == 3
    assert "Prüfung" in result.text and "gekündigt" in result.text


def test_tesseract_missing_names_the_packages(monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/gibt/es/nicht/tesseract")
    with pytest.raises(OcrUnavailableError, match=r"tesseract-ocr, tesseract-ocr-deu.*poppler-utils"):
        ocr_image(page(["Kaution"]), OcrOptions())


def test_missing_language_names_its_package():
    with pytest.raises(OcrUnavailableError, match=r"tesseract-ocr-xyz"):
        ocr_image(page(["Kaution"]), OcrOptions(languages="deu+xyz"))


def test_options_are_checked():
    for bad in ({"mode": "sometimes"}, {"languages": "deu; rm"}, {"dpi": 0}, {"min_confidence": 101}):
        with pytest.raises(ValueError, match=f"ocr {next(iter(bad))}"):
            OcrOptions(**bad)


# -- image files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_files_become_documents(tmp_path, ext):
    doc = parse_file(save(page(LETTER).convert("RGB"), tmp_path / f"brief{ext}", quality=90))
    assert "Größe" in doc.text and "Kaution" in doc.text
    assert doc.metadata["ocr"] is True and list(doc.metadata["ocr_pages"]) == ["1"]
    assert doc.metadata["ocr_pages"]["1"] > 60 and doc.metadata["file_type"] == ext[1:]
    assert {s.page for s in doc.sections} == {1}
    assert {s.category for s in doc.sections} <= {"NarrativeText", "Title", "ListItem", "UncategorizedText"}


def test_multipage_tiff_every_frame_a_page_within_max_pages(tmp_path):
    frames = [page(["Seite eins: die Prüfung der Größe."], size=(1000, 160)),
              page(["Seite zwei: der Ärger mit der Straße."], size=(1000, 160)),
              page(["Seite drei: nicht mehr gelesen."], size=(1000, 160))]
    path = save(frames[0], tmp_path / "akte.tiff", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    doc = parse_file(path, limits=Limits(ocr=OcrOptions(max_pages=2)))
    assert [s.page for s in doc.sections] == [1, 2]
    assert "Prüfung" in doc.text and "Straße" in doc.text and "nicht mehr" not in doc.text
    assert list(doc.metadata["ocr_pages"]) == ["1", "2"] and doc.metadata["pages"] == 3
    assert "max_pages" in doc.metadata["ocr_problems"]["3"]


def test_image_without_text_is_an_error_not_an_empty_document(tmp_path):
    with pytest.raises(ParseError, match=r"leer.png: no text found by OCR \(1 pages read, best confidence -1.0\)"):
        parse_file(save(Image.new("L", (600, 400), 255), tmp_path / "leer.png"))


def test_image_files_with_ocr_off_broken_or_over_the_pixel_limit(tmp_path, monkeypatch):
    path = save(page(LETTER), tmp_path / "brief.png")
    with pytest.raises(ParseError, match=r"brief.png: an image file can only be read by OCR.*ocr mode off"):
        parse_file(path, limits=OFF)
    (tmp_path / "kaputt.png").write_bytes(b"\x89PNG\r\n\x1a\n kein Bild")
    with pytest.raises(ParseError, match=r"kaputt.png: cannot parse as PNG"):
        parse_file(tmp_path / "kaputt.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500_000)
    with pytest.raises(LimitError, match=r"brief.png: image of 1240 x 560 = 694400 pixels, over the limit of 500000"):
        parse_file(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # over twice the limit: Pillow refuses it itself
    with pytest.raises(LimitError, match=r"brief.png: Image size \(694400 pixels\) exceeds limit"):
        parse_file(path)


def test_a_page_over_the_time_limit_is_reported_and_the_others_kept(tmp_path):
    noise = Image.fromarray((np.random.default_rng(3).random((3000, 3000)) > 0.5).astype("uint8") * 255)
    small = page(["Die Kaution beträgt drei Monatsmieten."], size=(1000, 140))
    path = save(small, tmp_path / "stapel.tiff", save_all=True, append_images=[noise.convert("L")])
    doc = parse_file(path, limits=Limits(ocr=OcrOptions(page_timeout_s=2.5)))
    assert "Kaution beträgt" in doc.text
    assert list(doc.metadata["ocr_pages"]) == ["1"]
    assert "page time limit (page_timeout_s)" in doc.metadata["ocr_problems"]["2"]


# -- PDFs ------------------------------------------------------------------------------------------------
def _mixed_pdf(path: Path) -> Path:
    """Page 1 and 3 with a text layer, page 2 a scanned image (Pillow's PDF writer), merged with pypdf."""
    import pypdf

    scan = io.BytesIO()
    page(LETTER).save(scan, "PDF", resolution=150)
    writer = pypdf.PdfWriter()
    text = pypdf.PdfReader(io.BytesIO(bf.pdf_bytes(["Erste Seite: Vertrag über die Mietsache in Köln.",
                                                    "Dritte Seite: Unterschriften beider Parteien."])))
    writer.add_page(text.pages[0])
    writer.add_page(pypdf.PdfReader(scan).pages[0])
    writer.add_page(text.pages[1])
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def test_mixed_pdf_reads_the_scanned_page_by_ocr_in_page_order(tmp_path):
    doc = parse_file(_mixed_pdf(tmp_path / "gemischt.pdf"), limits=Limits(ocr=OcrOptions(dpi=150)))
    assert doc.metadata["ocr"] is True and list(doc.metadata["ocr_pages"]) == ["2"]
    first, scanned, last = doc.text.index("Erste Seite"), doc.text.index("Prüfung"), doc.text.index("Dritte Seite")
    assert first < scanned < last
    assert [s.page for s in doc.sections] == sorted(s.page for s in doc.sections)
    assert {s.page for s in doc.sections} == {1, 2, 3} and doc.metadata["pages"] == 3
    assert "Köln" in doc.text  # the text layer's own words, not OCR'd


def test_mixed_pdf_with_ocr_off_keeps_only_the_text_layer(tmp_path):
    doc = parse_file(_mixed_pdf(tmp_path / "gemischt.pdf"), limits=OFF)
    assert "Prüfung" not in doc.text and "ocr" not in doc.metadata
    assert {s.page for s in doc.sections} == {1, 3}


def test_scanned_example_is_read_by_ocr(fixtures):
    doc = parse_file(fixtures / "documents" / "pdf" / "bgbl1_2020_j1890-1_0100.pdf")
    assert doc.metadata["ocr"] is True and doc.metadata["ocr_pages"]["1"] > 60
    assert "Risikodeckungspotenzial" in doc.text and "berücksichtigter" in doc.text
    assert {s.page for s in doc.sections} == {1}


def test_scanned_pdf_with_ocr_off_keeps_the_old_error(fixtures):
    with pytest.raises(ParseError, match=r"no text found \(a PDF without a text layer, e.g. a scan, needs OCR"):
        parse_file(fixtures / "documents" / "pdf" / "bgbl1_2020_j1890-1_0100.pdf", limits=OFF)


def test_pdf_of_blank_pages_is_reported_not_empty(tmp_path):
    (tmp_path / "leer.pdf").write_bytes(bf.pdf_bytes(["", ""]))
    with pytest.raises(ParseError, match=r"leer.pdf: no text found by OCR \(2 pages read"):
        parse_file(tmp_path / "leer.pdf", limits=Limits(ocr=OcrOptions(dpi=72)))


# -- Office files made of images -------------------------------------------------------------------------
def _docx_with_picture(path: Path, picture: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_picture(str(picture))
    document.save(str(path))
    return path


def test_docx_of_an_image_of_text_is_read_by_ocr(tmp_path):
    path = _docx_with_picture(tmp_path / "fax.docx", save(page(LETTER), tmp_path / "fax.png"))
    doc = parse_file(path)
    assert "Prüfung" in doc.text and "Kaution" in doc.text
    assert doc.metadata["ocr"] is True and list(doc.metadata["ocr_pages"]) == ["1"]
    assert {s.page for s in doc.sections} == {None}  # an image in a DOCX has no page number
    with pytest.raises(EmptyDocumentError, match=r"fax.docx: no text found \(OCR would read its 1 images"):
        parse_file(path, limits=OFF)


def test_ocr_options_travel_to_the_parse_worker_and_its_errors_come_back_typed(tmp_path):
    """The worker process gets OcrOptions with its Limits (here a language that is not installed), and the
    configuration error reaches the caller as itself, not as a generic parse failure."""
    from ingest.parse_worker import ParseWorker

    worker = ParseWorker(Limits(parse_timeout_s=60, ocr=OcrOptions(languages="deu+xyz")))
    try:
        with pytest.raises(OcrUnavailableError, match=r"tesseract-ocr-xyz"):
            worker.parse(save(page(["Kaution"]), tmp_path / "brief.png"), "brief.png")
        assert worker.isolated
    finally:
        worker.close()
