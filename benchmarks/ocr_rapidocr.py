"""RapidOCR for the OCR benchmark, run by benchmarks/ocr_bench.py in RapidOCR's own venv (it needs Pillow and
rapidocr only, nothing of this project):

    PY benchmarks/ocr_rapidocr.py REQUEST.json ANSWER.json

REQUEST is a JSON list of image paths; ANSWER gets each page's text (boxes joined into lines, top to bottom,
left to right), its seconds, the wall time and rapidocr's version."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


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


if __name__ == "__main__":
    rapidocr_worker(sys.argv[1], sys.argv[2])
