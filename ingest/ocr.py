"""Images -> text with confidence: Tesseract 5 (German `deu` data) through pytesseract.

One page image in, one `OcrPage` out: its text in reading order with paragraph breaks (blank lines, from
Tesseract's block and paragraph numbers), line-end hyphenation joined as on the PDF text path, NFC with
umlauts and ß as they are; the mean word confidence; and the rotation that OSD found and corrected.
Where OCR runs in parsing (scanned PDF pages, image files, images inside Office files) is
`ingest.parse_ocr`'s business, not this module's.

A missing engine or language is a configuration problem (`OcrUnavailableError`, naming the Debian
packages); a page that times out or that the engine fails on is that page's problem (`OcrPageError`),
which the caller reports while keeping the file's other pages.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from ingest.deskew import deskew
from ingest.errors import ConfigError
from ingest.normalize import normalize_text
from ingest.ocr_fix import fix_section_signs
from ingest.schema import IngestError, ParseError

if TYPE_CHECKING:
    from PIL.Image import Image

_T = TypeVar("_T")

MODES = ("auto", "off", "force")
ENGINES = ("tesseract",)
PACKAGES = "tesseract-ocr, tesseract-ocr-deu (and poppler-utils for PDFs)"
# OSD's orientation confidence on a page of clear text is about 2.5 to 10 (it grows with the amount of
# text); below this a page is left as it is rather than turned on a guess.
_OSD_MIN_CONFIDENCE = 1.5
_LANGUAGE = re.compile(r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*")


class OcrUnavailableError(ConfigError, IngestError):
    """The OCR engine or a requested language's data is not installed (the message names the packages)."""


