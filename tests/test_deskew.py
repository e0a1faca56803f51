"""Straightening before OCR (ingest/deskew.py): the angle of a page turned a little, and real tesseract reading a
page turned by 1.9 degrees (askew, its automatic layout dropped whole blocks)."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image, ImageDraw, ImageFont

from ingest.deskew import deskew, skew_angle

LINE = "Der Arbeitgeber hat dem Arbeitnehmer den Urlaub zu gewähren; Prüfung der Größe nach § 3 Abs. 1."


def page(lines: int = 30) -> Image.Image:
    try:
        font = ImageFont.truetype("DejaVuSerif.ttf", 40)
    except OSError:
        font = ImageFont.load_default(size=40)
    image = Image.new("L", (2480, 300 + lines * 70), 255)
    draw = ImageDraw.Draw(image)
    for i in range(lines):
        draw.text((180, 150 + i * 70), LINE, font=font, fill=0)
    return image


@pytest.mark.parametrize("degrees", [0.0, 0.8, -1.3, 1.9, -2.6])
def test_the_angle_of_a_page_turned_a_little(degrees):
    turned = page().rotate(degrees, fillcolor=255, resample=Image.Resampling.BICUBIC)
    assert abs(skew_angle(turned) + degrees) <= 0.2


def test_a_blank_or_straight_page_is_left_as_it_is():
    blank = Image.new("L", (1200, 1600), 255)
    assert deskew(blank) == (blank, 0.0)
    straight = page(10)
    assert deskew(straight)[0] is straight


@pytest.mark.skipif(not shutil.which("tesseract"), reason="tesseract not installed (make installs it)")
def test_ocr_reads_a_page_fed_in_askew():
    from ingest.ocr import OcrOptions, ocr_image

    turned = page(20).rotate(-1.9, fillcolor=255, resample=Image.Resampling.BICUBIC)
    result = ocr_image(turned, OcrOptions())
    assert abs(result.skew - 1.9) <= 0.2
    assert result.text.count("Arbeitnehmer") >= 18 and result.text.count("Größe") >= 18, result.text[:500]
