"""Where OCR runs while parsing: scanned PDF pages, image files, and the images inside Office files.

This module picks the pages (or images) to read, renders or decodes them one at a time (so memory stays
flat however long the file), hands each to `ingest.ocr.ocr_image` and collects what came back: the pages'
texts, their confidences, and the pages that could not be read (time limit, engine failure, over
`max_pages`) as problems that are reported while the rest of the file is kept. Turning the texts into a
Document's rows is `ingest.parse`'s job, as for every other format.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.limits import LimitError
from ingest.ocr import PACKAGES, OcrOptions, OcrPage, OcrPageError, OcrUnavailableError, check_engine, ocr_image
from ingest.schema import ParseError

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
OCR_ZIP_FORMATS = {".docx", ".pptx", ".odt", ".epub"}
_ZIP_IMAGES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
MIN_TEXT_CHARS = 20  # a page's text layer with fewer non-space characters (and an image) is read by OCR
_THUMBNAILS = ("docProps/", "Thumbnails/")  # a preview of the first page (OOXML, ODF), not content
_MIN_IMAGE_SIDE = 32  # smaller embedded images are icons and bullets, not text
_DIGITS = re.compile(r"(\d+)")
# Pillow's own default decompression-bomb limit (about 89 million pixels, 89 MB a greyscale page). The limit
# used is the lower of this and PIL.Image.MAX_IMAGE_PIXELS: unstructured raises the latter to 5e8 process-wide
# when its PDF partitioner is imported, which would let a page render at 500 million pixels and Tesseract
# take minutes and gigabytes over it.
MAX_PIXELS = 89_478_485


@dataclass
class OcrRun:
    """What OCR of one file produced: its pages in order, and the pages it could not read and why."""

    pages: list[OcrPage] = field(default_factory=list)
    problems: dict[int, str] = field(default_factory=dict)
    attempted: int = 0  # pages handed to the engine, read or failed: what max_pages counts

    def metadata(self) -> dict[str, Any]:
        """`ocr`, `ocr_pages` ({"<page>": confidence}) and `ocr_problems` ({"<page>": reason}) for a Document."""
        meta: dict[str, Any] = {"ocr": True, "ocr_pages": {str(p.page): round(p.confidence, 1) for p in self.pages}}
        if self.problems:
            meta["ocr_problems"] = {str(page): why for page, why in sorted(self.problems.items())}
        return meta

    def nothing_found(self, source: str, what: str) -> ParseError:
        """The error for a file where OCR found no text at all: reported, never an empty success."""
        best = max((p.confidence for p in self.pages), default=-1.0)
        detail = f"{len(self.pages)} {what} read, best confidence {best:.1f}"
        if self.problems:
            first = next(iter(sorted(self.problems.items())))[1]
            detail += f"; {len(self.problems)} not read, e.g. {first}"
        return ParseError(f"{source}: no text found by OCR ({detail})")


Loader = Callable[[], "Image | str | None"]


def read_pages(pages: Iterable[tuple[int, Loader]], options: OcrOptions, run: OcrRun) -> None:
    """OCR each page in turn: `load()` renders or decodes it just before it is read (so one page image is in
    memory at a time), or returns the reason it cannot be (None: nothing to read there). At most
    `options.max_pages` pages are read (the rest are reported without being loaded)."""
    for page, load in pages:
        if run.attempted >= options.max_pages:
            run.problems[page] = f"not read: over the limit of {options.max_pages} OCR'd pages per file (max_pages)"
            continue
        image = load()
        if image is None:
            continue
        if isinstance(image, str):
            run.problems[page] = image
            continue
        run.attempted += 1
        try:
            run.pages.append(ocr_image(image, options, page))
        except OcrPageError as exc:
            run.problems[page] = str(exc).removeprefix(f"page {page}: ")


# -- PDFs ------------------------------------------------------------------------------------------------
def pdf_pages_to_read(path: Path, elements: Sequence[Any], pages: int, options: OcrOptions) -> list[int]:
    """The 1-based pages of a PDF that OCR reads: every page with `force`; with `auto`, every page of a PDF
    without any text layer, else the pages whose text layer has under MIN_TEXT_CHARS characters while
    the page holds an image (a scanned page inside a born-digital file); none with `off`."""
    if options.mode == "off":
        return []
    if options.mode == "force":
        return list(range(1, pages + 1))
    chars = [0] * (pages + 1)
    for el in elements:
        page = getattr(el.metadata, "page_number", None) or 1
        if 1 <= page <= pages:
            chars[page] += sum(1 for c in str(el.text or "") if not c.isspace())
    if not any(chars):
        return list(range(1, pages + 1))
    thin = [page for page in range(1, pages + 1) if chars[page] < MIN_TEXT_CHARS]
    if not thin:
        return []
    import pypdf

    reader = pypdf.PdfReader(str(path), strict=False)
    return [page for page in thin if _has_image(reader.pages[page - 1])]


def _has_image(page: Any) -> bool:
    """Whether a page draws an image XObject (directly or inside a form XObject, two levels deep)."""
    try:
        return _resources_have_image(page.get("/Resources"), 3)
    except Exception:  # a broken resource dictionary: treat the page as text
        return False


def _resources_have_image(resources: Any, depth: int) -> bool:
    if resources is None or depth == 0:
        return False
    xobjects = resources.get_object().get("/XObject")
    if xobjects is None:
        return False
    for ref in xobjects.get_object().values():
        obj = ref.get_object()
        subtype = obj.get("/Subtype")
        if subtype == "/Image" or (subtype == "/Form" and _resources_have_image(obj.get("/Resources"), depth - 1)):
            return True
    return False


def read_pdf(path: Path, source: str, pages: list[int], options: OcrOptions) -> OcrRun:
    """OCR the given pages of a PDF, each rendered at `options.dpi` (lower for a page so large that it would
    pass Pillow's pixel limit) and read before the next is rendered."""
    check_engine(options)
    import pypdf

    reader = pypdf.PdfReader(str(path), strict=False)
    run = OcrRun()
    read_pages(((page, partial(_render, path, reader, page, options)) for page in pages), options, run)
    return run


def _render(path: Path, reader: Any, page: int, options: OcrOptions) -> Image | str:
    """One page as a greyscale image, or the reason it could not be rendered."""
    import pdf2image
    from pdf2image import exceptions as pdf_errors

    dpi = _page_dpi(reader.pages[page - 1], options.dpi)
    if dpi < 50:
        return "not read: page too large to render within the image pixel limit"
    try:
        images = pdf2image.convert_from_path(str(path), dpi=dpi, first_page=page, last_page=page, grayscale=True,
                                             timeout=max(1, round(options.page_timeout_s)))
    except pdf_errors.PDFInfoNotInstalledError as exc:
        raise OcrUnavailableError(f"PDF rendering for OCR needs pdftoppm: install the Debian packages {PACKAGES}") \
            from exc
    except pdf_errors.PDFPopplerTimeoutError:
        return "not read: rendering took longer than the page time limit (page_timeout_s)"
    except Exception as exc:  # pdftoppm fails on a broken page in many ways
        return f"not read: page could not be rendered: {type(exc).__name__}: {exc}"
    if not images:
        return "not read: page could not be rendered"
    image = images[0]
    image.info["dpi"] = (dpi, dpi)  # Tesseract reads letter sizes against it
    return image


def _page_dpi(page: Any, dpi: int) -> int:
    """`dpi`, or less where the page at `dpi` would have more pixels than the pixel limit (pixel_limit)."""
    try:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
    except Exception:
        return dpi
    limit = pixel_limit()
    pixels = abs(width * height) / 72 / 72 * dpi * dpi
    if pixels <= limit:
        return dpi
    return int(dpi * (limit / pixels) ** 0.5)


# -- image files -----------------------------------------------------------------------------------------
def read_image_file(path: Path, source: str, options: OcrOptions) -> OcrRun:
    """OCR an image file, every frame of a multi-page TIFF a page. Raises ParseError for a file Pillow
    cannot read, LimitError for one over its pixel limit."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    kind = path.suffix.lower()[1:].upper()
    if options.mode == "off":
        raise ParseError(f"{source}: an image file can only be read by OCR, which is switched off (ocr mode off)")
    check_engine(options)
    try:
        with _quiet_bombs(), PILImage.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            run = OcrRun()
            read_pages(_frames(image, source, frames), options, run)
            return run
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ParseError(f"{source}: cannot parse as {kind}: {type(exc).__name__}: {exc}") from exc
    except PILImage.DecompressionBombError as exc:
        raise LimitError(f"{source}: {exc} (an image over Pillow's pixel limit)") from exc


def _frames(image: Image, source: str, frames: int) -> Iterator[tuple[int, Loader]]:
    for index in range(frames):
        yield index + 1, partial(_frame, image, index, source if frames == 1 else f"{source} (page {index + 1})")


def _frame(image: Image, index: int, label: str) -> Image | str:
    image.seek(index)
    try:
        check_pixels(image, label)
    except LimitError as exc:
        if index == 0 and getattr(image, "n_frames", 1) == 1:
            raise  # a one-page image over the limit: the file's error
        return f"not read: {exc}"  # one frame of a multi-page TIFF: the other pages are kept
    frame = image.copy()  # decodes this frame only
    if image.info.get("dpi"):
        frame.info["dpi"] = image.info["dpi"]
    return frame


@contextlib.contextmanager
def _quiet_bombs() -> Iterator[None]:
    """Pillow's warning for an image over its pixel limit is silenced: check_pixels raises instead."""
    from PIL import Image as PILImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        yield


def pixel_limit() -> int:
    """The most pixels an image or rendered page may have: Pillow's limit where set lower, else MAX_PIXELS."""
    from PIL import Image as PILImage

    return min(int(PILImage.MAX_IMAGE_PIXELS or MAX_PIXELS), MAX_PIXELS)


def check_pixels(image: Image, label: str) -> None:
    """LimitError for an image over Pillow's decompression-bomb limit, before it is decoded."""
    limit = pixel_limit()
    pixels = image.width * image.height
    if pixels > limit:
        raise LimitError(f"{label}: image of {image.width} x {image.height} = {pixels} pixels, over the limit of "
                         f"{limit} (Pillow's decompression-bomb limit)")


# -- images inside Office, ODF and EPUB files ------------------------------------------------------------
def zip_images(path: Path) -> list[str]:
    """Names of the raster images inside a zip-based document, in their natural order (image2 before image10)."""
    with zipfile.ZipFile(path) as zf:
        names = [info.filename for info in zf.infolist() if info.filename.lower().endswith(_ZIP_IMAGES)
                 and not info.is_dir() and not info.filename.startswith(_THUMBNAILS)]
    return sorted(names, key=lambda name: [int(part) if part.isdigit() else part for part in _DIGITS.split(name)])


def read_zip_images(path: Path, source: str, options: OcrOptions) -> OcrRun:
    """OCR the images inside a DOCX, PPTX, ODT or EPUB (its zip limits were checked before parsing); the
    n-th image is page n. An image that cannot be decoded or is over the pixel limit is a problem."""
    check_engine(options)
    run = OcrRun()
    with zipfile.ZipFile(path) as zf:
        read_pages(_zip_frames(zf, zip_images(path), source), options, run)
    return run


def _zip_frames(zf: zipfile.ZipFile, names: list[str], source: str) -> Iterator[tuple[int, Loader]]:
    for number, name in enumerate(names, 1):
        yield number, partial(_zip_image, zf, name, source)


def _zip_image(zf: zipfile.ZipFile, name: str, source: str) -> Image | str | None:
    from PIL import Image as PILImage

    try:
        with _quiet_bombs(), PILImage.open(io.BytesIO(zf.read(name))) as image:
            check_pixels(image, f"{source} (image {name})")
            if min(image.size) < _MIN_IMAGE_SIDE:
                return None  # an icon or a bullet, not text
            image.load()
            return image.copy()
    except LimitError as exc:
        return f"not read: {exc}"
    except Exception as exc:  # Pillow raises many kinds for an image it cannot decode (a broken or odd file)
        return f"not read: image {name} cannot be decoded: {type(exc).__name__}"
