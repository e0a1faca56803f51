import pytest

from ingest.sentences import sentence_spans


def sentences(text):
    return [text[s:e] for s, e in sentence_spans(text)]


@pytest.mark.parametrize(
    "text",
    [
        "Das gilt z. B. für Nr. 5 der Anlage.",
        "Nach § 5 Abs. 2 S. 1 BGB ist das so.",
        "Am 3. Oktober 1990 trat der Vertrag in Kraft.",
        "Der 1. FC Köln gewann u. a. gegen Bayern.",
        "Herr Dr. Müller kam ca. 5 Min. zu spät.",
        "Die Kosten betragen ca. 3 Mio. Euro bzw. mehr.",
        "Vgl. hierzu Art. 3 GG i. V. m. Art. 1 GG.",
    ],
)
def test_abbreviations_ordinals_and_legal_references_do_not_split(text):
    assert sentences(text) == [text]


def test_real_boundaries_split_and_spans_are_exact():
    text = "Erster Satz. Zweiter Satz! Dritter? Das war 2019. Dann kam mehr.\n\nNeuer Absatz ohne Punkt"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "Erster Satz.", "Zweiter Satz!", "Dritter?", "Das war 2019.", "Dann kam mehr.", "Neuer Absatz ohne Punkt",
    ]
    assert all(text[s:e].strip() == text[s:e] for s, e in spans)


def test_quotes_after_period():
    assert sentences("Er sagte: „Ja.“ Dann ging er.") == ["Er sagte: „Ja.“", "Dann ging er."]
