"""The section sign after OCR (ingest/ocr_fix.py): put back where a legal reference surrounds it, nowhere else;
and on real tesseract output of a rendered law line."""

from __future__ import annotations

import re
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.ocr_fix import fix_section_signs

FIXED = {
    "$ 3 Dauer des Urlaubs": "§ 3 Dauer des Urlaubs",
    "8 3 Dauer des Urlaubs": "§ 3 Dauer des Urlaubs",
    "Werktage nach 8 3 Abs. 1 BUTrIG.": "Werktage nach § 3 Abs. 1 BUTrIG.",
    "Gemäß 88 1, 2 KSchG und $ 622 Abs. 2 BGB sowie Art. 3 GG":
        "Gemäß §§ 1, 2 KSchG und § 622 Abs. 2 BGB sowie Art. 3 GG",
    "Die Regelung des $ 10i KWG bleibt unberührt; vgl. 88 5 bis 7.":
        "Die Regelung des § 10i KWG bleibt unberührt; vgl. §§ 5 bis 7.",
    "nach & 10i KWG erforderlich": "nach § 10i KWG erforderlich",
    "die 8 3 DSGVO": "die § 3 DSGVO",
    "zuletzt 8 5 Satz 2": "zuletzt § 5 Satz 2",
}
SIGNS = re.compile(r"(?:88|\$\$|&&|§§|[8$&§]) ?(?=\d)")
KEPT = ["Im Jahr 2018 waren es 8 3 Fälle.", "Es kostet 8 5 Euro.", "Er zahlte $ 100 dafür.", "Seite 88 von 120",
        "1988 3 Abs.", "Tabelle 8 3 GmbH", "§ 3 Abs. 1 BGB", "8 Stunden täglich", "Nr. 8 der Anlage"]


@pytest.mark.parametrize(("ocr", "fixed"), FIXED.items())
def test_a_misread_sign_in_a_reference_is_put_back(ocr, fixed):
    assert fix_section_signs(ocr) == fixed


@pytest.mark.parametrize("text", KEPT)
def test_numbers_that_are_no_reference_are_kept(text):
    assert fix_section_signs(text) == text


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("8$&3 10aAbs.BGBnachdesÄöü\n,§G")), max_size=80))
def test_only_sign_tokens_change_and_a_second_pass_changes_nothing(text):
    fixed = fix_section_signs(text)
    assert fix_section_signs(fixed) == fixed
    # every change replaces a sign-like token before a number by § (or §§); the rest of the text is the same
    assert SIGNS.sub("", text) == SIGNS.sub("", fixed)


@pytest.mark.skipif(not shutil.which("tesseract"), reason="tesseract not installed (make installs it)")
def test_real_ocr_of_a_law_line_keeps_its_section_signs():
    from PIL import Image, ImageDraw, ImageFont

    from ingest.ocr import OcrOptions, ocr_image

    lines = ["§ 3 Dauer des Urlaubs", "Der Urlaub beträgt nach § 3 Abs. 1 BUrlG mindestens 24 Werktage.",
             "Gemäß §§ 1, 2 KSchG und § 622 Abs. 2 BGB gilt dies."]
    try:
        font = ImageFont.truetype("DejaVuSerif.ttf", 46)
    except OSError:
        font = ImageFont.load_default(size=46)
    image = Image.new("L", (2480, 600), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((150, 80 + i * 140), line, font=font, fill=0)
    text = ocr_image(image, OcrOptions()).text
    assert text.count("§") >= 5, text
    assert "§ 3 Abs. 1" in text and "§§ 1, 2 KSchG" in text and "§ 622 Abs. 2 BGB" in text
