"""Parse work is bounded by what a file yields: paragraph bombs are refused before partitioning."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.budget import check_zip_budget
from ingest.limits import LimitError, Limits
from ingest.parse import parse_file

SENTENCE = "Der Vermieter muss die Kaution getrennt von seinem Vermögen anlegen."


def _docx_bomb(path: Path, paragraphs: int, text: str = SENTENCE) -> Path:
    """A real DOCX (python-docx) whose one paragraph is repeated: tiny on disk, large when unpacked."""
    return _docx_replacing(path, lambda paragraph: paragraph.replace("MARKER", text) * paragraphs)


def _docx_replacing(path: Path, body: Callable[[str], str]) -> Path:
    """A real DOCX (python-docx) whose one paragraph's XML is replaced by `body(paragraph XML)`."""
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_paragraph("MARKER")
    buf = io.BytesIO()
    document.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                xml = data.decode("utf-8")
                start = xml.index("<w:p>")
                end = xml.index("</w:p>", start) + len("</w:p>")
                data = (xml[:start] + body(xml[start:end]) + xml[end:]).encode("utf-8")
            out.writestr(info.filename, data)
    return path


def _unpacked(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(i.file_size for i in zf.infolist())


def test_docx_paragraph_bomb_is_refused_by_element_count_quickly(tmp_path):
    """#10.8: a DOCX far under max_unzipped_bytes but with too many paragraphs is refused in well under
    the time unstructured would need (about 4 s for these 10,000 paragraphs), naming max_elements."""
    bomb = _docx_bomb(tmp_path / "bombe.docx", 10_000)
    assert bomb.stat().st_size < 50_000 and _unpacked(bomb) > 600_000  # 13x compression, under the unzip limit
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"bombe\.docx: more than 2000 paragraphs.*\(max_elements\)"):
        parse_file(bomb, limits=Limits(max_elements=2000, parse_timeout_s=0))
    assert time.perf_counter() - started < 30  # a bound on "before parsing", not a speed target


def test_docx_text_bomb_is_refused_by_text_size_before_partitioning(tmp_path):
    """#10.8: the characters a DOCX yields are counted from its XML before partitioning; over
    max_text_chars it is refused without building the element list (before: parsed whole, then refused)."""
    bomb = _docx_bomb(tmp_path / "text.docx", 10_000)
    started = time.perf_counter()
    message = r"text\.docx: more than 100000 characters of text, over the limit of 100000 \(max_text_chars\)"
    with pytest.raises(LimitError, match=message):
        parse_file(bomb, limits=Limits(max_text_chars=100_000, parse_timeout_s=0))
    assert time.perf_counter() - started < 30  # a bound on "before parsing", not a speed target


def test_docx_under_the_limits_still_parses(tmp_path):
    """#10.8: the count is exact, not a guess from XML size: a document at the limits parses."""
    doc_path = _docx_bomb(tmp_path / "normal.docx", 50)
    chars = 50 * len(SENTENCE) + 49 * 2  # paragraphs joined by blank lines
    units = check_zip_budget(doc_path, "normal.docx", Limits())[0]
    assert units == 63  # 50 paragraphs, and their runs and text nodes at an eighth each
    doc = parse_file(doc_path, limits=Limits(max_elements=units, max_text_chars=chars, parse_timeout_s=0))
    assert doc.text.count(SENTENCE) == 50


def test_html_with_too_many_blocks_is_refused_before_partitioning(tmp_path):
    """#10.8: HTML blocks are counted in the pass that already checks nesting depth."""
    page = tmp_path / "liste.html"
    page.write_text("<html><body><ul>" + f"<li>{SENTENCE}</li>" * 3000 + "</ul></body></html>", encoding="utf-8")
    started = time.perf_counter()
    message = r"liste\.html: more than 1000 paragraphs, list items.*limit of 1000 \(max_elements\)"
    with pytest.raises(LimitError, match=message):
        parse_file(page, limits=Limits(max_elements=1000, parse_timeout_s=0))
    assert time.perf_counter() - started < 30  # a bound on "before parsing", not a speed target


def test_max_elements_is_validated():
    """#10.8: the new limit is checked like the others."""
    with pytest.raises(ValueError, match=r"limit max_elements must be >= 0"):
        Limits(max_elements=-1)


def _docx_with_body(path: Path, body: str) -> Path:
    """A real DOCX whose word/document.xml body is `body` (raw WordprocessingML paragraphs)."""
    return _docx_replacing(path, lambda _: body)


def _breaks(count: int) -> str:
    return "<w:p><w:r>" + "<w:t>a</w:t><w:br/>" * count + "</w:r></w:p>"


