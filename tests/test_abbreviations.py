"""Abbreviations match their long forms in the BM25 leg: query-time expansion both ways, weights below a typed
token's, the curated list, definitions learned from text (ingest/abbreviations.py)."""

from __future__ import annotations

import pytest

from ingest.abbreviations import AbbreviationExpander, learn_definitions, load_pairs
from ingest.sparse import GermanAnalyzer, SparseConfigError, SparseEncoder, token_id

ANALYZER = GermanAnalyzer()
EXPANDER = AbbreviationExpander.default(ANALYZER)
ENCODER = SparseEncoder(ANALYZER, expander=EXPANDER)
PLAIN = SparseEncoder(ANALYZER)


def score(query: str, document: str, encoder: SparseEncoder = ENCODER) -> float:
    """The BM25 dot product without IDF (the store multiplies IDF in; its sign is what matters here)."""
    q_ids, q_values = encoder.encode_query(query)
    d_ids, d_values = encoder.encode_document(document)
    doc = dict(zip(d_ids, d_values, strict=True))
    return sum(v * doc.get(i, 0.0) for i, v in zip(q_ids, q_values, strict=True))


@pytest.mark.parametrize(("short", "long"), [
    ("DSGVO", "Die Datenschutz-Grundverordnung gilt seit 2018."),
    ("GmbH", "Eine Gesellschaft mit beschränkter Haftung braucht Stammkapital."),
    ("AG", "Die Aktiengesellschaft hat einen Vorstand."),
    ("BAföG", "Das Bundesausbildungsförderungsgesetz regelt die Förderung."),
    ("Kfz", "Jedes Kraftfahrzeug braucht eine Versicherung."),
    ("ÖPNV", "Der öffentliche Personennahverkehr wird ausgebaut."),
])
def test_an_abbreviation_in_a_query_finds_its_long_form_and_the_reverse(short, long):
    assert score(f"{short}?", long) > 0
    assert score(f"{short}?", long, PLAIN) == 0  # without the expander nothing matched
    assert score(long, f"Regeln zur {short} im Überblick") > 0


def test_expansion_never_outweighs_the_typed_term():
    ids, values = ENCODER.encode_query("DSGVO")
    weights = dict(zip(ids, values, strict=True))
    assert weights.pop(token_id("dsgvo")) == 1.0
    assert all(v < 1.0 for v in weights.values()) and sum(weights.values()) <= 0.5 + 1e-9
    ids, values = ENCODER.encode_query("Datenschutz-Grundverordnung")
    assert dict(zip(ids, values, strict=True))[token_id("dsgvo")] == 0.5


def test_a_token_the_query_has_itself_keeps_weight_one():
    ids, values = ENCODER.encode_query("DSGVO Datenschutz")
    assert dict(zip(ids, values, strict=True))[token_id("datenschutz")] == 1.0


def test_long_forms_match_in_any_inflection_and_hyphenation():
    for text in ["der Europäischen Union", "Datenschutzgrundverordnung", "öffentlichen Personennahverkehrs"]:
        assert EXPANDER.expand(text), text


def test_a_hyphen_group_with_an_abbreviation_is_not_expanded():
    assert EXPANDER.expand("Kfz-Steuer") == {}
    assert EXPANDER.expand("Innen") == {}


def test_the_shipped_list_loads_and_every_pair_expands():
    pairs = load_pairs()
    assert ("DSGVO", "Datenschutz-Grundverordnung") in pairs and len(pairs) > 40
    for short, long in pairs:
        assert EXPANDER.expand(short), short
        assert EXPANDER.expand(long), long


def test_a_malformed_list_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "abk.tsv"
    path.write_text("# Kommentar\nDSGVO\tDatenschutz-Grundverordnung\nKaputt ohne Tab\n", encoding="utf-8")
    with pytest.raises(SparseConfigError, match=r"abk\.tsv:3: expected"):
        load_pairs(path)


def test_the_weight_must_stay_below_a_typed_token():
    with pytest.raises(SparseConfigError, match=r"weight=1\.0"):
        AbbreviationExpander(ANALYZER, (), weight=1.0)


def test_definitions_are_learned_from_text():
    text = ("Die Datenschutz-Grundverordnung (DSGVO) gilt. Nach dem Bundesausbildungsförderungsgesetz (BAföG) "
            "und laut der Europäischen Zentralbank (EZB) steigt der Preis (in Euro) um 2 (Zwei) Prozent.")
    assert learn_definitions([text]) == [("DSGVO", "Datenschutz-Grundverordnung"),
                                         ("BAföG", "Bundesausbildungsförderungsgesetz"),
                                         ("EZB", "Europäischen Zentralbank")]
    learned = AbbreviationExpander.default(ANALYZER, [("KSchG", "Kündigungsschutzgesetz")])
    assert learned.expand("KSchG") and not EXPANDER.expand("KSchG")
