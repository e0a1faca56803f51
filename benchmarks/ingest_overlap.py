"""How well an ingest hides its non-model work behind the model: ingest time / embedding time of the same chunks.

    .venv/bin/python benchmarks/ingest_overlap.py --laws 4 --news 200 --backends torch,torch-bf16 --repeats 2
    .venv/bin/python benchmarks/ingest_overlap.py --code base=/tmp/main-export --code head=. ...  # before/after

Each run is its own subprocess on a fresh edge store (the default engine): it ingests the corpus in process
(`IngestRunner.run`, as `german-rag ingest` does), recording the texts the runner hands to the model, then,
in the same process with the model loaded and warm, embeds exactly those texts again with one
`embed_documents` call. The ratio is the ingest's in-process total (`report.total_seconds`) over that
embedding time: 1.00 would mean that parsing, chunking, BM25, payloads and the store cost no wall time at
all. Next to it: the report's stage seconds (stages overlap across threads, so they add up to more than the
total), the time spent inside `embed_documents` during the ingest, and CPU seconds: the ingest process
(every thread, the model's included), the parse worker process, and the embedding alone. On a 2-core machine
the model uses both cores, so every CPU second outside the model costs about half a second of wall time.

`--code LABEL=DIR` runs the same child against another checkout (e.g. `git archive` of the branch point),
interleaved with this one round by round, so a load change on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, command_line, finish, machine, markdown_table, write_outputs
from benchmarks.ingest_bench import make_corpus, model_path

# Runs in the checkout under test (cwd and PYTHONPATH), so it uses only APIs that both sides have.
CHILD = r"""
import glob, json, os, sys, time
from pipelines.build import build_embedder, build_ingest_runner, build_store
from pipelines.config import Settings

class Recording:
    '''The embedder, recording the texts the runner embeds, when each model call ran, and the load.'''
    def __init__(self, inner):
        self.inner, self.texts, self.calls, self.load_seconds = inner, [], [], 0.0
    def load(self):
        t = time.perf_counter()
        try:
            return self.inner.load()
        finally:
            self.load_seconds += time.perf_counter() - t
    def embed_documents(self, texts, token_ids=None):
        self.texts.extend(texts)
        t = time.perf_counter()
        try:
            if token_ids is None:
                return self.inner.embed_documents(texts)
            return self.inner.embed_documents(texts, token_ids=token_ids)
        finally:
            self.calls.append((t, time.perf_counter()))
    def __getattr__(self, name):
        return getattr(self.inner, name)

def children_cpu():
    # CPU seconds of this process's children and of the children they reaped: the parse fork server and its
    # workers (/proc stat utime, stime, cutime, cstime)
    total = 0.0
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        for pid in open(path).read().split():
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total

corpus, repeats, fields = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
settings = Settings()
inner = build_embedder(settings)
embedder = Recording(inner)
store = build_store(settings)
runner = build_ingest_runner(settings, embedder, store, progress=False)
for key, value in fields.items():  # a variant's IngestRunner fields (e.g. parse_ahead)
    setattr(runner, key, value)
cpu, started = time.process_time(), time.perf_counter()
report = runner.run([corpus])
ingest_cpu = time.process_time() - cpu
worker_cpu = children_cpu()
store.close()
calls = embedder.calls
texts = list(embedder.texts)
alone, alone_cpu = [], []
for _ in range(repeats):
    cpu, t = time.process_time(), time.perf_counter()
    inner.embed_documents(texts)
    alone.append(time.perf_counter() - t)
    alone_cpu.append(time.process_time() - cpu)