def test_docx_line_break_bomb_is_refused_at_the_default_limits_quickly(tmp_path):
    """#10.8 (B2): 300,000 line breaks in one run (15 KB on disk, one paragraph) cost python-docx time that
    grows with the square of the run's children (over 90 s before the parse timeout ended it); breaks
    and text nodes are counted against max_elements, so it is refused in about a second."""
    bomb = _docx_with_body(tmp_path / "umbrueche.docx", _breaks(300_000))
    assert bomb.stat().st_size < 60_000
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"umbrueche\.docx: .*over the limit of 100000 \(max_elements\)"):
        parse_file(bomb, limits=Limits(parse_timeout_s=0))
    assert time.perf_counter() - started < 30  # a bound on "before parsing", not a speed target


def test_docx_small_line_break_bomb_is_refused(tmp_path):
    """#10.8 (B2): 30,000 breaks in one run (a small file) took 10.5 s to parse; refused at the default limit."""
    bomb = _docx_with_body(tmp_path / "klein.docx", _breaks(30_000))
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"klein\.docx: .*\(max_elements\)"):
        parse_file(bomb, limits=Limits(parse_timeout_s=0))
    assert time.perf_counter() - started < 30  # a bound on "before parsing", not a speed target


def test_docx_run_bomb_is_refused(tmp_path):
    """#10.8 (B2): 300,000 runs in one paragraph (22 KB) parsed in 30 s and chunked in 35 s; runs and their
    text nodes are counted, so it is refused before partitioning."""
    bomb = _docx_with_body(tmp_path / "laeufe.docx", "<w:p>" + "<w:r><w:t>a</w:t></w:r>" * 300_000 + "</w:p>")
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"laeufe\.docx: .*\(max_elements\)"):
        parse_file(bomb, limits=Limits(parse_timeout_s=0))
    assert time.perf_counter() - started < 30  # a bound on "before parsing", not a speed target


def test_docx_runs_and_tabs_count_with_a_lower_limit(tmp_path):
    """#10.8 (B2): tabs and runs spread over many paragraphs add up too (not only one huge paragraph)."""
    para = "<w:p>" + "<w:r><w:t>Wort</w:t><w:tab/></w:r>" * 20 + "</w:p>"
    bomb = _docx_with_body(tmp_path / "tabs.docx", para * 500)  # 500 paragraphs, 30,000 inline elements
    with pytest.raises(LimitError, match=r"tabs\.docx: .*limit of 2000 \(max_elements\)"):
        parse_file(bomb, limits=Limits(max_elements=2000, parse_timeout_s=0))


def test_docx_book_with_ordinary_runs_stays_under_the_default_limit(tmp_path):
    """#10.8 (B2): the weights leave room for real documents: 30,000 paragraphs of three formatted runs
    each (a 1,000-page book; it parses in about 25 s) cost well under the default max_elements."""
    run = '<w:r><w:rPr><w:b/><w:lang w:val="de-DE"/></w:rPr><w:t xml:space="preserve">{} </w:t></w:r>'
    para = "<w:p><w:pPr><w:spacing w:after=\"120\"/><w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr>"
    para += "".join(run.format(word) for word in ("Der", "Vermieter", "zahlt.")) + "</w:p>"
    book = _docx_with_body(tmp_path / "buch.docx", para * 30_000)
    units = check_zip_budget(book, "buch.docx", Limits())[0]
    assert 50_000 < units < 60_000


def _refused_fast(page: Path, limits: Limits, pattern: str, seconds: float = 30) -> None:
    started = time.perf_counter()
    with pytest.raises(LimitError, match=pattern):
        parse_file(page, limits=limits)
    assert time.perf_counter() - started < seconds


def test_html_div_bomb_is_refused_by_element_count(tmp_path):
    """#10.8 (second review): divs were not counted; 150,000 `<div>` sentences (5 MB) took 34 s and 930 MB
    in parse_file. Every block-level element is counted, so the page is refused in about a second."""
    page = tmp_path / "divs.html"
    page.write_text("<html><body>" + "".join(f"<div>Satz {i} über Miete.</div>" for i in range(150_000))
                    + "</body></html>", encoding="utf-8")
    _refused_fast(page, Limits(parse_timeout_s=0), r"divs\.html: .*over the limit of 100000 \(max_elements\)")


@pytest.mark.parametrize("tag", ["div", "section", "article", "blockquote"])
def test_html_block_level_elements_count_with_a_lower_limit(tmp_path, tag):
    """#10.8 (second review): div, section and the other block-level tags each become an element."""
    page = tmp_path / f"{tag}.html"
    page.write_text("<html><body>" + f"<{tag}>{SENTENCE}</{tag}>" * 3000 + "</body></html>", encoding="utf-8")
    _refused_fast(page, Limits(max_elements=1000, parse_timeout_s=0),
                  rf"{tag}\.html: .*over the limit of 1000 \(max_elements\)")


