"""Legal citations: the parser's normal forms (ingest/citations.py), law names both ways (ingest/law_names.py),
and what a chunk's payload gets from its text and its heading path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.citations import (
    chunk_citations,
    citation_keys,
    document_law,
    find_citations,
    heading_sections,
    query_citations,
)
from ingest.law_names import curated, fold_name, learn_definitions, normalize_law
from ingest.parse import parse_file


def keys(text: str, default_law: str | None = None) -> list[str]:
    return citation_keys(find_citations(text, default_law=default_law))


@pytest.mark.parametrize("text, expected", [
    ("§ 622 Abs. 2 BGB", ["BGB §622", "BGB §622 Abs.2"]),
    ("§§ 1, 2 KSchG", ["KSCHG §1", "KSCHG §2"]),
    ("Art. 3 Abs. 1 GG", ["GG Art.3", "GG Art.3 Abs.1"]),
    ("§ 3 Satz 1 Nr. 2 ArbZG", ["ARBZG §3"]),
    ("§ 3 S. 1 Nr. 2 lit. a ArbZG", ["ARBZG §3"]),
    ("BGBl. I S. 1890", ["BGBL I 1890"]),
    ("BGBl I: 1963, 2", ["BGBL I 2", "BGBL I 1963 2"]),
    ("BGBl. I 2013 S. 868", ["BGBL I 868", "BGBL I 2013 868"]),
    ("Verordnung (EU) 2016/679", ["EU 2016/679"]),
    ("Richtlinie 2000/78/EG", ["EG 2000/78"]),
    ("1 BvR 2019/16", ["1 BVR 2019/16"]),
    ("BAG, Urteil vom 5. Mai 2020 - 2 AZR 123/19", ["2 AZR 123/19"]),
    ("§ 3 des Bundesurlaubsgesetzes", ["BURLG §3"]),
    ("§ 1 des Mindesturlaubsgesetzes für Arbeitnehmer", ["BURLG §1"]),
    ("nach § 3 Abs. 2 des Arbeitszeitgesetzes", ["ARBZG §3", "ARBZG §3 Abs.2"]),
    ("§ 823 des Bürgerlichen Gesetzbuchs", ["BGB §823"]),
    ("§§ 3 bis 6 BGB", ["BGB §3", "BGB §4", "BGB §5", "BGB §6"]),
    ("§§ 1 bis 400 BGB", ["BGB §1", "BGB §400"]),  # a long range keeps its ends only
    ("§ 15a BUrlG", ["BURLG §15a"]),
    ("§ 3 ff. BGB", ["BGB §3"]),
    ("§ 5 SGB V", ["SGB V §5"]),
    ("Art. 6 Abs. 1 lit. f DSGVO", ["DSGVO Art.6", "DSGVO Art.6 Abs.1"]),
    ("Artikel 20 GG", ["GG Art.20"]),
    ("BGB § 622", ["BGB §622"]),
    ("BDSG 2018 § 4", ["BDSG §4"]),
    ("BURLG §3", ["BURLG §3"]),  # the normal form parses to itself
    ("GG Art.3", ["GG Art.3"]),
    ("gemäß § 5 Abs. 1 TMG und Art. 5 GG", ["TMG §5", "TMG §5 Abs.1", "GG Art.5"]),
])
def test_real_forms_parse_to_their_normal_form(text, expected):
    assert keys(text) == expected


@pytest.mark.parametrize("text", [
    "§", "§§", "Am 12.03.2020 kostete es 20,00 €.", "Der Preis: 1 EUR 20/30", "Art und Weise der Leistung",
    "Nr. 5 und S. 12", "Abs. 2", "Das Gesetz tritt am 1. Januar 2020 in Kraft.", "Tabelle 2019/20",
    "§ 12",  # no law named and none by default: left out
    "Er kam um 10 Uhr 30/45 an.", "Seite 12/13", "1 von 2019/16", "§ 12 DIN",
])
def test_non_citations_do_not_match(text):
    assert keys(text) == []


def test_a_reference_without_law_takes_the_default_and_own_law_phrases():
    assert keys("für den Bereich der Heimarbeit gilt § 12", default_law="BUrlG") == ["BURLG §12"]
    assert keys("nach § 3 dieses Gesetzes", default_law="KSchG") == ["KSCHG §3"]
    assert keys("§ 3 BGB und § 4", default_law="KSchG") == ["BGB §3", "KSCHG §4"]


def test_query_citations_take_the_one_law_the_query_names():
    assert query_citations("Was regelt § 3 BUrlG?") == ["BURLG §3"]
    assert query_citations("Was steht im Bundesurlaubsgesetz in § 3?") == ["BURLG §3"]
    assert query_citations("Was bestimmt das Grundgesetz in Artikel 3 Absatz 1?") == ["GG Art.3"]
    assert query_citations("Wie lange dauert der Urlaub?") == []
    assert query_citations("§ 3 im BGB") == ["BGB §3"]
    assert query_citations("Gilt § 3 für BGB und BUrlG?") == []  # two laws named: the bare § is left out


def test_law_names_map_both_ways():
    laws = curated()
    for name in ("Bundesurlaubsgesetz", "Mindesturlaubsgesetz für Arbeitnehmer", "des Bundesurlaubsgesetzes",
                 "Mindesturlaubsgesetzes"):
        assert laws.laws_named(name) == ["BURLG"], name
    assert laws.laws_named("des Bürgerlichen Gesetzbuches und der Straßenverkehrsordnung") == ["BGB", "STVO"]
    assert fold_name("Straßenverkehrs-Ordnung") == fold_name("Straßenverkehrsordnung")
    assert normalize_law("BDSG 2018") == "BDSG" and normalize_law("BAföG") == "BAFÖG"


def test_definitions_in_text_teach_new_names():
    text = "Das Kreislaufwirtschaftsgesetz (KrWG) gilt. Im Übrigen gilt das Telemediengesetz (TMG)."
    assert learn_definitions(text) == [("Kreislaufwirtschaftsgesetz", "KrWG"), ("Telemediengesetz", "TMG")]
    section, cited = chunk_citations(f"{text} Nach § 3 des Kreislaufwirtschaftsgesetzes gilt ...", (), None, None)
    assert section == [] and cited == ["KRWG §3"]


def test_headings_give_the_section_and_the_document_its_law():
    assert heading_sections(("Mindesturlaubsgesetz für Arbeitnehmer (BUrlG)", "§ 3 Dauer des Urlaubs"),
                            "BUrlG") == ["BURLG §3"]
    assert heading_sections(("BGB", "Buch 1", "(XXXX) §§ 3 bis 6 (weggefallen)"), "BGB") == [
        "BGB §3", "BGB §4", "BGB §5", "BGB §6"]
    assert heading_sections(("GG", "I. - Die Grundrechte", "Art 12a"), "GG") == ["GG Art.12a"]
    assert heading_sections(("GG", "Präambel"), "GG") == [] and heading_sections(("§ 3 X",), None) == []
    assert document_law({"jurabk": "MuSchG 2018"}, None) == "MUSCHG"
    assert document_law(None, None, ("Kündigungsschutzgesetz (KSchG)",)) == "KSCHG"
    assert document_law(None, "Ein Vertrag (Entwurf)") is None


def test_a_chunk_cites_its_section_even_when_the_text_does_not(fixtures):
    doc = parse_file(fixtures / "gesetze" / "b" / "burlg" / "index.md")
    by_heading = {s.heading_path[-1]: doc.text[s.start:s.end] for s in doc.sections if s.heading_path}
    front, title = doc.metadata.get("front_matter"), doc.metadata.get("title")
    path = ("Mindesturlaubsgesetz für Arbeitnehmer (BUrlG)", "§ 3 Dauer des Urlaubs")
    section, cited = chunk_citations(by_heading["§ 3 Dauer des Urlaubs"], path, title, front)
    assert section == ["BURLG §3"] and cited[0] == "BURLG §3"
    path2 = ("Mindesturlaubsgesetz für Arbeitnehmer (BUrlG)", "§ 2 Geltungsbereich")
    section, cited = chunk_citations(by_heading["§ 2 Geltungsbereich"], path2, title, front)
    assert section == ["BURLG §2"] and "BURLG §12" in cited  # "gilt § 12": the document's own law


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["BGB", "KSchG", "ArbZG", "GG", "BUrlG", "StGB", "VwVfG"]),
       st.from_regex(r"[1-9][0-9]{0,3}[a-h]?", fullmatch=True), st.sampled_from(["§", "Art."]),
       st.one_of(st.none(), st.integers(1, 12)), st.sampled_from(["", "Nach ", "Gemäß "]))
def test_any_written_section_parses_to_its_key(law, num, sign, absatz, lead):
    detail = f" Abs. {absatz}" if absatz else ""
    expected = f"{normalize_law(law)} {sign}{num}"
    assert query_citations(f"{lead}{sign} {num}{detail} {law} gilt.") == [expected]
    # and the normal form is a fixed point
    assert query_citations(expected) == [expected]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="§", blacklist_categories=("Cs",)), max_size=80))
def test_text_without_section_sign_or_slash_numbers_cites_nothing_by_section(text):
    assert all("§" not in k for k in keys(text))


def test_the_eval_query_set_is_deterministic_and_cites_each_section_once(fixtures):
    from benchmarks.citation_eval import build_queries, genitive

    laws = ["burlg", "kschg", "gg", "arbzg", "prodhaftg"]
    first = build_queries(fixtures / "gesetze", laws, 6)
    assert first == build_queries(fixtures / "gesetze", laws, 6) and len(first) >= 80
    for q in first:
        cited = query_citations(q.text)
        if q.kind == "heading":
            assert cited == [], q.text  # the control queries carry no citation
        else:
            sign, num = q.heading.replace("Art", "Art.").split()[:2]
            assert len(cited) == 1 and cited[0].endswith(f"{sign}{num}"), (q.text, cited)
    assert genitive("Allgemeines Gleichbehandlungsgesetz") == "des Allgemeinen Gleichbehandlungsgesetzes"
