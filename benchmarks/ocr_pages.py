"""Pages for the OCR benchmark (benchmarks/ocr_bench.py): German running text with known ground truth (law
sections from ../shared/data/gesetze, 10kgnad news) rendered to A4 page images with Pillow, clean and degraded
like a photocopy (skew, contrast loss, blur, noise, JPEG artefacts), seeded so every run sees the same pixels."""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from benchmarks.common import DATA, news_articles

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = {"serif": "DejaVuSerif.ttf", "sans": "DejaVuSans.ttf"}
A4_INCHES = (8.27, 11.69)
MARGIN_INCHES = 2.5 / 2.54
FONT_POINTS = 11.0
LINE_SPACING = 1.25


def plain_law_sections(min_chars: int = 300) -> list[str]:
    """Every § section of the laws as plain text: heading line, then its paragraphs joined into single lines."""
    sections = []
    for path in sorted((DATA / "gesetze").rglob("*.md")):
        text = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.S)
        for chunk in re.split(r"\n(?=#+ )", text):
            head, _, body = chunk.partition("\n")
            if "§" not in head or "weggefallen" in head:
                continue
            paras = [strip_markup(p) for p in re.split(r"\n\s*\n", body)]
            paras = [p for p in paras if p]
            section = "\n".join([strip_markup(head), *paras])
            if len(section) >= min_chars:
                sections.append(section)
    return sections


def strip_markup(text: str) -> str:
    text = re.sub(r"^#+\s*", "", text.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = re.sub(r"<[^>]+>|\*\*|__|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)", "", text)  # tags, bold, italics
    text = re.sub(r"^(?:[-*+]|:)\s+", "", text, flags=re.M)  # list and definition markers
    return re.sub(r"\s+", " ", text).strip()


def page_texts(kind: str, pages: int, seed: int) -> list[list[str]]:
    """`pages` pages' worth of paragraphs (more than fit, the renderer stops where the page is full)."""
    rng = random.Random(f"{seed}-{kind}")
    if kind == "law":
        pool = plain_law_sections()
        rng.shuffle(pool)
        paras_of = [s.split("\n") for s in pool]
    else:
        arts = [t for _label, t in news_articles() if len(t) > 1500]
        rng.shuffle(arts)
        paras_of = [[p for p in re.split(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ])", re.sub(r"\s+", " ", t)) if p] for t in arts]
    out = []
    for i in range(pages):
        paras: list[str] = []
        for doc in paras_of[i * 6:(i + 1) * 6]:  # six sources per page; a page holds about 3,500 characters
            paras += doc if kind == "law" else [" ".join(doc)]
        out.append(paras)
    return out


def font(style: str, px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONT_DIR / FONTS[style]
    return ImageFont.truetype(str(path), px) if path.is_file() else ImageFont.load_default(size=px)


def render_page(paragraphs: list[str], style: str, dpi: int) -> tuple[Image.Image, str]:
    """An A4 page (8-bit grey) and the text it shows, line by line; paragraphs that do not fit are cut."""
    width, height = round(A4_INCHES[0] * dpi), round(A4_INCHES[1] * dpi)
    margin = round(MARGIN_INCHES * dpi)
    px = round(FONT_POINTS * dpi / 72)
    face = font(style, px)
    step = round(px * LINE_SPACING)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    shown: list[str] = []
    y = margin
    for para in paragraphs:
        for line in wrap(para, face, width - 2 * margin):
            if y + step > height - margin:
                return image, "\n".join(shown)
            draw.text((margin, y), line, font=face, fill=0)
            shown.append(line)
            y += step
        y += step // 2  # paragraph gap
    return image, "\n".join(shown)


def wrap(text: str, face: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        if current and face.getlength(trial) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    return [*lines, current] if current else lines


def degrade(image: Image.Image, seed: str, dpi: int, noise: float = 12.0) -> Image.Image:
    """A photocopy/fax look: skew 1-2 degrees, greyed paper and toner, blur, noise, JPEG artefacts."""
    import io

    import numpy as np

    rng = random.Random(seed)
    angle = rng.choice((-1, 1)) * rng.uniform(1.0, 2.0)
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    image = image.filter(ImageFilter.GaussianBlur(radius=1.0 * dpi / 300))
    pixels = np.asarray(image, dtype=np.float64)
    pixels = 50 + pixels * (225 - 50) / 255  # contrast loss: toner at 50, paper at 225
    pixels += np.random.default_rng(rng.randrange(2**32)).normal(0, noise, pixels.shape)
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    buf = io.BytesIO()
    noisy.save(buf, "JPEG", quality=30)
    buf.seek(0)
    return Image.open(buf).convert("L")


@dataclass(frozen=True)
class Page:
    variant: str  # e.g. "300dpi clean serif"
    source: str  # law or news
    truth: str
    image: Image.Image = field(compare=False)


def make_pages(args: argparse.Namespace) -> list[Page]:
    texts = [("law", p) for p in page_texts("law", args.law_pages, args.seed)]
    texts += [("news", p) for p in page_texts("news", args.news_pages, args.seed)]
    pages: list[Page] = []
    for dpi in args.dpis:
        for condition in ("clean", "degraded"):
            for style in FONTS:
                for i, (source, paras) in enumerate(texts):
                    image, truth = render_page(paras, style, dpi)
                    if condition == "degraded":
                        image = degrade(image, f"{args.seed}-{dpi}-{style}-{i}", dpi, args.noise)
                    pages.append(Page(f"{dpi}dpi {condition} {style}", source, truth, image))
    return pages
