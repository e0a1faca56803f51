"""Legal citations as a retrieval leg, measured (issue #16 item 1; docs/eval/citations.md).

The query set is built from the gesetze Markdown (../shared/data/gesetze): for sections drawn with a fixed seed,
four queries each —

    cite      by citation only:            "Was regelt § 3 BUrlG?"
    sentence  the citation in a sentence:  "Muss ich nach § 3 Abs. 1 BUrlG etwas beachten, wenn ..."
    name      the law's full name:         "Was steht in § 3 des Mindesturlaubsgesetzes für Arbeitnehmer?"
    heading   the heading's words, no citation (the control: the leg must leave it alone)

A query is answered right when a passage's heading path ends in the section's heading in that law's file.
recall@1 and MRR@5 per kind, for the leg off (= before), boost and rrf, hybrid search, on one collection.

    PYTHONPATH=. python -m benchmarks.citation_eval --laws agg,arbzg,... --sections 120 --out docs/eval/citations.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.common import DATA

KINDS = ("cite", "sentence", "name", "heading")
METHODS = ("off", "boost", "rrf")
_HEADING = re.compile(r"^#{2,7} (?:\(X+\) )?((§|Art)\.? ?(\d+[a-z]?))(?: (.+))?$")
_SENTENCES = [
    "Muss ich nach {cite} etwas beachten, wenn mein Arbeitgeber das anders sieht?",
    "Welche Voraussetzungen nennt {cite} genau?",
    "Kann man sich in meinem Fall auf {cite} berufen?",
    "Ich verstehe {cite} nicht: was bedeutet die Vorschrift praktisch?",
]


@dataclass(frozen=True)
class Query:
    qid: str
    kind: str
    text: str
    source: str  # the law's file
    heading: str  # the section's heading as the Markdown writes it


def _front(text: str) -> dict[str, str]:
    head = text.split("\n---", 2)[0] if text.startswith("---") else ""
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in head.splitlines()[1:]) if v}


def genitive(title: str) -> str:
    """"des <title>" in a rough genitive: adjectives before the head noun take -en, a head ending in -gesetz or
    -buch takes -es / -s (enough for the citation parser, which folds endings anyway; a person would write so)."""
    words = title.split()
    for i, word in enumerate(words):
        low = word.lower()
        if low.endswith(("gesetz", "gesetzbuch")):
            words[i] = word + ("es" if low.endswith("gesetz") else "s")
            for j in range(i):
                if words[j].endswith(("es", "e")) and words[j][0].isupper():
                    words[j] = re.sub(r"(es|e)$", "en", words[j])
            break
    return "des " + " ".join(words)


def sections(path: Path) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    """(front matter, [(heading, sign, number, heading title)]) of a law's Markdown; repeated headings dropped."""
    text = path.read_text(encoding="utf-8")
    out, seen = [], set()
    for line in text.splitlines():
        m = _HEADING.match(line)
        if m and "weggefallen" not in line and m.group(1) not in seen:
            seen.add(m.group(1))
            out.append((line.lstrip("#").strip(), m.group(2), m.group(3), (m.group(4) or "").strip()))
    return _front(text), out


def build_queries(data: Path, laws: list[str], per_law: int, seed: int = 16) -> list[Query]:
    """Deterministic queries: up to `per_law` sections of each law drawn with `seed`, four kinds each (a section
    whose heading has no words of its own gets no heading query)."""
    rng = random.Random(seed)
    out: list[Query] = []
    for slug in laws:
        path = next(data.glob(f"*/{slug}/index.md"))
        front, found = sections(path)
        abbr = re.sub(r"\s+(19|20)\d{2}$", "", front["jurabk"])
        for heading, sign, num, title in sorted(rng.sample(found, min(per_law, len(found))), key=lambda s: s[0]):
            ref = f"{'§' if sign == '§' else 'Art.'} {num}"
            qid = f"{slug}:{ref}"
            sentence = rng.choice(_SENTENCES).format(cite=f"{ref} Abs. 1 {abbr}")
            out += [Query(f"{qid}:cite", "cite", f"Was regelt {ref} {abbr}?", str(path), heading),
                    Query(f"{qid}:sentence", "sentence", sentence, str(path), heading),
                    Query(f"{qid}:name", "name", f"Was steht in {ref} {genitive(front['Title'])}?", str(path), heading)]
            if title:
                out.append(Query(f"{qid}:heading", "heading", f"Welche Regeln gelten zu: {title}?", str(path), heading))
    return out


def first_right(passages, q: Query) -> int | None:
    """1-based rank of the first passage of the right section, None if none in the list."""
    for rank, p in enumerate(passages, start=1):
        if Path(p.source).resolve() == Path(q.source).resolve() and p.heading_path and p.heading_path[-1] == q.heading:
            return rank
    return None


def score(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {"n": len(ranks), "recall@1": sum(r == 1 for r in ranks) / n,
            "mrr@5": sum(1 / r for r in ranks if r is not None and r <= 5) / n}


def run(laws: list[str], per_law: int, model: str, workdir: Path) -> dict:
    from pipelines.build import build_embedder, build_ingest_runner, build_retriever, build_store
    from pipelines.config import Settings

    queries = build_queries(DATA / "gesetze", laws, per_law)
    settings = Settings(embed_model=model, qdrant_path=str(workdir / "qdrant"), collection="gesetze")
    files = [next((DATA / "gesetze").glob(f"*/{slug}/index.md")) for slug in laws]
    started = time.perf_counter()
    embedder, store = build_embedder(settings), build_store(settings)
    try:
        summary = build_ingest_runner(settings, embedder, store).run(files).summary()
        ingest_s = time.perf_counter() - started
        retriever = build_retriever(settings, embedder, store)
        table: dict[str, dict[str, dict[str, float]]] = {}
        for method in METHODS:
            retriever.fusion = replace(retriever.fusion, citations=method)
            ranks: dict[str, list[int | None]] = {k: [] for k in KINDS}
            for q in queries:
                ranks[q.kind].append(first_right(retriever.retrieve(q.text, 5, truncate=True), q))
            table[method] = {kind: score(r) for kind, r in ranks.items()}
            cited = [r for k in ("cite", "sentence", "name") for r in ranks[k]]
            table[method]["all citation queries"] = score(cited)
    finally:
        store.close()
    return {"laws": laws, "per_law": per_law, "queries": len(queries), "model": model,
            "ingest": {k: summary.get(k) for k in ("files", "chunks", "points") if k in summary},
            "ingest_seconds": round(ingest_s, 1), "table": table}


def markdown(result: dict) -> str:
    rows = ["| query kind | n | " + " | ".join(f"{m} R@1 | {m} MRR@5" for m in METHODS) + " |",
            "|---|---|" + "---|---|" * len(METHODS)]
    for kind in [*KINDS, "all citation queries"]:
        cells = [f"{result['table'][m][kind]['recall@1']:.3f} | {result['table'][m][kind]['mrr@5']:.3f}"
                 for m in METHODS]
        rows.append(f"| {kind} | {result['table']['off'][kind]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--laws", default="agg,arbzg,bdsg_2018,beeg,burlg,gg,kschg,muschg_2018,prodhaftg,tmg,vwvfg")
    ap.add_argument("--per-law", type=int, default=12)
    ap.add_argument("--model", required=True, help="the embedding model directory (MiniLM)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.laws.split(","), args.per_law, args.model, Path(tmp))
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