class OcrPageError(ParseError):
    """OCR of one page failed or ran past its time limit; the file's other pages are kept."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class OcrOptions:
    """How and where OCR runs. mode: `auto` OCRs what has no usable text (a scanned page, an image file),
    `off` never (such input fails as before), `force` every page of a PDF."""

    mode: str = "auto"
    languages: str = "deu"  # tesseract -l, e.g. "deu+eng", "deu+frk"
    dpi: int = 300  # render dpi for PDF pages
    page_timeout_s: float = 60  # per page; a page over it is reported, the rest of the file kept
    max_pages: int = 200  # OCR'd pages per file at most (more: reported, not OCR'd)
    min_confidence: float = 60  # below: the page is "low confidence" (reported, still kept)
    engine: str = "tesseract"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ocr mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"ocr engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not _LANGUAGE.fullmatch(self.languages):
            raise ValueError(f"ocr languages must be tesseract names joined by '+', e.g. 'deu+eng', "
                             f"got {self.languages!r}")
        for name in ("dpi", "page_timeout_s", "max_pages"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ocr {name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.min_confidence <= 100:
            raise ValueError(f"ocr min_confidence must be between 0 and 100, got {self.min_confidence!r}")


@dataclass(frozen=True)
class OcrPage:
    page: int
    text: str
    confidence: float  # mean word confidence 0-100; -1 when no words were found
    rotation: int  # degrees (clockwise) the page was turned before OCR, as OSD found it
    skew: float = 0.0  # degrees (counter-clockwise) it was then straightened by (ingest/deskew.py)


def check_engine(options: OcrOptions) -> None:
    """OcrUnavailableError unless the engine and every requested language are installed (cached per binary)."""
    import pytesseract

    installed = _installed_languages(str(pytesseract.pytesseract.tesseract_cmd))
    missing = [lang for lang in options.languages.split("+") if lang not in installed]
    if missing:
        packages = ", ".join(f"tesseract-ocr-{lang}" for lang in missing)
        raise OcrUnavailableError(f"OCR language data {', '.join(missing)!s} is not installed (installed: "
                                  f"{', '.join(sorted(installed)) or 'none'}); install the Debian package "
                                  f"{packages} (OCR needs {PACKAGES})")


@lru_cache(maxsize=8)
def _installed_languages(cmd: str) -> frozenset[str]:
    import pytesseract

    try:
        pytesseract.get_tesseract_version()
        return frozenset(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractNotFoundError, OSError) as exc:
        raise OcrUnavailableError(f"OCR engine not found ({cmd!r} cannot be run): install the Debian packages "
                                  f"{PACKAGES}") from exc


def ocr_image(image: Image, options: OcrOptions, page: int = 1) -> OcrPage:
    """OCR one page image: orientation corrected (OSD), words read in `options.languages`.

    Raises OcrUnavailableError when the engine or a language is missing, OcrPageError when the page runs
    past `options.page_timeout_s` (OSD and OCR together) or the engine fails on it.
    """
    check_engine(options)
    _one_thread()
    deadline = time.monotonic() + options.page_timeout_s
    config = f"--psm 3{_dpi_flag(image)}"  # psm 3 (automatic layout): columns and paragraphs as blocks
    try:
        image = _prepare(image)
    except ValueError as exc:  # a mode Pillow decodes but cannot convert (LAB, La): this page's problem
        raise OcrPageError(f"page {page}: image mode {image.mode} cannot be turned into greyscale for OCR "
                           f"({exc})") from exc
    rotation = _orientation(image, deadline, page)
    if rotation:
        image = image.rotate(-rotation, expand=True, fillcolor=255)  # PIL turns counter-clockwise
    image, skew = deskew(image)  # the last degrees OSD does not see (ingest/deskew.py says why)
    data = _run(page, deadline, lambda timeout: _image_to_data(image, options.languages, config, timeout))
    text, confidence = _page_text(data)
    if "deu" in options.languages.split("+"):  # German legal references: `§` read as 8, $ or & (ingest/ocr_fix.py)
        text = fix_section_signs(text)
    return OcrPage(page=page, text=text, confidence=confidence, rotation=rotation, skew=skew)


def _one_thread() -> None:
    """Run Tesseract with one OpenMP thread (unless OMP_THREAD_LIMIT is set): files are parsed in parallel
    by workers already, and OpenMP's threads spin-wait on a busy machine. One A4 page at 300 dpi took 2.4 s
    with one thread and 12.3 s with its default on a loaded 2-core machine. pytesseract hands its module's
    `environ` to the process it starts, so the limit reaches Tesseract only, not this process (torch)."""
    import pytesseract

    env = dict(os.environ)
    env.setdefault("OMP_THREAD_LIMIT", "1")
    pytesseract.pytesseract.environ = env
    _die_with_parent()


def _die_with_parent() -> None:
    """Tesseract is killed when the process that started it dies. A parse worker killed past
    parse_timeout_s (ingest/parse_worker.py) otherwise left its Tesseract running on as an orphan, with
    nobody left to enforce page_timeout_s: minutes of a core each on a noisy page. Linux only (prctl
    PR_SET_PDEATHSIG, set in the child between fork and exec); pytesseract builds its Popen arguments in
    `subprocess_args`, which is wrapped once."""
    import pytesseract

    module = pytesseract.pytesseract
    original = module.subprocess_args
    if getattr(original, "_dies_with_parent", False) or _PRCTL is None:
        return

    def subprocess_args(include_stdout: bool = True) -> dict[str, Any]:
        return {**original(include_stdout), "preexec_fn": _set_parent_death_signal}

    subprocess_args._dies_with_parent = True  # type: ignore[attr-defined]
    module.subprocess_args = subprocess_args


def _load_prctl() -> Callable[..., int] | None:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _prepare(image: Image) -> Image:
    """Greyscale 8 bit: what Tesseract binarises anyway, and a quarter of an RGB page's bytes to pass it."""
    if image.mode in ("1", "L"):
        return image
    if image.mode.startswith(("I", "F")):  # 16/32-bit grey: Pillow's convert("L") clips at 255, a page goes white
        return _to_eight_bit(image)
    if image.mode in ("RGBA", "LA", "P"):  # transparent pixels become white paper, not black
        from PIL import Image as PILImage

        rgba = image.convert("RGBA")
        paper = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(paper, rgba).convert("L")
    return image.convert("L")


