"""Markdown front matter: only a real YAML mapping between `---` lines is metadata; the rest is text."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.parse import parse_file

WORDS = ["Vermieter", "Kaution", "Mietvertrag", "Zinsen", "Kündigung", "Wohnung", "Nebenkosten", "Größe",
         "Straße", "Übergabe", "Schäden", "Frist", "Monate", "Betrag", "Konto", "Rückzahlung"]


def _parse_md(tmp_path: Path, text: str):
    path = tmp_path / "notiz.md"
    path.write_text(text, encoding="utf-8")
    return parse_file(path)


def test_leading_rule_keeps_every_paragraph(tmp_path):
    """#10.2: a first-line `---` rule followed by prose is text, not front matter."""
    text = ("---\nDer Vermieter muss die Kaution getrennt vom Vermögen anlegen.\n\n---\n\n"
            "Die Zinsen stehen dem Mieter zu.\n")
    doc = _parse_md(tmp_path, text)
    assert "Der Vermieter muss die Kaution getrennt vom Vermögen anlegen." in doc.text
    assert "Die Zinsen stehen dem Mieter zu." in doc.text


def test_table_separator_does_not_close_front_matter(tmp_path):
    """#10.2: `---|---` is no closing line; the heading before the table stays."""
    text = "---\n# Fristen der Kündigung\n\nFrist | Dauer\n---|---\nKündigung | drei Monate\n"
    doc = _parse_md(tmp_path, text)
    assert doc.text.startswith("Fristen der Kündigung")
    assert "drei Monate" in doc.text
    assert ("Fristen der Kündigung",) in {s.heading_path for s in doc.sections}


def test_yaml_front_matter_goes_to_metadata(tmp_path):
    """#10.2: a real front matter is dropped from the text; its scalar keys become metadata."""
    text = ("---\ntitle: Mietrecht kompakt\ndate: 2024-05-01\ntags: [miete, kaution]\n---\n"
            "# Kaution\n\nDie Kaution beträgt höchstens drei Monatsmieten.\n")
    doc = _parse_md(tmp_path, text)
    assert not doc.text.startswith("---") and "title" not in doc.text
    assert doc.text.startswith("Kaution")
    assert doc.metadata["title"] == "Mietrecht kompakt"
    assert doc.metadata["date"] == "2024-05-01"
    assert doc.metadata["front_matter"] == {"title": "Mietrecht kompakt", "date": "2024-05-01"}  # lists are not scalars
    assert "date_phrase" not in doc.metadata  # the date is the front matter's, not a phrase in the text
    assert doc.metadata["file_type"] == "md"
    for s in doc.sections:
        assert doc.text[s.start : s.end].strip()


def test_front_matter_closed_by_dots_and_non_mapping_yaml(tmp_path):
    """#10.2: `...` also closes front matter; YAML that is a string or a list is text."""
    doc = _parse_md(tmp_path, "---\nautor: Gerda Müller\n...\nText über die Miete.\n")
    assert doc.text == "Text über die Miete." and doc.metadata["front_matter"] == {"autor": "Gerda Müller"}
    assert doc.metadata["author"] == "Gerda Müller"  # front matter `autor` is the document's author
    doc = _parse_md(tmp_path, "---\n- Kaution\n- Zinsen\n---\n\nText über die Miete.\n")
    assert "Kaution" in doc.text and "Zinsen" in doc.text


_paragraph = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
_table = st.tuples(st.sampled_from(WORDS), st.sampled_from(WORDS), st.sampled_from(WORDS), st.sampled_from(WORDS))
_block = st.one_of(
    _paragraph.map(lambda p: ("text", p)),
    st.just(("rule", "---")),
    _table.map(lambda t: ("table", f"| {t[0]} | {t[1]} |\n---|---\n| {t[2]} | {t[3]} |")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(_block, min_size=1, max_size=8), tight=st.booleans())
def test_property_no_paragraph_lost_around_rules_and_tables(blocks, tight):
    """#10.2 property: for markdown made of German paragraphs, `---` rules and tables, every word of
    every paragraph and table is in the parsed text (whatever the `---` lines look like)."""
    sep = "\n" if tight else "\n\n"
    text = "---\n" + sep.join(b for _, b in blocks) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        doc = _parse_md(Path(tmp), text)
    words = set(doc.text.replace("|", " ").split())
    for kind, block in blocks:
        if kind != "rule":
            assert set(block.replace("|", " ").replace("---", " ").split()) <= words, (text, doc.text)


def test_front_matter_prose_stays_searchable_and_bad_dates_are_text(tmp_path):
    """#10.2 (second review): a sentence between two rules that parses as YAML was dropped from the text;
    an impossible date (`2024-13-45`) made YAML raise ValueError and failed the whole file."""
    from ingest.parse import parse_file

    note = tmp_path / "h.md"
    note.write_text("---\nHinweis: Die Kaution ist getrennt anzulegen.\n---\n\nDer Rest folgt.\n", encoding="utf-8")
    doc = parse_file(note)
    assert "Die Kaution ist getrennt anzulegen." in doc.text and "Der Rest folgt." in doc.text
    bad = tmp_path / "d.md"
    bad.write_text("---\ndate: 2024-13-45\n---\nDer Vermieter muss die Kaution anlegen.\n", encoding="utf-8")
    assert "Der Vermieter muss die Kaution anlegen." in parse_file(bad).text
