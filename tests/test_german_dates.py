"""#13.4: the document's own date in German text (ingest.german_dates): labelled phrases, date lines, and
the dates that are not the document's (citations of other acts, running text, impossible dates)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.german_dates import HEAD_CHARS, TAIL_CHARS, DocumentDate, find_document_date, parse_german_date

FOUND = [
    # labels
    ("Merkblatt Mietkaution\n\nStand: 1. März 2024\n\nDie Kaution …", "2024-03-01", "Stand: 1. März 2024"),
    ("Merkblatt\n\nStand 03/2024\n\nText", "2024-03-01", "Stand 03/2024"),
    ("Hinweise (Stand: Jan. 2024)\n\nText", "2024-01-01", "Stand: Jan. 2024"),
    ("Protokoll\n\nDatum: 01.01.24\n\nAnwesend: alle", "2024-01-01", "Datum: 01.01.24"),
    ("Rechnung\n\nRechnungsdatum: 14.6.2021\nFälligkeitsdatum: 28.6.2021", "2021-06-14", "Rechnungsdatum: 14.6.2021"),
    ("Bescheid\n\nerstellt am 2. Mai 2023", "2023-05-02", "erstellt am 2. Mai 2023"),
    ("Seite zuletzt aktualisiert am 3. Okt. 2022", "2022-10-03", "zuletzt aktualisiert am 3. Okt. 2022"),
    ("Text\n\nzuletzt geändert durch Art. 2 G v. 22.12.2023", "2023-12-22",
     "zuletzt geändert durch Art. 2 G v. 22.12.2023"),
    ("Stand: Zuletzt geändert durch Art. 2 G v. 22.12.2023 I 411", "2023-12-22",
     "Zuletzt geändert durch Art. 2 G v. 22.12.2023"),
    ("Gesetz\n\nZuletzt geändert durch Artikel 3 des Gesetzes vom 22. Dezember 2023 (BGBl. 2023 I Nr. 411)",
     "2023-12-22", "Zuletzt geändert durch Artikel 3 des Gesetzes vom 22. Dezember 2023"),
    # a law: the latest amendment, not the Ausfertigung or the re-promulgation
    ("Kündigungsschutzgesetz (KSchG)\n\nAusfertigungsdatum : 1951-08-10\n\nNeugefasst durch : Bek. v. 25.8.1969 "
     "I 1317\n\nZuletzt geändert durch : Art. 2 G v. 14.6.2021 I 1762\n\n§ 1 Sozial ungerechtfertigte Kündigungen",
     "2021-06-14", "Zuletzt geändert durch : Art. 2 G v. 14.6.2021"),
    # … without an amendment: the re-promulgation, later than the Ausfertigung
    ("Gesetz (XG)\n\nAusfertigungsdatum : 1951-08-10\n\nNeugefasst durch : Bek. v. 25.8.1969 I 1317",
     "1969-08-25", "Neugefasst durch : Bek. v. 25.8.1969"),
    ("Gesetz (XG)\n\nAusfertigungsdatum : 1951-08-10\n\n§ 1 Geltung", "1951-08-10", "Ausfertigungsdatum : 1951-08-10"),
    # `vom` in the title lines
    ("Gesetz zur Förderung der Elektromobilität vom 12.03.2024\n\n§ 1 Zweck", "2024-03-12", "vom 12.03.2024"),
    ("Mindesturlaubsgesetz für Arbeitnehmer\nVom 8. Januar 1963\n\n§ 1 Urlaubsanspruch", "1963-01-08",
     "Vom 8. Januar 1963"),
    # date lines at the start and the end (letters)
    ("Berlin, den 3. Januar 2024\n\nSehr geehrte Frau Müller,\n\nhiermit kündige ich.", "2024-01-03",
     "Berlin, den 3. Januar 2024"),
    ("Sehr geehrte Frau Müller,\n\nhiermit kündige ich.\n\nMit freundlichen Grüßen\n\nMünchen, 3. Januar 2024",
     "2024-01-03", "München, 3. Januar 2024"),
    ("Rundschreiben 4/2024\n\n1. Januar 2024\n\nLiebe Mitglieder", "2024-01-01", "1. Januar 2024"),
    ("Jan. 2024\n\nNewsletter des Vereins", "2024-01-01", "Jan. 2024"),
    ("Bericht\n\n01.01.24\n\nText", "2024-01-01", "01.01.24"),
    ("0. Auflage, 31. Dezember 2016\n\nEinführung in die Geometrie", "2016-12-31", "0. Auflage, 31. Dezember 2016"),
    ("2020-11-21\n\nBei Spiel GmbH", "2020-11-21", "2020-11-21"),
    ("Wien, am 3. Jänner 2024\n\nText", "2024-01-03", "Wien, am 3. Jänner 2024"),
    ("Stand: 29.02.2024", "2024-02-29", "Stand: 29.02.2024"),  # a leap day exists
    ("Stand: 1. Mrz. 2024", "2024-03-01", "Stand: 1. Mrz. 2024"),
    ("Stand: Sept. 2023", "2023-09-01", "Stand: Sept. 2023"),
    ("Stand: 12. 03. 2024", "2024-03-12", "Stand: 12. 03. 2024"),
]


@pytest.mark.parametrize(("text", "iso", "phrase"), FOUND)
def test_document_date_found(text, iso, phrase):
    found = find_document_date(text)
    assert found is not None, text
    assert (found.iso, found.phrase) == (iso, phrase)
    assert text[found.start : found.end] == found.phrase  # the phrase exactly as in the text


NOT_FOUND = [
    "Nach § 5 des Gesetzes vom 12.03.2019 ist die Kündigung unwirksam.",  # cites another act
    "Verordnung zur Änderung der Verordnung vom 12.03.2019\n\n§ 1 Änderung",  # the title cites another act
    "Bekanntmachung\nauf Grund des Art. 3 des Gesetzes vom 4. Mai 2020\n\nText",
    "Gesetz über die Ordnung\nBGBl. I S. 1890 vom 17.08.2020\n\nText",
    "Das Gesetz wurde geändert durch Art. 5 des Gesetzes vom 12.3.2019 und gilt.",  # running text, not a label
    "Der Vertrag gilt seit dem 1. Januar 2024 für alle Mieter.",  # a date in running text
    "Am 1. Januar 2024 tritt das Gesetz in Kraft.",
    "Datum: 31.02.2024",  # does not exist
    "Datum: 29.02.2023",
    "Datum: 12.13.2024",  # no 13th month (dateparser would swap day and month)
    "Stand: 1. März 1700",  # years outside 1800..2100
    "Stand: 1. März 2101",
    "Stand: 1.2",  # bare numbers
    "Stand: § 3.1",
    "Abschnitt 1.2.10\n\nText",  # a section number, not dd.mm.yy
    "03/2024\n\nText",  # month/year only with a label
    "Stand: heute",  # no relative dates
    "Datum des Mahnbescheids\n\nAntragsteller",  # a form label without a date
    "Text\n\nDie Frist endet am Freitag, den 3. Januar 2024",  # a sentence, not a date line
    "",
]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_no_document_date(text):
    assert find_document_date(text) is None


def test_two_digit_years_follow_the_strptime_pivot():
    """00-68 are 2000-2068, 69-99 are 1969-1999 (Python's %y, which dateparser uses)."""
    assert find_document_date("Datum: 31.12.68").iso == "2068-12-31"
    assert find_document_date("Datum: 01.01.69").iso == "1969-01-01"
    assert find_document_date("Datum: 1.1.24") is None  # dd.mm.yy with both zero-padded only


def test_labels_rank_above_date_lines_and_the_latest_amendment_wins():
    text = ("Berlin, den 3. Januar 2024\n\nDatum: 5. Januar 2024\n\nStand: 1. Februar 2024\n\n"
            "zuletzt geändert durch Art. 1 G v. 1.3.2024")
    assert find_document_date(text) == DocumentDate("2024-03-01", "zuletzt geändert durch Art. 1 G v. 1.3.2024",
                                                    text.index("zuletzt"), len(text))


def test_an_impossible_labelled_date_falls_back_to_the_next_candidate():
    assert find_document_date("Datum: 31.02.2024\n\nBerlin, den 3. Januar 2024").iso == "2024-01-03"


def test_only_the_start_and_the_end_are_read():
    """A label in the middle of a long text is not looked at (the cost is bounded); one at the end is."""
    filler = "Die Miete ist monatlich im Voraus zu zahlen. " * 200
    middle = filler[:HEAD_CHARS + 10] + "\n\nStand: 1. März 2024\n\n" + filler
    assert find_document_date(middle) is None
    signed = filler + "\n\nHamburg, den 4. April 2024"
    assert len(signed) > HEAD_CHARS + TAIL_CHARS
    found = find_document_date(signed)
    assert found is not None and found.iso == "2024-04-04" and signed[found.start : found.end] == found.phrase


def test_a_date_on_the_edge_of_the_read_span_is_read_whole():
    """A date that starts just before the end of the first HEAD_CHARS is not cut to `12.03.20`."""
    filler = "Die Miete ist monatlich im Voraus zu zahlen. " * 200
    text = filler[: HEAD_CHARS - 15] + "\nStand: 12.03.2024\n\n" + filler
    assert find_document_date(text).iso == "2024-03-12"


@pytest.mark.parametrize(("phrase", "iso"), [
    ("1. März 2024", "2024-03-01"), ("12.03.2024", "2024-03-12"), ("2024-03-12", "2024-03-12"),
    ("März 2024", "2024-03-01"), ("31.02.2024", None), ("heute", None), ("1.2", None), ("", None),
])
def test_parse_german_date(phrase, iso):
    assert parse_german_date(phrase) == iso


def test_law_fixtures_are_dated_by_their_last_amendment(fixtures):
    """The raw Markdown of gesetze-im-internet (`Label\\n:   value`, a definition list)."""
    expected = {"kschg": "2021-06-14", "burlg": "2013-04-20", "arbzg": "2020-12-22", "gg": "2020-09-29",
                "prodhaftg": "2017-07-17"}
    for slug, iso in expected.items():
        text = next((fixtures / "gesetze").glob(f"*/{slug}/index.md")).read_text(encoding="utf-8")
        found = find_document_date(text)
        assert found is not None and found.iso == iso, slug
        assert found.phrase.startswith("Zuletzt geändert durch")


_german = st.text(alphabet=st.sampled_from(list("0123456789.:,/- \nabcdeflmnorstuvzäöüßADJMNOSvomStandDatum§")),
                  max_size=400)
_phrases = st.sampled_from(["Stand: ", "Datum: ", "vom ", "v. ", "zuletzt geändert durch Art. 2 G v. ",
                            "Berlin, den ", "§ 5 des Gesetzes vom ", "\n", "1. März ", "Jan. ", "31.02.", "12.",
                            "2024", "24", "03/", "1.2", "Ausfertigungsdatum : ", "1800", "2100", "\n\n"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=600), _german, st.lists(_phrases, max_size=30).map("".join)))
def test_never_raises_and_returns_a_valid_date_or_none(text):
    found = find_document_date(text)
    if found is not None:
        day = dt.date.fromisoformat(found.iso)
        assert found.iso == day.isoformat() and 1800 <= day.year <= 2100
        assert text[found.start : found.end] == found.phrase and found.phrase
