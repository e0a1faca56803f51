"""Straightening a scanned page before OCR: the small skew (a few degrees) of a page fed askew into a scanner or
photocopier. OSD (ingest/ocr.py) turns a page by 90/180/270 degrees; it does not see 1-2 degrees, and those are
what breaks Tesseract's automatic layout: on pages turned by about 2 degrees it dropped whole text blocks while
still reporting ~95 confidence (benchmarks/ocr_bench.py: a news page at -1.9 degrees read with 92 % CER, at -1.5
with 0.1 %; straightened, every degraded 300 dpi page read as well as a clean one).

The angle is where the page's row profile of ink is sharpest (text lines then lie along pixel rows), searched on
a quarter-size binarised copy, coarse then fine, so it costs a fraction of a second per A4 page at 300 dpi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_DEGREES = 3.0  # a larger skew is a photo, not a scan: left to OSD and Tesseract
_MIN_INK = 0.001  # share of dark pixels below which a page is blank: nothing to straighten


def skew_angle(image: Image, max_degrees: float = MAX_DEGREES) -> float:
    """The counter-clockwise turn in degrees (within +-max_degrees, to 0.1) that straightens the page's lines."""
    import numpy as np
    from PIL import Image as PILImage

    small = image.convert("L").reduce(4)
    ink = np.asarray(small) < 128
    if ink.mean() < _MIN_INK:
        return 0.0
    mask = PILImage.fromarray((ink * 255).astype(np.uint8), "L")

    def sharpness(angle: float) -> float:
        rows = np.asarray(mask.rotate(angle, resample=PILImage.Resampling.NEAREST), dtype=np.float64).sum(axis=1)
        return float(np.square(np.diff(rows)).sum())

    coarse = max(np.arange(-max_degrees, max_degrees + 0.25, 0.5), key=lambda a: sharpness(float(a)))
    fine = np.arange(coarse - 0.4, coarse + 0.45, 0.1)
    best = max((a for a in fine if abs(a) <= max_degrees), key=lambda a: sharpness(float(a)))
    return round(float(best), 1)


def deskew(image: Image) -> tuple[Image, float]:
    """(the page turned straight, the angle it was turned by); a straight or blank page comes back as it is."""
    angle = skew_angle(image)
    if abs(angle) <= 0.1:  # within the search step of straight
        return image, 0.0
    from PIL import Image as PILImage

    return image.rotate(angle, resample=PILImage.Resampling.BICUBIC, fillcolor=255), angle
