"""The question frame of German queries (retrieval/question.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.question import strip_question


@pytest.mark.parametrize(("query", "rest"), [
    ("Wie viele Einwohner hat Berlin?", "Einwohner hat Berlin?"),
    ("Was versteht man unter Kurzarbeit?", "Kurzarbeit?"),
    ("Wie heißt der längste Fluss Europas?", "der längste Fluss Europas?"),
    ("Wie lautet der Name des Königs?", "der Name des Königs?"),
    ("Nennen Sie drei Gründe für die Krise.", "drei Gründe für die Krise."),
    ("In welchem Jahr wurde Goethe geboren?", "Jahr wurde Goethe geboren?"),
    ("Seit wann gilt das Mindestlohngesetz?", "gilt das Mindestlohngesetz?"),
    ("Wie bezeichnet man den Vorgang?", "den Vorgang?"),
    ("Was bedeutet DSGVO?", "DSGVO?"),
    ("wie lange dauert der Urlaub", "dauert der Urlaub"),
    ("Welcher Prozentsatz der Bevölkerung wählte?", "Prozentsatz der Bevölkerung wählte?"),
])
def test_the_frame_at_the_start_is_cut(query: str, rest: str) -> None:
    assert strip_question(query) == rest


@pytest.mark.parametrize("query", [
    "Wiener Schnitzel Rezept",  # starts like "wie" but is a word of its own
    "Wasserstoff Herstellung",
    "Kündigungsfrist nach § 622 BGB",
    "Die Welt ist groß, wie viele sagen",  # frame words not at the start are content
])
def test_a_query_without_a_frame_is_unchanged(query: str) -> None:
    assert strip_question(query) == query


@pytest.mark.parametrize("query", ["Wer?", "Wie viele?", "Was versteht man unter", "  wann  "])
def test_a_bare_question_keeps_its_words(query: str) -> None:
    """Nothing would be left to search for: the query stays as it is (trimmed)."""
    assert strip_question(query) == query.strip()


@given(st.text(max_size=80))
def test_never_empty_and_never_longer(query: str) -> None:
    rest = strip_question(query)
    assert len(rest) <= len(query)
    assert rest == query.strip() or any(ch.isalnum() for ch in rest)