def test_html_line_breaks_in_one_paragraph_count(tmp_path):
    """#10.8 (second review): `<br>` lines inside one `<p>` were free; each costs about a third of a paragraph."""
    page = tmp_path / "zeilen.html"
    page.write_text("<html><body><p>" + "<br>".join(f"Zeile {i} über Miete." for i in range(10_000))
                    + "</p></body></html>", encoding="utf-8")
    _refused_fast(page, Limits(max_elements=2000, parse_timeout_s=0),
                  r"zeilen\.html: .*over the limit of 2000 \(max_elements\)")


def test_html_table_cells_count(tmp_path):
    """#10.8 (second review): cells of one wide row were free (only the row counted)."""
    page = tmp_path / "zellen.html"
    page.write_text("<html><body><table><tr>" + "<td>Miete</td>" * 10_000 + "</tr></table></body></html>",
                    encoding="utf-8")
    _refused_fast(page, Limits(max_elements=2000, parse_timeout_s=0),
                  r"zellen\.html: .*over the limit of 2000 \(max_elements\)")


@pytest.mark.shared_data  # the real pages are not ours to ship
def test_real_html_pages_stay_far_under_the_default_limit(shared_data):
    """#10.8 (second review): the sample pages (news, ministry, city portal) cost a few hundred units."""
    from ingest.limits import check_html_depth
    from ingest.textfile import decode_text

    pages = sorted((shared_data / "documents" / "html").glob("*.html"))
    assert pages
    for page in pages:
        units = check_html_depth(decode_text(page)[0], page.name, Limits())
        assert 100 < units < 2_000, (page.name, units)


def _many_parts_eml(path: Path, parts: int, text: str = "Teil {} über Miete.", subtype: str = "plain") -> Path:
    """A real multipart EML (stdlib generator) of `parts` small text parts."""
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    msg = MIMEMultipart()
    msg["From"], msg["Subject"] = "mieter@example.de", "Viele Teile"
    for i in range(parts):
        msg.attach(MIMEText(text.format(i), subtype, "utf-8"))
    path.write_bytes(msg.as_bytes())
    return path


def test_eml_part_bomb_is_refused_at_the_default_limit_quickly(tmp_path):
    """#10.8 (second review): MIME parts were not counted; 30,000 tiny text/plain parts (1.2 MB at the
    reviewer's) took 62 s to parse. Parts are counted from their boundary lines before the message is
    parsed, at 12 paragraph units each (measured 2.2 ms a part, 0.18 ms a paragraph), and refused fast."""
    bomb = _many_parts_eml(tmp_path / "teile.eml", 30_000)
    _refused_fast(bomb, Limits(parse_timeout_s=0), r"teile\.eml: .*over the limit of 100000 \(max_elements\)")


def test_eml_parts_count_with_a_lower_limit(tmp_path):
    """#10.8 (second review): 500 parts (about 1 s of parsing) against max_elements=2000 are refused."""
    bomb = _many_parts_eml(tmp_path / "teile.eml", 500)
    _refused_fast(bomb, Limits(max_elements=2000, parse_timeout_s=0),
                  r"teile\.eml: .*over the limit of 2000 \(max_elements\)")


def test_eml_text_lines_and_html_tags_count(tmp_path):
    """#10.8 (second review): the text a part holds counts too: lines of a plain body, tags of an HTML one."""
    lines = _many_parts_eml(tmp_path / "zeilen.eml", 1, "\n".join(f"Zeile {i} über Miete." for i in range(5000)))
    _refused_fast(lines, Limits(max_elements=2000, parse_timeout_s=0), r"zeilen\.eml: .*\(max_elements\)")
    divs = _many_parts_eml(tmp_path / "divs.eml", 1, "".join(f"<div>Satz {i}</div>" for i in range(5000)), "html")
    _refused_fast(divs, Limits(max_elements=2000, parse_timeout_s=0), r"divs\.eml: .*\(max_elements\)")


def test_ordinary_eml_stays_under_a_small_limit(tmp_path):
    """#10.8 (second review): a mail of three parts and a few lines costs a few dozen units, and parses."""
    mail = _many_parts_eml(tmp_path / "normal.eml", 3, "Sehr geehrte Damen und Herren,\n\nTeil {} über Miete.\n")
    doc = parse_file(mail, limits=Limits(max_elements=100, parse_timeout_s=0))
    assert "Teil 2 über Miete." in doc.text