summary = report.summary()
print(json.dumps({
    "files_seen": summary["files_seen"], "failed": summary.get("failed", 0), "chunks": summary["chunks"],
    "points_written": summary["points_written"], "texts_embedded": len(texts),
    "tokens_embedded": sum(len(r) for r in inner.document_ids(texts)),
    "backend": inner.backend_name, "total_seconds": report.total_seconds,
    "stage_seconds": dict(report.stage_seconds), "model_seconds_in_ingest": sum(b - a for a, b in calls),
    "first_model_call_at": calls[0][0] - started,
    "gaps_between_model_calls": sum(b[0] - a[1] for a, b in zip(calls, calls[1:])),
    "after_last_model_call": started + report.total_seconds - calls[-1][1], "model_calls": len(calls),
    "ingest_cpu_seconds": ingest_cpu, "worker_cpu_seconds": worker_cpu, "model_load_seconds": embedder.load_seconds,
    "embed_alone_seconds": min(alone), "embed_alone_runs": alone, "embed_alone_cpu_seconds": min(alone_cpu),
}))
"""

STAGES = ("parse", "chunk", "embed", "store")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--laws", type=int, default=4, help="law files from gesetze/ (smallest first)")
    p.add_argument("--news", type=int, default=200, help="10kgnad articles, one .txt each")
    p.add_argument("--model", default="minilm", help="minilm, tiny, or a model directory")
    p.add_argument("--backends", default="torch,torch-bf16", help="comma list of embed_backend values")
    p.add_argument("--code", action="append", default=[],
                   help="LABEL=DIR: a checkout to run besides this one (repeatable); this one is `head`")
    p.add_argument("--variant", action="append", default=[],
                   help="LABEL:FIELD=INT[,FIELD=INT]: also run each checkout with these IngestRunner fields set")
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds")
    p.add_argument("--embed-repeats", type=int, default=1, help="embedding-alone passes per run (the fastest counts)")
    p.add_argument("--work", help="working folder (default: a temporary folder)")
    p.add_argument("--json", help="output JSON path (default docs/bench/ingest_overlap-<machine>.json)")
    return p.parse_args(argv)


def checkouts(specs: list[str]) -> dict[str, Path]:
    out = {"head": ROOT}
    for spec in specs:
        label, sep, folder = spec.partition("=")
        if not sep or not Path(folder, "pipelines").is_dir():
            raise SystemExit(f"--code {spec!r}: expected LABEL=DIR with DIR a german-rag checkout")
        out[label] = Path(folder).resolve()
    return out


def variants(specs: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {"": {}}
    for spec in specs:
        label, _, assignments = spec.partition(":")
        try:
            out[label] = {k: int(v) for k, v in (a.split("=") for a in assignments.split(","))}
        except ValueError:
            raise SystemExit(f"--variant {spec!r}: expected LABEL:FIELD=INT[,FIELD=INT]") from None
    return out


def run_child(code: Path, corpus: Path, store: Path, model: str, backend: str, repeats: int,
              fields: dict[str, int]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GERMAN_RAG_")}
    env.update({"GERMAN_RAG_EMBED_MODEL": model, "GERMAN_RAG_QDRANT_PATH": str(store), "GERMAN_RAG_OFFLINE": "1",
                "GERMAN_RAG_EMBED_BACKEND": backend, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": str(code)})
    shutil.rmtree(store, ignore_errors=True)
    argv = [sys.executable, "-c", CHILD, str(corpus), str(repeats), json.dumps(fields)]
    done = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{code} {backend} exited {done.returncode}: {done.stderr[-3000:]}")
    shutil.rmtree(store, ignore_errors=True)
    result = json.loads(done.stdout[done.stdout.index("{"):])
    result["ratio"] = result["total_seconds"] / result["embed_alone_seconds"]
    result["outside_model_calls"] = result["total_seconds"] - result["model_seconds_in_ingest"]
    after_load = result["total_seconds"] - result["model_load_seconds"]
    result["ratio_after_load"] = after_load / result["embed_alone_seconds"]
    return result


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    info = machine()
    codes = checkouts(args.code)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ingest-overlap-") as tmp:
        work = Path(args.work or tmp)
        corpus = work / "corpus"
        shutil.rmtree(corpus, ignore_errors=True)
        make_corpus(corpus, args.laws, args.news)
        model = model_path(args.model, work)
        configs = variants(args.variant)
        runs = [(label, variant, backend) for backend in backends for label in codes for variant in configs]
        for round_no in range(args.repeats):
            k = round_no % len(runs)
            for code, variant, backend in runs[k:] + runs[:k]:  # rotated: none always runs first
                r = run_child(codes[code], corpus, work / "store", model, backend, args.embed_repeats,
                              configs[variant])
                label = f"{code} {variant}".strip()
                rows.append({"code": label, "fields": configs[variant], "round": round_no, **r})
                print(f"{label} {backend} round {round_no}: ingest {r['total_seconds']:.1f} s, embedding alone "
                      f"{r['embed_alone_seconds']:.1f} s, x{r['ratio']:.3f}", flush=True)
                result, path = save(info, args, codes, backends, rows)  # an interrupted run keeps its figures
    print(render(result))
    print(f"\nwritten {path}")
    return result


def save(info: dict, args: argparse.Namespace, codes: dict[str, Path], backends: list[str],
         rows: list[dict]) -> tuple[dict, Path]:
    result = {"laws": args.laws, "news": args.news, "model": args.model, "backends": backends,
              "codes": list(codes), "repeats": args.repeats, "command": command_line(), "results": rows,
              "summary": summarize(rows)}
    finish(info)
    return result, write_outputs("ingest_overlap", info, result, render(result), args.json)


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def summarize(rows: list[dict]) -> list[dict]:
    """Per checkout and backend: medians over the rounds (the ratio: the median of the per-run ratios)."""
    out = []
    for code, backend in dict.fromkeys((r["code"], r["backend"]) for r in rows):
        group = [r for r in rows if (r["code"], r["backend"]) == (code, backend)]
        for r in group:  # reports written before this column: derived the same way
            r.setdefault("outside_model_calls", r["total_seconds"] - r["model_seconds_in_ingest"])
        keys = ("total_seconds", "embed_alone_seconds", "ratio", "ratio_after_load", "model_seconds_in_ingest",
                "ingest_cpu_seconds",
                "worker_cpu_seconds", "embed_alone_cpu_seconds", "model_load_seconds", "first_model_call_at",
                "gaps_between_model_calls", "after_last_model_call", "outside_model_calls")
        out.append({"code": code, "backend": backend, "rounds": len(group), "chunks": group[0]["chunks"],
                    "texts_embedded": group[0]["texts_embedded"], **{k: _median(group, k) for k in keys},
                    "ratios": [round(r["ratio"], 3) for r in group],
                    "stage_seconds": {k: _median([r["stage_seconds"] for r in group], k) for k in STAGES}})
    return out


def render(result: dict) -> str:
    rows = []
    for s in result["summary"]:
        st = s["stage_seconds"]
        extra_cpu = s["ingest_cpu_seconds"] - s["embed_alone_cpu_seconds"]
        rows.append([s["code"], s["backend"], s["chunks"], s["total_seconds"], s["embed_alone_seconds"],
                     f"**x{s['ratio']:.3f}** ({', '.join(f'{x:.3f}' for x in s['ratios'])})",
                     s["model_load_seconds"], f"x{s['ratio_after_load']:.3f}",
                     " / ".join(f"{st[k]:.1f}" for k in STAGES), s["first_model_call_at"], s["model_seconds_in_ingest"],
                     s["gaps_between_model_calls"], s["after_last_model_call"], s["outside_model_calls"],
                     s["ingest_cpu_seconds"], s["embed_alone_cpu_seconds"], extra_cpu, s["worker_cpu_seconds"]])
    table = markdown_table(
        ["code", "backend", "chunks", "ingest in-process s", "embedding alone s", "ratio (per round)",
         "model load (imports, weights) s", "ratio without the load",
         "parse / chunk / embed / store s", "first model call at s", "in model calls s",
         "between model calls s", "after the last s", "outside model calls s", "ingest CPU s (main process)",
         "embedding alone CPU s", "CPU outside the model s", "parse worker CPU s"], rows)
    return (f"Corpus: {result['laws']} smallest laws from gesetze (Markdown) + {result['news']} 10kgnad articles "
            f"(.txt); model `{result['model']}`; edge store (the default engine). Command: `{result['command']}`.\n\n"
            "Per run (its own subprocess): the in-process ingest (`report.total_seconds`), then in the same "
            "process, model loaded and warm, one `embed_documents` over exactly the texts the ingest embedded. "
            "Ratio = ingest / embedding alone (the target is <= 1.10); without the load: the ingest minus its "
            "`embedder.load()` (first use: imports torch and transformers, reads the weights). The ingest's time "
            "splits into: until the first model call, in model calls, between them (the caller thread chunks, "
            "encodes BM25 and tokenizes while the model waits), after the last. Stage seconds overlap across "
            "threads. CPU "
            "outside the model = the ingest process's CPU seconds minus the embedding alone's (the parse worker "
            f"is a separate process, in its own column). {result['repeats']} interleaved round(s); medians.\n\n"
            + table + "\n")


if __name__ == "__main__":
    main()
