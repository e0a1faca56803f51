"""What document metadata (ingest.doc_meta.describe: properties, language, date) adds to parsing a file.

    .venv/bin/python benchmarks/doc_meta_cost.py                   # tests/fixtures + ../shared/data documents
    .venv/bin/python benchmarks/doc_meta_cost.py --repeat 5 FILE...

Each file is parsed `--repeat` times with `ingest.parse.parse_file`, in process; `describe` is wrapped with a
timer, so every run gives both the whole parse and the metadata's part of it. The medians per file and the
sums over all files are printed. The one-time loads (py3langid's model, dateparser's German data) happen in
a warm-up before timing: the parse workers' fork server loads them once (`prepare_parsers`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DATA, ROOT
from ingest import doc_meta, german_dates, parse

_spent: list[float] = []


def _timed_describe(*args, **kwargs):
    start = time.perf_counter()
    try:
        return doc_meta.describe(*args, **kwargs)
    finally:
        _spent.append(time.perf_counter() - start)


def default_files() -> list[Path]:
    fixtures = ROOT / "tests" / "fixtures"
    files = sorted((fixtures / "documents").rglob("*.*")) + sorted((fixtures / "gesetze").glob("*/*/index.md"))
    if (DATA / "documents").is_dir():
        files += sorted((DATA / "documents" / "html").glob("*.html"))
    return [f for f in files if "j1890" not in f.name]  # the scan has no text: it fails before metadata


def measure(path: Path, repeat: int) -> tuple[float, float]:
    """(median seconds of the whole parse, median seconds of its metadata)."""
    totals, metas = [], []
    for _ in range(repeat):
        _spent.clear()
        start = time.perf_counter()
        parse.parse_file(path)
        totals.append(time.perf_counter() - start)
        metas.append(sum(_spent))
    return statistics.median(totals), statistics.median(metas)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    files = args.files or default_files()
    start = time.perf_counter()
    doc_meta.warm_up()
    german_dates.warm_up()
    print(f"one-time loads (language model, German date data): {time.perf_counter() - start:.2f} s")
    parse.describe = _timed_describe  # type: ignore[assignment]
    for path in files:  # warm-up: partitioner imports and caches
        parse.parse_file(path)
    total = meta = 0.0
    print(f"{'file':60} {'parse ms':>9} {'meta ms':>8} {'share':>6}")
    for path in files:
        t, m = measure(path, args.repeat)
        total, meta = total + t, meta + m
        print(f"{path.name[:60]:60} {t * 1000:9.1f} {m * 1000:8.2f} {m / t:6.1%}")
    print(f"{'all files':60} {total * 1000:9.1f} {meta * 1000:8.2f} {meta / total:6.1%}")


if __name__ == "__main__":
    main()
