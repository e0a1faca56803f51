"""The mechanical query rewrites behind docs/eval/variants.md (benchmarks/variant_queries.py)."""

from __future__ import annotations

from benchmarks.variant_queries import abbreviation_variant, all_variants, gender_variant, old_orthography

PAIRS = [("USA", "Vereinigte Staaten"), ("BIP", "Bruttoinlandsprodukt")]


def test_person_nouns_get_gender_forms_and_other_words_do_not():
    assert gender_variant("Wie viele Lehrern gab es?") == "Wie viele Lehrer/innen gab es?"
    assert gender_variant("Wann kamen die Studenten?") == "Wann kamen die Student_innen?"
    assert gender_variant("Wie viel Wasser und Prozent?") == "Wie viel Wasser und Prozent?"
    assert gender_variant("Lehrer sind da") == "Lehrer sind da"  # the first word is left alone


def test_old_orthography_rewrites_only_where_the_old_rules_applied():
    assert old_orthography("Er muss wissen, dass der Fluss fließt") == "Er muß wissen, daß der Fluß fließt"
    assert old_orthography("Bundesstaaten und Wasser") == "Bundesstaaten und Wasser"
    assert old_orthography("Die Schifffahrt des Fotografen") == "Die Schiffahrt des Photographen"
    assert old_orthography("Telefon und Geografie") == "Telephon und Geographie"


def test_abbreviations_swap_both_ways_and_everything_is_deterministic():
    assert abbreviation_variant("in den Vereinigten Staaten", PAIRS) == "in den USA"
    assert abbreviation_variant("Wie hoch ist das BIP?", PAIRS) == "Wie hoch ist das Bruttoinlandsprodukt?"
    query = "Wie viele Lehrer hatten die Vereinigten Staaten, dass das BIP stieg?"
    assert all_variants(query, PAIRS) == all_variants(query, PAIRS) != query