def _mail_with_attachment(path: Path, attachment: Path) -> Path:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = "Mietvertrag"
    msg["From"] = "Vermieterin <v@example.de>"
    msg.set_content("Anbei der Vertrag. Die Kaution beträgt drei Monatsmieten.")
    msg.add_attachment(attachment.read_bytes(), maintype="application", subtype="octet-stream",
                       filename=attachment.name)
    path.write_bytes(bytes(msg))
    return path


def test_an_attached_bomb_is_refused_alone_and_the_mail_is_kept(tmp_path):
    """#10.8 (review): unstructured partitions attachments without any file check, so a mail could carry
    a DOCX bomb past every limit. The attachment is checked like a file; refused, it becomes a note."""
    bomb = _docx_bomb(tmp_path / "anlage.docx", 140_000)
    mail = _mail_with_attachment(tmp_path / "post.eml", bomb)
    started = time.perf_counter()
    doc = parse_file(mail, limits=Limits(parse_timeout_s=0))
    assert time.perf_counter() - started < 30  # the bomb alone took minutes
    assert "Die Kaution beträgt drei Monatsmieten." in doc.text
    assert "[Anhang anlage.docx nicht gelesen: über einer Grenze]" in doc.text
    assert doc.metadata["attachments_refused"] == "1"


def test_an_ordinary_attachment_is_still_read(tmp_path):
    good = _docx_bomb(tmp_path / "vertrag.docx", 3, "Der Mietvertrag läuft auf unbestimmte Zeit.")
    doc = parse_file(_mail_with_attachment(tmp_path / "post.eml", good), limits=Limits(parse_timeout_s=0))
    assert "Der Mietvertrag läuft auf unbestimmte Zeit." in doc.text and "attachments_refused" not in doc.metadata


def test_a_text_file_of_a_million_short_lines_is_refused_quickly(tmp_path):
    """#10.8 (review): each line of a .txt becomes an element (~0.15 ms): a million one-word lines took
    minutes, bounded only by the parse timeout."""
    lines = tmp_path / "zeilen.txt"
    lines.write_text("".join(f"Z{i}\n" for i in range(1_000_000)), encoding="utf-8")
    _refused_fast(lines, Limits(parse_timeout_s=0), r"lines of text, \d+ units of parse work, over the limit of "
                  r"100000 \(max_elements\)")
    normal = tmp_path / "gesetz.md"
    normal.write_text("# Gesetz\n\n" + "".join(f"§ {i} Der Vermieter hat die Kaution anzulegen.\n\n"
                                                for i in range(2000)), encoding="utf-8")
    assert len(parse_file(normal, limits=Limits(parse_timeout_s=0)).sections) > 1000


def _mail(path: Path, attachments: list[tuple[str, bytes]]) -> Path:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = "Unterlagen"
    msg["From"] = "Verwaltung <v@example.de>"
    msg.set_content("Der Text der Nachricht bleibt erhalten.")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    path.write_bytes(bytes(msg))
    return path


def test_unreadable_attachments_become_notes_and_the_mail_is_kept(tmp_path):
    """#10.12 (third review): a binary `.txt` attachment failed the whole mail; a scanned PDF, a deep HTML
    page were dropped in silence (the scan after a Hub download attempt)."""
    from tests.standin import badfiles as bf

    deep = b"<html><body>" + b"<div>" * 3000 + b"<p>tief</p>" + b"</div>" * 3000 + b"</body></html>"
    mail = _mail(tmp_path / "post.eml", [("binaer.txt", b"\x00\x01\xff\xfe\x00" * 400),
                                         ("scan.pdf", bf.pdf_bytes(["", ""])), ("tief.html", deep)])
    doc = parse_file(mail, limits=Limits(parse_timeout_s=0))
    assert "Der Text der Nachricht bleibt erhalten." in doc.text
    for name in ("binaer.txt", "scan.pdf", "tief.html"):
        assert f"[Anhang {name} nicht gelesen: nicht lesbar]" in doc.text, doc.text
    assert doc.metadata["attachments_refused"] == "3"


def test_a_mail_attached_as_a_file_has_its_attachments_checked_too(tmp_path):
    """#10.8 (third review): the attachments of a `.eml` attached as a file skipped every check."""
    bomb = _docx_bomb(tmp_path / "anlage.docx", 5000, "Absatz über Nebenkosten.")
    inner = _mail_with_attachment(tmp_path / "weiter.eml", bomb)
    outer = _mail(tmp_path / "post.eml", [("weiter.eml", inner.read_bytes())])
    doc = parse_file(outer, limits=Limits(parse_timeout_s=0, max_elements=2000))
    assert "Der Text der Nachricht bleibt erhalten." in doc.text
    assert "Absatz über Nebenkosten." not in doc.text
    assert "[Anhang anlage.docx nicht gelesen: über einer Grenze]" in doc.text
