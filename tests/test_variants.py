"""Gender and spelling variants fold to one form in the German analyzer, on the index and the query side alike
(ingest/variants.py, used by ingest/sparse.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.sparse import ANALYZER_VERSION, CompoundSplitter, GermanAnalyzer, SparseEncoder, fold_word, token_id
from ingest.variants import fold_gender, fold_spelling, triple_candidates
from tests.support.cli_corpus import ingest_texts

GENDER_FORMS = ["*innen", ":innen", "Innen", "_innen", "/-innen", "/innen", "(innen)", "*Innen", "\u00b7innen"]
ANALYZER = GermanAnalyzer()


def tokens(text: str) -> list[str]:
    return ANALYZER.analyze(text)


@pytest.mark.parametrize("form", GENDER_FORMS)
def test_each_gender_form_analyzes_as_the_base_word(form):
    assert tokens(f"Die Lehrer{form} der Schule") == tokens("Die Lehrer der Schule")
    assert tokens(f"Student{form}") == tokens("Studenten") == ["student"]


@pytest.mark.parametrize("singular", ["Lehrer*in", "Lehrer:in", "Lehrer_in", "Lehrer/-in", "Lehrer/in", "Lehrer(in)"])
def test_singular_gender_forms_fold_too(singular):
    assert fold_gender(f"eine {singular} kommt") == "eine Lehrer kommt"


@pytest.mark.parametrize("text", [
    "Innen", "Innen- und Außenbereich", "innen und außen", "Studierende", "Lehrerinnen", "LinkedIn", "BürgerIn",
    "Kfz-Steuer", "Uhrzeit 10:in", "Aus-/Innenbereich", "Berlin", "Termin:in Berlin",
])
def test_non_gender_text_is_left_alone(text):
    # a plain feminine and the Binnen-I singular are not gender forms here (`LinkedIn` looks like `BürgerIn`)
    if text == "Termin:in Berlin":
        # `:in` glued to a word reads as a gender form: the one documented false positive (rare in prose)
        assert fold_gender(text) == "Termin Berlin"
        return
    assert fold_gender(text) == text


def test_innen_as_a_word_keeps_its_token_and_studierende_its_stem():
    assert tokens("Innen") == ["inn"]
    assert tokens("Studierende") == ["studier"]
    assert tokens("Kfz-Steuer") == ["kfz", "steu", "kfzsteu"]


@pytest.mark.parametrize(("old", "new"), [
    ("daß", "dass"), ("muß", "muss"), ("Fluß", "Fluss"), ("Schloß", "Schloss"),
    ("Schiffahrt", "Schifffahrt"), ("Kontrollampe", "Kontrolllampe"),
    ("Photographie", "Fotografie"), ("Photo", "Foto"), ("Telephon", "Telefon"), ("Mikrophon", "Mikrofon"),
    ("Geographie", "Geografie"), ("Biographie", "Biografie"), ("Graphik", "Grafik"), ("graphisch", "grafisch"),
    ("Paragraph", "Paragraf"), ("Photosynthese", "Fotosynthese"),
])
def test_old_and_new_orthography_give_the_same_tokens(old, new):
    assert fold_word(old) == fold_word(new)
    assert tokens(old) == tokens(new)


@pytest.mark.parametrize("word", ["phase", "philosophie", "physik", "strophe", "alphabet", "prophet", "graph",
                                  "graphen", "pharma", "wasser", "kommen"])
def test_spelling_fold_leaves_other_ph_words_and_doubles_alone(word):
    assert fold_spelling(word) == word


def test_an_old_spelling_compound_splits_at_the_seam_it_lost_a_letter_at():
    assert tokens("Schiffahrt") == ["schiffahrt", "schiff", "fahrt"]
    assert triple_candidates("schiffahrt") == [("schiff", "schifffahrt")]
    assert triple_candidates("kontrollampe") == [("kontroll", "kontrolllampe")]


def test_a_lexicon_from_before_the_spelling_folds_merges_its_variants():
    splitter = CompoundSplitter({"schifffahrt": 2, "schiffahrt": 3, "photo": 1, "foto": 4})
    assert dict(splitter.counts) == {"schiffahrt": 5, "foto": 5}


def test_the_variant_folds_are_part_of_the_fingerprint():
    # collections indexed with version 1 get new doc ids, so the next ingest or sync re-indexes their files
    assert ANALYZER_VERSION == 2
    assert GermanAnalyzer().fingerprint() == GermanAnalyzer().fingerprint()


PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_WORDS = st.lists(st.sampled_from(["die", "Schule", "Stadt", "Fluss", "neue", "Regeln", "für", "2024", "Amt"]),
                  max_size=4).map(" ".join)


def _query_ids(text: str) -> list[int]:
    return SparseEncoder(ANALYZER).encode_query(text)[0]


def _doc_ids(text: str) -> list[int]:
    return sorted({token_id(t) for t in ANALYZER.analyze(text)})


@PROPERTY
@given(base=st.from_regex(r"[A-ZÄÖÜ][a-zäöü]{2,10}(er|ent|ant|ist|or)", fullmatch=True),
       form=st.sampled_from(GENDER_FORMS), before=_WORDS, after=_WORDS)
def test_a_gender_form_in_a_query_matches_the_base_word_in_a_document(base, form, before, after):
    variant, plain = f"{before} {base}{form} {after}", f"{before} {base} {after}"
    assert _query_ids(variant) == _doc_ids(plain) == _query_ids(plain) == _doc_ids(variant)


@PROPERTY
@given(head=st.from_regex(r"[a-z]{2,6}", fullmatch=True), letter=st.sampled_from("flmnprt"),
       tail=st.from_regex(r"[aeiou][a-z]{1,6}", fullmatch=True), before=_WORDS)
def test_old_and_new_triple_consonant_spellings_index_and_query_alike(head, letter, tail, before):
    new, old = f"{before} {head}{letter * 3}{tail}", f"{before} {head}{letter * 2}{tail}"
    assert _query_ids(old) == _doc_ids(new) and _query_ids(new) == _doc_ids(old)


@PROPERTY
@given(prefix=st.sampled_from(["", "Geo", "Bio", "Ortho", "Tele", "Mikro", "Saxo"]),
       stem=st.sampled_from(["photo", "graphie", "phon", "graph"]),
       tail=st.sampled_from(["", "en", "isch", "ie", "s"]), before=_WORDS)
def test_ph_and_f_spellings_of_the_covered_families_index_and_query_alike(prefix, stem, tail, before):
    if not prefix and stem == "graph":
        return  # the noun Graph at a word's start is not respelled
    word = (prefix + stem + tail) if prefix else (stem + tail).capitalize()
    respelled = word.replace("ph", "f") if stem != "graph" or prefix else word
    assert _query_ids(f"{before} {word}") == _doc_ids(f"{before} {respelled}")


E2E_DOCS = {
    "schule.txt": "Die Lehrer der Gesamtschule unterrichten in kleinen Klassen.",
    "hafen.txt": "Die Schifffahrt auf dem Rhein wurde 1831 neu geregelt.",
    "bild.txt": "Die Fotografie veränderte die Malerei im neunzehnten Jahrhundert.",
    "recht.txt": "Die Datenschutz-Grundverordnung gilt seit Mai 2018 in allen Mitgliedstaaten.",
}


QUERIES = [("Lehrer*innen", "schule.txt"), ("LehrerInnen", "schule.txt"), ("Lehrer/-innen", "schule.txt"),
           ("Schiffahrt", "hafen.txt"), ("Photographie", "bild.txt"), ("DSGVO", "recht.txt")]


def test_variant_queries_find_their_documents_through_the_real_store(settings_env, capsys):
    import json

    from pipelines.cli.main import main

    ingest_texts(settings_env / "texte", E2E_DOCS, capsys)
    for text, expected in QUERIES:
        assert main(["query", text, "--mode", "bm25", "--top-k", "2", "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)["passages"]
        assert hits and hits[0]["source"].endswith(expected), (text, hits)