def _to_eight_bit(image: Image) -> Image:
    """A 16-bit (I;16), 32-bit integer (I) or float (F) grey image scaled into 0-255: I;16 by its full range,
    the others by their brightest pixel where that is over 255 (a float image of 0-255 stays as it is)."""
    import numpy as np
    from PIL import Image as PILImage

    pixels = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") else float(pixels.max(initial=0.0))
    if top > 255:
        pixels = pixels * (255.0 / top)
    scaled = PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    scaled.info.update(image.info)
    return scaled


def _orientation(image: Image, deadline: float, page: int) -> int:
    """Clockwise degrees to turn the page upright, or 0 where OSD cannot tell (too little text)."""
    import pytesseract

    try:
        osd = _run(page, deadline, lambda timeout: pytesseract.image_to_osd(
            image, config="--psm 0", output_type=pytesseract.Output.DICT, timeout=timeout))
    except OcrPageError as exc:
        if exc.timed_out:
            raise
        return 0  # "Too few characters": a page with little text keeps its orientation
    if float(osd.get("orientation_conf", 0)) < _OSD_MIN_CONFIDENCE:
        return 0
    return int(osd.get("rotate", 0)) % 360


def _image_to_data(image: Image, languages: str, config: str, timeout: float) -> dict[str, list[Any]]:
    import pytesseract

    return pytesseract.image_to_data(image, lang=languages, config=config, output_type=pytesseract.Output.DICT,
                                     timeout=timeout)


def _dpi_flag(image: Image) -> str:
    """The image's own resolution for Tesseract, where it carries a plausible one (a rendered PDF page, a
    scanner's TIFF); without it Tesseract estimates one from the letters' height."""
    dpi = image.info.get("dpi")
    try:
        value = round(float(dpi[0])) if dpi else 0
    except (TypeError, ValueError, IndexError):
        return ""
    return f" --dpi {value}" if 70 <= value <= 2400 else ""


def _run(page: int, deadline: float, call: Callable[[float], _T]) -> _T:
    """One engine call within what is left of the page's time; its failures become OcrPageError."""
    import pytesseract

    left = deadline - time.monotonic()
    if left <= 0:
        raise OcrPageError(f"page {page}: OCR took longer than the page time limit (page_timeout_s)", True)
    try:
        return call(max(left, 0.001))
    except pytesseract.TesseractNotFoundError as exc:
        raise OcrUnavailableError(f"OCR engine not found: install the Debian packages {PACKAGES}") from exc
    except pytesseract.TesseractError as exc:  # a RuntimeError too: caught first
        raise OcrPageError(f"page {page}: OCR engine failed: {exc.message or exc}") from exc
    except RuntimeError as exc:  # pytesseract's timeout (it killed the process)
        raise OcrPageError(f"page {page}: OCR took longer than the page time limit (page_timeout_s)", True) from exc


def _page_text(data: dict[str, list[Any]]) -> tuple[str, float]:
    """Words joined in Tesseract's reading order: lines by line breaks, paragraphs and blocks by blank
    lines; then normalised as PDF text is (hyphenated line ends joined, lines re-flowed). Returns the text
    and the mean confidence of its words (-1 when there are none)."""
    paragraphs: list[list[list[str]]] = []
    confidences: list[float] = []
    last_par: tuple[int, int] | None = None
    last_line: tuple[int, int, int] | None = None
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        conf = float(data["conf"][i])
        if not word or conf < 0:
            continue
        par = (int(data["block_num"][i]), int(data["par_num"][i]))
        line = (*par, int(data["line_num"][i]))
        if par != last_par:
            paragraphs.append([])
        if line != last_line:
            paragraphs[-1].append([])
        paragraphs[-1][-1].append(word)
        confidences.append(conf)
        last_par, last_line = par, line
    raw = "\n\n".join("\n".join(" ".join(words) for words in lines) for lines in paragraphs)
    confidence = sum(confidences) / len(confidences) if confidences else -1.0
    return normalize_text(raw, join_lines=True), confidence
