from ingest.normalize import is_page_number, normalize_text, running_lines


def test_nfc_ligatures_soft_hyphen_and_spaces():
    decomposed = "Gro\u0308\u00dfe"  # o + combining diaeresis
    assert normalize_text(decomposed) == "Größe"
    assert normalize_text("\ufb01nden \ufb02ach") == "finden flach"
    assert normalize_text("Bundes\u00adregierung") == "Bundesregierung"
    assert normalize_text("§\u00a05") == "§ 5"


def test_pdf_hyphenation_joined_but_real_hyphens_kept():
    def pdf(text):
        return normalize_text(text, join_lines=True)

    assert pdf("die Bundes-\nregierung beschließt") == "die Bundesregierung beschließt"
    assert pdf("Übungsauf- gaben") == "Übungsaufgaben"
    assert pdf("Baden-\nWürttemberg") == "Baden-Württemberg"
    assert pdf("Ein- und Ausgang") == "Ein- und Ausgang"
    assert pdf("Haupt-\noder Nebenwohnung") == "Haupt- oder Nebenwohnung"
    assert pdf("E-Mail an die\nBehörde") == "E-Mail an die Behörde"
    assert pdf("Absatz eins\n\nAbsatz zwei") == "Absatz eins\n\nAbsatz zwei"


def test_non_pdf_text_keeps_line_breaks_and_hyphens():
    assert normalize_text("Bundes-\nregierung") == "Bundes-\nregierung"


def test_running_headers_and_footers_found_on_most_pages():
    words = ["Antrag", "Bescheid", "Frist", "Gebühr", "Klage", "Urteil"]
    pages = [[f"Amtsblatt 2020 Seite {i}", f"Inhalt {w}", f"Inhalt {w} weiter", "Vertraulich"]
             for i, w in enumerate(words)]
    shapes = running_lines(pages)
    assert "amtsblatt # seite #" in shapes
    assert "vertraulich" in shapes
    assert not any(s.startswith("inhalt") for s in shapes)
    assert running_lines(pages[:2]) == set()  # too few pages to tell


def test_page_numbers():
    assert is_page_number("12")
    assert is_page_number("Seite 3 von 10")
    assert is_page_number("- 4 -")
    assert not is_page_number("§ 12")
